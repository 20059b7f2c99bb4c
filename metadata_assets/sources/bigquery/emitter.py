"""BigQuery dataset snapshot -> DataHub proposals, URN-compatible with DataHub's built-in bigquery source.

Built with acryl-datahub's own pieces, as datahub/ingestion/source/bigquery_v2/bigquery_schema_gen.py does:
dataset names from BigqueryTableIdentifier (`project.dataset.table`; date-sharded tables fold into their base name,
as with the built-in's default config), containers from ProjectIdKey / BigQueryDatasetKey (gen_database_container /
gen_schema_container), nested STRUCT/ARRAY fields through get_schema_fields_for_hive_column (v2 field paths), the
built-in's type mapping, and view lineage through sqlglot_lineage (platform bigquery, default_db=project,
default_schema=dataset).
Partitioning, clustering and labels are dataset custom properties (labels as `label.<key>`); partition columns are
isPartitioningKey fields and clustering columns carry the built-in's CLUSTERING_COLUMN_<n> tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Iterator, Optional

from datahub.emitter.mce_builder import (
    make_data_platform_urn,
    make_dataplatform_instance_urn,
    make_dataset_urn,
    make_tag_urn,
)
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.mcp_builder import BigQueryDatasetKey, ProjectIdKey
from datahub.ingestion.source.bigquery_v2.bigquery_audit import BigqueryTableIdentifier
from datahub.ingestion.source.bigquery_v2.common import (
    BQ_EXTERNAL_DATASET_URL_TEMPLATE,
    BQ_EXTERNAL_TABLE_URL_TEMPLATE,
)
from datahub.ingestion.source.common.subtypes import DatasetContainerSubTypes, DatasetSubTypes
from datahub.ingestion.source.sql.sql_utils import (
    add_table_to_schema_container,
    gen_database_container,
    gen_schema_container,
)
from datahub.metadata.schema_classes import (
    BrowsePathEntryClass,
    BrowsePathsV2Class,
    DataPlatformInstanceClass,
    DatasetPropertiesClass,
    GlobalTagsClass,
    MySqlDDLClass,
    NullTypeClass,
    SchemaFieldClass,
    SchemaFieldDataTypeClass,
    SchemaMetadataClass,
    StatusClass,
    SubTypesClass,
    TagAssociationClass,
    UpstreamLineageClass,
    ViewPropertiesClass,
)
from datahub.utilities.hive_schema_to_avro import HiveColumnToAvroConverter, get_schema_fields_for_hive_column

from metadata_assets.catalog import Database, Table
from metadata_assets.report import VIEW_LINEAGE, Finding
from metadata_assets.sources.sql_emitter import lineage_aspect, string_properties

PLATFORM = "bigquery"
MCE_FORMAT = "2"  # bump when dataset_mcps() changes what it emits: every file then counts as changed
CLUSTERING_COLUMN_TAG = "CLUSTERING_COLUMN"  # datahub.ingestion.source.bigquery_v2.bigquery_schema_gen
_COMPLEX = re.compile(r"^(struct|array)", re.IGNORECASE)
_VIEW_TYPES = ("VIEW", "MATERIALIZED VIEW")


def _type_mappings() -> dict:
    from datahub.ingestion.source.bigquery_v2.bigquery_schema_gen import BigQuerySchemaGenerator

    return BigQuerySchemaGenerator.BIGQUERY_FIELD_TYPE_MAPPINGS


@dataclass(frozen=True)
class BigQueryUrnRules:
    """Names -> URNs for one BigQuery project, the way DataHub's bigquery source makes them.

    `platform_instance` never enters URNs (the built-in does not put one there either); when set, datasets carry it
    in their dataPlatformInstance aspect (the built-in sets the project id there with include_data_platform_instance).
    """

    project: str
    env: str = "PROD"
    platform_instance: Optional[str] = None

    mce_format: ClassVar[str] = MCE_FORMAT

    def version_parts(self) -> list:
        return [MCE_FORMAT, self.env, self.platform_instance, self.project]

    def table_name(self, dataset: str, table: str) -> str:
        """`project.dataset.table`; a date-sharded table (events_20240101) is named by its base (`...events`), as the
        built-in names it with its default config (enable_legacy_sharded_table_support: true). Computed here rather
        than with str(BigqueryTableIdentifier), whose suffix is process-wide state set by whichever built-in source
        was constructed last."""
        ident = BigqueryTableIdentifier(self.project, dataset, table)
        return f"{self.project}.{dataset}.{ident.get_table_display_name()}"

    def dataset(self, dataset: str, table: str) -> str:
        return make_dataset_urn(PLATFORM, self.table_name(dataset, table), self.env)

    def project_key(self) -> ProjectIdKey:
        return ProjectIdKey(project_id=self.project, platform=PLATFORM, env=self.env, backcompat_env_as_instance=True)

    def container_key(self, dataset: str) -> BigQueryDatasetKey:
        return BigQueryDatasetKey(
            project_id=self.project,
            dataset_id=dataset,
            platform=PLATFORM,
            env=self.env,
            backcompat_env_as_instance=True,
        )

    def container(self, dataset: str) -> str:
        return self.container_key(dataset).as_urn()


def schema_fields(t: Table) -> list[SchemaFieldClass]:
    """What the built-in's gen_schema_fields makes of the same COLUMNS x COLUMN_FIELD_PATHS rows."""
    mappings = _type_mappings()
    partition_cols = set(filter(None, t.properties.get("partition_columns", "").split(",")))
    clustering = {c: i + 1 for i, c in enumerate(filter(None, t.properties.get("clustering_columns", "").split(",")))}
    top = [c for c in t.columns if "." not in c.name]
    nested = {c.name.lower(): c for c in t.columns if "." in c.name}
    fields: list[SchemaFieldClass] = []
    saved = HiveColumnToAvroConverter._STRUCT_TYPE_SEPARATOR
    HiveColumnToAvroConverter._STRUCT_TYPE_SEPARATOR = " "  # BigQuery writes STRUCT<a INT64>, not struct<a:int64>
    try:
        for c in sorted(top, key=lambda c: c.ordinal):
            if _COMPLEX.match(c.column_type):
                sub = get_schema_fields_for_hive_column(c.name, c.column_type.lower(), description=c.comment or None)
                for f in sub:  # nested descriptions: each field path's own (COLUMN_FIELD_PATHS.description)
                    path = re.sub(r"\[.*?\]\.", "", f.fieldPath.lower())
                    if path in nested and nested[path].comment:
                        f.description = nested[path].comment
                fields.extend(sub)
            else:
                tags = []
                if c.name in clustering:
                    tags.append(TagAssociationClass(make_tag_urn(f"{CLUSTERING_COLUMN_TAG}_{clustering[c.name]}")))
                fields.append(
                    SchemaFieldClass(
                        fieldPath=c.name,
                        type=SchemaFieldDataTypeClass(mappings.get(c.column_type, NullTypeClass)()),
                        isPartitioningKey=c.name in partition_cols,
                        isPartOfKey=False,
                        nativeDataType=c.column_type,
                        description=c.comment or None,
                        nullable=c.nullable,
                        globalTags=GlobalTagsClass(tags=tags),
                    )
                )
    finally:
        HiveColumnToAvroConverter._STRUCT_TYPE_SEPARATOR = saved
    return fields


