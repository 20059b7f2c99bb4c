"""Catalog snapshot -> DataHub metadata change proposals for SQL servers, URN-compatible with DataHub's own sources.

The neutral base of the SQL-server kinds (MySQL, PostgreSQL): one emitter (`database_mcps`) for all of them; what
differs per platform is a hook of its `UrnRules` subclass (sources/<type>/emitter.py): the platform, the format
version, type mapping, the containers below the database (PostgreSQL's schemas), which container and browse path a
table gets, and how view SQL names resolve. `UrnRules`' own hooks are those of two tiers, database -> table.
BigQuery keeps its own emitter (sources/bigquery/emitter.py): projects, datasets and its API's facts share little
with these; it uses this module's `string_properties` and `lineage_aspect`.

Everything is built with acryl-datahub's classes and helpers (URN builders, DatabaseKey, gen_database_container,
add_table_to_schema_container, sqlglot lineage); nothing here talks to a database or to Dagster.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator, Optional

from datahub.emitter.mce_builder import (
    make_data_platform_urn,
    make_dataplatform_instance_urn,
    make_dataset_urn_with_platform_instance,
    make_group_urn,
    make_ownership_aspect_from_urn_list,
    make_schema_field_urn,
    make_user_urn,
)
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.mcp_builder import DatabaseKey
from datahub.ingestion.source.common.subtypes import DatasetContainerSubTypes, DatasetSubTypes
from datahub.ingestion.source.sql.sql_utils import (
    add_table_to_schema_container,
    gen_database_container,
    gen_database_key,
    get_domain_wu,
)
from datahub.metadata.schema_classes import (
    BrowsePathEntryClass,
    BrowsePathsV2Class,
    DataPlatformInstanceClass,
    DatasetLineageTypeClass,
    DatasetProfileClass,
    DatasetPropertiesClass,
    FineGrainedLineageClass,
    FineGrainedLineageDownstreamTypeClass,
    FineGrainedLineageUpstreamTypeClass,
    ForeignKeyConstraintClass,
    MySqlDDLClass,
    OwnershipClass,
    OwnershipSourceTypeClass,
    OwnershipTypeClass,
    SchemaFieldClass,
    SchemaFieldDataTypeClass,
    SchemaMetadataClass,
    StatusClass,
    SubTypesClass,
    UpstreamClass,
    UpstreamLineageClass,
    ViewPropertiesClass,
)

from metadata_assets.catalog import Column, Database, Table, table_size
from metadata_assets.report import ROUTINE_LINEAGE, VIEW_LINEAGE, Finding, code_of, subject_of


@dataclass(frozen=True)
class UrnRules(ABC):
    """How names become URNs for one source, and the emitter's per-platform hooks, as DataHub's own source for the
    platform makes them. Each platform subclasses it (sources/<type>/emitter.py): `platform`, `mce_format` and
    `field_type` are its own; the other hooks default to two tiers, database -> table."""

    env: str = "PROD"
    platform_instance: Optional[str] = None
    # ((domain URN, source_config.Pattern), ...): the source's `domain`, in its order (the last that allows wins)
    domain: tuple = ()
    profile: bool = True  # emit datasetProfile from the table statistics
    owners: tuple = ()  # the source's `owners` when `datahub_ownership`: sent as each entity's ownership
    platform: ClassVar[str]  # DataHub's platform name
    mce_format: ClassVar[str]  # bumped by the platform when what it emits changes

    def version_parts(self) -> list:
        """What, besides the schema, a database's data version depends on (storage.database_files.data_version)."""
        parts = [self.mce_format, self.env, self.platform_instance]
        if self.domain:
            parts.append([[urn, p.model_dump()] for urn, p in self.domain])
        if not self.profile:
            parts.append("no-profile")
        if self.owners:
            parts.append(["owners", *self.owners])
        return parts

    def dataset(self, database: str, table: str) -> str:
        return make_dataset_urn_with_platform_instance(
            self.platform, f"{database}.{table}", self.platform_instance, self.env
        )

    def container_key(self, database: str) -> DatabaseKey:
        return gen_database_key(
            database, platform=self.platform, platform_instance=self.platform_instance, env=self.env
        )

    def container(self, database: str) -> str:
        return self.container_key(database).as_urn()

    def _instance_path(self) -> list[BrowsePathEntryClass]:
        if not self.platform_instance:
            return []
        urn = make_dataplatform_instance_urn(self.platform, self.platform_instance)
        return [BrowsePathEntryClass(id=urn, urn=urn)]

    # --- the emitter's hooks ---
    @abstractmethod
    def field_type(self, c: Column) -> SchemaFieldDataTypeClass:
        """The DataHub type of a column, from its native type."""

    def inner_containers(self, db: Database) -> Iterator[MetadataChangeProposalWrapper]:
        """Containers between the database and its tables (PostgreSQL: schemas), after the database's own."""
        return iter(())

    def table_container_key(self, db: Database, t: Table):
        return self.container_key(db.name)

    def table_browse_path(self, db: Database, t: Table) -> list[BrowsePathEntryClass]:
        urn = self.container(db.name)
        return [*self._instance_path(), BrowsePathEntryClass(id=urn, urn=urn)]

    def display_name(self, t: Table) -> str:
        """datasetProperties.name: the table's name as DataHub's own source shows it."""
        return t.name

    def schema_name(self, db: Database, t: Table) -> str:
        return f"{db.name}.{t.name}"

    def domain_name(self, db: Database, t: Table) -> str:
        """The name a `domain` pattern is matched against, as DataHub's source names the table."""
        return f"{db.name}.{t.name}"

    def sql_defaults(self, db: Database) -> tuple[Optional[str], Optional[str]]:
        """(default_db, default_schema) for sqlglot: with two tiers the database is sqlglot's *schema*."""
        return None, db.name

    def sql_names(self, table) -> tuple[Optional[str], str]:
        """A table sqlglot resolved (datahub's _TableName) as (database, table name in the snapshot)."""
        return table.db_schema, table.table

    def sql_table(self, table, database: str):
        """A table sqlglot resolved (datahub's _TableName) in SQL of `database`, as it is named: with two tiers as
        written (a view may read another database). PostgreSQL's overrides it."""
        return table

    def routine_schema_key(self, db: Database, r) -> Optional[object]:
        """The schema container of a routine (its DataFlow is the schema's); None for two tiers (the database's
        flow)."""
        return None

    def routine_browse_path(self, db: Database, r) -> list[BrowsePathEntryClass]:
        """browsePathsV2 of a routine's DataJob: the path to its container, as the built-in's workunit processor
        gives it (its DataFlow's is the database's)."""
        urn = self.container(db.name)
        return [*self._instance_path(), BrowsePathEntryClass(id=urn, urn=urn)]


