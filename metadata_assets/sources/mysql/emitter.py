"""MySQL's hooks of the SQL emitter (sources/sql_emitter.py): two tiers, database -> table, with the same URNs,
containers and browse paths as DataHub's built-in mysql source (tests/test_conformance.py compares)."""

from __future__ import annotations

from dataclasses import dataclass

import datahub.metadata.schema_classes as models

from metadata_assets.catalog import Column
from metadata_assets.sources.sql_emitter import UrnRules

PLATFORM = "mysql"
# Bump when what a MySQL database's file holds changes, so every file counts as changed and is pushed again.
# 2: schemaMetadata for views without visible columns, visible keys only, no lineage to dropped tables
# 3: datasetProfile (row estimate, columns, size) instead of row_estimate/data_length properties; indexes, check
#    constraints and triggers as properties; stored procedures and functions; domains; BIT as Bytes (the built-in's)
# 4: the stored-procedure DataFlow and DataJobs carry status and browsePathsV2 (as the built-in's); a routine's
#    arguments property
MCE_FORMAT = "4"

_TYPES = {
    **dict.fromkeys(
        (
            "tinyint",
            "smallint",
            "mediumint",
            "int",
            "integer",
            "bigint",
            "decimal",
            "numeric",
            "float",
            "double",
            "real",
            "year",
            "serial",
        ),
        models.NumberTypeClass,
    ),
    **dict.fromkeys(("bool", "boolean"), models.BooleanTypeClass),
    "enum": models.EnumTypeClass,
    **dict.fromkeys(
        ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "set", "uuid", "inet4", "inet6"),
        models.StringTypeClass,
    ),
    # BIT(n) is a bit-field: bytes, as DataHub's mysql source types it (SQLAlchemy's BIT)
    **dict.fromkeys(
        ("bit", "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), models.BytesTypeClass
    ),
    "date": models.DateTypeClass,
    **dict.fromkeys(("datetime", "timestamp", "time"), models.TimeTypeClass),
    "json": models.RecordTypeClass,
    "vector": models.ArrayTypeClass,
}


@dataclass(frozen=True)
class MySQLUrnRules(UrnRules):
    """The naming rules of DataHub's mysql source (MariaDB too): UrnRules' two tiers, MySQL's types."""

    platform = PLATFORM
    mce_format = MCE_FORMAT

    def field_type(self, c: Column) -> models.SchemaFieldDataTypeClass:
        return models.SchemaFieldDataTypeClass(type=_TYPES.get(c.data_type.lower(), models.NullTypeClass)())
