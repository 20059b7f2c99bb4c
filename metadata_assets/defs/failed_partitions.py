"""Which databases of a run Dagit shows failed, when the run plans its partitions with one event.

Dagster marks a partition failed when its latest planned event belongs to a run that failed and no materialization
of that run followed (`partition_status_cache.build_failed_and_in_progress_partition_subset`). By default the run's
creator writes one planned event per partition, each a write on a new PostgreSQL connection in the daemon
(bench/NOTES.md). With `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`
(deploy/values.yaml, the demo, bench/deployed.py) a ranged run gets one planned event carrying its partition
subset instead; that event names no partition, so a failed run marks none failed on its own (the warning in
`EventLogStorage.supports_partition_subset_in_asset_materialization_planned_events`).

The extraction step then plans, itself, each database that failed: a planned event of that partition in the
failing run, which is what the status cache reads. Only those databases show failed, and the databases found
unchanged in such a run are observed as on any other day, since nothing else of the run was planned per partition.
(Dagster's ASSET_FAILED_TO_MATERIALIZE event is not used: every OSS storage drops it,
`EventLogStorage.can_store_asset_failure_events`, and 1.13's partition status does not read it.)
"""

from __future__ import annotations

import logging

from dagster import AssetExecutionContext, AssetKey, DagsterEventType
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent


def planned_as_subset(context: AssetExecutionContext, key: AssetKey) -> bool:
    """Whether this run's planned event of `key` carries a partition subset (one event) rather than one per
    partition. Read from the run's own events, so it holds whatever the environment of this process says."""
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1
    ).records
    if not records:
        return False
    data = records[0].event_log_entry.dagster_event.event_specific_data
    return data is not None and data.asset_key == key and data.partitions_subset is not None


def mark_failed(context: AssetExecutionContext, key: AssetKey, failed: dict[str, str]) -> None:
    """{database: error}: each database's partition planned in this run, which then fails without materializing it."""
    step_key = context.get_step_execution_context().step.key
    job = context.run.job_name
    for db, error in failed.items():
        planned = DagsterEvent.build_asset_materialization_planned_event(
            job, step_key, AssetMaterializationPlannedData(key, partition=db)
        )
        context.log.log_dagster_event(logging.ERROR, f"{db}: failed: {error}", planned)
