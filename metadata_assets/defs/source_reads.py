"""What Dagster code reads a source through: its kind's client (sources/registry.py), opened for a whole run or tick.

No SQL and no dispatch on the kind of source here: each kind's package holds both (sources/<type>/kind.py). BigQuery
sources read through dagster-gcp's BigQueryResource (credentials from the environment), one per source's project.
"""

from __future__ import annotations

from typing import Optional

from metadata_assets.source_config import SourceConfig
from metadata_assets.sources.registry import kind_of


def list_databases(source: SourceConfig) -> list[str]:
    """The allowed databases (BigQuery: datasets) that exist: what the partitions are."""
    kind = kind_of(source)
    with kind.client(source) as client:
        return kind.list_databases(source, client)


def read_fingerprints(
    source: SourceConfig, cursor: Optional[dict[str, str]] = None, tick: Optional[int] = None
) -> dict[str, str]:
    """{database: digest} for the sensor cursor (small: ~35 bytes a database)."""
    kind = kind_of(source)
    with kind.client(source) as client:
        return kind.fingerprints(source, client, cursor=cursor, tick=tick)


def unavailable_errors(source: SourceConfig) -> tuple[type[BaseException], ...]:
    """What the source's client library raises when it cannot read now: the sensor skips the tick on these."""
    return kind_of(source).unavailable_errors()


def source_client(source: SourceConfig):
    """The source's client as a context manager (yields None for kinds that connect themselves)."""
    return kind_of(source).client(source)
