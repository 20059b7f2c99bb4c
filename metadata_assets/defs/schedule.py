"""The daily refresh of one source: every database's MCE file, in a bounded number of runs.

The source's databases (its dynamic partitions, in Dagster's order) are cut into contiguous slices of the source's
run size (SourceConfig.run_size: batch_size, grown on a large estate to no more runs than run at once); each slice is
one run over a partition *range* (tags dagster/asset_partition_range_start/_end), which the extraction asset reads in
bulk information_schema queries of batch_size: a few runs (pods on Kubernetes) per refresh, not one per database;
the pool of the extraction asset caps how many run against one host at once. Every database is read again; one
found unchanged is observed rather than materialized (defs/unchanged.py). The last run pushes what changed (or the push sensor does).
"""

from __future__ import annotations

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from metadata_assets.defs.keys import mce_asset_key, partitions_def, range_tags, run_tags
from metadata_assets.source_config import SourceConfig


def batches(keys: list[str], size: int) -> list[list[str]]:
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def build_daily_schedule(source: SourceConfig):
    parts = partitions_def(source)

    @schedule(
        name=f"{source.name}_daily_schedule",
        cron_schedule=source.schedule.cron,
        execution_timezone=source.schedule.timezone,
        # the asset evaluates the checks of what it materializes; planned for every partition of a range, a check
        # would end SKIPPED for each database found unchanged (observed, defs/unchanged.py)
        target=AssetSelection.assets(mce_asset_key(source)).without_checks(),
        default_status=DefaultScheduleStatus.RUNNING,
        description=(
            f"Refreshes every database's MCE file of `{source.name}` in runs of the source's run size "
            f"(databases_per_run: by default {source.batch_size}, more on a large estate); the last run "
            f"pushes what changed."
        ),
    )
    def daily(context: ScheduleEvaluationContext):
        keys = parts.get_partition_keys(dynamic_partitions_store=context.instance)
        if not keys:
            return SkipReason(f"source {source.name!r} has no databases (yet): nothing to refresh")
        tick = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
        size = source.run_size(len(keys))
        return [
            RunRequest(
                run_key=f"{tick}/{i}",
                tags={
                    **run_tags(source),  # sizes the run pod on Kubernetes
                    **range_tags(batch),
                    "metadata_assets/batch": f"{i + 1}/{-(-len(keys) // size)}",
                },
            )
            for i, batch in enumerate(batches(keys, size))
        ]

    return daily
