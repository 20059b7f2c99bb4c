"""The fault suite: real processes failing on purpose, and what must hold afterwards (README "Failure modes").

- MariaDB killed (SIGKILL) while the bulk queries run and while view SQL is read: the database fails, its good
  file stays byte for byte, the error is the project's own; a server back within the retry gives a complete file.
- A peer that accepts TCP but never speaks MySQL, and a server whose answers stall: every wait ends in time.
- A loopback GMS that is down, refuses the token, hangs, commits a batch then drops the connection, or dies after
  K batches: no database is recorded as pushed without DataHub's confirmation; after recovery the stand-in holds
  every aspect at its latest value and every soft-delete.
- A bulk information_schema statement the server refuses: the batch's databases fail with the project's error.
- Two pushes of one source at once; an extraction during a push; kill -9 of extraction and push subprocesses at
  random points (seeded): nothing lost, nothing partial, nothing redundant.
- kill -9 at known points, reported by a fault hook in the subprocess before it is killed: mid-write of an MCE file,
  between the file's rename and its snapshot, and in a push after DataHub confirmed a database but before the
  state recorded it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, RetryPolicy, materialize

from metadata_assets import local_mariadb
from metadata_assets.config import ProjectConfig
from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.datahub.push import PushFailed, forget_database, load_state, push
from metadata_assets.datahub.sinks import DataHubUnavailable, LiteSink, RestSink
from metadata_assets.defs.push import build_push_asset
from metadata_assets.defs.source_reads import read_fingerprints
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.extract import extract, rules_for
from metadata_assets.source_config import Pattern
from metadata_assets.sources.mysql import SourceUnavailable, list_databases
from metadata_assets.sources.mysql.config import MySQLSource
from metadata_assets.storage.layout import list_mce_databases, mce_key, snapshot_key, version_key
from metadata_assets.storage.store import LocalStore, open_store, sha256
from tests.faults import CountingHook, RewriteHook, SilentPeer, StallingProxy, kill_server, restart_server, within
from tests.gms_stub import GmsStub

ROOT = Path(__file__).parents[1]
PW_ENV = "FAULT_READER_PW"


# --- a private MariaDB per test: these tests kill it ---


@pytest.fixture
def server(tmp_path):
    s = local_mariadb.start(tmp_path / "mariadb")
    yield s
    s.stop()


def make_source(port: int, prefix: str, **kw) -> MySQLSource:
    fields = dict(
        name="src",
        type="mysql",
        host="127.0.0.1",
        port=port,
        user="fault_reader",
        password_env=PW_ENV,
        database_pattern=Pattern(allow=[f"{prefix}.*"]),
        connect_timeout_s=2,
        query_timeout_s=5,
    )
    fields.update(kw)
    return MySQLSource(**fields)


def with_views(server, monkeypatch, prefix: str, n_views: int, n_dbs: int = 1) -> list[str]:
    monkeypatch.setenv(PW_ENV, "pw-fault")
    dbs = []
    for d in range(n_dbs):
        db = f"{prefix}{d}"
        server.execute(
            f"CREATE DATABASE `{db}`",
            f"USE `{db}`",
            "CREATE TABLE base (id INT PRIMARY KEY COMMENT 'key', a INT, b VARCHAR(10))",
            *[f"CREATE VIEW v{i:04d} AS SELECT id, a + {i} AS a{i} FROM base" for i in range(n_views)],
        )
        dbs.append(db)
    local_mariadb.grant_reader(server, "fault_reader", "pw-fault", dbs)
    return dbs


def stored(store: LocalStore, db: str) -> tuple[bytes, bytes]:
    return store.read_bytes(mce_key("src", db)), store.read_bytes(snapshot_key("src", db))


def test_a_refused_login_fails_the_run_with_our_message_and_the_tick_skips(schema, tmp_path, monkeypatch):
    """README, Failure modes, first row: the login refused when a run starts: the run fails with
    `source 'x' (user@host:port): <reason>`; the schedule's and sensors' runs ask the daemon for 2 retries; the
    sensor tick skips with the reason and no partition is removed."""
    from dagster import SkipReason, build_sensor_context

    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.in_process import QUIET
    from metadata_assets.defs.keys import MAX_RETRIES_TAG, mce_asset_key, run_tags

    dbs = estate(schema, 1)
    cfg = schema.project(tmp_path)
    (src,) = cfg.sources
    defs = build_definitions(cfg)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("src_databases", dbs)
    monkeypatch.setenv(schema.password_env, "not-the-password")
    run = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[mce_asset_key(src)],
        partition_key=dbs[0],
        run_config=QUIET,
        raise_on_error=False,
    )
    assert not run.success
    (failure,) = [e for e in run.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.message
    assert (
        f"source 'src' ({schema.user}@{schema.server.host}:{schema.server.port}): Access denied for user" in message
    ), message
    assert "nothing was read or written" in message
    assert run_tags(src)[MAX_RETRIES_TAG] == "2"
    tick = defs.resolve_sensor_def("src_schema_sensor")(build_sensor_context(instance=instance))
    assert isinstance(tick, SkipReason) and tick.skip_message.startswith("source unreachable: source 'src' (")
    assert "Access denied" in tick.skip_message
    assert instance.get_dynamic_partitions("src_databases") == dbs  # nothing removed


def test_server_killed_while_reading_view_sql_keeps_the_good_file(server, tmp_path, monkeypatch):
    [db] = with_views(server, monkeypatch, "kv", 60)
    source, store = make_source(server.port, "kv"), LocalStore(tmp_path / "store")
    assert [r.ok for r in extract(source, [db], store)] == [True]
    good = stored(store, db)
    server.execute(f"ALTER TABLE `{db}`.base ADD COLUMN c INT")  # the next file would differ

    hook = CountingHook("SHOW CREATE TABLE", 20, lambda: kill_server(server)).install(monkeypatch)
    results, error, elapsed = within(60, lambda: list(extract(source, [db], store)))
    assert error is None, f"extract raised instead of reporting the database: {error!r}"
    [r] = results
    assert hook.fired and not r.ok and r.snapshot is None
    assert "connection lost" in r.error and "'src'" in r.error and "previous files are kept" in r.error
    assert stored(store, db) == good  # not a degraded file with SQL for 19 of 60 views
    assert elapsed < 30


def test_server_back_within_the_retry_gives_a_complete_file(server, tmp_path, monkeypatch):
    [db] = with_views(server, monkeypatch, "kr", 40)
    source, store = make_source(server.port, "kr"), LocalStore(tmp_path / "store")
    CountingHook("SHOW CREATE TABLE", 15, lambda: (kill_server(server), restart_server(server))).install(monkeypatch)
    [r] = list(extract(source, [db], store))
    assert r.ok, r.error
    logic = {
        m.entityUrn: m.aspect.viewLogic
        for m in read_mcps(store.read_bytes(mce_key("src", db)))
        if m.aspectName == "viewProperties"
    }
    assert len(logic) == 40 and all("select" in sql.lower() for sql in logic.values())


def test_server_killed_during_the_bulk_queries_fails_each_database_with_our_error(server, tmp_path, monkeypatch):
    dbs = with_views(server, monkeypatch, "kb", 2, n_dbs=3)
    source, store = make_source(server.port, "kb", batch_size=2), LocalStore(tmp_path / "store")
    CountingHook("information_schema.COLUMNS", 1, lambda: kill_server(server)).install(monkeypatch)
    results, error, elapsed = within(60, lambda: list(extract(source, dbs, store)))
    assert error is None, f"a raw driver error escaped: {error!r}"
    assert [r.database for r in results] == dbs  # every database accounted for, none hidden
    assert not any(r.ok for r in results)
    assert all("source 'src'" in r.error for r in results), [r.error for r in results]
    assert "cannot reconnect" in results[-1].error  # the second batch does not wait for a dead server again
    assert "pymysql" not in " ".join(r.error for r in results)
    assert list_mce_databases(store, "src") == [] and elapsed < 30


def test_a_bulk_query_the_server_refuses_fails_its_batch_with_our_error(server, tmp_path, monkeypatch):
    """README, Failure modes: "A bulk information_schema query refused or failing on the server": each database of
    that batch fails with `source 'x' ...: information_schema query failed: <server message>`, never a raw driver
    traceback; the other batches go on. The server really refuses the statement (an unknown column)."""
    dbs = with_views(server, monkeypatch, "rf", 1, n_dbs=3)
    source, store = make_source(server.port, "rf", batch_size=2), LocalStore(tmp_path / "store")
    hook = RewriteHook("information_schema.COLUMNS", 1, "COLUMN_NAME", "NO_SUCH_COLUMN").install(monkeypatch)
    results, error, _ = within(60, lambda: list(extract(source, dbs, store)))
    assert error is None, f"a raw driver error escaped: {error!r}"
    assert hook.sent is not None
    assert [(r.database, r.ok) for r in results] == [(dbs[0], False), (dbs[1], False), (dbs[2], True)]
    expected = (
        f"source 'src' (fault_reader@127.0.0.1:{server.port}): information_schema query failed: "
        "Unknown column 'NO_SUCH_COLUMN' in 'SELECT'"
    )  # MariaDB 10.11's own words
    for r in results[:2]:
        assert r.error == expected, r.error  # the server's own message, after the project's prefix; nothing else
    assert list_mce_databases(store, "src") == [dbs[2]]  # the other batch went on and was written


def test_a_peer_that_never_speaks_mysql_is_given_up_on_in_time(monkeypatch):
    peer = SilentPeer()
    monkeypatch.setenv(PW_ENV, "x")
    try:
        source = make_source(peer.port, "any", connect_timeout_s=1)
        for call in (list_databases, read_fingerprints):  # a run's connect, a sensor tick
            _, error, elapsed = within(20, call, source)
            assert isinstance(error, SourceUnavailable) and elapsed < 5, (call, error, elapsed)
            assert "source 'src'" in str(error)
    finally:
        peer.close()


def test_a_query_that_never_returns_is_bounded(server, tmp_path, monkeypatch):
    dbs = with_views(server, monkeypatch, "st", 3)
    proxy = StallingProxy(server.port)
    try:
        source = make_source(proxy.port, "st", connect_timeout_s=1, query_timeout_s=1)
        store = LocalStore(tmp_path / "store")
        assert all(r.ok for r in extract(source, dbs, store))
        # stall right after the login: the bulk query waits for an answer that never comes
        CountingHook("information_schema.TABLES", 1, proxy.stall).install(monkeypatch)
        results, error, elapsed = within(30, lambda: list(extract(source, dbs, store, privilege_check=False)))
        assert error is None and not results[0].ok and "connection lost" in results[0].error
        assert elapsed < 10
        _, error, elapsed = within(30, read_fingerprints, source)  # the sensor's tick: bounded too
        assert isinstance(error, SourceUnavailable) and elapsed < 10
    finally:
        proxy.close()


def test_a_sensor_tick_ends_at_its_deadline_however_slow_each_step(server, tmp_path, monkeypatch):
    """README, Failure modes: a sensor tick's connect and fingerprint statements end within one total deadline
    (45 s, inside Dagster's 60 s sensor timeout), not within a bound per step. Here every piece of the server's
    answers arrives 1 s late, each read within its own 2 s timeout, so the read takes over 5 s; with the deadline
    at 2.5 s the tick skips with the deadline's reason once it passes (generous bound: under 5 s)."""
    from dagster import DagsterInstance, SkipReason, build_sensor_context

    from metadata_assets.defs.schema_sensor import build_schema_sensor
    from metadata_assets.sources.mysql import kind as mysql_kind

    assert mysql_kind.SENSOR_TICK_DEADLINE_S <= 50  # the real one leaves Dagster's own calls 10 s at least
    dbs = with_views(server, monkeypatch, "sd", 1, n_dbs=2)
    proxy = StallingProxy(server.port)
    try:
        source = make_source(proxy.port, "sd", connect_timeout_s=2, query_timeout_s=2)
        fps, error, _ = within(30, read_fingerprints, source)  # a healthy link: well inside the deadline
        assert error is None and sorted(fps) == dbs
        proxy.slow(1.0)
        _, error, elapsed = within(60, read_fingerprints, source)
        assert error is None and elapsed > 5, elapsed  # what each step's own bound allows: it runs on
        monkeypatch.setattr(mysql_kind, "SENSOR_TICK_DEADLINE_S", 2.5)
        cfg = ProjectConfig(
            sources=[source],
            storage={"uri": str(tmp_path / "store")},
            datahub={"lite": {"path": str(tmp_path / "lite.sqlite")}},
        )
        sensor = build_schema_sensor(SourceSetup.of(cfg, source))
        result, error, elapsed = within(30, sensor, build_sensor_context(instance=DagsterInstance.ephemeral()))
        assert error is None and isinstance(result, SkipReason), (error, result)
        assert "did not finish within the sensor tick's deadline of 2.5s" in result.skip_message
        assert "source 'src'" in result.skip_message
        assert 2.5 <= elapsed < 5, elapsed
    finally:
        proxy.close()


def test_a_postgres_sensor_tick_ends_at_its_deadline(tmp_path, monkeypatch):
    """PostgreSQL, one connection per database: past the tick's deadline no database is started; each connect and
    statement gets what is left of it (libpq's floors: 2 s a connect, 1 s a statement), and a database new to the
    sensor that the tick could not reach is returned as UNREAD (added, then read first on the next tick)."""
    from metadata_assets import local_postgres
    from metadata_assets.defs.schema_sensor import plan
    from metadata_assets.sources.postgres import kind as pg_kind
    from metadata_assets.sources.postgres.config import PostgresSource

    server = local_postgres.start(tmp_path / "pg")
    proxy = None
    try:
        dbs = [f"pd{i}" for i in range(4)]
        for db in dbs:
            local_postgres.create_database(server, db)
        local_postgres.execute(server, "postgres", "CREATE ROLE fault_pg LOGIN PASSWORD 'pw-fault'")
        monkeypatch.setenv(PW_ENV, "pw-fault")
        proxy = StallingProxy(server.port)
        source = PostgresSource(
            name="src",
            type="postgres",
            host="127.0.0.1",
            port=proxy.port,
            user="fault_pg",
            password_env=PW_ENV,
            database_pattern=Pattern(allow=["pd.*"]),
            connect_timeout_s=5,
            query_timeout_s=5,
        )
        fps, error, _ = within(60, pg_kind.KIND.fingerprints, source)
        assert error is None and sorted(fps) == dbs and pg_kind.UNREAD not in fps.values()
        proxy.slow(0.4)  # each answer late: a connect and its statements take about 2 s, each read within 5 s
        monkeypatch.setattr(pg_kind, "SENSOR_TICK_DEADLINE_S", 3.0)
        monkeypatch.setattr(pg_kind, "FINGERPRINT_BUDGET_S", 3.0)
        fps, error, elapsed = within(60, pg_kind.KIND.fingerprints, source)
        assert error is None, error
        assert elapsed < 3.0 + 2 + 1 + 1, elapsed  # the deadline, the floors of the last step, a second of slack
        assert sorted(fps) == dbs and pg_kind.UNREAD in fps.values()  # every database accounted for
        proxy.slow(0)
        again, error, _ = within(60, pg_kind.KIND.fingerprints, source, cursor=fps)
        assert error is None and sorted(again) == dbs and pg_kind.UNREAD not in again.values()
        # what the sensor makes of it: an unread new database is added (its run reads it), compared with nothing;
        # read on the next tick, it is not taken for changed (it is materialized by then)
        unread = sorted(db for db, fp in fps.items() if fp == pg_kind.UNREAD)
        first = plan(fps, {}, [])
        assert first.add == dbs and first.changed == [] and set(unread) <= set(first.requested)
        second = plan(again, fps, dbs, materialized=set(dbs))
        assert second.changed == [] and second.never_materialized == [] and second.remove == []
    finally:
        if proxy:
            proxy.close()
        server.destroy()


# --- DataHub faults: a loopback GMS with fault modes ---


@pytest.fixture
def gms(monkeypatch):
    stub = GmsStub().start()
    monkeypatch.setenv("FAULT_GMS_URL", stub.url)
    yield stub
    stub.stop()


def rest_cfg(schema, tmp_path, **rest) -> ProjectConfig:
    cfg = schema.project(tmp_path)
    rest = {"server_env": "FAULT_GMS_URL", "token_env": None, "retries": 0, "timeout_s": 2, "batch_size": 50, **rest}
    return cfg.model_copy(
        update={"datahub": cfg.datahub.model_validate({"target": "rest", "rest": rest, "max_removal_share": 1.0})}
    )


def estate(schema, n_dbs=4, n_tables=3) -> list[str]:
    dbs = [
        schema.create(
            f"d{i}", *[f"CREATE TABLE t{j} (id INT PRIMARY KEY, v VARCHAR(5) COMMENT 'c{j}')" for j in range(n_tables)]
        )
        for i in range(n_dbs)
    ]
    schema.grant()
    return dbs


def refresh(cfg, dbs):
    results = list(extract(cfg.sources[0], dbs, open_store(cfg.storage.uri)))
    assert all(r.ok for r in results), [r.error for r in results]


def rest_push(cfg, **kw):
    sink = RestSink(cfg.datahub.rest)
    try:
        return push(open_store(cfg.storage.uri), "src", rules_for(cfg.sources[0]), sink, max_removal_share=1.0, **kw)
    finally:
        sink.close()


def assert_confirmed_only(cfg, stub: GmsStub) -> None:
    """Every database the state records as pushed has every proposal of the file it recorded in the stand-in,
    at its latest value."""
    store = open_store(cfg.storage.uri)
    for db in load_state(store, "src"):
        for m in read_mcps(store.read_bytes(mce_key("src", db))):
            assert stub.aspects(m.entityUrn).get(m.aspectName) == m.aspect, (db, m.entityUrn, m.aspectName)


def test_refused_token_fails_at_once_without_retries(schema, tmp_path, gms):
    dbs = estate(schema, 2)
    cfg = rest_cfg(schema, tmp_path, retries=3)
    refresh(cfg, dbs)
    gms.refuse(401)
    _, error, elapsed = within(30, rest_push, cfg)
    assert isinstance(error, PushFailed) and not error.retryable and error.report.stopped == "refused"
    assert "HTTP 401" in str(error) and "retrying cannot help" in str(error) and elapsed < 5
    assert not [r for r in gms.requests if r[0] == "POST"] and load_state(open_store(cfg.storage.uri), "src") == {}

    # the Dagster step is not retried either (its RetryPolicy would otherwise repeat it)
    asset = build_push_asset(SourceSetup.of(cfg, cfg.sources[0]), retry_policy=RetryPolicy(max_retries=3, delay=0))
    gms.refuse(403)
    with DagsterInstance.ephemeral() as instance:
        result = materialize([asset], instance=instance, raise_on_error=False)
        assert not result.success
        types = [e.event_type for e in result.all_events]
        assert DagsterEventType.STEP_UP_FOR_RETRY not in types and types.count(DagsterEventType.STEP_FAILURE) == 1
    gms.heal()
    rest_push(cfg)
    assert_confirmed_only(cfg, gms)
    assert set(load_state(open_store(cfg.storage.uri), "src")) == set(dbs)


def test_hung_datahub_stops_at_the_push_deadline(schema, tmp_path, gms):
    """README, Failure modes, "DataHub hangs": the push stops at datahub.push_deadline_s with `reached its deadline`
    and is not retried. DataHub never answers within the client's timeout (1 s); the deadline (1.5 s) comes before
    3 databases can fail in a row (3 s at least), so the deadline is the one outcome."""
    dbs = estate(schema, 4)
    cfg = rest_cfg(schema, tmp_path, timeout_s=1)
    refresh(cfg, dbs)
    gms.hang(5)  # every request outlives the client's timeout
    _, error, elapsed = within(60, rest_push, cfg, deadline_s=1.5)
    assert isinstance(error, PushFailed) and elapsed < 10, (error, elapsed)
    assert error.report.stopped == "deadline" and not error.retryable
    assert "the push reached its deadline (datahub.push_deadline_s)" in str(error)
    assert error.report.not_attempted and len(error.report.failures) < 3
    assert load_state(open_store(cfg.storage.uri), "src") == {}  # nothing confirmed, nothing recorded
    gms.heal()
    rest_push(cfg)
    assert set(load_state(open_store(cfg.storage.uri), "src")) == set(dbs)
    assert_confirmed_only(cfg, gms)


def test_three_databases_failing_in_a_row_stop_the_push(schema, tmp_path, gms):
    """README, Failure modes, "DataHub down": after 3 databases fail in a row the push stops and fails; the step's
    RetryPolicy retries it; what was not attempted stays pending."""
    dbs = estate(schema, 6)
    cfg = rest_cfg(schema, tmp_path)  # retries 0, one request per database
    refresh(cfg, dbs)
    gms.fail_with(503, times=1000)
    with pytest.raises(PushFailed) as e:
        rest_push(cfg)
    report = e.value.report
    assert report.stopped == "datahub down" and e.value.retryable
    assert list(report.failures) == dbs[:3] and report.not_attempted == dbs[3:]
    assert len([r for r in gms.requests if r[0] == "POST"]) == 3  # nothing sent after the third failure
    assert "3 databases failed in a row: DataHub taken as down" in str(e.value)
    assert load_state(open_store(cfg.storage.uri), "src") == {}

    import inspect

    from metadata_assets.defs import push as push_defs

    # the README's "3 times, from 60 s", then the push sensor an hour after a failed push
    assert (push_defs.RETRY_POLICY.max_retries, push_defs.RETRY_POLICY.delay) == (3, 60)
    assert build_push_asset(SourceSetup.of(cfg, cfg.sources[0])).op.retry_policy == push_defs.RETRY_POLICY
    assert inspect.signature(push_defs.build_push_sensor).parameters["retry_failed_after_s"].default == 3600
    asset = build_push_asset(SourceSetup.of(cfg, cfg.sources[0]), retry_policy=RetryPolicy(max_retries=1, delay=0))
    with DagsterInstance.ephemeral() as instance:
        result = materialize([asset], instance=instance, raise_on_error=False)
        types = [ev.event_type for ev in result.all_events]
        assert not result.success and types.count(DagsterEventType.STEP_UP_FOR_RETRY) == 1
    gms.heal()
    rest_push(cfg)
    assert set(load_state(open_store(cfg.storage.uri), "src")) == set(dbs)


def test_death_after_k_batches_and_commit_then_dropped_connection(schema, tmp_path, gms):
    dbs = estate(schema, 5)
    cfg = rest_cfg(schema, tmp_path)  # one request per database (batch_size 50)
    refresh(cfg, dbs)
    store = open_store(cfg.storage.uri)
    port = gms.port

    gms.die_after(2)  # two requests accepted, then the port closes
    with pytest.raises(PushFailed) as e:
        rest_push(cfg)
    assert set(load_state(store, "src")) == set(dbs[:2])
    assert set(e.value.report.failures) | set(e.value.report.not_attempted) == set(dbs[2:])
    assert_confirmed_only(cfg, gms)

    gms.heal()
    gms.start(port)  # DataHub is back, and then writes the first batch but the answer is lost
    gms.drop_after_commit(1)
    with pytest.raises(PushFailed) as e:
        rest_push(cfg)
    assert set(e.value.report.failures) == {dbs[2]}  # not recorded: it will be sent again
    assert set(load_state(store, "src")) == set(dbs) - {dbs[2]}
    assert_confirmed_only(cfg, gms)

    report = rest_push(cfg)
    assert report.databases_pushed == [dbs[2]]  # only what was not confirmed
    assert set(load_state(store, "src")) == set(dbs)
    assert_confirmed_only(cfg, gms)

    # a soft-delete survives a failed delivery: DataHub down when the database is dropped, back later
    forget_database(store, "src", dbs[0])
    gms.stop()
    with pytest.raises(DataHubUnavailable):  # down before the first request: nothing sent, nothing recorded
        rest_push(cfg)
    assert dbs[0] in load_state(store, "src")
    gms.start(port)
    rest_push(cfg)
    assert dbs[0] not in load_state(store, "src")
    assert {f"urn:li:dataset:(urn:li:dataPlatform:mysql,{dbs[0]}.t{j},PROD)" for j in range(3)} <= gms.removed()


# --- concurrency: two pushes at once, an extraction during a push ---


class GatedLite(LiteSink):
    """DataHub Lite whose first emit waits for a gate: a push that is slow exactly when the test wants."""

    def __init__(self, target, gate: threading.Event, on_emit=None):
        super().__init__(target)
        self.gate, self.on_emit, self.calls = gate, on_emit, 0

    def _first_waits(self):
        self.calls += 1
        if self.calls == 1:
            if self.on_emit:
                self.on_emit()
            assert self.gate.wait(30)

    def emit(self, mcps, *args, **kwargs):
        self._first_waits()
        super().emit(mcps, *args, **kwargs)

    def emit_objs(self, objs, *args, **kwargs):  # the push's path into Lite (datahub/lite_write.py)
        self._first_waits()
        super().emit_objs(objs, *args, **kwargs)


def test_two_pushes_at_once_lose_no_update(schema, tmp_path):
    dbs = estate(schema, 2)
    cfg = schema.project(tmp_path)
    store = open_store(cfg.storage.uri)
    rules = rules_for(cfg.sources[0])
    refresh(cfg, [dbs[0]])  # push A sees only the first database
    gate, entered = threading.Event(), threading.Event()
    slow = GatedLite(cfg.datahub.lite, gate, on_emit=entered.set)
    errors = []

    def push_a():
        try:
            push(store, "src", rules, slow, max_removal_share=1.0)
        except BaseException as e:  # a push that dies would "lose no update" for the wrong reason
            errors.append(e)

    a = threading.Thread(target=push_a)
    a.start()
    assert entered.wait(30)  # A has planned (state empty) and is sending
    refresh(cfg, [dbs[1]])  # the second database appears; push B starts while A is still sending
    done_b = threading.Event()

    def push_b():
        sink = LiteSink(cfg.datahub.lite.model_copy(update={"path": str(tmp_path / "lite-b.sqlite")}))
        push(store, "src", rules, sink, max_removal_share=1.0)
        sink.close()
        done_b.set()

    b = threading.Thread(target=push_b)
    b.start()
    # Without the lock B runs through and saves first, then A's save overwrites B's record: give B the time to
    # (5 s; it needs under 2). With the lock B waits for A, and A finishes once the gate opens.
    done_b.wait(5)
    gate.set()
    a.join(30)
    b.join(30)
    assert done_b.is_set() and not errors
    assert set(load_state(store, "src")) == set(dbs)  # neither push's record was overwritten by the other's
    slow.close()


HOLD_THE_PUSH_LOCK = """
import sys, time
from metadata_assets.storage.store import LocalStore
from metadata_assets.datahub.push import lock_key
with LocalStore(sys.argv[1]).lock(lock_key("src"), wait_s=5, lease_s=60):
    print("locked", flush=True)
    time.sleep(600)  # killed here, the lock held
"""


def test_a_second_push_waits_then_fails_naming_the_holder_and_kill_9_frees_the_lock(schema, tmp_path, monkeypatch):
    """README, Failure modes, "Two pushes of one source at once": the second push waits for the lock (30 s; 1 s
    here), then fails with who holds it, and the Dagster step is retried; the kernel releases a flock held by a
    process killed with SIGKILL, so the next push goes through."""
    from metadata_assets.storage.locks import LockBusy

    dbs = estate(schema, 1)
    cfg = schema.project(tmp_path)
    refresh(cfg, dbs)
    proc, _ = start_until(HOLD_THE_PUSH_LOCK, [str(tmp_path / "store")], "locked")
    try:
        lite = LiteSink(cfg.datahub.lite)
        try:
            with pytest.raises(LockBusy) as e:
                push(
                    open_store(cfg.storage.uri),
                    "src",
                    rules_for(cfg.sources[0]),
                    lite,
                    max_removal_share=1.0,
                    lock_wait_s=1,
                )
        finally:
            lite.close()
        assert f"is held by another process (pid {proc.pid} on " in str(e.value) and "waited 1s" in str(e.value)
        import inspect

        from metadata_assets.defs import push as push_defs

        assert inspect.signature(push).parameters["lock_wait_s"].default == 30  # the README's 30 s
        monkeypatch.setattr(push_defs, "push", lambda *a, **kw: push(*a, **{**kw, "lock_wait_s": 1}))
        asset = build_push_asset(SourceSetup.of(cfg, cfg.sources[0]), retry_policy=RetryPolicy(max_retries=1, delay=0))
        with DagsterInstance.ephemeral() as instance:
            result = materialize([asset], instance=instance, raise_on_error=False)
            types = [ev.event_type for ev in result.all_events]
            assert not result.success and types.count(DagsterEventType.STEP_UP_FOR_RETRY) == 1
    finally:
        kill_9(proc)
    assert lite_push(cfg).databases_pushed == dbs  # the killed holder's lock is gone


def test_extraction_during_a_push_records_what_was_sent(schema, tmp_path):
    dbs = estate(schema, 2)
    cfg = schema.project(tmp_path)
    store = open_store(cfg.storage.uri)
    rules = rules_for(cfg.sources[0])
    refresh(cfg, dbs)

    def extraction_now():  # while the push sends the first database, the second changes and is re-extracted
        schema.server.execute(f"ALTER TABLE `{dbs[1]}`.t0 ADD COLUMN late INT")
        refresh(cfg, [dbs[1]])

    gate = threading.Event()
    gate.set()
    sink = GatedLite(cfg.datahub.lite, gate, on_emit=extraction_now)
    push(store, "src", rules, sink, max_removal_share=1.0)
    sink.close()
    sent = load_state(store, "src")
    lite = LiteSink(cfg.datahub.lite)
    try:
        again = push(store, "src", rules, lite, max_removal_share=1.0)
    finally:
        lite.close()
    assert again.databases_pushed == [] and again.proposals_sent == 0, "the file sent was recorded as its version"
    assert sent[dbs[1]].data_version == load_state(store, "src")[dbs[1]].data_version


# --- kill -9 at random points ---

EXTRACT_SCRIPT = """
import sys
from metadata_assets.config import ProjectConfig
from metadata_assets.storage.store import open_store
from metadata_assets.extract import extract
cfg = ProjectConfig.model_validate_json(sys.argv[1])
print("ready", flush=True)
for r in extract(cfg.sources[0], sys.argv[2].split(","), open_store(cfg.storage.uri), rewrite=True):
    assert r.ok, r.error
print("done", flush=True)
"""

PUSH_SCRIPT = """
import sys
from metadata_assets.config import ProjectConfig
from metadata_assets.storage.store import open_store
from metadata_assets.datahub.push import push
from metadata_assets.datahub.sinks import RestSink
from metadata_assets.extract import rules_for
cfg = ProjectConfig.model_validate_json(sys.argv[1])
sink = RestSink(cfg.datahub.rest)
print("ready", flush=True)
push(open_store(cfg.storage.uri), "src", rules_for(cfg.sources[0]), sink, max_removal_share=1.0)
print("done", flush=True)
"""


def run_and_kill(script: str, args: list[str], after_s: float, env: dict) -> bool:
    """Start the script, wait for 'ready', kill -9 after `after_s`; True if it finished before the kill."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    time.sleep(after_s)
    proc.kill()
    out, err = proc.communicate(timeout=30)
    return "done" in out


def test_kill_9_of_extraction_and_push_loses_nothing(schema, tmp_path, gms):
    dbs = estate(schema, 6, n_tables=12)
    cfg = rest_cfg(schema, tmp_path, batch_size=5)
    cfg = cfg.model_copy(update={"sources": [cfg.sources[0].model_copy(update={"batch_size": 2})]})
    store = open_store(cfg.storage.uri)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(20261202)
    refresh(cfg, dbs)
    for _ in range(4):
        schema.server.execute(f"ALTER TABLE `{rng.choice(dbs)}`.t0 ADD COLUMN c{uuid.uuid4().hex[:6]} INT")
        run_and_kill(EXTRACT_SCRIPT, [cfg.model_dump_json(), ",".join(dbs)], rng.uniform(0.05, 1.5), env)
        for db in dbs:  # whole files only: each MCE file parses, and its snapshot (if any) describes it
            data, snap = stored(store, db)
            read_mcps(data)
            if snap is not None:
                assert json.loads(snap)["file_sha256"] == sha256(data)
    refresh(cfg, dbs)

    gms.hang(0.05)  # slow enough that the kills land mid-push
    for _ in range(4):
        run_and_kill(PUSH_SCRIPT, [cfg.model_dump_json()], rng.uniform(0.05, 1.0), env)
        assert_confirmed_only(cfg, gms)  # nothing recorded as pushed that DataHub did not confirm
    gms.heal()
    rest_push(cfg)
    assert set(load_state(store, "src")) == set(dbs)
    assert_confirmed_only(cfg, gms)


# --- kill -9 at a known point: a fault hook in the subprocess says where it stands, then waits to be killed ---

EXTRACT_PAUSED_MID_WRITE = """
import os, sys, time
from pathlib import Path
from metadata_assets.config import ProjectConfig
from metadata_assets.storage.store import LocalStore, open_store
from metadata_assets.extract import extract
cfg = ProjectConfig.model_validate_json(sys.argv[1])
target, where = sys.argv[3], sys.argv[4]
write_chunks, write_bytes = LocalStore.write_chunks, LocalStore.write_bytes

def paused_chunks(self, key, chunks, before_commit=None):
    if key == target and where == "before-snapshot":  # the snapshot is written in pieces (catalog.json_chunks)
        print("before-snapshot", flush=True)  # the MCE file is renamed into place; its snapshot is not written yet
        time.sleep(600)  # killed here
    if key != target or where != "mid-write":
        return write_chunks(self, key, chunks, before_commit)
    def paused():
        it = iter(chunks)
        yield next(it)  # the temp file exists and holds (or buffers) the first piece
        path = self._path(key)
        print("mid-write", *sorted(str(p) for p in path.parent.glob("." + path.name[:50] + ".*.tmp")), flush=True)
        time.sleep(600)  # killed here
        yield from it
    return write_chunks(self, key, paused(), before_commit)

def paused_bytes(self, key, data):
    if key == target and where == "before-snapshot":
        print("before-snapshot", flush=True)  # the MCE file is renamed into place; its snapshot is not written yet
        time.sleep(600)  # killed here
    return write_bytes(self, key, data)

LocalStore.write_chunks, LocalStore.write_bytes = paused_chunks, paused_bytes
print("ready", flush=True)
for r in extract(cfg.sources[0], sys.argv[2].split(","), open_store(cfg.storage.uri), rewrite=True):
    assert r.ok, r.error
print("done", flush=True)
"""

PUSH_PAUSED_AFTER_CONFIRMED = """
import sys, time
from metadata_assets.config import ProjectConfig
from metadata_assets.datahub import push as push_mod
from metadata_assets.storage.store import open_store
from metadata_assets.datahub.sinks import RestSink
from metadata_assets.extract import rules_for
cfg = ProjectConfig.model_validate_json(sys.argv[1])
push_mod.SAVE_EVERY = int(sys.argv[2])
stop_after = int(sys.argv[3])
sink = RestSink(cfg.datahub.rest)
emit, confirmed = sink.emit, []

def emit_then_pause(mcps, *a, **kw):
    emit(mcps, *a, **kw)  # DataHub confirmed this database
    confirmed.append(mcps[0].entityUrn)
    if len(confirmed) == stop_after:
        print("confirmed", len(confirmed), flush=True)
        time.sleep(600)  # killed here, before the push records it

sink.emit = emit_then_pause
print("ready", flush=True)
push_mod.push(open_store(cfg.storage.uri), "src", rules_for(cfg.sources[0]), sink, max_removal_share=1.0)
print("done", flush=True)
"""


def start_until(script: str, args: list[str], marker: str) -> tuple[subprocess.Popen, str]:
    """Start the script and read its output up to the line starting with `marker` (the fault hook's report)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(marker):
            return proc, line
    proc.wait(timeout=30)
    raise AssertionError(f"no {marker!r} line: {''.join(lines)}{proc.stderr.read()}")


def kill_9(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -9


def lite_push(cfg):
    sink = LiteSink(cfg.datahub.lite)
    try:
        return push(open_store(cfg.storage.uri), "src", rules_for(cfg.sources[0]), sink, max_removal_share=1.0)
    finally:
        sink.close()


def test_extraction_killed_mid_write_and_before_its_snapshot(schema, tmp_path):
    """README, Failure modes, "An extraction killed mid-write", at the two points a fault hook in the subprocess
    reports before it is killed:
    - while the new file is written (its temp file exists, the rename has not happened): the file, its snapshot
      and version record stay the old ones, whole; the temp file left behind is removed by an extraction once it
      is 10 minutes old;
    - after the new file was renamed into place, before its snapshot was written: the old snapshot and version
      record are already gone, so the push sends the new file (a re-push, never a skipped one)."""
    dbs = estate(schema, 3)
    cfg = schema.project(tmp_path)
    store = open_store(cfg.storage.uri)
    refresh(cfg, dbs)
    lite_push(cfg)
    key = mce_key("src", dbs[1])
    before = [store.read_bytes(k) for k in (key, snapshot_key("src", dbs[1]), version_key("src", dbs[1]))]
    schema.server.execute(f"ALTER TABLE `{dbs[1]}`.t0 ADD COLUMN added_before_the_kill INT")
    args = [cfg.model_dump_json(), ",".join(dbs), key]

    proc, line = start_until(EXTRACT_PAUSED_MID_WRITE, [*args, "mid-write"], "mid-write")
    temps = [Path(t) for t in line.split()[1:]]
    assert len(temps) == 1 and temps[0].exists()  # where the kill lands: the temp file is there...
    assert store.read_bytes(key) == before[0]  # ...and the rename has not happened
    kill_9(proc)
    after = [store.read_bytes(k) for k in (key, snapshot_key("src", dbs[1]), version_key("src", dbs[1]))]
    assert after == before  # the old file, snapshot and version record, whole and consistent
    assert temps[0].exists() and list_mce_databases(store, "src") == dbs  # the temp file is never listed
    assert lite_push(cfg).databases_pushed == []  # nothing half-written to send
    os.utime(temps[0], (time.time() - 601, time.time() - 601))
    list(extract(cfg.sources[0], [dbs[0]], store))  # any extraction of the source
    assert not temps[0].exists()

    proc, line = start_until(
        EXTRACT_PAUSED_MID_WRITE, [*args[:2], snapshot_key("src", dbs[1]), "before-snapshot"], "before-snapshot"
    )
    assert b"added_before_the_kill" in store.read_bytes(key)  # where the kill lands: the new file is in place...
    assert store.read_bytes(snapshot_key("src", dbs[1])) is None  # ...its old snapshot already gone
    kill_9(proc)
    assert store.read_bytes(version_key("src", dbs[1])) is None
    read_mcps(store.read_bytes(key))  # whole
    report = lite_push(cfg)
    assert report.databases_pushed == [dbs[1]]  # the new file is sent, not skipped as already pushed


def test_push_killed_between_saves_resends_only_what_was_not_recorded(schema, tmp_path, gms):
    """README, Failure modes, "A push killed": the state is saved every SAVE_EVERY databases (50; 2 here) and at the
    end; the kill lands after DataHub confirmed the third database and before any save of it (the hook says so),
    so the state holds the first two, and the next push sends the other four, the third again."""
    dbs = estate(schema, 6)
    cfg = rest_cfg(schema, tmp_path)
    store = open_store(cfg.storage.uri)
    refresh(cfg, dbs)
    proc, line = start_until(PUSH_PAUSED_AFTER_CONFIRMED, [cfg.model_dump_json(), "2", "3"], "confirmed")
    assert line.split() == ["confirmed", "3"]
    kill_9(proc)
    assert set(load_state(store, "src")) == set(dbs[:2])  # saved at 2; the third was confirmed after that save
    assert len([r for r in gms.requests if r[0] == "POST"]) == 3
    assert_confirmed_only(cfg, gms)
    report = rest_push(cfg)
    assert report.databases_pushed == dbs[2:]
    assert set(load_state(store, "src")) == set(dbs)
    assert_confirmed_only(cfg, gms)
