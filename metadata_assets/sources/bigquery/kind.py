"""BigQuery as a SourceKind: reads through a google.cloud.bigquery.Client from dagster-gcp's BigQueryResource (one
per source's project; Application Default Credentials), IAM commands instead of GRANTs, no check-access probes,
proposals of its own emitter (emitter.py)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from metadata_assets.catalog import Database
from metadata_assets.sources.base import (
    SENSOR_TICK_DEADLINE_S,
    DatabaseFailure,
    ReadStats,
    Session,
    SourceKind,
    digest,
)
from metadata_assets.sources.bigquery.config import BigQuerySource
from metadata_assets.sources.bigquery.reader import BigQueryReader, grant_commands


class BigQuerySession(Session):
    def __init__(self, reader: BigQueryReader):
        self.reader = reader

    @property
    def stats(self) -> ReadStats:
        return ReadStats(
            statements=self.reader.queries, api_calls=self.reader.api_calls, tables_filtered=self.reader.tables_filtered
        )

    def privilege_warnings(self, databases: Sequence[str]) -> list[str]:
        return []  # IAM roles are not visible from INFORMATION_SCHEMA

    def read_batch(self, batch: list[str]) -> tuple[dict[str, Database], Optional[DatabaseFailure]]:
        return {db.name: db for db in self.reader.read(batch)}, None

    def access_warnings(self, database: str) -> list[str]:
        return []  # IAM roles are not visible from INFORMATION_SCHEMA

    def close(self) -> None:
        pass


class BigQueryKind(SourceKind):
    type = "bigquery"
    platform = "bigquery"
    title = "BigQuery"
    database_noun = "dataset"
    catalog_read = "INFORMATION_SCHEMA"

    def pool(self, source: BigQuerySource) -> str:
        return "bigquery_" + re.sub(r"[^A-Za-z0-9_]", "_", source.project)

    def resource(self, source: BigQuerySource):
        from dagster_gcp import BigQueryResource

        return BigQueryResource(project=source.project)  # job project = billing project = the source's project

    @contextmanager
    def client(self, source: BigQuerySource) -> Iterator[object]:
        with self.resource(source).get_client() as client:
            yield client

    def _client_or_open(self, source, client):
        if client is not None:
            return _given(client)
        return self.client(source)

    def list_databases(self, source: BigQuerySource, client=None) -> list[str]:
        with self._client_or_open(source, client) as c:
            return BigQueryReader(c, source).list_databases()

    def session(self, source: BigQuerySource, client=None) -> BigQuerySession:
        if client is None:
            raise ValueError(
                f"source {source.name!r}: a BigQuery source reads through a client (extract(..., client=...))"
            )
        return BigQuerySession(BigQueryReader(client, source))

    def fingerprints(self, source: BigQuerySource, client=None, cursor=None, tick=None) -> dict[str, str]:
        """One fingerprint query per region (or per dataset without regions), all within the tick's deadline."""
        with self._client_or_open(source, client) as c:
            reader = BigQueryReader(c, source, deadline_s=SENSOR_TICK_DEADLINE_S)
            try:
                fps = reader.fingerprints()
            except Exception as e:  # a call cut short by what was left of the deadline: say so
                if reader.deadline_passed():
                    raise reader.deadline_error() from e
                raise
        return {db: digest(fp) for db, fp in fps.items()}

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError

        return (GoogleAPIError, GoogleAuthError)

    def grant_text(self, source: BigQuerySource, databases: Optional[Sequence[str]]) -> list[str]:
        return [
            f"-- source {source.name}: BigQuery project {source.project} (IAM roles, not GRANTs)",
            *grant_commands(source),
        ]

    def no_access_probes(self, source: BigQuerySource) -> str:
        return (
            "check-access is not available for BigQuery sources: IAM roles are not visible from "
            "INFORMATION_SCHEMA and a probe would be a billed query job; check the service account's roles "
            f"(roles/bigquery.metadataViewer and roles/bigquery.jobUser only) with `gcloud projects "
            f"get-iam-policy {source.project}`"
        )

    def urn_rules(self, source: BigQuerySource):
        from metadata_assets.sources.bigquery.emitter import BigQueryUrnRules

        return BigQueryUrnRules(project=source.project, env=source.env, platform_instance=source.platform_instance)

    def lineage(self, rules, source: Optional[BigQuerySource] = None):
        from metadata_assets.sources.bigquery.emitter import BigQueryLineageResolver

        return BigQueryLineageResolver(rules)

    def mcps(self, db: Database, rules, lineage, warnings: list[str]):
        from metadata_assets.sources.bigquery.emitter import dataset_mcps

        return dataset_mcps(db, rules, lineage, warnings)


@contextmanager
def _given(client):
    yield client


KIND = BigQueryKind()