def string_properties(d: dict) -> dict[str, str]:
    """The values that are set, as strings: for customProperties and jsonProps."""
    return {k: str(v) for k, v in d.items() if v is not None and v != ""}


def _field(rules: "UrnRules", c: Column, primary_key: tuple[str, ...]) -> SchemaFieldClass:
    extra = string_properties(
        {
            "default": c.default,
            "extra": c.extra,
            "key": c.key,
            "generation_expression": c.generation_expression,
            "charset": c.charset,
            "collation": c.collation,
        }
    )
    return SchemaFieldClass(
        fieldPath=c.name,
        type=rules.field_type(c),
        nativeDataType=c.column_type,
        description=c.comment or None,
        nullable=c.nullable,
        recursive=False,
        isPartOfKey=True if c.name in primary_key else None,
        jsonProps=json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else None,
    )


def _foreign_keys(rules: UrnRules, db: str, t: Table, urn: str) -> list[ForeignKeyConstraintClass]:
    out = []
    for fk in t.visible_foreign_keys:  # sourceFields must be fields of this schema
        foreign = rules.dataset(fk.ref_database, fk.ref_table)
        out.append(
            ForeignKeyConstraintClass(
                name=fk.name,
                foreignFields=[make_schema_field_urn(foreign, c) for c in fk.ref_columns],
                sourceFields=[make_schema_field_urn(urn, c) for c in fk.columns],
                foreignDataset=foreign,
            )
        )
    return out


