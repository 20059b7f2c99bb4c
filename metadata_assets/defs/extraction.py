"""The partitioned extraction asset of one source: one dynamic partition per allowed database."""


import contextlib
import time

from urllib.parse import quote

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetSpec,
    BackfillPolicy,
    Config,
    Failure,
    MetadataValue,
    multi_asset,
)
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SENSOR_NAME_TAG

from metadata_assets.config import ConfigError, ProjectConfig
from metadata_assets.defs import runs
from metadata_assets.defs.checks import (
    WARNING_CODES,
    checks_summary,
    check_specs,
    evaluate,
    on_demand_evaluations,
    result_metadata,
    schema_check_evaluations,
    target_of,
)
from metadata_assets.defs.event_batches import ObservationBatch
from metadata_assets.defs.extraction_report import report_metadata
from metadata_assets.defs.failed_partitions import mark_failed, planned_as_subset
from metadata_assets.defs.storage_connections import hold_storage_connections
from metadata_assets.defs.unchanged import (
    CHECK_INPUTS,
    check_inputs,
    confirmed_unchanged,
    latest_materializations,
    observation,
    planned_alone_since,
)
from metadata_assets.defs.notifications import deliver_after_run
from metadata_assets.defs.push import push_after_extraction
from metadata_assets.defs.keys import (  # noqa: F401  (re-exported)
    DATA_VERSION_TAG,
    EXTRACT_SOURCE_TAG,
    EXTRACTION_POD,
    EXTRACTION_RUN_RETRIES,
    MAX_RETRIES_TAG,
    PUSH_AFTER_TAG,
    k8s_tags,
    mce_asset_key,
    partitions_def,
    push_pool,
    range_tags,
    run_pod_tags,
    run_tags,
    source_pool,
)
from metadata_assets.defs.runs import ACTIVE_RUN_STATUSES  # noqa: F401  (re-exported)
from metadata_assets.defs.resources import STORE_KEY, asset_resources, source_key
from metadata_assets.catalog import Database
from metadata_assets.diagram import database_svg, markdown_image
from metadata_assets.diff import SchemaDiff, diff
from metadata_assets.extract import DatabaseResult, rules_for
from metadata_assets.markdown import bullets, cell, code, in_table, text, warnings_markdown
from metadata_assets.report import ExtractionReport
from metadata_assets.source_config import SourceConfig
from metadata_assets.sources.base import SourceUnavailable
from metadata_assets.sources.registry import kind_of

# re-exported: the names other modules and tests know them by
mysql_pool = source_pool
STUCK_RUN_S = runs.STUCK_RUN_S  # read at each call (a test shortens it here)
CHECK_EVERY = 25  # databases materialized before their check evaluations follow (one query finds their targets)


MAX_LISTED_TABLES = 100  # rows of a partition's table of tables; more are summarised in one line


def _tables_table(db: Database, rules, ui_url) -> MetadataValue:
    """The database's tables and views as one markdown table (one string: a Dagster table of records costs several
    times more to store and read back per materialization, and a changed database is materialized each time)."""
    lines = ["| name | kind | columns | comment | row estimate | DataHub |", "|---|---|---|---|---|---|"]
    for t in db.tables[:MAX_LISTED_TABLES]:
        link = (f"[open]({ui_url.rstrip('/')}/dataset/{quote(rules.dataset(db.name, t.name), safe='')})"
                if ui_url else "")
        estimate = "" if t.is_view or t.row_estimate is None else f"~{t.row_estimate:,}"
        lines.append(f"| {cell(t.name)} | {t.table_type.lower()} | {len(t.columns)} | "
                     f"{in_table(text(t.comment)) if t.comment else ''} | {estimate} | {link} |")
    if len(db.tables) > MAX_LISTED_TABLES:
        lines.append(f"\n... and {len(db.tables) - MAX_LISTED_TABLES} more (the MCE file lists all)")
    return MetadataValue.md("\n".join(lines))