def _sub_types(t: Table) -> list[str]:
    if t.table_type in _VIEW_TYPES:
        return [DatasetSubTypes.VIEW]
    if t.table_type == "EXTERNAL":
        return [DatasetSubTypes.EXTERNAL_TABLE, DatasetSubTypes.TABLE]
    if t.table_type == "SNAPSHOT":
        return [DatasetSubTypes.BIGQUERY_TABLE_SNAPSHOT]
    return [DatasetSubTypes.TABLE]


class BigQueryLineageResolver:
    """Column-level view lineage from the view SQL, resolving columns with the batch's own table schemas."""

    def __init__(self, rules: BigQueryUrnRules):
        from datahub.sql_parsing.schema_resolver import SchemaResolver

        self.rules = rules
        self.resolver = SchemaResolver(platform=PLATFORM, env=rules.env)

    def register(self, db: Database) -> None:
        for t in db.tables:
            cols = {c.name: c.column_type for c in t.columns if "." not in c.name}
            if cols:
                self.resolver.add_raw_schema_info(self.rules.dataset(db.name, t.name), cols)

    def upstream_lineage(
        self, db: Database, t: Table, urn: str
    ) -> tuple[Optional[UpstreamLineageClass], Optional[str]]:
        from datahub.sql_parsing.sqlglot_lineage import sqlglot_lineage

        if not t.view_definition:
            return None, None
        result = sqlglot_lineage(
            t.view_definition, self.resolver, default_db=self.rules.project, default_schema=db.name
        )
        return lineage_aspect(result, t.name, urn)

    def close(self) -> None:
        """Delete the schema cache's temporary directory (SchemaResolver keeps a SQLite file in one)."""
        self.resolver.close()