def _table_properties(t: Table) -> dict[str, str]:
    props = string_properties(
        {
            "table_type": t.table_type,
            "engine": t.engine,
            "collation": t.collation,
            "create_time": t.create_time,
            "update_time": t.update_time,
        }
    )
    props.update(t.properties)  # the kind's own facts (PostgreSQL: schema, relkind, partitioning)
    # no aspect of DataHub holds these: shown as properties, one line per kind of object
    if t.indexes:
        props["indexes"] = "; ".join(
            f"{i.name}{' UNIQUE' if i.unique else ''}{f' {i.index_type}' if i.index_type else ''} "
            f"({', '.join(i.columns)})"
            for i in t.indexes
        )
    if t.checks:
        props["check_constraints"] = "; ".join(f"{c.name}: {c.clause}" for c in t.checks)
    if t.triggers:
        props["triggers"] = "; ".join(f"{x.name}: {x.timing} {x.event}" for x in t.triggers)
    if t.is_view:
        props["is_view"] = "True"
        props["view_definition"] = t.view_definition or ""
    return props


def _profile(db: Database, t: Table) -> Optional[DatasetProfileClass]:
    """The table-level profile DataHub's source emits with `profile_table_level_only`, from the catalog's figures
    (row count: the server's estimate; size: data plus index length) at the time the server was read."""
    size = table_size(t)
    if t.is_view or db.read_at_ms is None or (t.row_estimate is None and size is None):
        return None
    return DatasetProfileClass(
        timestampMillis=db.read_at_ms, rowCount=t.row_estimate, columnCount=len(t.columns), sizeInBytes=size
    )


class _Domains:
    """The source's `domain` config, assigned with acryl-datahub's own helpers (the last allowing domain wins)."""

    def __init__(self, rules: "UrnRules"):
        from datahub.utilities.registries.domain_registry import DomainRegistry

        self.config = {urn: p.to_datahub() for urn, p in rules.domain}
        self.registry = DomainRegistry(cached_domains=list(self.config), graph=None) if self.config else None

    def of(self, name: str, urn: str) -> Iterator[MetadataChangeProposalWrapper]:
        if self.registry is not None:
            for wu in get_domain_wu(
                dataset_name=name, entity_urn=urn, domain_config=self.config, domain_registry=self.registry
            ):
                yield wu.metadata


def _ownership(rules: "UrnRules") -> Optional[OwnershipClass]:
    """The source's owners as DataHub technical owners: team:<name> a group, an e-mail a user."""
    if not rules.owners:
        return None
    urns = [
        make_group_urn(o.removeprefix("team:")) if o.startswith("team:") else make_user_urn(o) for o in rules.owners
    ]
    return make_ownership_aspect_from_urn_list(
        urns, OwnershipSourceTypeClass.SOURCE_CONTROL, OwnershipTypeClass.TECHNICAL_OWNER
    )


