"""Extraction runs push what they extracted (a change-driven run, the last run of a daily refresh), and the push
sensor works around them: real MariaDB, real DataHub Lite, a real (ephemeral) Dagster instance."""

import time

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    SkipReason,
    build_sensor_context,
    materialize,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id

from metadata_assets.datahub.push import lock_key, push
from metadata_assets.datahub.sinks import LiteSink, lite_reader
from metadata_assets.defs import push as push_defs
from metadata_assets.defs import schema_sensor
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import EXTRACT_SOURCE_TAG, PUSH_AFTER_TAG, partitions_def, push_asset_key
from metadata_assets.defs.push import build_push_asset, build_push_sensor
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.extract import rules_for
from metadata_assets.local_mariadb import free_port
from metadata_assets.storage.store import open_store
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
        self.mce_asset, self.push_asset = (
            build_mce_asset(SourceSetup.of(self.cfg, self.source)),
            build_push_asset(SourceSetup.of(self.cfg, self.source)),
        )
        self.sensor = build_push_sensor(SourceSetup.of(self.cfg, self.source))
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
        """The push asset's materializations reported by the run of `result` (runless events naming the run)."""
        records = self.instance.fetch_materializations(push_asset_key(self.source), limit=100).records
        return [
            r.asset_materialization
            for r in records
            if (by := r.asset_materialization.metadata.get("pushed_by_run")) and by.value == result.run_id
        ]


def test_a_change_driven_run_pushes_itself_and_the_push_sensor_then_has_nothing_to_do(schema, tmp_path):
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    result = e.extract(e.a, {PUSH_AFTER_TAG: "1"})

    (pushed,) = e.push_materializations(result)
    md = pushed.metadata
    assert (md["databases_pushed"].value, md["pushed_by"].value) == (1, "extraction run")
    assert "added" in lite_fields(e.cfg, e.a, "t")
    assert e.tick() == [] and e.skipped == "nothing new to push"

    # the same run started by hand (no tag, neither the schedule nor a sensor) leaves the push to the push sensor
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


def test_the_last_run_of_a_daily_refresh_pushes_and_an_earlier_one_leaves_it_to_the_last(schema, tmp_path):
    from dagster._core.storage.tags import SCHEDULE_NAME_TAG

    e = Estate(schema, tmp_path)
    daily = {SCHEDULE_NAME_TAG: "src_daily_schedule"}
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    # another extraction run of the source is still running: this one is not the last
    other = active_extraction_run(e, daily)
    assert e.push_materializations(e.extract(e.a, daily)) == []
    assert "added" not in lite_fields(e.cfg, e.a, "t")
    assert e.tick() == [] and "still queued or running" in e.skipped

    finish(e, other)
    schema.server.execute(f"ALTER TABLE `{e.b}`.u ADD COLUMN added INT")
    (pushed,) = e.push_materializations(e.extract(e.b, daily))  # the last one: pushes both databases
    assert pushed.metadata["databases_pushed"].value == 2
    assert "added" in lite_fields(e.cfg, e.a, "t") and "added" in lite_fields(e.cfg, e.b, "u")
    assert e.tick() == [] and e.skipped == "nothing new to push"


def test_switched_off_the_tag_changes_nothing(schema, tmp_path):
    e = Estate(schema, tmp_path, push_from_extraction=False)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    assert e.push_materializations(e.extract(e.a, {PUSH_AFTER_TAG: "1"})) == []
    assert "added" not in lite_fields(e.cfg, e.a, "t")
    assert len(e.tick()) == 1


