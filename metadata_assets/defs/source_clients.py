"""The one place that dispatches on the source type for Dagster code: which client a source reads through.

MySQL sources connect with pymysql (sources/mysql.py). BigQuery sources read through dagster-gcp's
BigQueryResource (google-cloud-bigquery underneath; credentials from the environment: Application Default
Credentials), one resource per source's project. No SQL here: the readers in sources/ hold it.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator, Optional

from metadata_assets.config import AnySource, BigQuerySource


def bigquery_resource(source: BigQuerySource):
    from dagster_gcp import BigQueryResource

    return BigQueryResource(project=source.project)  # job project = billing project = the source's project


@contextmanager
def source_client(source: AnySource) -> Iterator[Optional[object]]:
    """A google.cloud.bigquery.Client for a BigQuery source; None for MySQL (extract() connects itself)."""
    if isinstance(source, BigQuerySource):
        with bigquery_resource(source).get_client() as client:
            yield client
    else:
        yield None


def extract_through_client(source: AnySource, databases, store, progress=None):
    """extract() with the source's client open for the whole run (BigQuery: dagster-gcp's BigQueryResource)."""
    from metadata_assets.extract import extract

    with source_client(source) as client:
        yield from extract(source, databases, store, progress=progress, bigquery_client=client)


def list_databases(source: AnySource) -> list[str]:
    """The allowed databases (BigQuery: datasets) that exist: what the partitions are."""
    if isinstance(source, BigQuerySource):
        from metadata_assets.sources.bigquery import BigQueryReader

        with source_client(source) as client:
            return BigQueryReader(client, source).list_databases()
    from metadata_assets.sources.mysql import list_databases as mysql_list

    return mysql_list(source)


def read_fingerprints(source: AnySource) -> dict[str, str]:
    """{database: 16-hex digest of its fingerprint}: keeps the sensor cursor small."""
    if isinstance(source, BigQuerySource):
        from metadata_assets.sources.bigquery import BigQueryReader

        with source_client(source) as client:
            fps = BigQueryReader(client, source).fingerprints()
    else:
        from metadata_assets.sources.mysql import MySQLReader, connect

        conn = connect(source)
        try:
            fps = MySQLReader(conn).fingerprints(source)
        finally:
            conn.close()
    return {db: hashlib.sha256(fp.encode()).hexdigest()[:16] for db, fp in fps.items()}


def bigquery_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable BigQuery or refused credentials raise: the sensor skips the tick on these."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError)