def _routines(
    db: Database, rules: "UrnRules", lineage: "LineageResolver", warnings: Optional[list[str]]
) -> Iterator[MetadataChangeProposalWrapper]:
    """Stored procedures and functions as DataHub's source emits them (acryl-datahub's stored_procedures helpers):
    a DataFlow `<database>.stored_procedures` in the database container (PostgreSQL: `<database>.<schema>.
    stored_procedures` per schema, as the built-in postgres source), a DataJob per routine with its SQL and the tables
    its SQL reads and writes; each with the status and browsePathsV2 the built-in's workunit processors add. Functions
    too, with the FUNCTION subtype (the built-ins list procedures only)."""
    from datahub.ingestion.source.common.subtypes import FlowContainerSubTypes, JobContainerSubTypes
    from datahub.ingestion.source.sql.stored_procedures.base import (
        generate_procedure_container_workunits,
        generate_procedure_workunits,
    )
    from datahub.ingestion.source.sql.stored_procedures.models import BaseProcedure

    if not db.routines:
        return
    key = rules.container_key(db.name)
    flows_done: set = set()
    lineage._resolve_registered()
    default_db, default_schema = rules.sql_defaults(db)
    for r in db.routines:
        schema_key = rules.routine_schema_key(db, r)
        flow = schema_key.as_urn() if schema_key is not None else None
        if flow not in flows_done:
            flows_done.add(flow)
            out = [
                wu.metadata
                for wu in generate_procedure_container_workunits(
                    key, schema_key, FlowContainerSubTypes.PROCEDURE_CONTAINER
                )
            ]
            yield from out
            # the flow's container is the database's, on every platform
            yield MetadataChangeProposalWrapper(entityUrn=out[0].entityUrn, aspect=StatusClass(removed=False))
            yield MetadataChangeProposalWrapper(
                entityUrn=out[0].entityUrn,
                aspect=BrowsePathsV2Class(
                    path=[*rules._instance_path(), BrowsePathEntryClass(id=key.as_urn(), urn=key.as_urn())]
                ),
            )
        procedure = BaseProcedure(
            name=r.name,
            procedure_definition=r.definition,
            created=None,
            last_altered=None,
            comment=r.comment or None,
            argument_signature=r.arguments,
            return_type=r.returns,
            language=r.language,
            extra_properties=string_properties(
                {
                    "routine_type": r.routine_type,
                    "arguments": r.arguments,
                    "returns": r.returns,
                    "deterministic": r.deterministic,
                    "sql_data_access": r.data_access,
                    "security_type": r.security_type,
                }
            )
            or None,
            default_db=default_db or "",
            default_schema=(r.schema or default_schema) or "",
            subtype=JobContainerSubTypes.FUNCTION
            if r.routine_type == "FUNCTION"
            else JobContainerSubTypes.STORED_PROCEDURE,
        )
        lineage.resolver.database = db.name
        try:
            out = [wu.metadata for wu in generate_procedure_workunits(procedure, key, schema_key, lineage.resolver)]
        except Exception as e:  # sqlglot on an unusual body: the routine without lineage, said so
            out = [wu.metadata for wu in generate_procedure_workunits(procedure, key, schema_key, None)]
            if warnings is not None:
                warnings.append(
                    Finding(
                        f"routine {r.label!r}: lineage not parsed ({type(e).__name__}: {e})", ROUTINE_LINEAGE, r.label
                    )
                )
        job = out[0].entityUrn
        yield from out
        yield MetadataChangeProposalWrapper(entityUrn=job, aspect=StatusClass(removed=False))
        yield MetadataChangeProposalWrapper(
            entityUrn=job, aspect=BrowsePathsV2Class(path=rules.routine_browse_path(db, r))
        )


def _remember_sqlglot_rule_parameters() -> None:
    """sqlglot's `optimize()` asks `inspect.getfullargspec` for the parameters of each of its rules on every call.
    Its rules are compiled (sqlglot[c], mypyc), for which inspect parses a text signature each time: 1 ms of the
    5 ms a view's lineage takes. A rule's parameters never change, so they are looked up once per rule; everything
    else of `inspect` is the module itself. Only done when sqlglot's optimizer module holds `inspect` as expected."""
    import functools
    import inspect

    import sqlglot.optimizer.optimizer as optimizer

    if getattr(optimizer, "inspect", None) is not inspect:
        return  # already done, or a sqlglot that does it another way

    @functools.lru_cache(maxsize=256)
    def cached(rule):
        return inspect.getfullargspec(rule)

    class RememberingInspect:
        def __getattr__(self, name):
            return getattr(inspect, name)

        @staticmethod
        def getfullargspec(rule):
            try:
                return cached(rule)
            except TypeError:  # not hashable
                return inspect.getfullargspec(rule)

    optimizer.inspect = RememberingInspect()


