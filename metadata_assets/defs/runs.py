"""Which of a source's runs are active: what the push from extraction runs and the push sensor wait on."""

from __future__ import annotations

import time
from typing import Optional

from dagster import DagsterRunStatus, RunsFilter

from metadata_assets.defs.keys import EXTRACT_SOURCE_TAG
from metadata_assets.source_config import SourceConfig

ACTIVE_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
# an extraction run shown as queued or running for longer is taken as stuck (its worker killed where no run
# monitoring ends it): it no longer holds back the push of the others; a real run of 200 databases takes minutes
STUCK_RUN_S = 6 * 3600


def active_extraction_runs(
    instance, source: SourceConfig, besides: str = "", stuck_after_s: Optional[float] = None
) -> list[str]:
    """Ids of the source's extraction runs requested by the schedule or the sensors (EXTRACT_SOURCE_TAG) that are
    queued or running, other than `besides`; runs shown so for over `stuck_after_s` (STUCK_RUN_S) are left out."""
    records = instance.get_run_records(
        RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags={EXTRACT_SOURCE_TAG: source.name}), limit=1000
    )
    fresh_after = time.time() - (STUCK_RUN_S if stuck_after_s is None else stuck_after_s)
    return [
        r.dagster_run.run_id
        for r in records
        if r.dagster_run.run_id != besides and r.create_timestamp.timestamp() > fresh_after
    ]
