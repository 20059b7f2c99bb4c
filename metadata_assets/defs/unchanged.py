"""A database found unchanged is observed, not materialized.

Most databases of a daily refresh have the schema and the findings they had yesterday: their files are kept
(extract.write_database), nothing is pushed, and their checks would come out as they did. Materializing them again
would say "the file was produced now" and, since a new materialization makes its partition's checks stale, would
need three fresh check evaluations each: four events per database, most of an unchanged day's cost through Dagster
(bench/NOTES.md). Such a database gets one `AssetObservation` of its partition instead: Dagster's "looked at it, it
is as it was", saying when it was confirmed current and which materialization still holds its file. Its
latest materialization and the checks that point at it stay current, so Dagit goes on showing what changed last and
how the checks came out.

Unchanged means: the file was kept (not rewritten), its data version equals that of the partition's latest
materialization, and so does what the checks read beyond the schema (`check_inputs`: the finding codes, which
change with grants, and the coverage threshold). Anything else materializes, as before.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterEventType,
    MetadataValue,
)

from metadata_assets.defs.checks import WARNING_CODES
from metadata_assets.defs.keys import DATA_VERSION_TAG
from metadata_assets.extract import DatabaseResult

CHECK_INPUTS = "check_inputs"  # materialization metadata: digest of what the checks read beyond the schema
CHECKS_FORMAT = 1  # bump when the checks' logic changes: every partition then materializes (and is checked) once


def check_inputs(check_metadata: Mapping, coverage_threshold: float) -> str:
    """A digest of what a partition's checks read besides the schema (which its data version covers)."""
    doc = [CHECKS_FORMAT, dict(check_metadata[WARNING_CODES]), round(coverage_threshold, 6)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def latest_materializations(instance, key: AssetKey, partitions: list[str]) -> dict:
    """{partition: its latest materialization record}, in two queries whatever the number of partitions."""
    if not partitions:
        return {}
    ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        key, DagsterEventType.ASSET_MATERIALIZATION, set(partitions)
    )
    if not ids:
        return {}
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, storage_ids=list(ids.values())), limit=len(ids)
    ).records
    return {rec.partition_key: rec for rec in records}


def planned_alone_since(instance, key: AssetKey, partitions: list[str], latest: dict) -> set[str]:
    """The partitions planned on their own (a per-partition planned event) after their latest materialization.
    In runs planned with one event (defs/failed_partitions.py) only a failed database is planned on its own: Dagit
    shows it failed until it materializes again, so such a database is materialized, not observed, even when found
    as it was recorded (its file may well have been kept)."""
    if not partitions:
        return set()
    ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        key, DagsterEventType.ASSET_MATERIALIZATION_PLANNED, set(partitions)
    )
    return {db for db, planned in ids.items() if db not in latest or planned > latest[db].storage_id}


def confirmed_unchanged(r: DatabaseResult, inputs: str, latest) -> bool:
    """Whether the database is as its latest materialization recorded it (see the module's docstring)."""
    if r.rewritten or latest is None or latest.asset_materialization is None:
        return False
    mat = latest.asset_materialization
    recorded = mat.metadata.get(CHECK_INPUTS)
    return (mat.tags or {}).get(DATA_VERSION_TAG) == r.data_version and getattr(recorded, "value", recorded) == inputs


def observation(key: AssetKey, r: DatabaseResult, latest) -> AssetObservation:
    """The partition's record of a refresh that found it unchanged."""
    # No data-version tag: Dagster reads a materializable asset's data version from its materializations only, and
    # an indexed tag costs each observation a table lookup and an insert on PostgreSQL storage (half its cost).
    return AssetObservation(
        asset_key=key,
        partition=r.database,
        metadata={
            "confirmed": MetadataValue.text("schema and findings unchanged: file kept, nothing to push"),
            "materialized_by": MetadataValue.dagster_run(latest.run_id),
            "materialized_at": MetadataValue.timestamp(latest.timestamp),
            "path": MetadataValue.path(r.uri),
            "warning_count": len(r.warnings),
            "content_hash": MetadataValue.text(r.data_version or ""),
        },
    )
