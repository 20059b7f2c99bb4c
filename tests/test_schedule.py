"""The daily schedule: a bounded number of runs, each a contiguous range of the source's database partitions."""

from datetime import datetime, timezone

import pytest
from dagster import build_schedule_context, instance_for_test, materialize

from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import mce_asset_key, partitions_def, run_tags
from metadata_assets.defs.schedule import build_daily_schedule
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.sources.mysql.config import MySQLSource
from metadata_assets.storage.layout import list_mce_databases
from metadata_assets.storage.store import open_store

START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def source(**kw) -> MySQLSource:
    return MySQLSource(**{"name": "s", "type": "mysql", "host": "h", "user": "u", "password_env": "P", **kw})


@pytest.fixture
def instance():
    """A persistent instance in a temp DAGSTER_HOME: schedule contexts only take those."""
    with instance_for_test() as inst:
        yield inst


def evaluate(schedule, instance, when=datetime(2026, 11, 30, 5, 0, tzinfo=timezone.utc)):
    return schedule.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=when))


def test_batches_partitions_into_ranges(instance):
    src = source(batch_size=3, databases_per_run=3, schedule={"cron": "30 4 * * 1-5", "timezone": "Asia/Seoul"})
    schedule = build_daily_schedule(src)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 4 * * 1-5", "Asia/Seoul")

    empty = evaluate(schedule, instance)
    assert not empty.run_requests and "no databases" in empty.skip_message

    keys = [f"db{i:02d}" for i in (5, 1, 9, 3, 7, 2, 8)]  # Dagster keeps insertion order: ranges follow it
    instance.add_dynamic_partitions(partitions_def(src).name, keys)
    requests = evaluate(schedule, instance).run_requests
    assert [(r.tags[START], r.tags[END]) for r in requests] == [("db05", "db09"), ("db03", "db02"), ("db08", "db08")]
    assert len({r.run_key for r in requests}) == 3
    assert all(r.tags.items() >= run_tags(src).items() for r in requests)  # the run pod's size on Kubernetes
    assert all(r.partition_key is None for r in requests)  # ranges, not one run per database

    big = source(name="big", batch_size=200)
    instance.add_dynamic_partitions(partitions_def(big).name, [f"d{i:04d}" for i in range(3000)])
    big_requests = evaluate(build_daily_schedule(big), instance).run_requests
    # by default no more runs than run at once (max_concurrent_runs 2), each read in bulk queries of batch_size
    assert [(r.tags[START], r.tags[END]) for r in big_requests] == [("d0000", "d1499"), ("d1500", "d2999")]
    sliced = source(name="big", batch_size=200, databases_per_run=200)
    sliced_requests = evaluate(build_daily_schedule(sliced), instance).run_requests
    assert len(sliced_requests) == 15
    assert (sliced_requests[-1].tags[START], sliced_requests[-1].tags[END]) == ("d2800", "d2999")

    next_day = evaluate(schedule, instance, datetime(2026, 12, 1, 5, 0, tzinfo=timezone.utc)).run_requests
    assert not {r.run_key for r in next_day} & {r.run_key for r in requests}


def test_a_scheduled_run_extracts_its_whole_range(schema, tmp_path, instance):
    dbs = [schema.create(n, f"CREATE TABLE t_{n} (id INT PRIMARY KEY)") for n in ("a", "b", "c")]
    schema.grant()
    cfg = schema.project(tmp_path, batch_size=2)
    src = cfg.sources[0]
    instance.add_dynamic_partitions(partitions_def(src).name, dbs)
    first, second = evaluate(build_daily_schedule(src), instance).run_requests

    result = materialize([build_mce_asset(SourceSetup.of(cfg, src))], instance=instance, tags=first.tags)
    assert result.success
    done = {m.partition for m in result.asset_materializations_for_node(mce_asset_key(src).to_python_identifier())}
    assert done == set(dbs[:2])
    assert list_mce_databases(open_store(cfg.storage.uri), src.name) == sorted(dbs[:2])
    assert (second.tags[START], second.tags[END]) == (dbs[2], dbs[2])


def test_the_run_size_grows_with_the_estate_up_to_its_cap_and_follows_an_explicit_setting():
    from metadata_assets.source_config import AUTO_RUN_SIZE_MAX

    s = source(batch_size=200, max_concurrent_runs=2)
    assert [s.run_size(n) for n in (1, 100, 400, 401, 3000, 10_000)] == [200, 200, 200, 201, 1500, AUTO_RUN_SIZE_MAX]
    assert source(batch_size=200, max_concurrent_runs=4).run_size(3000) == 750
    assert source(batch_size=50, databases_per_run=20).run_size(3000) == 20