def materialization(key: AssetKey, r: DatabaseResult, source: SourceConfig, ui_url=None,
                    check_metadata: dict = None, d: SchemaDiff = None) -> AssetMaterialization:
    """A database's materialization: its file, what it holds, what changed, and how its checks came out.
    `check_metadata` (checks.result_metadata(r, d)) and `d` (its diff): when the caller has them already."""
    if d is None and r.snapshot is not None:
        d = diff(r.previous, r.snapshot, source.risk.rules)
    md = check_metadata if check_metadata is not None else result_metadata(r, d)
    # in the order Dagit lists them: what a person looks for first
    metadata = {
        "path": MetadataValue.path(r.uri),
        "checks": MetadataValue.text(checks_summary(evaluate(key, r.database, md, source.coverage_threshold))),
        "tables": r.tables,
        "views": r.views,
        "columns": r.columns,
        "documented_tables_pct": md["documented_tables_pct"],
        "documented_columns_pct": md["documented_columns_pct"],
        "schema_changed": md["schema_changed"],
        "schema_diff": md["schema_diff"],
        "schema_risk": md["schema_risk"],
    }
    if r.history_version is not None:  # the same diff, with the versions before it: metadata-assets history
        metadata["schema_history"] = MetadataValue.text(
            f"version {r.history_version}: metadata-assets history --source {source.name} -d {r.database!r}")
    if r.snapshot is not None:
        metadata["tables_and_views"] = _tables_table(r.snapshot, rules_for(source), ui_url)
        svg = database_svg(r.snapshot, d)
        if svg is not None:  # tables, keys, view lineage and what changed, drawn
            metadata["picture"] = MetadataValue.md(markdown_image(svg, f"{r.database}: tables, views, lineage"))
    metadata.update({
        "warnings": MetadataValue.md(warnings_markdown(r.warnings)),
        "warning_count": len(r.warnings),
        WARNING_CODES: md[WARNING_CODES],
        "proposals": r.proposals,
        "rewritten": r.rewritten,
        "content_hash": MetadataValue.text(r.data_version or ""),
        "file_sha256": MetadataValue.text(r.file_sha256 or ""),
        CHECK_INPUTS: MetadataValue.text(check_inputs(md, source.coverage_threshold)),
    })
    return AssetMaterialization(asset_key=key, partition=r.database, metadata=metadata,
                                tags={DATA_VERSION_TAG: r.data_version})


def active_extraction_runs(instance, source: SourceConfig, besides: str = "") -> list[str]:
    return runs.active_extraction_runs(instance, source, besides, stuck_after_s=STUCK_RUN_S)


def pushes_itself(context: AssetExecutionContext, cfg: ProjectConfig, source: SourceConfig) -> bool:
    """Whether this extraction run pushes what it extracted at its end (datahub.push_from_extraction): a run the
    schema sensor started for a few changed databases always (PUSH_AFTER_TAG); another run the schedule or a sensor
    started when it is the last extraction run of its source (the end of a daily refresh or a first fill), so the
    push follows at once instead of at the push sensor's next tick, in a run of its own. Two runs that end together
    may both see the other one: then neither pushes, and the push sensor does."""
    tags = context.run.tags
    if not cfg.datahub.push_from_extraction:
        return False
    if tags.get(PUSH_AFTER_TAG) == "1":
        return True
    if SCHEDULE_NAME_TAG not in tags and SENSOR_NAME_TAG not in tags:
        return False  # started by hand (Dagit, the CLI, a test): the push sensor pushes, as it always has
    return not active_extraction_runs(context.instance, source, besides=context.run.run_id)


class ExtractionConfig(Config):
    # Rebuild the files of databases whose schema did not change too, with today's row estimates, sizes and times
    # (pushed when they differ from those in the files).
    rewrite_unchanged: bool = False


