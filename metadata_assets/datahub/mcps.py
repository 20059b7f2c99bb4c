"""Catalog snapshot -> DataHub metadata change proposals, URN-compatible with DataHub's own mysql source.

Everything is built with acryl-datahub's classes and helpers (URN builders, DatabaseKey, gen_database_container,
add_table_to_schema_container, sqlglot lineage); nothing here talks to a database or to Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator, Optional

from datahub.emitter.mce_builder import (
    make_data_platform_urn,
    make_dataplatform_instance_urn,
    make_dataset_urn_with_platform_instance,
    make_schema_field_urn,
)
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.mcp_builder import DatabaseKey
from datahub.ingestion.source.common.subtypes import DatasetContainerSubTypes, DatasetSubTypes
from datahub.ingestion.source.sql.sql_utils import (
    add_table_to_schema_container,
    gen_database_container,
    gen_database_key,
)
from datahub.metadata.schema_classes import (
    ArrayTypeClass,
    BooleanTypeClass,
    BrowsePathEntryClass,
    BrowsePathsV2Class,
    BytesTypeClass,
    DataPlatformInstanceClass,
    DatasetLineageTypeClass,
    DatasetPropertiesClass,
    DateTypeClass,
    EnumTypeClass,
    FineGrainedLineageClass,
    FineGrainedLineageDownstreamTypeClass,
    FineGrainedLineageUpstreamTypeClass,
    ForeignKeyConstraintClass,
    MySqlDDLClass,
    NullTypeClass,
    NumberTypeClass,
    RecordTypeClass,
    SchemaFieldClass,
    SchemaFieldDataTypeClass,
    SchemaMetadataClass,
    StatusClass,
    StringTypeClass,
    SubTypesClass,
    TimeTypeClass,
    UpstreamClass,
    UpstreamLineageClass,
    ViewPropertiesClass,
)

from metadata_assets.catalog import Column, Database, Table

PLATFORM = "mysql"

_TYPES = {
    **dict.fromkeys(
        ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "float",
         "double", "real", "bit", "year", "serial"), NumberTypeClass),
    **dict.fromkeys(("bool", "boolean"), BooleanTypeClass),
    "enum": EnumTypeClass,
    **dict.fromkeys(
        ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "set", "uuid", "inet4", "inet6"),
        StringTypeClass),
    **dict.fromkeys(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), BytesTypeClass),
    "date": DateTypeClass,
    **dict.fromkeys(("datetime", "timestamp", "time"), TimeTypeClass),
    "json": RecordTypeClass,
    "vector": ArrayTypeClass,
}


def datahub_type(data_type: str) -> SchemaFieldDataTypeClass:
    return SchemaFieldDataTypeClass(type=_TYPES.get(data_type.lower(), NullTypeClass)())


@dataclass(frozen=True)
class UrnRules:
    """How names become URNs for one source: the same rules as DataHub's mysql source."""

    env: str = "PROD"
    platform_instance: Optional[str] = None

    def dataset(self, database: str, table: str) -> str:
        return make_dataset_urn_with_platform_instance(PLATFORM, f"{database}.{table}", self.platform_instance, self.env)

    def container_key(self, database: str) -> DatabaseKey:
        return gen_database_key(database, platform=PLATFORM, platform_instance=self.platform_instance, env=self.env)

    def container(self, database: str) -> str:
        return self.container_key(database).as_urn()

    def _instance_path(self) -> list[BrowsePathEntryClass]:
        if not self.platform_instance:
            return []
        urn = make_dataplatform_instance_urn(PLATFORM, self.platform_instance)
        return [BrowsePathEntryClass(id=urn, urn=urn)]


def _props(d: dict) -> dict[str, str]:
    return {k: str(v) for k, v in d.items() if v is not None and v != ""}


def _field(c: Column, primary_key: tuple[str, ...]) -> SchemaFieldClass:
    extra = _props({"default": c.default, "extra": c.extra, "key": c.key,
                    "generation_expression": c.generation_expression, "charset": c.charset,
                    "collation": c.collation})
    return SchemaFieldClass(
        fieldPath=c.name,
        type=datahub_type(c.data_type),
        nativeDataType=c.column_type,
        description=c.comment or None,
        nullable=c.nullable,
        recursive=False,
        isPartOfKey=True if c.name in primary_key else None,
        jsonProps=json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else None,
    )


def _foreign_keys(rules: UrnRules, db: str, t: Table, urn: str) -> list[ForeignKeyConstraintClass]:
    out = []
    for fk in t.foreign_keys:
        foreign = rules.dataset(fk.ref_database, fk.ref_table)
        out.append(ForeignKeyConstraintClass(
            name=fk.name,
            foreignFields=[make_schema_field_urn(foreign, c) for c in fk.ref_columns],
            sourceFields=[make_schema_field_urn(urn, c) for c in fk.columns],
            foreignDataset=foreign,
        ))
    return out


def _table_properties(t: Table) -> dict[str, str]:
    props = _props({"table_type": t.table_type, "engine": t.engine, "collation": t.collation,
                    "row_estimate": t.row_estimate, "data_length": t.data_length,
                    "create_time": t.create_time, "update_time": t.update_time})
    if t.is_view:
        props["is_view"] = "True"
        props["view_definition"] = t.view_definition or ""
    return props


