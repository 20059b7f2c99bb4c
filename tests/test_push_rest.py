"""Push to DataHub GMS over REST, against a loopback GMS that decodes every proposal with acryl-datahub's classes."""

import logging

import pytest
from dagster import DagsterInstance, RetryPolicy, build_sensor_context, materialize

from metadata_assets.config import ProjectConfig
from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.datahub.push import PushFailed, forget_database, load_state, push
from metadata_assets.datahub.sinks import DataHubUnavailable, RestSink
from metadata_assets.defs.keys import PUSH_SOURCE_TAG
from metadata_assets.defs.push import build_push_asset, build_push_sensor
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.extract import extract, rules_for
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import open_store
from tests.gms_stub import GmsStub

TOKEN = "secret-token-do-not-log"


def urn(db: str, table: str) -> str:
    return f"urn:li:dataset:(urn:li:dataPlatform:mysql,{db}.{table},PROD)"


@pytest.fixture
def gms(monkeypatch):
    stub = GmsStub().start()
    monkeypatch.setenv("TEST_GMS_URL", stub.url)
    monkeypatch.setenv("TEST_GMS_TOKEN", TOKEN)
    yield stub
    stub.stop()


def rest_project(schema, tmp_path, **datahub) -> ProjectConfig:
    cfg = schema.project(tmp_path)
    rest = {"server_env": "TEST_GMS_URL", "token_env": "TEST_GMS_TOKEN", "retries": 1, "timeout_s": 5, "batch_size": 40}
    return cfg.model_copy(update={"datahub": cfg.datahub.model_validate({"target": "rest", "rest": rest, **datahub})})


def refresh(cfg, databases) -> None:
    results = list(extract(cfg.sources[0], databases, open_store(cfg.storage.uri)))
    assert all(r.ok for r in results), [r.error for r in results]


def push_rest(cfg, **kw):
    sink = RestSink(cfg.datahub.rest)
    try:
        return push(
            open_store(cfg.storage.uri),
            "src",
            rules_for(cfg.sources[0]),
            sink,
            max_removal_share=cfg.datahub.max_removal_share,
            **kw,
        )
    finally:
        sink.close()


def file_proposals(cfg, db):
    return read_mcps(open_store(cfg.storage.uri).read_bytes(mce_key("src", db)))


def make_three(schema):
    dbs = [
        schema.create(n, *[f"CREATE TABLE t{i} (id INT PRIMARY KEY COMMENT 'key', v VARCHAR(10))" for i in range(4)])
        for n in ("a", "b", "c")
    ]
    schema.grant()
    return dbs


def test_rest_push_cases(schema, tmp_path, gms, caplog):
    caplog.set_level(logging.DEBUG)
    a, b, c = make_three(schema)
    cfg = rest_project(schema, tmp_path)
    refresh(cfg, [a, b, c])

    # first push: every proposal of every file arrives, decoded, batched, synchronous, with the token
    report = push_rest(cfg)
    expected = [p for db in (a, b, c) for p in file_proposals(cfg, db)]
    assert [(p.entityUrn, p.aspectName, p.aspect) for p in gms.proposals] == [
        (p.entityUrn, p.aspectName, p.aspect) for p in expected
    ]
    assert report.proposals_sent == len(expected)
    posts = [path for method, path in gms.requests if method == "POST"]
    assert posts and all(p == "/aspects?action=ingestProposalBatch" for p in posts)
    assert len(posts) >= len(expected) / 40 and set(gms.async_flags) == {"false"}
    assert set(gms.auth_headers) == {f"Bearer {TOKEN}"}
    assert gms.aspects(urn(a, "t0"))["schemaMetadata"].fields[0].description == "key"
    assert TOKEN not in caplog.text

    # unchanged: nothing is sent, not even a request
    gms.clear()
    refresh(cfg, [a, b, c])
    assert push_rest(cfg).proposals_sent == 0 and gms.requests == []

    # ALTER TABLE in one database: only that database is sent
    schema.server.execute(f"ALTER TABLE `{b}`.t1 ADD COLUMN added INT COMMENT 'new column'")
    refresh(cfg, [a, b, c])
    report = push_rest(cfg)
    assert report.databases_pushed == [b]
    assert {u for u in gms.urns()} == {urn(b, f"t{i}") for i in range(4)} | {
        load_state(open_store(cfg.storage.uri), "src")[b].container
    }
    assert "added" in [f.fieldPath for f in gms.aspects(urn(b, "t1"))["schemaMetadata"].fields]

    # DROP TABLE: Status(removed=true) for it, nothing for the others
    gms.clear()
    schema.server.execute(f"DROP TABLE `{c}`.t3")
    refresh(cfg, [a, b, c])
    report = push_rest(cfg)
    assert gms.removed() == {urn(c, "t3")} and report.soft_deleted == [urn(c, "t3")]
    assert gms.aspects(urn(c, "t2"))["status"].removed is False

    # dropped database: all its datasets and its container (3 of 11 datasets: under a 30% fail-safe)
    gms.clear()
    state = load_state(open_store(cfg.storage.uri), "src")
    forget_database(open_store(cfg.storage.uri), "src", c)
    cfg = cfg.model_copy(update={"datahub": cfg.datahub.model_copy(update={"max_removal_share": 0.3})})
    report = push_rest(cfg)
    assert gms.removed() == {*state[c].datasets, state[c].container} and len(state[c].datasets) == 3
    assert {p.aspectName for p in gms.proposals} == {"status"}
    assert report.databases_removed == [c] and c not in load_state(open_store(cfg.storage.uri), "src")


