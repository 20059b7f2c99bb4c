"""A refresh the schedule or a sensor starts observes the databases it finds unchanged instead of materializing them
(defs/unchanged.py): one event instead of a materialization and three check evaluations, while Dagit stays true per
partition. Real MariaDB, a real ephemeral Dagster instance, the assets and selections the schedule uses."""

from dagster import (
    AssetCheckKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    materialize,
)
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SENSOR_NAME_TAG

from metadata_assets.defs.checks import BREAKING, COVERAGE, LEAST_PRIVILEGE
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import DATA_VERSION_TAG, partitions_def, range_tags
from metadata_assets.defs.source_setup import SourceSetup

DAILY = {SCHEDULE_NAME_TAG: "src_daily_schedule"}
CHECKS = (BREAKING, COVERAGE, LEAST_PRIVILEGE)


class Estate:
    def __init__(self, schema, tmp_path, n=3):
        self.schema = schema
        self.dbs = sorted(
            schema.create(f"u{i}", "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'key') COMMENT 'a t'") for i in range(n)
        )
        schema.grant()
        self.cfg = schema.project(tmp_path)
        self.source = self.cfg.sources[0]
        self.asset = build_mce_asset(SourceSetup.of(self.cfg, self.source))
        self.key = self.asset.key
        self.instance = DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions(partitions_def(self.source).name, self.dbs)
        self.refresh({})  # by hand, with its checks: every database materialized and checked

    def refresh(self, tags, selection=None, raise_on_error=True):
        """One run over every database, as the schedule requests it (the asset without its checks)."""
        result = materialize(
            [self.asset],
            instance=self.instance,
            raise_on_error=raise_on_error,
            selection=selection or AssetSelection.assets(self.key).without_checks(),
            tags={**tags, **range_tags(self.dbs)},
        )
        return result

    def events(self, result, kind):
        """{partition: event} of one kind (the run's report, an observation of no partition, left out), as the run's
        event log holds them (observations are stored in batches, not yielded: defs/event_batches.py)."""
        out = {}
        for e in (entry.dagster_event for entry in self.instance.all_logs(result.run_id) if entry.dagster_event):
            if e.event_type_value == kind:
                data = e.event_specific_data
                event = data.materialization if kind == "ASSET_MATERIALIZATION" else data.asset_observation
                if event.partition:
                    out[event.partition] = e
        return out

    def latest_materialization(self, db):
        return self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=self.key, asset_partitions=[db]), limit=1
        ).records[0]

    def failed_partitions(self) -> set[str]:
        """What Dagit shows failed: its own partition status (a failed run's planned, unmaterialized partitions)."""
        parts = partitions_def(self.source)
        status = get_and_update_asset_status_cache_value(self.instance, self.key, parts, self.instance)
        return set(status.deserialize_failed_partition_subsets(parts).get_partition_keys())

    def checks_current(self, db) -> dict:
        infos = self.instance.event_log_storage.get_asset_check_partition_info(
            [AssetCheckKey(self.key, c) for c in CHECKS], partition_keys=[db]
        )
        return {i.check_key.name: (i.is_current, i.latest_execution_status.value) for i in infos}


def test_a_scheduled_refresh_observes_unchanged_databases_and_their_checks_stay_current(schema, tmp_path):
    e = Estate(schema, tmp_path)
    changed, *same = e.dbs
    before = {db: e.latest_materialization(db) for db in same}
    schema.server.execute(f"ALTER TABLE `{changed}`.t ADD COLUMN added INT")

    result = e.refresh(DAILY)
    mats = e.events(result, "ASSET_MATERIALIZATION")
    observed = e.events(result, "ASSET_OBSERVATION")
    evaluations = [ev for ev in result.all_events if ev.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert set(mats) == {changed} and set(observed) == set(same)
    assert {ev.event_specific_data.partition for ev in evaluations} == {changed} and len(evaluations) == 3
    for db in same:
        obs = observed[db].event_specific_data.asset_observation
        assert obs.metadata["content_hash"].value == before[db].asset_materialization.tags[DATA_VERSION_TAG]
        assert obs.metadata["materialized_by"].value == before[db].run_id
        assert e.latest_materialization(db).storage_id == before[db].storage_id  # still the one Dagit shows
        assert e.checks_current(db) == {c: (True, "SUCCEEDED") for c in CHECKS}
    assert e.checks_current(changed) == {c: (True, "SUCCEEDED") for c in CHECKS}
    assert e.failed_partitions() == set()

    # a sensor's run too; a run started by hand materializes what it was asked to
    assert set(e.events(e.refresh({SENSOR_NAME_TAG: "src_schema_sensor"}), "ASSET_OBSERVATION")) == set(e.dbs)
    assert set(e.events(e.refresh({}), "ASSET_MATERIALIZATION")) == set(e.dbs)


def test_findings_that_change_without_the_schema_materialize_and_are_checked(schema, tmp_path):
    e = Estate(schema, tmp_path, n=2)
    db = e.dbs[0]
    schema.server.execute(f"GRANT SELECT ON `{db}`.* TO '{schema.user}'@'%'")
    result = e.refresh(DAILY)
    assert set(e.events(result, "ASSET_MATERIALIZATION")) == {db}
    assert e.checks_current(db)[LEAST_PRIVILEGE] == (True, "FAILED")

    schema.server.execute(f"REVOKE SELECT ON `{db}`.* FROM '{schema.user}'@'%'")
    result = e.refresh(DAILY)
    assert set(e.events(result, "ASSET_MATERIALIZATION")) == {db}  # back to clean: checked again
    assert e.checks_current(db)[LEAST_PRIVILEGE] == (True, "SUCCEEDED")
    assert set(e.events(e.refresh(DAILY), "ASSET_OBSERVATION")) == set(e.dbs)


def test_a_refresh_with_a_failed_database_shows_only_that_one_failed(schema, tmp_path, monkeypatch):
    e = Estate(schema, tmp_path)
    bad, *good = e.dbs
    from metadata_assets import extract as core

    real = core.write_database

    def failing(store, source_name, db, *args, **kw):
        if db.name == bad:
            raise OSError("disk full (test)")
        return real(store, source_name, db, *args, **kw)

    monkeypatch.setattr(core, "write_database", failing)
    result = e.refresh(DAILY, raise_on_error=False)
    assert not result.success
    # the unchanged ones are materialized on such a day: a failed run marks what it planned and did not materialize
    assert set(e.events(result, "ASSET_MATERIALIZATION")) == set(good)
    assert not e.events(result, "ASSET_OBSERVATION")
    assert e.failed_partitions() == {bad}
    for db in good:
        assert e.checks_current(db) == {c: (True, "SUCCEEDED") for c in CHECKS}


def test_checks_selected_with_the_refresh_are_evaluated_for_observed_databases_too(schema, tmp_path):
    e = Estate(schema, tmp_path, n=2)
    result = e.refresh(DAILY, selection=AssetSelection.assets(e.key))  # the asset and its checks
    assert set(e.events(result, "ASSET_OBSERVATION")) == set(e.dbs)
    evaluations = [ev for ev in result.all_events if ev.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(evaluations) == 3 * len(e.dbs)
    for db in e.dbs:  # none SKIPPED: each points at the partition's latest materialization
        assert e.checks_current(db) == {c: (True, "SUCCEEDED") for c in CHECKS}
