"""A change-driven extraction run pushes what it extracted (PUSH_AFTER_TAG), and the push sensor works around it:
real MariaDB, real DataHub Lite, a real (ephemeral) Dagster instance."""

import time

import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, SkipReason, build_sensor_context, materialize

from metadata_assets.datahub import files
from metadata_assets.datahub.push import lock_key, push
from metadata_assets.datahub.sinks import LiteSink, lite_reader
from metadata_assets.defs import partitions_sensor
from metadata_assets.defs import push as push_defs
from metadata_assets.defs.extraction import PUSH_AFTER_TAG, build_mce_asset, partitions_def
from metadata_assets.defs.push import build_push_asset, build_push_sensor, push_asset_key
from metadata_assets.extract import rules_for
from tests.test_change_sensor import Daemon

NO_RETRIES = {"execution": {"config": {"retries": {"disabled": {}}}}}


def lite_fields(cfg, db: str, table: str) -> set[str]:
    lite = lite_reader(cfg.datahub.lite.path)
    try:
        aspects = lite.get(f"urn:li:dataset:(urn:li:dataPlatform:mysql,{db}.{table},PROD)", aspects=None, typed=True)
        return {f.fieldPath for f in aspects["schemaMetadata"].fields}
    finally:
        lite.close()


class Estate:
    """Two databases extracted and pushed once, through the assets, on one instance."""

    def __init__(self, schema, tmp_path, **datahub):
        self.schema = schema
        self.a = schema.create("a", "CREATE TABLE t (id INT PRIMARY KEY)")
        self.b = schema.create("b", "CREATE TABLE u (id INT PRIMARY KEY)")
        schema.grant()
        cfg = schema.project(tmp_path)
        self.cfg = cfg.model_copy(update={"datahub": cfg.datahub.model_copy(update=datahub)})
        self.source = self.cfg.sources[0]
        self.mce_asset, self.push_asset = build_mce_asset(self.cfg, self.source), build_push_asset(self.cfg,
                                                                                                   self.source)
        self.sensor = build_push_sensor(self.cfg, self.source)
        self.instance = DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions(partitions_def(self.source).name, [self.a, self.b])
        for db in (self.a, self.b):
            self.extract(db)
        assert len(self.tick()) == 1
        assert materialize([self.push_asset], instance=self.instance, run_config=NO_RETRIES).success
        assert self.tick() == []

    def extract(self, db, tags=None):
        result = materialize([self.mce_asset], instance=self.instance, partition_key=db, tags=tags or {})
        assert result.success
        return result

    def tick(self):
        result = self.sensor(build_sensor_context(instance=self.instance, cursor=getattr(self, "cursor", None)))
        if isinstance(result, SkipReason):
            self.skipped = result.skip_message
            return []
        self.skipped = result.skip_reason.skip_message if result.skip_reason else None
        self.cursor = result.cursor
        return result.run_requests or []

    def push_materializations(self, result):
        return [e for e in result.get_asset_materialization_events() if e.asset_key == push_asset_key(self.source)]


def test_a_change_driven_run_pushes_itself_and_the_push_sensor_then_has_nothing_to_do(schema, tmp_path):
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    result = e.extract(e.a, {PUSH_AFTER_TAG: "1"})

    (pushed,) = e.push_materializations(result)
    md = pushed.materialization.metadata
    assert (md["databases_pushed"].value, md["pushed_by"].value) == (1, "extraction run")
    assert "added" in lite_fields(e.cfg, e.a, "t")
    assert e.tick() == [] and e.skipped == "nothing new to push"

    # the same run without the tag (a daily or hand-started run) leaves the push to the push sensor
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN later INT")
    assert e.push_materializations(e.extract(e.a)) == []
    assert "later" not in lite_fields(e.cfg, e.a, "t")
    assert len(e.tick()) == 1


def test_two_changes_between_push_sensor_ticks_each_pushed_by_its_run_need_no_push_run(schema, tmp_path):
    """The older materialization's version is not in the state any more (the newer one is): not a change."""
    e = Estate(schema, tmp_path)
    for column in ("first", "second"):
        schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN {column} INT")
        assert len(e.push_materializations(e.extract(e.a, {PUSH_AFTER_TAG: "1"}))) == 1
    assert {"first", "second"} <= lite_fields(e.cfg, e.a, "t")
    assert e.tick() == [] and e.skipped == "nothing new to push"


def test_switched_off_the_tag_changes_nothing(schema, tmp_path):
    e = Estate(schema, tmp_path, push_after_change=False)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    assert e.push_materializations(e.extract(e.a, {PUSH_AFTER_TAG: "1"})) == []
    assert "added" not in lite_fields(e.cfg, e.a, "t")
    assert len(e.tick()) == 1