class LineageResolver:
    """Column-level view lineage from the view SQL, with the batch's own schemas to resolve columns."""

    def __init__(self, rules: UrnRules):
        from datahub.sql_parsing.schema_resolver import SchemaResolver

        class CaseKeepingSchemaResolver(SchemaResolver):
            """DataHub lower-cases the URN of a table it has no schema for (every platform but BigQuery and DB2).
            MySQL names are case-sensitive, and a view may read a table of a database outside this batch or left
            out by table_pattern: keep the name as written, so the URN is the one UrnRules gives that table."""

            def _prefers_urn_lower(self) -> bool:
                return False

        self.rules = rules
        self.resolver = CaseKeepingSchemaResolver(platform=PLATFORM, platform_instance=rules.platform_instance,
                                                  env=rules.env)

    def register(self, db: Database) -> None:
        for t in db.tables:
            if t.columns:
                self.resolver.add_raw_schema_info(self.rules.dataset(db.name, t.name),
                                                  {c.name: c.column_type for c in t.columns})

    def upstream_lineage(self, db: Database, t: Table, urn: str) -> tuple[Optional[UpstreamLineageClass], Optional[str]]:
        """(lineage, warning). MySQL is two-tier: the database is the *schema* for sqlglot, not the db."""
        from datahub.sql_parsing.sqlglot_lineage import sqlglot_lineage

        if not t.view_definition:
            return None, None
        result = sqlglot_lineage(t.view_definition, self.resolver, default_db=None, default_schema=db.name)
        return lineage_aspect(result, t.name, urn)


def lineage_aspect(result, view: str, urn: str) -> tuple[Optional[UpstreamLineageClass], Optional[str]]:
    """A sqlglot_lineage result as the view's upstreamLineage (table and column level), or a warning."""
    err = result.debug_info.table_error
    if err:
        return None, f"view {view!r}: could not parse its SQL for lineage: {err}"
    upstreams = sorted(u for u in result.in_tables if u != urn)
    if not upstreams:
        return None, None
    fine = []
    for cl in result.column_lineage or []:
        ups = sorted({make_schema_field_urn(u.table, u.column) for u in cl.upstreams})
        if ups:
            fine.append(FineGrainedLineageClass(
                upstreamType=FineGrainedLineageUpstreamTypeClass.FIELD_SET, upstreams=ups,
                downstreamType=FineGrainedLineageDownstreamTypeClass.FIELD,
                downstreams=[make_schema_field_urn(urn, cl.downstream.column)]))
    fine.sort(key=lambda f: f.downstreams[0])
    return UpstreamLineageClass(
        upstreams=[UpstreamClass(dataset=u, type=DatasetLineageTypeClass.VIEW) for u in upstreams],
        fineGrainedLineages=fine or None), None


def database_mcps(db: Database, rules: UrnRules, lineage: Optional[LineageResolver] = None,
                  warnings: Optional[list[str]] = None) -> Iterator[MetadataChangeProposalWrapper]:
    """All proposals for one database, in a deterministic order: the container, then each table by name."""
    key = rules.container_key(db.name)
    container_urn = key.as_urn()
    for wu in gen_database_container(
        database=db.name, name=db.name, database_container_key=key,
        sub_types=[DatasetContainerSubTypes.DATABASE], description=db.comment or None,
        extra_properties=_props({"charset": db.charset, "collation": db.collation}),
    ):
        yield wu.metadata
    yield MetadataChangeProposalWrapper(entityUrn=container_urn, aspect=BrowsePathsV2Class(path=rules._instance_path()))

    if lineage is None:
        lineage = LineageResolver(rules)
        lineage.register(db)
    for t in db.tables:
        urn = rules.dataset(db.name, t.name)
        yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=StatusClass(removed=False))
        yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=DatasetPropertiesClass(
            name=t.name, description=t.comment or None, customProperties=_table_properties(t)))
        if t.columns:
            yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=SchemaMetadataClass(
                schemaName=f"{db.name}.{t.name}",
                platform=make_data_platform_urn(PLATFORM),
                version=0,
                hash="",
                platformSchema=MySqlDDLClass(tableSchema=""),
                fields=[_field(c, t.primary_key) for c in t.columns],
                primaryKeys=list(t.primary_key) or None,
                foreignKeys=_foreign_keys(rules, db.name, t, urn) or None,
            ))
        for wu in add_table_to_schema_container(dataset_urn=urn, parent_container_key=key):
            yield wu.metadata
        yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=SubTypesClass(
            typeNames=[DatasetSubTypes.VIEW if t.is_view else DatasetSubTypes.TABLE]))
        if rules.platform_instance:
            yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=DataPlatformInstanceClass(
                platform=make_data_platform_urn(PLATFORM),
                instance=make_dataplatform_instance_urn(PLATFORM, rules.platform_instance)))
        yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=BrowsePathsV2Class(
            path=[*rules._instance_path(), BrowsePathEntryClass(id=container_urn, urn=container_urn)]))
        if t.is_view:
            yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=ViewPropertiesClass(
                materialized=False, viewLanguage="SQL", viewLogic=t.view_definition or ""))
            up, warn = lineage.upstream_lineage(db, t, urn)
            if warn and warnings is not None:
                warnings.append(warn)
            if up is not None:
                yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=up)
