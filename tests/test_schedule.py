"""The daily schedule: a bounded number of runs, each a contiguous range of the source's database partitions."""

from datetime import datetime, timezone

import pytest
from dagster import build_schedule_context, instance_for_test, materialize

from metadata_assets.config import MySQLSource
from metadata_assets.datahub import files
from metadata_assets.defs.extraction import build_mce_asset, mce_asset_key, partitions_def, run_tags
from metadata_assets.defs.schedule import build_daily_schedule

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
    src = source(batch_size=3, schedule={"cron": "30 4 * * 1-5", "timezone": "Asia/Seoul"})
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
    assert len(big_requests) == 15 and (big_requests[-1].tags[START], big_requests[-1].tags[END]) == ("d2800", "d2999")

    next_day = evaluate(schedule, instance, datetime(2026, 12, 1, 5, 0, tzinfo=timezone.utc)).run_requests
    assert not {r.run_key for r in next_day} & {r.run_key for r in requests}


def test_a_scheduled_run_extracts_its_whole_range(schema, tmp_path, instance):
    dbs = [schema.create(n, f"CREATE TABLE t_{n} (id INT PRIMARY KEY)") for n in ("a", "b", "c")]
    schema.grant()
    cfg = schema.project(tmp_path, batch_size=2)
    src = cfg.sources[0]
    instance.add_dynamic_partitions(partitions_def(src).name, dbs)
    first, second = evaluate(build_daily_schedule(src), instance).run_requests

    result = materialize([build_mce_asset(cfg, src)], instance=instance, tags=first.tags)
    assert result.success
    done = {m.partition for m in result.asset_materializations_for_node(mce_asset_key(src).to_python_identifier())}
    assert done == set(dbs[:2])
    assert files.list_mce_databases(files.open_store(cfg.storage.uri), src.name) == sorted(dbs[:2])
    assert (second.tags[START], second.tags[END]) == (dbs[2], dbs[2])