def test_a_self_push_stopped_by_another_push_leaves_its_files_to_the_push_sensor(schema, tmp_path, monkeypatch):
    monkeypatch.setattr(push_defs, "SELF_PUSH_LOCK_WAIT_S", 0.5)
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    store = files.open_store(e.cfg.storage.uri)
    with store.lock(lock_key(e.source.name), wait_s=0, lease_s=60):  # another push of this source is running
        result = e.extract(e.a, {PUSH_AFTER_TAG: "1"})
    assert result.success and e.push_materializations(result) == []
    warnings = [ev.user_message for ev in e.instance.all_logs(result.run_id)
                if "push from this run stopped" in ev.user_message]
    assert warnings and "held by another process" in warnings[0]
    assert "added" not in lite_fields(e.cfg, e.a, "t")

    # the run is over: the push sensor pushes what it left
    assert len(e.tick()) == 1
    assert materialize([e.push_asset], instance=e.instance, run_config=NO_RETRIES).success
    assert "added" in lite_fields(e.cfg, e.a, "t")


def test_the_push_sensor_waits_while_a_self_pushing_run_is_active(schema, tmp_path, monkeypatch):
    monkeypatch.setattr(push_defs, "SELF_PUSH_LOCK_WAIT_S", 0.5)
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    store = files.open_store(e.cfg.storage.uri)
    with store.lock(lock_key(e.source.name), wait_s=0, lease_s=60):
        result = e.extract(e.a, {PUSH_AFTER_TAG: "1"})
    # seen by the sensor as still running (as between its materialization and its own push)
    run = e.instance.get_run_by_id(result.run_id)
    e.instance.run_storage.handle_run_event(run.run_id, DagsterEvent(DagsterEventType.RUN_START.value, run.job_name))
    assert e.tick() == []
    assert e.skipped == f"extraction run {run.run_id} pushes what it extracted; waiting for it"

    e.instance.run_storage.handle_run_event(run.run_id,
                                            DagsterEvent(DagsterEventType.RUN_SUCCESS.value, run.job_name))
    assert len(e.tick()) == 1  # the cursor was kept: the materialization is seen again


def test_the_schema_sensor_tags_few_changes_not_the_first_fill_nor_a_wave(schema, tmp_path):
    dbs = [schema.create(n, "CREATE TABLE t (id INT PRIMARY KEY)") for n in ("a", "b", "c", "d")]
    schema.grant()
    daemon = Daemon(schema.project(tmp_path, batch_size=2))

    def tagged(result):
        return [r.tags.get(PUSH_AFTER_TAG) for r in result.run_requests]

    assert tagged(daemon.tick()) == [None, None]  # first fill: the push sensor pushes it once, after the runs
    schema.server.execute(f"ALTER TABLE `{dbs[1]}`.t ADD COLUMN x INT")
    assert tagged(daemon.tick()) == ["1"]
    new = schema.create("e", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    result = daemon.tick()
    assert [r.partition_key for r in result.run_requests] == [new] and tagged(result) == ["1"]
    schema.server.execute(*(f"ALTER TABLE `{db}`.t ADD COLUMN y INT" for db in dbs[:3]))
    assert tagged(daemon.tick()) == [None, None]  # 3 changes > batch_size 2: a wave, pushed once


def test_the_schema_sensor_stretches_its_interval_after_a_costly_query(schema, tmp_path, monkeypatch):
    schema.create("a", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    daemon = Daemon(schema.project(tmp_path, sensor_interval_s=20))
    assert daemon.sensor.minimum_interval_seconds == 20
    monkeypatch.setitem(partitions_sensor._LAST_QUERY, "src", (time.monotonic(), 6.0))  # a 6 s query just now
    skipped = daemon.tick()
    assert isinstance(skipped, SkipReason) and "the last fingerprint query took 6.0s" in skipped.skip_message
    assert daemon.partitions() == []
    monkeypatch.setitem(partitions_sensor._LAST_QUERY, "src", (time.monotonic() - 61, 6.0))
    assert daemon.tick().run_requests and daemon.partitions()
    started, cost = partitions_sensor._LAST_QUERY["src"]
    assert cost < 6.0 and time.monotonic() - started < 30  # this tick's own query, recorded


def test_pushes_from_runs_and_sensor_leave_one_consistent_state(schema, tmp_path):
    """The self-push and the push asset share the state and its lock: whichever ran, a quiet push sends nothing."""
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.b}`.u COMMENT 'now documented'")
    e.extract(e.b, {PUSH_AFTER_TAG: "1"})
    sink = LiteSink(e.cfg.datahub.lite)
    try:
        quiet = push(files.open_store(e.cfg.storage.uri), "src", rules_for(e.source), sink, max_removal_share=1.0)
    finally:
        sink.close()
    assert (quiet.proposals_sent, quiet.databases_pushed) == (0, [])


@pytest.fixture(autouse=True)
def _no_backoff_between_tests():
    partitions_sensor._LAST_QUERY.clear()
    yield
    partitions_sensor._LAST_QUERY.clear()
