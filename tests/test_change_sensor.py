"""The schema-change sensor against the real MariaDB and a real (ephemeral) Dagster instance."""

import json

import pytest
from dagster import AssetMaterialization, DagsterInstance, SensorResult, SkipReason, build_sensor_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from metadata_assets.defs.keys import mce_asset_key, partitions_def
from metadata_assets.defs.schema_sensor import QueryCost, build_schema_sensor, contiguous_runs, plan
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.local_mariadb import free_port
from metadata_assets.storage.layout import mce_key, snapshot_key
from metadata_assets.storage.store import LocalStore


class Daemon:
    """Runs the sensor function directly and applies its partition requests, as the daemon would."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.source = cfg.sources[0]
        self.cost = QueryCost()
        self.sensor = build_schema_sensor(SourceSetup.of(cfg, self.source), cost=self.cost)
        self.instance = DagsterInstance.ephemeral()
        self.parts = partitions_def(self.source)
        self.cursor = None

    def tick(self):
        # The daemon evaluates a sensor sensor_interval_s after the last evaluation at the soonest: the last query
        # started that long ago. (Back to back, a first query that took over 0.1 s, imports included, would hold
        # the next one back by 10x its cost: tests/test_push_from_extraction.py tests that rule.)
        if self.cost.started is not None:
            self.cost.started -= self.source.sensor_interval_s
        result = self.sensor(build_sensor_context(instance=self.instance, cursor=self.cursor))
        if isinstance(result, SensorResult):
            for req in result.dynamic_partitions_requests or []:
                if type(req).__name__ == "AddDynamicPartitionsRequest":
                    self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
                else:
                    for k in req.partition_keys:
                        self.instance.delete_dynamic_partition(req.partitions_def_name, k)
            self.cursor = result.cursor or self.cursor
        return result

    def partitions(self) -> list[str]:
        return list(self.parts.get_partition_keys(dynamic_partitions_store=self.instance))


def requested(result) -> list[list[str]]:
    """Each run request as the list of partition keys it covers."""
    out = []
    for r in result.run_requests or []:
        if r.partition_key:
            out.append([r.partition_key])
        else:
            out.append([r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]])
    return out


@pytest.fixture
def estate(schema, tmp_path):
    dbs = [schema.create(n, "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))") for n in ("a", "b", "c")]
    schema.grant()
    return schema, dbs, Daemon(schema.project(tmp_path))


def test_first_tick_adds_and_requests_every_database_then_nothing_when_nothing_changes(estate):
    schema, dbs, daemon = estate
    first = daemon.tick()
    assert daemon.partitions() == dbs
    assert requested(first) == [[dbs[0], dbs[-1]]]  # new and contiguous: one range run
    assert set(json.loads(daemon.cursor)) == set(dbs)

    second = daemon.tick()
    assert isinstance(second, SensorResult) and not second.run_requests and not second.dynamic_partitions_requests
    assert "no schema change" in second.skip_reason.skip_message


def test_alter_in_one_database_requests_exactly_that_partition(estate):
    schema, dbs, daemon = estate
    daemon.tick()
    schema.server.execute(f"ALTER TABLE `{dbs[1]}`.t ADD COLUMN email VARCHAR(100)")
    result = daemon.tick()
    assert requested(result) == [[dbs[1]]]
    assert result.run_requests[0].tags["metadata_assets/reason"] == "schema changed"
    assert "dagster-k8s/config" in result.run_requests[0].tags  # the run pod's size (README, GKE)
    assert not result.dynamic_partitions_requests
    assert not daemon.tick().run_requests  # the change is consumed


def test_non_contiguous_changes_get_one_run_each(estate):
    schema, dbs, daemon = estate
    daemon.tick()
    schema.server.execute(f"ALTER TABLE `{dbs[0]}`.t COMMENT 'x'", f"ALTER TABLE `{dbs[2]}`.t COMMENT 'y'")
    assert requested(daemon.tick()) == [[dbs[0]], [dbs[2]]]


def test_data_changes_request_nothing(estate):
    schema, dbs, daemon = estate
    daemon.tick()
    schema.server.execute(f"INSERT INTO `{dbs[0]}`.t VALUES (1, 'x'), (2, 'y')", f"ANALYZE TABLE `{dbs[0]}`.t")
    assert not daemon.tick().run_requests


def test_new_matching_database_is_added_and_requested(estate):
    schema, dbs, daemon = estate
    daemon.tick()
    new = schema.create("d", "CREATE TABLE t (id INT)")
    schema.grant([new])
    schema.create("ignored", "CREATE TABLE t (id INT)")  # not granted: invisible to the catalog account
    result = daemon.tick()
    (add,) = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [new]
    assert requested(result) == [[new]]
    assert daemon.partitions() == dbs + [new]


def test_many_new_databases_are_added_by_the_sensor_in_one_statement(estate, monkeypatch):
    from metadata_assets.defs import schema_sensor

    schema, dbs, daemon = estate
    monkeypatch.setattr(schema_sensor, "ADD_DIRECTLY_OVER", 2)  # an estate's first tick has thousands
    result = daemon.sensor(build_sensor_context(instance=daemon.instance))  # no add request applied by a daemon
    assert not result.dynamic_partitions_requests
    assert daemon.partitions() == dbs  # already there when the daemon resolves the run requests
    assert requested(result) == [[dbs[0], dbs[-1]]]


def test_dropped_database_is_removed_and_its_files_forgotten(estate):
    schema, dbs, daemon = estate
    daemon.tick()
    store = LocalStore(daemon.cfg.storage.uri)
    store.write_bytes(mce_key("src", dbs[1]), b"[]")
    store.write_bytes(snapshot_key("src", dbs[1]), b"{}")
    schema.server.execute(f"DROP DATABASE `{dbs[1]}`")
    result = daemon.tick()
    (delete,) = result.dynamic_partitions_requests
    assert list(delete.partition_keys) == [dbs[1]]
    assert not result.run_requests
    assert result.skip_reason.skip_message == f"removed {dbs[1]} (no run needed)"  # the tick's message in Dagit
    assert daemon.partitions() == [dbs[0], dbs[2]]
    assert store.read_bytes(mce_key("src", dbs[1])) is None
    assert store.read_bytes(snapshot_key("src", dbs[1])) is None


def test_empty_cursor_requests_only_partitions_never_materialized(estate):
    schema, dbs, daemon = estate
    daemon.instance.add_dynamic_partitions(daemon.parts.name, dbs)
    key = mce_asset_key(daemon.source)
    for db in (dbs[0], dbs[2]):
        daemon.instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=db))
    result = daemon.tick()
    assert requested(result) == [[dbs[1]]]
    assert result.run_requests[0].tags["metadata_assets/reason"] == "never materialized"
    assert not result.dynamic_partitions_requests


def test_unreachable_source_skips_with_a_reason_and_keeps_the_cursor(schema, tmp_path):
    daemon = Daemon(schema.project(tmp_path, port=free_port(), connect_timeout_s=2))
    daemon.cursor = json.dumps({"x": "1"})
    result = daemon.tick()
    assert isinstance(result, SkipReason)
    assert "source unreachable" in result.skip_message and "src" in result.skip_message
    assert daemon.cursor == json.dumps({"x": "1"})


def test_a_source_that_suddenly_shows_nothing_removes_nothing(estate):
    schema, dbs, daemon = estate
    daemon.tick()
    schema.server.execute(*(f"REVOKE ALL PRIVILEGES ON `{db}`.* FROM '{schema.user}'@'%'" for db in dbs))
    result = daemon.tick()
    assert isinstance(result, SkipReason) and "refusing" in result.skip_message
    assert daemon.partitions() == dbs


def test_sensor_is_registered_running_and_its_requests_resolve_in_the_definitions(estate, tmp_path):
    from dagster import AssetCheckKey, DefaultSensorStatus

    from metadata_assets.definitions import build_definitions

    schema, dbs, daemon = estate
    defs = build_definitions(daemon.cfg)
    sensor = defs.get_sensor_def("src_schema_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    key = mce_asset_key(daemon.source)
    assert {AssetCheckKey(key, "breaking_schema_changes"), AssetCheckKey(key, "documentation_coverage")} <= set(
        defs.resolve_asset_graph().asset_check_keys
    )
    # what the daemon does: evaluate against the code location, new partitions and range run in one tick
    data = sensor.evaluate_tick(build_sensor_context(instance=daemon.instance, definitions=defs))
    (run,) = data.run_requests
    assert (run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG]) == (dbs[0], dbs[-1])
    assert run.asset_selection == [key]


def test_runs_are_contiguous_slices_capped_at_the_batch_size():
    order = list("abcdefgh")
    assert contiguous_runs(order, list("hbcdf"), 2) == [["b", "c"], ["d"], ["f"], ["h"]]
    assert contiguous_runs(order, [], 5) == []
    p = plan({"a": "1", "b": "2", "d": "4"}, {"a": "1", "b": "x"}, ["a", "b", "c"], materialized=set())
    assert (p.add, p.remove, p.changed, p.order, p.requested) == (["d"], ["c"], ["b"], ["a", "b", "d"], ["b", "d"])


def test_a_tick_says_what_it_did():
    from metadata_assets.defs.schema_sensor import Plan, what_it_did

    p = Plan(add=["marketing"], remove=["nonexistent_db"], changed=["shop", "billing"])
    assert what_it_did(p) == "added marketing; removed nonexistent_db; 2 databases changed: shop, billing"
    many = Plan(changed=[f"db{i:02}" for i in range(12)])
    assert what_it_did(many) == (
        "12 databases changed: db00, db01, db02, db03, db04, db05, db06, db07, db08, db09 and 2 more"
    )
    assert what_it_did(Plan()) == ""
