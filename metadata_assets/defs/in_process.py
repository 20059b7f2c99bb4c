"""Run the daily refresh in this process: what the demo and the benchmark use instead of the daemon.

Same assets, same partitions, same batching as the schedule; runs are executed with execute_in_process against a
real DagsterInstance, so they show up in Dagit afterwards.
"""

from typing import Callable, Optional

from dagster import DagsterInstance, Definitions

from metadata_assets.config import ProjectConfig
from metadata_assets.datahub.push import forget_database
from metadata_assets.defs.keys import mce_asset_key, partitions_def, push_asset_key, range_tags
from metadata_assets.defs.resources import MCEStoreResource
from metadata_assets.defs.schedule import batches
from metadata_assets.defs.source_reads import list_databases
from metadata_assets.source_config import SourceConfig

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def sync_partitions(cfg: ProjectConfig, instance: DagsterInstance, source: SourceConfig) -> list[str]:
    """What the schema sensor does to partitions: add new databases, remove gone ones (and their files, so the
    next push soft-deletes them)."""
    parts = partitions_def(source)
    wanted = list_databases(source)
    have = set(parts.get_partition_keys(dynamic_partitions_store=instance))
    new = [d for d in wanted if d not in have]
    gone = sorted(have - set(wanted))
    if new:
        instance.add_dynamic_partitions(parts.name, new)
    store = MCEStoreResource(uri=cfg.storage.uri).open()
    for key in gone:
        instance.delete_dynamic_partition(parts.name, key)
        forget_database(store, source.name, key)
    return parts.get_partition_keys(dynamic_partitions_store=instance)


def refresh_source(
    cfg: ProjectConfig,
    defs: Definitions,
    instance: DagsterInstance,
    source: SourceConfig,
    print_fn: Callable[[str], None] = print,
    databases: Optional[list[str]] = None,
) -> bool:
    """Materialize the source's partitions (or only `databases`, which must be allowed and visible) in range runs
    of the source's run size (SourceConfig.run_size), as the daily schedule does; recorded in `instance` like any
    run."""
    keys = sync_partitions(cfg, instance, source)
    if databases:
        unknown = sorted(set(databases) - set(keys))
        if unknown:
            raise ValueError(
                f"{source.name}: not a partition (not allowed, or not visible to the account): " + ", ".join(unknown)
            )
        wanted = set(databases)
        keys = [k for k in keys if k in wanted]
    job = defs.resolve_implicit_global_asset_job_def()
    ok = True
    done = 0
    for batch in batches(keys, source.run_size(len(keys))):  # the daily schedule's batching
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[mce_asset_key(source)],
            run_config=QUIET,
            raise_on_error=False,
            tags=range_tags(batch),
        )
        done += len(batch)
        ok &= result.success
        print_fn(
            f"{source.name}: {done}/{len(keys)} databases extracted"
            + ("" if result.success else f" (run {result.run_id} FAILED)")
        )
        for e in result.all_events:  # the run's ExtractionReport (defs/extraction_report.py)
            if e.event_type_value == "ASSET_OBSERVATION":
                summary = e.asset_observation_data.asset_observation.metadata.get("summary")
                if summary is not None:
                    print_fn("  " + summary.value)
    return ok


def push_source(
    defs: Definitions, instance: DagsterInstance, source: SourceConfig, print_fn: Callable[[str], None] = print
) -> bool:
    """Materialize the source's DataHub push asset once, as its sensor would after the refresh (skipped when the
    definitions have no push asset)."""
    key = push_asset_key(source)
    if key not in defs.resolve_all_asset_keys():
        print_fn(f"{source.name}: no push asset, nothing pushed")
        return True
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=[key], run_config=QUIET, raise_on_error=False)
    meta = {
        k: v.value for e in result.get_asset_materialization_events() for k, v in e.materialization.metadata.items()
    }
    print_fn(
        f"{source.name}: pushed to {meta.get('target', 'DataHub')}: {meta.get('databases_pushed', 0)} databases, "
        f"{meta.get('proposals_sent', 0)} proposals" + ("" if result.success else f" (run {result.run_id} FAILED)")
    )
    return result.success