def test_switched_off_a_refresh_without_changes_still_ends_in_a_push_that_keeps_freshness_true(schema, tmp_path):
    """The push asset carries the freshness policy; a refresh that finds nothing changed only observes its
    partitions, so the push sensor confirms each refresh with a push run (that sends nothing)."""
    from dagster._core.storage.tags import SCHEDULE_NAME_TAG

    e = Estate(schema, tmp_path, push_from_extraction=False)
    result = e.extract(e.a, {SCHEDULE_NAME_TAG: "src_daily_schedule"})
    assert not result.asset_materializations_for_node(e.mce_asset.op.name)  # observed: unchanged
    (request,) = e.tick()
    assert request.asset_selection == [push_asset_key(e.source)]
    result = materialize([e.push_asset], instance=e.instance, run_config=NO_RETRIES)
    (mat,) = result.asset_materializations_for_node(e.push_asset.op.name)
    assert mat.metadata["proposals_sent"].value == 0
    assert e.tick() == [] and e.skipped == "nothing new to push"


def test_a_self_push_stopped_by_another_push_leaves_its_files_to_the_push_sensor(schema, tmp_path, monkeypatch):
    monkeypatch.setattr(push_defs, "SELF_PUSH_LOCK_WAIT_S", 0.5)
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    store = open_store(e.cfg.storage.uri)
    with store.lock(lock_key(e.source.name), wait_s=0, lease_s=60):  # another push of this source is running
        result = e.extract(e.a, {PUSH_AFTER_TAG: "1"})
    assert result.success and e.push_materializations(result) == []
    warnings = [
        ev.user_message for ev in e.instance.all_logs(result.run_id) if "push from this run stopped" in ev.user_message
    ]
    assert warnings and "held by another process" in warnings[0]
    assert "added" not in lite_fields(e.cfg, e.a, "t")

    # the run is over: the push sensor pushes what it left
    assert len(e.tick()) == 1
    assert materialize([e.push_asset], instance=e.instance, run_config=NO_RETRIES).success
    assert "added" in lite_fields(e.cfg, e.a, "t")


def active_extraction_run(e, tags=None) -> DagsterRun:
    """A run of the extraction asset that the instance shows as running, tagged with its source as the schedule's
    and the sensors' runs are, for the push sensor and the other runs to see."""
    return e.instance.add_run(
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id=make_new_run_id(),
            tags={**(tags or {}), EXTRACT_SOURCE_TAG: e.source.name},
            status=DagsterRunStatus.STARTED,
            asset_selection=frozenset({e.mce_asset.key}),
        )
    )


def finish(e, run: DagsterRun) -> None:
    e.instance.run_storage.handle_run_event(run.run_id, DagsterEvent(DagsterEventType.RUN_SUCCESS.value, run.job_name))


def test_the_push_sensor_waits_while_an_extraction_run_is_active(schema, tmp_path, monkeypatch):
    monkeypatch.setattr(push_defs, "SELF_PUSH_LOCK_WAIT_S", 0.5)
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    store = open_store(e.cfg.storage.uri)
    with store.lock(lock_key(e.source.name), wait_s=0, lease_s=60):
        e.extract(e.a, {PUSH_AFTER_TAG: "1"})  # its push stopped: the file is pending
    running = active_extraction_run(e)  # e.g. the next batch of a daily refresh, which will push at its end
    assert e.tick() == []
    assert e.skipped == (
        f"1 extraction run(s) of this source still queued or running (e.g. {running.run_id}): the "
        f"last one pushes what they extracted; waiting"
    )
    finish(e, running)
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


def test_the_schema_sensor_stretches_its_interval_after_a_costly_query(schema, tmp_path):
    schema.create("a", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path, sensor_interval_s=20)
    daemon = Daemon(cfg)
    cost = schema_sensor.QueryCost()
    daemon.sensor = schema_sensor.build_schema_sensor(SourceSetup.of(cfg, cfg.sources[0]), cost=cost)
    assert daemon.sensor.minimum_interval_seconds == 20
    cost.record(time.monotonic(), 6.0)  # a 6 s query just now
    skipped = daemon.tick()
    assert isinstance(skipped, SkipReason) and "the last fingerprint query took 6.0s" in skipped.skip_message
    assert daemon.partitions() == []
    cost.record(time.monotonic() - 61, 6.0)
    assert daemon.tick().run_requests and daemon.partitions()
    assert cost.cost_s < 6.0 and time.monotonic() - cost.started < 30  # this tick's own query, recorded


