"""The observations of a refresh's unchanged databases, stored by Dagster in batches.

An observation yielded from a step is stored on its own: on PostgreSQL an insert, a NOTIFY, its tags and the asset's
row, for each of the many unchanged databases of a normal day (bench/NOTES.md). Dagster can store events of one
kind in one statement (`EventLogStorage.store_event_batch`, enabled by `DAGSTER_EVENT_BATCH_SIZE`; deploy/values.yaml
sets it for the runs) for the events a step logs with batch metadata. `ObservationBatch` logs the observations so,
through the step's own `DagsterEvent.asset_observation`, as Dagster logs a partitioned output's events. Without the
setting each is stored on its own, as before. They are in the run's event log (Dagit, `instance.all_logs`), not in
the events an in-process result collects from the step's yields.
"""

from __future__ import annotations

from dagster import AssetExecutionContext, AssetObservation
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id

BATCH = 500  # observations per batch: one statement each on PostgreSQL


class ObservationBatch:
    def __init__(self, context: AssetExecutionContext, size: int = BATCH):
        self.step = context.get_step_execution_context()
        self.size = size
        self.pending: list[AssetObservation] = []

    def add(self, observation: AssetObservation) -> None:
        self.pending.append(observation)
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        batch_id, last = generate_event_batch_id(), len(self.pending) - 1
        for i, obs in enumerate(self.pending):
            DagsterEvent.asset_observation(self.step, obs, DagsterEventBatchMetadata(batch_id, i == last))
        self.pending = []
