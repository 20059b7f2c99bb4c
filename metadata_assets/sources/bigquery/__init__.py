"""BigQuery (`type: bigquery`): config.py (the source's YAML), reader.py (INFORMATION_SCHEMA and dataset metadata),
emitter.py (its own emitter: projects, datasets, nested fields), kind.py (the SourceKind, reading through
dagster-gcp's BigQueryResource client)."""

from metadata_assets.sources.bigquery.reader import (
    BigQueryReader,
    Scope,
    build_dataset,
    columns_sql,
    fingerprint_sql,
    grant_commands,
    parse_labels,
    parse_string_literal,
    schemata_sql,
    tables_sql,
)

__all__ = [
    "BigQueryReader",
    "Scope",
    "build_dataset",
    "columns_sql",
    "fingerprint_sql",
    "grant_commands",
    "parse_labels",
    "parse_string_literal",
    "schemata_sql",
    "tables_sql",
]