class LineageResolver:
    """Column-level view lineage from the view SQL, with the batch's own schemas to resolve columns.

    Lineage to a table that is known to be gone is left out (with a warning), so a view whose base table was dropped
    does not make DataHub create a dataset for it. Known gone: a table of the view's own database that its snapshot
    lacks, or of another database registered here (same batch) that lacks it. A table of a database not registered
    here may exist (another batch, another source): kept. A table that `table_allowed` (the source's table_pattern)
    leaves out is never in a snapshot, so its absence proves nothing: kept. Without `table_allowed`, a missing table
    is taken as gone only for a view with no visible columns (the server could not open it), since any table missing
    from a snapshot might just be filtered out.

    Owns a SchemaResolver whose schema cache is an SQLite file in a temporary directory (acryl-datahub's
    FileBackedDict): call close() (or use it as a context manager) to delete it. sqlglot_lineage's result cache keeps
    a reference to every resolver it parsed with, so the directory would otherwise outlive this object.
    """

    def __init__(self, rules: UrnRules, table_allowed: Optional[Callable[[str, str], bool]] = None):
        from datahub.sql_parsing.schema_resolver import SchemaResolver

        _remember_sqlglot_rule_parameters()

        class CaseKeepingSchemaResolver(SchemaResolver):
            """DataHub lower-cases the URN of a table it has no schema for (every platform but BigQuery and DB2).
            MySQL names are case-sensitive, and a view may read a table of a database outside this batch or left
            out by table_pattern: keep the name as written, so the URN is the one UrnRules gives that table.

            Also remembers the (database, table) names sqlglot resolved to each URN, so an upstream's database is
            known as the SQL names it, without taking a URN apart."""

            def __init__(self, **kw):
                super().__init__(**kw)
                self.names: dict[str, set[tuple[Optional[str], str]]] = {}
                self.database: Optional[str] = None  # of the SQL being parsed: set before each parse

            def _prefers_urn_lower(self) -> bool:
                return False

            def resolve_table(self, table):
                if self.database is not None:
                    table = rules.sql_table(table, self.database)
                urn, schema_info = super().resolve_table(table)
                self.names.setdefault(urn, set()).add(rules.sql_names(table))
                return urn, schema_info

        self.rules = rules
        self.table_allowed = table_allowed
        self.resolver = CaseKeepingSchemaResolver(
            platform=rules.platform, platform_instance=rules.platform_instance, env=rules.env
        )
        self._databases: set[str] = set()  # databases registered, with or without tables
        self._datasets: set[str] = set()  # URNs of every table and view registered, with or without columns
        self._unresolved: list[Database] = []  # registered, not yet in the resolver nor in _datasets

    def register(self, db: Database) -> None:
        """Make the database's tables known. Their schemas go into the resolver when the first view is parsed: a
        batch whose databases are all unchanged (no view parsed) never pays for it."""
        self._databases.add(db.name)
        self._unresolved.append(db)

    def _resolve_registered(self) -> None:
        for db in self._unresolved:
            for t in db.tables:
                urn = self.rules.dataset(db.name, t.name)
                self._datasets.add(urn)
                if t.columns:
                    self.resolver.add_raw_schema_info(urn, {c.name: c.column_type for c in t.columns})
        self._unresolved.clear()

    def upstream_lineage(
        self, db: Database, t: Table, urn: str
    ) -> tuple[Optional[UpstreamLineageClass], Optional[str]]:
        """(lineage, warning); names in the SQL resolve as the rules' sql_defaults say."""
        from datahub.sql_parsing.sqlglot_lineage import sqlglot_lineage

        if not t.view_definition:
            if not t.view_upstreams:
                return None, None
            # the server listed the view's tables but not its SQL (MySQL 8: VIEW_TABLE_USAGE): table level only
            return UpstreamLineageClass(
                upstreams=[
                    UpstreamClass(dataset=self.rules.dataset(d, tbl), type=DatasetLineageTypeClass.VIEW)
                    for d, tbl in sorted(set(t.view_upstreams))
                ]
            ), None
        self._resolve_registered()
        default_db, default_schema = self.rules.sql_defaults(db)
        self.resolver.database = db.name
        result = sqlglot_lineage(t.view_definition, self.resolver, default_db=default_db, default_schema=default_schema)
        return lineage_aspect(result, t.name, urn, missing=lambda up: self._missing(db, t, up))

    def _missing(self, db: Database, view: Table, upstream: str) -> Optional[str]:
        """`database.table` of an upstream known to be gone (see the class doc), or None to keep it."""
        if upstream in self._datasets:
            return None
        names = self.resolver.names.get(upstream)
        if not names:
            return None  # not a table sqlglot resolved: nothing to judge by
        for database, table in sorted(names, key=str):
            if database is None:
                return None
            if database == db.name:
                if db.name not in self._databases and any(
                    self.rules.dataset(db.name, x.name) == upstream for x in db.tables
                ):
                    return None  # in the view's own snapshot, which was not registered
            elif database not in self._databases:
                return None  # a database outside this batch: it may well have the table
            if self.table_allowed is not None:
                if not self.table_allowed(database, table):
                    return None  # left out by table_pattern, not gone
            elif view.columns:
                return None  # the server opened the view, so its tables exist; this one is just filtered out
        database, table = min(names, key=str)
        return f"{database}.{table}"

    @staticmethod
    def drop_parse_caches() -> None:
        """Empty acryl-datahub's caches of parsed SQL and lineage results (up to 1,000 each, process-wide: the parse
        trees of a database of 1,000 views). Each view's SQL names its own database, so another database
        never finds its views there; and the results cache holds on to every resolver it parsed with."""
        from datahub.sql_parsing import sqlglot_lineage, sqlglot_utils

        for cache in (
            getattr(sqlglot_lineage, "_sqlglot_lineage_cached", None),
            getattr(sqlglot_utils, "_parse_statement", None),
        ):
            if cache is not None and hasattr(cache, "cache_clear"):
                cache.cache_clear()

    def close(self) -> None:
        """Delete the schema cache's temporary directory. Idempotent; the resolver is unusable afterwards."""
        self.resolver.close()
        self.resolver.names.clear()
        self._datasets.clear()
        self._databases.clear()
        self._unresolved.clear()

    def __enter__(self) -> "LineageResolver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def lineage_aspect(
    result,
    view: str,
    urn: str,
    missing: Optional[Callable[[str], Optional[str]]] = None,
) -> tuple[Optional[UpstreamLineageClass], Optional[str]]:
    """A sqlglot_lineage result as the view's upstreamLineage (table and column level), or a warning.

    `missing(upstream_urn)` names an upstream to leave out, as `database.table`, or returns None to keep it. When
    every upstream is left out the aspect is sent with none, so DataHub drops the lineage it holds from before.
    """
    err = result.debug_info.table_error
    if err:
        return None, f"view {view!r}: could not parse its SQL for lineage: {err}"
    upstreams = sorted(u for u in result.in_tables if u != urn)
    gone = {u: name for u in upstreams if missing is not None and (name := missing(u)) is not None}
    warning = None
    if gone:
        upstreams = [u for u in upstreams if u not in gone]
        names = ", ".join(repr(n) for n in sorted(gone.values()))
        warning = f"view {view!r}: lineage to missing table{'s' if len(gone) > 1 else ''} {names} left out"
    elif not upstreams:
        return None, None
    fine = []
    for cl in result.column_lineage or []:
        ups = sorted({make_schema_field_urn(u.table, u.column) for u in cl.upstreams if u.table not in gone})
        if ups:
            fine.append(
                FineGrainedLineageClass(
                    upstreamType=FineGrainedLineageUpstreamTypeClass.FIELD_SET,
                    upstreams=ups,
                    downstreamType=FineGrainedLineageDownstreamTypeClass.FIELD,
                    downstreams=[make_schema_field_urn(urn, cl.downstream.column)],
                )
            )
    fine.sort(key=lambda f: f.downstreams[0])
    return UpstreamLineageClass(
        upstreams=[UpstreamClass(dataset=u, type=DatasetLineageTypeClass.VIEW) for u in upstreams],
        fineGrainedLineages=fine or None,
    ), warning


