"""PostgreSQL's hooks of the SQL emitter (sources/sql_emitter.py): three tiers, database -> schema -> table, with
the same URNs, containers and browse paths as DataHub's built-in postgres source (tests/test_postgres_source.py
compares)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator, Optional

from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.ingestion.source.common.subtypes import DatasetContainerSubTypes
from datahub.ingestion.source.sql.sql_utils import gen_schema_container, gen_schema_key
from datahub.metadata.schema_classes import (
    ArrayTypeClass,
    BooleanTypeClass,
    BrowsePathEntryClass,
    BrowsePathsV2Class,
    BytesTypeClass,
    DateTypeClass,
    EnumTypeClass,
    NullTypeClass,
    NumberTypeClass,
    RecordTypeClass,
    SchemaFieldDataTypeClass,
    StringTypeClass,
    TimeTypeClass,
)

from metadata_assets.catalog import Column, Database, Table
from metadata_assets.sources.sql_emitter import UrnRules

# Bump when what a PostgreSQL database's file holds changes, so every file counts as changed and is pushed again.
# 2: view lineage keeps the database name's case; NOT NULL domains non-nullable; nativeDataType without `public.`;
#    functions and procedures; indexes, check constraints and triggers; partitioned tables' profile from their
#    partitions, never-analysed tables without figures
MCE_FORMAT = "2"

# pg_type.typname (the reader gives 'array' and 'enum' for those categories, a domain's base type for a domain)
_TYPES = {
    **dict.fromkeys(("int2", "int4", "int8", "float4", "float8", "numeric", "money", "oid"), NumberTypeClass),
    "bool": BooleanTypeClass,
    **dict.fromkeys(
        (
            "varchar",
            "bpchar",
            "text",
            "name",
            "char",
            "uuid",
            "citext",
            "inet",
            "cidr",
            "macaddr",
            "macaddr8",
            "xml",
            "tsvector",
            "tsquery",
            "bit",
            "varbit",
        ),
        StringTypeClass,
    ),
    "bytea": BytesTypeClass,
    "date": DateTypeClass,
    **dict.fromkeys(("timestamp", "timestamptz", "time", "timetz", "interval"), TimeTypeClass),
    **dict.fromkeys(("json", "jsonb"), RecordTypeClass),
    "enum": EnumTypeClass,
    "array": ArrayTypeClass,
}


def schemas(db: Database) -> list[dict]:
    """The database's allowed schemas as the reader keeps them: [{"name", "comment"}]."""
    return json.loads(db.properties.get("schemas", "[]"))


@dataclass(frozen=True)
class PostgresUrnRules(UrnRules):
    platform = "postgres"
    mce_format = MCE_FORMAT

    def schema_key(self, database: str, schema: str):
        return gen_schema_key(database, schema, self.platform, self.platform_instance, self.env)

    def field_type(self, c: Column) -> SchemaFieldDataTypeClass:
        return SchemaFieldDataTypeClass(type=_TYPES.get(c.data_type, NullTypeClass)())

    def inner_containers(self, db: Database) -> Iterator[MetadataChangeProposalWrapper]:
        db_key = self.container_key(db.name)
        db_urn = db_key.as_urn()
        for s in schemas(db):
            key = self.schema_key(db.name, s["name"])
            for wu in gen_schema_container(
                schema=s["name"],
                database=db.name,
                sub_types=[DatasetContainerSubTypes.SCHEMA],
                database_container_key=db_key,
                schema_container_key=key,
                description=s["comment"] or None,
            ):
                yield wu.metadata
            yield MetadataChangeProposalWrapper(
                entityUrn=key.as_urn(),
                aspect=BrowsePathsV2Class(path=[*self._instance_path(), BrowsePathEntryClass(id=db_urn, urn=db_urn)]),
            )

    def display_name(self, t: Table) -> str:
        return t.properties["table"]  # t.name is "schema.table"; the built-in shows the bare name

    def table_container_key(self, db: Database, t: Table):
        return self.schema_key(db.name, t.properties["schema"])

    def table_browse_path(self, db: Database, t: Table) -> list[BrowsePathEntryClass]:
        db_urn = self.container(db.name)
        schema_urn = self.schema_key(db.name, t.properties["schema"]).as_urn()
        return [
            *self._instance_path(),
            BrowsePathEntryClass(id=db_urn, urn=db_urn),
            BrowsePathEntryClass(id=schema_urn, urn=schema_urn),
        ]

    def sql_defaults(self, db: Database) -> tuple[Optional[str], Optional[str]]:
        return db.name, "public"  # the reader's view SQL qualifies every name; `public` only as a fallback

    def sql_names(self, table) -> tuple[Optional[str], str]:
        return table.database, f"{table.db_schema}.{table.table}"

    def sql_table(self, table, database: str):
        """A PostgreSQL query reads only its own database, so every table its SQL names is in `database`: named
        with the database's real case. (sqlglot folds the unquoted default database to lower case, which made the
        lineage of a database called `Sales` name `sales.x.y`, a dataset nobody emits.)"""
        if table.database == database:
            return table
        return table.model_copy(update={"database": database})

    def routine_schema_key(self, db: Database, r):
        return self.schema_key(db.name, r.schema)

    def routine_browse_path(self, db: Database, r) -> list[BrowsePathEntryClass]:
        db_urn = self.container(db.name)
        schema_urn = self.schema_key(db.name, r.schema).as_urn()
        return [
            *self._instance_path(),
            BrowsePathEntryClass(id=db_urn, urn=db_urn),
            BrowsePathEntryClass(id=schema_urn, urn=schema_urn),
        ]
