"""The one place that dispatches on the source type for Dagster code: which client a source reads through.

MySQL sources connect with pymysql (sources/mysql.py). BigQuery sources read through dagster-gcp's
BigQueryResource (google-cloud-bigquery underneath; credentials from the environment: Application Default
Credentials), one resource per source's project. No SQL here: the readers in sources/ hold it.
"""

from __future__ import annotations

import hashlib
import time
import zlib
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


def extract_through_client(source: AnySource, databases, store, progress=None, rewrite: bool = False):
    """extract() with the source's client open for the whole run (BigQuery: dagster-gcp's BigQueryResource)."""
    from metadata_assets.extract import extract

    with source_client(source) as client:
        yield from extract(source, databases, store, progress=progress, bigquery_client=client, rewrite=rewrite)


def list_databases(source: AnySource) -> list[str]:
    """The allowed databases (BigQuery: datasets) that exist: what the partitions are."""
    if isinstance(source, BigQuerySource):
        from metadata_assets.sources.bigquery import BigQueryReader

        with source_client(source) as client:
            return BigQueryReader(client, source).list_databases()
    from metadata_assets.sources.mysql import list_databases as mysql_list

    return mysql_list(source)


# Key parts (key columns, foreign-key rules) make MariaDB open every table in full: over a 3,000-database server
# they cost more than all other parts together. Each tick reads them for this many databases (plus new ones); the
# others keep the key digest of the cursor, so a key-only change is seen within ceil(N / KEY_SLICE) ticks.
KEY_SLICE = 250
# Dagster gives up on a sensor evaluation after 60 s (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS): a tick's fingerprint
# query ends before that, so the tick skips with our reason instead of a gRPC timeout (a 3,000-database server
# answers in about 10 s).
SENSOR_QUERY_TIMEOUT_S = 45.0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_fingerprints(source: AnySource, cursor: Optional[dict[str, str]] = None,
                      tick: Optional[int] = None) -> dict[str, str]:
    """{database: digest} for the sensor cursor (small: ~35 bytes a database).

    MySQL digests are `<tables+columns>.<keys>`; only a rotating slice of databases gets its keys read per tick
    (`tick`, default the current minute, picks the slice). BigQuery: one fingerprint query per region.
    """
    if isinstance(source, BigQuerySource):
        from metadata_assets.sources.bigquery import BigQueryReader

        with source_client(source) as client:
            fps = BigQueryReader(client, source).fingerprints()
        return {db: _digest(fp) for db, fp in fps.items()}

    from metadata_assets.sources.mysql import MySQLReader, connect, describe

    cursor = cursor or {}
    conn = connect(source, query_timeout_s=min(source.query_timeout_s, SENSOR_QUERY_TIMEOUT_S))
    try:
        reader = MySQLReader(conn, describe(source))
        if not cursor or any("." not in v for v in cursor.values()):  # first tick, or an older cursor format
            full = reader.fingerprints(source)
            cheap = {db: "|".join(p for p in fp.split("|") if p[0] in "stc") for db, fp in full.items()}
            keyed = {db: "|".join(p for p in fp.split("|") if p[0] in "kr") for db, fp in full.items()}
        else:
            cheap = reader.fingerprints(source, key_databases=[])
            n_slices = -(-len(cheap) // KEY_SLICE) or 1
            tick = int(time.time() // 60) if tick is None else tick
            chosen = [db for db in cheap
                      if db not in cursor or zlib.crc32(db.encode()) % n_slices == tick % n_slices]
            keyed = {db: "" for db in chosen}
            keyed.update(reader.key_fingerprints(source, chosen))
    finally:
        conn.close()
    return {db: f"{_digest(fp)}.{_digest(keyed[db]) if db in keyed else cursor[db].split('.', 1)[1]}"
            for db, fp in cheap.items()}


def bigquery_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable BigQuery or refused credentials raise: the sensor skips the tick on these."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError)