def test_a_failed_fingerprint_query_counts_its_cost_too(schema, tmp_path):
    """A tick whose query failed is timed as well, so an unreachable source is not asked again at every tick."""
    cfg = schema.project(tmp_path, port=free_port(), connect_timeout_s=0.5)  # nothing listens there
    cost = schema_sensor.QueryCost()
    sensor = schema_sensor.build_schema_sensor(SourceSetup.of(cfg, cfg.sources[0]), cost=cost)
    result = sensor(build_sensor_context(instance=DagsterInstance.ephemeral()))
    assert isinstance(result, SkipReason) and "unreachable" in result.skip_message
    assert cost.started is not None


def test_each_built_sensor_keeps_its_own_query_cost(schema, tmp_path):
    cfg = schema.project(tmp_path)
    first, second = schema_sensor.QueryCost(), schema_sensor.QueryCost()
    schema_sensor.build_schema_sensor(SourceSetup.of(cfg, cfg.sources[0]), cost=first)
    first.record(time.monotonic(), 100.0)
    assert second.wait_left(time.monotonic()) == 0.0  # another sensor (another test, another source) is not held


def test_pushes_from_runs_and_sensor_leave_one_consistent_state(schema, tmp_path):
    """The self-push and the push asset share the state and its lock: whichever ran, a quiet push sends nothing."""
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER TABLE `{e.b}`.u COMMENT 'now documented'")
    e.extract(e.b, {PUSH_AFTER_TAG: "1"})
    sink = LiteSink(e.cfg.datahub.lite)
    try:
        quiet = push(open_store(e.cfg.storage.uri), "src", rules_for(e.source), sink, max_removal_share=1.0)
    finally:
        sink.close()
    assert (quiet.proposals_sent, quiet.databases_pushed) == (0, [])


def test_a_run_stuck_as_running_does_not_hold_the_push_back_for_ever(schema, tmp_path, monkeypatch):
    """A run whose worker was killed where nothing ends it (no run monitoring) stays STARTED: past STUCK_RUN_S
    it no longer keeps the others from pushing, nor the push sensor from pushing."""
    from dagster._core.storage.tags import SCHEDULE_NAME_TAG

    from metadata_assets.defs import runs

    e = Estate(schema, tmp_path)
    active_extraction_run(e)
    monkeypatch.setattr(runs, "STUCK_RUN_S", -1)  # every active run counts as stuck
    schema.server.execute(f"ALTER TABLE `{e.a}`.t ADD COLUMN added INT")
    assert len(e.push_materializations(e.extract(e.a, {SCHEDULE_NAME_TAG: "src_daily_schedule"}))) == 1
    assert "added" in lite_fields(e.cfg, e.a, "t")


def test_runs_of_the_schedule_and_the_schema_sensor_name_their_source(schema, tmp_path):
    """What the push from extraction runs relies on to see the other runs of a refresh (a schedule's runs carry no
    asset selection of their own: without the tag every run took itself for the last and pushed)."""
    from datetime import datetime, timezone

    from dagster import build_schedule_context, instance_for_test

    from metadata_assets.defs.schedule import build_daily_schedule

    dbs = [schema.create(n, "CREATE TABLE t (id INT PRIMARY KEY)") for n in ("a", "b", "c")]
    schema.grant()
    cfg = schema.project(tmp_path, batch_size=2)
    daemon = Daemon(cfg)
    from_sensor = daemon.tick().run_requests
    assert from_sensor and all(r.tags[EXTRACT_SOURCE_TAG] == "src" for r in from_sensor)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(partitions_def(cfg.sources[0]).name, dbs)
        from_schedule = (
            build_daily_schedule(cfg.sources[0])
            .evaluate_tick(
                build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(timezone.utc))
            )
            .run_requests
        )
    assert len(from_schedule) == 2 and all(r.tags[EXTRACT_SOURCE_TAG] == "src" for r in from_schedule)