def test_rest_retries_then_fails_and_nothing_is_lost(schema, tmp_path, gms, caplog):
    caplog.set_level(logging.DEBUG)
    a, b, c = make_three(schema)
    cfg = rest_project(schema, tmp_path)
    refresh(cfg, [a, b, c])
    store = open_store(cfg.storage.uri)

    # one 503 is retried by the emitter's session: the push succeeds
    gms.fail_with(503, times=1)
    push_rest(cfg)
    assert {db for db in load_state(store, "src")} == {a, b, c}
    assert sum(1 for m, _ in gms.requests if m == "POST") == sum(1 for _ in gms.async_flags) + 1

    # a schema change everywhere, then GMS answers 503 for good: the push fails, nothing is marked pushed
    for db in (a, b, c):
        schema.server.execute(f"ALTER TABLE `{db}`.t0 COMMENT 'changed'")
    refresh(cfg, [a, b, c])
    before = load_state(store, "src")
    gms.clear()
    gms.fail_with(503, times=1000)
    with pytest.raises(PushFailed, match="503") as failed:
        push_rest(cfg)
    assert failed.value.report.databases_pushed == [] and load_state(store, "src") == before
    assert gms.proposals == []

    # recovery: the next push sends everything pending
    gms.fail_with(503, times=0)
    report = push_rest(cfg)
    assert sorted(report.databases_pushed) == sorted([a, b, c])
    assert all(gms.aspects(urn(db, "t0"))["datasetProperties"].description == "changed" for db in (a, b, c))

    # GMS down (connection refused) while one database changed: a clear error, nothing recorded
    schema.server.execute(f"ALTER TABLE `{a}`.t1 COMMENT 'changed again'")
    refresh(cfg, [a, b, c])
    before = load_state(store, "src")
    port = gms.port
    gms.stop()
    with pytest.raises(DataHubUnavailable, match="not reachable"):
        push_rest(cfg)
    assert load_state(store, "src") == before
    gms.start(port)
    gms.clear()
    assert push_rest(cfg).databases_pushed == [a]
    assert gms.aspects(urn(a, "t1"))["datasetProperties"].description == "changed again"
    # the emitter logs a curl command for each failed request: the token is redacted there
    assert "curl" in caplog.text and "Authorization: <redacted>" in caplog.text and TOKEN not in caplog.text


def test_push_asset_fails_on_503_and_pushes_pending_after_recovery(schema, tmp_path, gms):
    a, b, c = make_three(schema)
    cfg = rest_project(schema, tmp_path)
    refresh(cfg, [a, b, c])
    push_asset = build_push_asset(SourceSetup.of(cfg, cfg.sources[0]), retry_policy=RetryPolicy(max_retries=1, delay=0))
    instance = DagsterInstance.ephemeral()

    retry_now = build_push_sensor(SourceSetup.of(cfg, cfg.sources[0]), retry_failed_after_s=0)
    retry_later = build_push_sensor(SourceSetup.of(cfg, cfg.sources[0]))

    def requests(sensor):
        return sensor(build_sensor_context(instance=instance)).run_requests or []

    gms.fail_with(503, times=1000)
    result = materialize([push_asset], instance=instance, raise_on_error=False, tags={PUSH_SOURCE_TAG: "src"})
    assert not result.success
    assert len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 1
    errors = [_chain(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
    assert any("stay pending" in m and "503" in m for m in errors), errors
    assert load_state(open_store(cfg.storage.uri), "src") == {}
    assert not any(TOKEN in str(e) for e in instance.all_logs(result.run_id))

    # once the RetryPolicy is exhausted the sensor asks again later, so pending files do not wait for a change
    assert len(requests(retry_now)) == 1 and requests(retry_later) == []

    gms.fail_with(503, times=0)
    result = materialize([push_asset], instance=instance, tags={PUSH_SOURCE_TAG: "src"})
    md = result.asset_materializations_for_node(push_asset.op.name)[0].metadata
    assert md["databases_pushed"].value == 3 and md["proposals_sent"].value == len(gms.proposals)
    assert requests(retry_now) == []


def _chain(error) -> str:
    text = ""
    while error is not None:
        text += error.message
        error = error.cause
    return text
