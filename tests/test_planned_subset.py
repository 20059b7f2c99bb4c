"""Runs planned with one event (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS, as deployed): Dagit still shows
exactly the failed databases failed, by Dagster's own partition status (defs/failed_partitions.py). Real MariaDB, a
real ephemeral Dagster instance, the asset and selection the schedule uses."""

import pytest
from dagster import DagsterEventType

from tests.test_unchanged_observed import CHECKS, DAILY, Estate

SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


@pytest.fixture
def subset_planned(monkeypatch):
    monkeypatch.setenv(SUBSET_ENV, "true")


def planned_events(e: Estate, result) -> list:
    return [
        r.event_log_entry.dagster_event.event_specific_data
        for r in e.instance.get_records_for_run(
            result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
    ]


def fail_writes_of(monkeypatch, bad: str, error=OSError("disk full (test)")):  # noqa: B008 - one error, never mutated
    from metadata_assets import extract as core

    real = core.write_database

    def failing(store, source_name, db, *args, **kw):
        if db.name == bad:
            raise error
        return real(store, source_name, db, *args, **kw)

    monkeypatch.setattr(core, "write_database", failing)
    return lambda: monkeypatch.setattr(core, "write_database", real)


def test_one_planned_event_per_run_and_only_the_failed_database_shows_failed(
    schema, tmp_path, monkeypatch, subset_planned
):
    e = Estate(schema, tmp_path)
    bad, *good = e.dbs
    result = e.refresh(DAILY)  # a quiet day first: one planned event for the run, every database observed
    planned = planned_events(e, result)
    assert len(planned) == 1 and planned[0].partition is None
    assert set(planned[0].partitions_subset.get_partition_keys()) == set(e.dbs)
    assert set(e.events(result, "ASSET_OBSERVATION")) == set(e.dbs)

    repair = fail_writes_of(monkeypatch, bad)
    result = e.refresh(DAILY, raise_on_error=False)
    assert not result.success
    assert e.failed_partitions() == {bad}
    # nothing else of the run was planned per partition: the unchanged ones are observed, as on any day
    assert set(e.events(result, "ASSET_OBSERVATION")) == set(good)
    assert not e.events(result, "ASSET_MATERIALIZATION")
    assert [p.partition for p in planned_events(e, result)] == [None, bad]  # the run's, then the failed one's
    for db in good:
        assert e.checks_current(db) == {c: (True, "SUCCEEDED") for c in CHECKS}

    repair()  # the fault gone, the next refresh clears the failure
    result = e.refresh(DAILY)
    assert result.success and e.failed_partitions() == set()
    assert set(e.events(result, "ASSET_MATERIALIZATION")) == {bad}  # its failure left no materialization behind


def test_an_unreachable_source_shows_every_database_of_the_run_failed(schema, tmp_path, monkeypatch, subset_planned):
    e = Estate(schema, tmp_path)
    schema.server.execute(f"ALTER USER '{schema.user}'@'%' ACCOUNT LOCK")
    try:
        result = e.refresh(DAILY, raise_on_error=False)
    finally:
        schema.server.execute(f"ALTER USER '{schema.user}'@'%' ACCOUNT UNLOCK")
    assert not result.success
    assert e.failed_partitions() == set(e.dbs)


def test_without_the_setting_dagster_plans_each_partition_and_marks_the_failed_run_itself(
    schema, tmp_path, monkeypatch
):
    monkeypatch.delenv(SUBSET_ENV, raising=False)
    e = Estate(schema, tmp_path)
    bad, *good = e.dbs
    fail_writes_of(monkeypatch, bad)
    result = e.refresh(DAILY, raise_on_error=False)
    assert {p.partition for p in planned_events(e, result)} == set(e.dbs)
    assert e.failed_partitions() == {bad}


def test_a_fault_outside_any_one_database_shows_the_databases_not_done_failed(
    schema, tmp_path, monkeypatch, subset_planned
):
    from metadata_assets.defs import outcome

    e = Estate(schema, tmp_path)
    first, *rest = e.dbs
    schema.server.execute(*(f"ALTER TABLE `{db}`.t ADD COLUMN added INT" for db in e.dbs))  # all materialize
    real, seen = outcome.result_metadata, []

    def faulty(r, d):
        seen.append(r.database)
        if len(seen) == 2:
            raise RuntimeError("a bug of ours (test)")
        return real(r, d)

    monkeypatch.setattr(outcome, "result_metadata", faulty)
    result = e.refresh(DAILY, raise_on_error=False)
    assert not result.success
    assert set(e.events(result, "ASSET_MATERIALIZATION")) == {first}
    assert e.failed_partitions() == set(rest)  # the one done is not failed; the others are