def build_mce_asset(cfg: ProjectConfig, source: SourceConfig, bind_resources: bool = True):
    """The source's partitioned extraction asset. It reads through the resources of defs/resources.py: bound to the
    asset (it materializes on its own), or, with `bind_resources=False`, left to the Definitions that register them
    (definitions.py)."""
    key = mce_asset_key(source)
    kind = kind_of(source)
    resources = asset_resources(cfg, source)

    @multi_asset(
        name=f"{source.name}__mce_files",  # the op's name, as run config knows it
        specs=[AssetSpec(
            key, partitions_def=partitions_def(source), group_name=source.name, kinds={source.type, "datahub"},
            description=(f"DataHub MCE file per {kind.database_noun} of {kind.title} source `{source.name}`, read "
                         f"from {kind.catalog_read} only."),
            owners=list(source.owners), tags=dict(source.tags),
            code_version=rules_for(source).mce_format,  # what the files hold changes with it
            skippable=True,  # each database gets its own materialization (or observation) event below, no Output
        )],
        check_specs=check_specs(source),
        can_subset=True,  # check outputs optional (evaluated per partition), and checks selectable alone
        required_resource_keys=set(resources),
        resource_defs=resources if bind_resources else None,
        partitions_def=partitions_def(source),
        # one run may cover a range of databases: they are read with one set of bulk queries
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=source.batch_size),
        pool=source_pool(source),
        op_tags=run_pod_tags(source),
    )
    def mce_files(context: AssetExecutionContext, config: ExtractionConfig):
        if key not in context.selected_asset_keys:  # only checks selected: from the latest materializations
            yield from on_demand_evaluations(context, source, key)
            return
        databases = list(context.partition_keys)
        hold_storage_connections(context.instance)  # an event per database: one connection, not one each
        store = getattr(context.resources, STORE_KEY).open()
        started = time.monotonic()
        failures: list[DatabaseResult] = []

        def progress(done: int, total: int, r: DatabaseResult) -> None:
            if done == total or done % 25 == 0 or total <= 25:
                context.log.info(f"{done}/{total} databases done ({r.database}: "
                                 f"{'missing' if r.missing else 'ok' if r.ok else 'FAILED'})")

        report = ExtractionReport(source=source.name, kind=source.type)
        # each partition's latest materialization: a database found as it recorded it is observed instead
        # (in runs the schedule and the sensors start; one started by hand materializes what it was asked to)
        automated = SCHEDULE_NAME_TAG in context.run.tags or SENSOR_NAME_TAG in context.run.tags
        latest = (latest_materializations(context.instance, key, databases)
                  if automated and not config.rewrite_unchanged else {})
        checks_selected = {k.name for k in context.selected_asset_check_keys}
        # planned with one event (defs/failed_partitions.py): this step marks its failed databases failed itself,
        # and a database that failed before materializes (clearing its failure in Dagit) rather than being observed
        subset = planned_as_subset(context, key)
        if subset and latest:
            for db in planned_alone_since(context.instance, key, databases, latest):
                latest.pop(db, None)
        results = getattr(context.resources, source_key(source)).extract(
            databases, store, progress=progress, rewrite=config.rewrite_unchanged, report=report)
        to_check: list = []  # (result, check metadata) materialized, their check evaluations not yet yielded
        unchanged: list = []  # (result, check metadata) confirmed as their latest materialization recorded them
        done: set[str] = set()  # databases materialized, observed or found missing by this run
        observations = ObservationBatch(context)  # one statement per batch (DAGSTER_EVENT_BATCH_SIZE)

        def materialize(r: DatabaseResult, md: dict, d=None):
            # a generator with no Output: only these events materialize
            yield materialization(key, r, source, cfg.datahub.ui_url, md, d)
            done.add(r.database)
            to_check.append((r, md))
            if len(to_check) >= CHECK_EVERY:
                yield from schema_check_evaluations(context, source, key, to_check)  # per partition
                to_check.clear()

        try:
            for r in results:
                for w in r.warnings:
                    context.log.warning(f"{r.database}: {w}")
                if not r.ok:
                    failures.append(r)
                    context.log.error(f"{r.database}: {r.error}")
                elif r.missing:
                    done.add(r.database)
                else:
                    # once: for the checks, the diff table and the picture (classified by the source's risk rules)
                    d = r.schema_diff or diff(r.previous, r.snapshot, source.risk.rules)
                    md = result_metadata(r, d)
                    if confirmed_unchanged(r, check_inputs(md, source.coverage_threshold), latest.get(r.database)):
                        r.snapshot = r.previous = None  # a batch's snapshots are not all kept until its end
                        unchanged.append((r, md))
                    else:
                        yield from materialize(r, md, d)
            if failures and not subset:
                # A failed run marks each partition it planned and did not materialize as failed in Dagit: only the
                # databases that failed may show so. On such a day the unchanged ones materialize as before (without
                # their table of tables and picture, which their previous materialization shows).
                for r, md in unchanged:
                    yield from materialize(r, md)
            else:
                for r, md in unchanged:
                    rec = latest[r.database]
                    observations.add(observation(key, r, rec))
                    done.add(r.database)
                    if checks_selected:  # an automated run that selected the checks: evaluated as on demand
                        yield from (e for e in evaluate(key, r.database, rec.asset_materialization.metadata,
                                                        source.coverage_threshold, target_of(rec))
                                    if e.check_name in checks_selected)
                observations.flush()
            yield from schema_check_evaluations(context, source, key, to_check)
        except (SourceUnavailable, ConfigError) as e:
            # only before the first database (later faults fail their own batch): the server unreachable, or a
            # missing password variable (read when the run connects, not at load; a retry cannot help that one)
            if subset:
                mark_failed(context, key, {db: str(e) for db in databases})
            raise Failure(description=f"{e}; nothing was read or written, every file is as it was",
                          allow_retries=not isinstance(e, ConfigError)) from None
        except Exception as e:  # anything else fails the run: Dagit shows every database it had not done failed
            if subset:
                with contextlib.suppress(Exception):
                    observations.flush()  # those confirmed before the fault keep their observation
                mark_failed(context, key, {db: f"the run failed before this database was done: {type(e).__name__}: "
                                               f"{e}" for db in databases if db not in done})
            raise
        # the run's report: one observation of the asset (not of a partition), beside the partitions' materializations
        context.log.info(report.summary())
        yield AssetObservation(asset_key=key, metadata=report_metadata(report))
        if len(failures) < len(databases) and pushes_itself(context, cfg, source):
            push_after_extraction(context, cfg, source)
        deliver_after_run(context, cfg, source, store)  # queued schema changes to webhooks; never raises
        observed = len(unchanged) if subset or not failures else 0
        context.log.info(f"{len(databases)} databases in {time.monotonic() - started:.1f}s, "
                         f"{observed} confirmed unchanged (observed), {len(failures)} failed")
        if failures:
            if subset:
                mark_failed(context, key, {f.database: f.error for f in failures})
            raise Failure(
                description=f"{len(failures)} of {len(databases)} databases failed: "
                            + ", ".join(f.database for f in failures[:20]),
                metadata={"errors": MetadataValue.md(bullets(f"{code(f.database)}: {text(f.error)}" for f in failures)),
                          "summary": MetadataValue.text(report.summary())},
            )

    return mce_files