def dataset_mcps(
    db: Database,
    rules: BigQueryUrnRules,
    lineage: Optional[BigQueryLineageResolver] = None,
    warnings: Optional[list[str]] = None,
) -> Iterator[MetadataChangeProposalWrapper]:
    """All proposals of one BigQuery dataset, deterministic: project container, dataset container (last container
    in the file: the push takes it as the dataset's own), then each table by name."""
    project, project_key, key = rules.project, rules.project_key(), rules.container_key(db.name)
    project_urn, container_urn = project_key.as_urn(), key.as_urn()
    for wu in gen_database_container(
        database=project,
        name=project,
        qualified_name=project,
        sub_types=[DatasetContainerSubTypes.BIGQUERY_PROJECT],
        database_container_key=project_key,
    ):
        yield wu.metadata
    yield MetadataChangeProposalWrapper(entityUrn=project_urn, aspect=BrowsePathsV2Class(path=[]))
    for wu in gen_schema_container(
        database=project,
        schema=db.name,
        qualified_name=f"{project}.{db.name}",
        sub_types=[DatasetContainerSubTypes.BIGQUERY_DATASET],
        schema_container_key=key,
        database_container_key=project_key,
        description=db.comment or None,
        external_url=BQ_EXTERNAL_DATASET_URL_TEMPLATE.format(project=project, dataset=db.name),
        extra_properties=dict(db.properties) or None,
    ):
        yield wu.metadata
    yield MetadataChangeProposalWrapper(
        entityUrn=container_urn, aspect=BrowsePathsV2Class(path=[BrowsePathEntryClass(id=project_urn, urn=project_urn)])
    )

    if lineage is None:
        lineage = BigQueryLineageResolver(rules)
        lineage.register(db)
    # date-sharded tables (events_20240101, events_20240102) share one URN, as in the built-in: keep the latest shard
    latest: dict[str, Table] = {}
    for t in sorted(db.tables, key=lambda t: t.name):
        latest[rules.dataset(db.name, t.name)] = t
    for urn, t in sorted(latest.items(), key=lambda kv: kv[1].name):
        ident = BigqueryTableIdentifier(project, db.name, t.name)
        qualified = rules.table_name(db.name, t.name)
        yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=StatusClass(removed=False))
        if t.columns:
            yield MetadataChangeProposalWrapper(
                entityUrn=urn,
                aspect=SchemaMetadataClass(
                    schemaName=qualified,
                    platform=make_data_platform_urn(PLATFORM),
                    version=0,
                    hash="",
                    platformSchema=MySqlDDLClass(tableSchema=""),
                    fields=schema_fields(t),
                ),
            )
        props = string_properties({"table_type": t.table_type, **t.properties})
        shard = BigqueryTableIdentifier.get_table_and_shard(t.name)[1]
        if shard:
            props["is_sharded"], props["max_shard_id"] = "True", shard
        yield MetadataChangeProposalWrapper(
            entityUrn=urn,
            aspect=DatasetPropertiesClass(
                name=ident.get_table_display_name(),
                description=t.comment or "",
                qualifiedName=qualified,
                externalUrl=BQ_EXTERNAL_TABLE_URL_TEMPLATE.format(project=project, dataset=db.name, table=t.name),
                customProperties=props,
            ),
        )
        for wu in add_table_to_schema_container(dataset_urn=urn, parent_container_key=key):
            yield wu.metadata
        yield MetadataChangeProposalWrapper(
            entityUrn=urn,
            aspect=DataPlatformInstanceClass(
                platform=make_data_platform_urn(PLATFORM),
                instance=make_dataplatform_instance_urn(PLATFORM, rules.platform_instance)
                if rules.platform_instance
                else None,
            ),
        )
        yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=SubTypesClass(typeNames=_sub_types(t)))
        yield MetadataChangeProposalWrapper(
            entityUrn=urn,
            aspect=BrowsePathsV2Class(
                path=[
                    BrowsePathEntryClass(id=project_urn, urn=project_urn),
                    BrowsePathEntryClass(id=container_urn, urn=container_urn),
                ]
            ),
        )
        if t.table_type in _VIEW_TYPES:
            yield MetadataChangeProposalWrapper(
                entityUrn=urn,
                aspect=ViewPropertiesClass(
                    materialized=t.table_type == "MATERIALIZED VIEW",
                    viewLanguage="SQL",
                    viewLogic=t.view_definition or "",
                ),
            )
            up, warn = lineage.upstream_lineage(db, t, urn)
            if warn and warnings is not None:
                warnings.append(Finding(warn, VIEW_LINEAGE, t.name))
            if up is not None:
                yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=up)
