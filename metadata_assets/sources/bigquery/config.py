"""A BigQuery source's configuration (`type: bigquery`): one project, one partition per allowed dataset."""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Optional

from pydantic import Field, field_validator

from metadata_assets.source_config import Pattern, SourceConfig

_CREDENTIAL_KEYS = (
    "credentials",
    "gcp_credentials",
    "credentials_path",
    "key_file",
    "keyfile",
    "private_key",
    "service_account",
    "password",
    "password_env",
)


class BigQuerySource(SourceConfig):
    """A BigQuery project read through INFORMATION_SCHEMA only; one partition per allowed dataset.

    Credentials come from the environment (Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, workload
    identity, gcloud auth), never from this file. Query jobs run in (and are billed to) `project`.
    """

    database_pattern_field: ClassVar[str] = "dataset_pattern"

    type: Literal["bigquery"]
    project: str = Field(description="GCP project id (also the project query jobs run in)")
    regions: Optional[list[str]] = Field(
        default=None,
        description="e.g. [us, eu]: list and read datasets with region-qualified INFORMATION_SCHEMA views (a fixed "
        "number of queries per batch; needs the grant on the project). Unset: datasets are listed with the "
        "API and read per dataset (project.dataset.INFORMATION_SCHEMA)",
    )
    dataset_pattern: Pattern = Pattern()
    table_pattern: Pattern = Field(default=Pattern(), description='matched against "dataset.table"')
    batch_size: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="datasets per bulk query (and the least per run unless databases_per_run is set)",
    )
    max_concurrent_runs: int = Field(default=2, ge=1, le=64, description="extraction runs against this project at once")
    sensor_interval_s: int = Field(
        default=60,
        ge=5,
        le=86400,
        description="seconds between the schema sensor's fingerprint queries (each tick "
        "runs query jobs, billed to the project)",
    )

    @classmethod
    def unknown_key_hint(cls, key: str) -> Optional[str]:
        if key in _CREDENTIAL_KEYS:
            return (
                "BigQuery credentials are never in this file: they come from the environment, "
                "Application Default Credentials, e.g. GOOGLE_APPLICATION_CREDENTIALS or workload identity"
            )
        return super().unknown_key_hint(key)

    @field_validator("project")
    @classmethod
    def _valid_project(cls, project: str) -> str:
        if not re.fullmatch(r"(?:[a-z0-9.\-]+:)?[a-z][a-z0-9\-]{4,61}[a-z0-9]", project):
            raise ValueError(
                f"invalid project id {project!r} (want the GCP project id, e.g. 'acme-analytics', "
                "not its display name or number)"
            )
        return project

    @field_validator("regions")
    @classmethod
    def _valid_regions(cls, regions: Optional[list[str]]) -> Optional[list[str]]:
        if regions is None:
            return None
        if not regions:
            raise ValueError("regions is empty: leave it out to read per dataset, or list regions such as [us, eu]")
        out = []
        for r in regions:
            r = r.lower().removeprefix("region-")
            if not re.fullmatch(r"[a-z]+[a-z0-9-]*[a-z0-9]", r):
                raise ValueError(f"invalid region {r!r} (want a BigQuery location such as 'us', 'eu', 'europe-west3')")
            out.append(r)
        return sorted(set(out), key=out.index)

    def database_allowed(self, dataset: str) -> bool:
        return self.dataset_pattern.allowed(dataset)
