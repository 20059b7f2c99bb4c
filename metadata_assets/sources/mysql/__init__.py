"""MySQL and MariaDB (`type: mysql`): config.py (the source's YAML), reader.py (information_schema in bulk),
emitter.py (the SQL emitter's hooks: MySQL's platform and types), access.py (check-access probes), kind.py (the
SourceKind: session, fingerprints, grants)."""

from metadata_assets.sources.base import ConnectionLost, SourceQueryFailed, SourceUnavailable
from metadata_assets.sources.mysql.reader import (
    MySQLReader,
    connect,
    describe,
    grant_statements,
    is_connection_error,
    list_databases,
    quote_ident,
)

__all__ = [
    "ConnectionLost",
    "MySQLReader",
    "SourceQueryFailed",
    "SourceUnavailable",
    "connect",
    "describe",
    "grant_statements",
    "is_connection_error",
    "list_databases",
    "quote_ident",
]
