"""MySQL and MariaDB (`type: mysql`): config.py (the source's YAML), reader.py (information_schema in bulk),
kind.py (the SourceKind: session, fingerprints, grants); its proposals are built by datahub/mcps.py."""

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

__all__ = ["ConnectionLost", "MySQLReader", "SourceQueryFailed", "SourceUnavailable", "connect", "describe",
           "grant_statements", "is_connection_error", "list_databases", "quote_ident"]