def _add_view_warning(warnings: list[str], view: str, warning: str) -> None:
    """One warning per view, as the reader keeps them: what else is said of a view that already has one (a broken
    view: `View '...' references invalid table(s)`) is appended to it, which keeps the reader's code."""
    head = f"view {view!r}: "
    detail = warning[len(head) :] if warning.startswith(head) else warning
    for i, w in enumerate(warnings):
        if subject_of(w) == view:
            warnings[i] = Finding(f"{w}; {detail}", code_of(w), view)
            return
    warnings.append(Finding(warning, VIEW_LINEAGE, view))


def database_mcps(
    db: Database, rules: UrnRules, lineage: Optional[LineageResolver] = None, warnings: Optional[list[str]] = None
) -> Iterator[MetadataChangeProposalWrapper]:
    """All proposals for one database, in a deterministic order: the container, then each table by name."""
    key = rules.container_key(db.name)
    container_urn = key.as_urn()
    platform = make_data_platform_urn(rules.platform)
    domains = _Domains(rules)
    for wu in gen_database_container(
        database=db.name,
        name=db.name,
        database_container_key=key,
        sub_types=[DatasetContainerSubTypes.DATABASE],
        description=db.comment or None,
        extra_properties=string_properties({"charset": db.charset, "collation": db.collation}),
        domain_config=domains.config or None,
        domain_registry=domains.registry,
    ):
        yield wu.metadata
    yield MetadataChangeProposalWrapper(entityUrn=container_urn, aspect=BrowsePathsV2Class(path=rules._instance_path()))
    ownership = _ownership(rules)
    if ownership is not None:
        yield MetadataChangeProposalWrapper(entityUrn=container_urn, aspect=ownership)
    yield from rules.inner_containers(db)

    own = lineage is None  # a resolver made here is closed here (it holds a temporary directory)
    if own:
        lineage = LineageResolver(rules)
        lineage.register(db)
    try:
        for t in db.tables:
            urn = rules.dataset(db.name, t.name)
            yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=StatusClass(removed=False))
            props = _table_properties(t)
            profile = _profile(db, t) if rules.profile else None  # built once: avrogen parses its defaults
            if profile is not None and db.statistics_note:
                props["statistics"] = db.statistics_note  # what the profile's figures are (DataHub has no field)
            yield MetadataChangeProposalWrapper(
                entityUrn=urn,
                aspect=DatasetPropertiesClass(
                    name=rules.display_name(t), description=t.comment or None, customProperties=props
                ),
            )
            # Always sent, with no fields when none is visible (a view whose base table was dropped lists no
            # columns): DataHub keeps an aspect that is not sent, so leaving it out would keep the old schema there.
            # Keys name only columns that are fields (MariaDB's PRIMARY key of a system-versioned table holds the
            # hidden row_end column).
            pk = t.visible_primary_key
            yield MetadataChangeProposalWrapper(
                entityUrn=urn,
                aspect=SchemaMetadataClass(
                    schemaName=rules.schema_name(db, t),
                    platform=platform,
                    version=0,
                    hash="",
                    platformSchema=MySqlDDLClass(tableSchema=""),
                    fields=[_field(rules, c, pk) for c in t.columns],
                    primaryKeys=list(pk) or None,
                    foreignKeys=_foreign_keys(rules, db.name, t, urn) or None,
                ),
            )
            for wu in add_table_to_schema_container(
                dataset_urn=urn, parent_container_key=rules.table_container_key(db, t)
            ):
                yield wu.metadata
            yield MetadataChangeProposalWrapper(
                entityUrn=urn,
                aspect=SubTypesClass(typeNames=[DatasetSubTypes.VIEW if t.is_view else DatasetSubTypes.TABLE]),
            )
            if rules.platform_instance:
                yield MetadataChangeProposalWrapper(
                    entityUrn=urn,
                    aspect=DataPlatformInstanceClass(
                        platform=platform,
                        instance=make_dataplatform_instance_urn(rules.platform, rules.platform_instance),
                    ),
                )
            yield MetadataChangeProposalWrapper(
                entityUrn=urn, aspect=BrowsePathsV2Class(path=rules.table_browse_path(db, t))
            )
            if t.is_view:
                # a snapshot marks a materialized view with properties["materialized"] (PostgreSQL)
                yield MetadataChangeProposalWrapper(
                    entityUrn=urn,
                    aspect=ViewPropertiesClass(
                        materialized=t.properties.get("materialized") == "true",
                        viewLanguage="SQL",
                        viewLogic=t.view_definition or "",
                    ),
                )
                up, warn = lineage.upstream_lineage(db, t, urn)
                if warn and warnings is not None:
                    _add_view_warning(warnings, t.name, warn)
                if up is not None:
                    yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=up)
            if profile is not None:
                yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=profile)
            yield from domains.of(rules.domain_name(db, t), urn)
            if ownership is not None:
                yield MetadataChangeProposalWrapper(entityUrn=urn, aspect=ownership)
        yield from _routines(db, rules, lineage, warnings)
    finally:
        if own:
            lineage.close()
