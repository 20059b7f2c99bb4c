"""The names a deployment keeps state under stay as they are, whatever the Python modules are called.

Dagster stores sensor cursors and ticks by sensor name, schedule ticks by schedule name, materializations by asset
key and partitions by their definition's name, and the run queue and the extraction runs find each other by run tags.
A rename of any of them would silently start a deployment over (a sensor's cursor lost, Dagit's history split), so
each is listed here literally, for one source of each kind.
"""

from __future__ import annotations

from metadata_assets.config import load
from metadata_assets.definitions import build_definitions
from metadata_assets.defs import keys

CONFIG = """\
storage:
  uri: {store}
sources:
  - name: shop
    type: mysql
    host: db1
    user: catalog
    password_env: SHOP_PW
  - name: warehouse_pg
    type: postgres
    host: db2
    user: catalog
    password_env: PG_PW
  - name: analytics
    type: bigquery
    project: acme-analytics
"""
SOURCES = ("analytics", "shop", "warehouse_pg")


def _repository(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG.format(store=tmp_path / "mce"))
    return build_definitions(load(str(path))).get_repository_def()


def test_sensor_schedule_job_and_op_names(tmp_path):
    repo = _repository(tmp_path)
    assert sorted(s.name for s in repo.sensor_defs) == sorted(
        ["mysql_pool_limits"]
        + [f"{s}_{kind}" for s in SOURCES for kind in ("datahub_push_sensor", "notification_sensor", "schema_sensor")]
    )
    assert sorted(s.name for s in repo.schedule_defs) == [f"{s}_daily_schedule" for s in SOURCES]
    assert sorted(j.name for j in repo.get_all_jobs()) == ["__ASSET_JOB"] + [
        f"__anonymous_asset_job_{s}_daily_schedule" for s in SOURCES
    ]
    # run config addresses the extraction op by name (ExtractionConfig: rewrite_unchanged)
    assert sorted(n.name for n in repo.get_job("__ASSET_JOB").graph.node_defs) == sorted(
        f"{s}__{a}" for s in SOURCES for a in ("datahub_push", "mce_files")
    )


def test_asset_keys_checks_and_partitions(tmp_path):
    graph = _repository(tmp_path).asset_graph
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == sorted(
        f"{s}/{a}" for s in SOURCES for a in ("datahub_push", "mce_files")
    )
    assert sorted(k.to_user_string() for k in graph.asset_check_keys) == sorted(
        f"{s}/mce_files:{c}"
        for s in SOURCES
        for c in ("breaking_schema_changes", "documentation_coverage", "least_privilege")
    )
    assert sorted({n.partitions_def.name for n in graph.asset_nodes if n.partitions_def}) == [
        f"{s}_databases" for s in SOURCES
    ]


def test_run_tags_that_runs_are_found_by():
    assert (
        keys.DATA_VERSION_TAG,
        keys.MAX_RETRIES_TAG,
        keys.PUSH_AFTER_TAG,
        keys.EXTRACT_SOURCE_TAG,
        keys.REASON_TAG,
        keys.PUSH_SOURCE_TAG,
        keys.BLOCKED_TAG,
    ) == (
        "dagster/data_version",
        "dagster/max_retries",
        "metadata_assets/push_after",
        "metadata_assets/extract_source",
        "metadata_assets/reason",
        "metadata_assets/push_source",
        "metadata_assets/push_blocked",
    )
