"""The partitioned extraction asset of one source: one dynamic partition per allowed database.

Each database's outcome and its events are defs/outcome.py's; here the run around them: which partitions may be
observed, the fault handling, the run's report, and the push and notifications at its end.
"""

import time

from dagster import (
    AssetExecutionContext,
    AssetObservation,
    AssetSpec,
    BackfillPolicy,
    Config,
    Failure,
    MetadataValue,
    multi_asset,
)
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SENSOR_NAME_TAG

from metadata_assets.config import ConfigError
from metadata_assets.defs.checks import check_specs, on_demand_evaluations
from metadata_assets.defs.extraction_report import report_metadata
from metadata_assets.defs.keys import PUSH_AFTER_TAG, mce_asset_key, partitions_def, run_pod_tags, source_pool
from metadata_assets.defs.notifications import deliver_after_run
from metadata_assets.defs.outcome import ExtractionEvents
from metadata_assets.defs.push import push_after_extraction
from metadata_assets.defs.resources import DataHubResource, MCEStoreResource, SourceResource, per_source_parameter
from metadata_assets.defs.runs import active_extraction_runs
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.defs.storage_connections import hold_storage_connections
from metadata_assets.extract import DatabaseResult, extract
from metadata_assets.markdown import bullets, code, text
from metadata_assets.report import ExtractionReport
from metadata_assets.sources.base import SourceUnavailable


def pushes_itself(context: AssetExecutionContext, setup: SourceSetup) -> bool:
    """Whether this extraction run pushes what it extracted at its end (datahub.push_from_extraction): a run the
    schema sensor started for a few changed databases always (PUSH_AFTER_TAG); another run the schedule or a sensor
    started when it is the last extraction run of its source (the end of a daily refresh or a first fill), so the
    push follows at once instead of at the push sensor's next tick, in a run of its own. Two runs that end together
    may both see the other one: then neither pushes, and the push sensor does."""
    tags = context.run.tags
    if not setup.datahub.push_from_extraction:
        return False
    if tags.get(PUSH_AFTER_TAG) == "1":
        return True
    if SCHEDULE_NAME_TAG not in tags and SENSOR_NAME_TAG not in tags:
        return False  # started by hand (Dagit, the CLI, a test): the push sensor pushes, as it always has
    return not active_extraction_runs(context.instance, setup.source, besides=context.run.run_id)


class ExtractionConfig(Config):
    # Rebuild the files of databases whose schema did not change too, with today's row estimates, sizes and times
    # (pushed when they differ from those in the files).
    rewrite_unchanged: bool = False


def build_mce_asset(setup: SourceSetup, bind_resources: bool = True):
    """The source's partitioned extraction asset. It reads through the resources of defs/resources.py, given as its
    parameters: bound to the asset (it materializes on its own), or, with `bind_resources=False`, left to the
    Definitions that register them (definitions.py)."""
    source, kind = setup.source, setup.kind
    key = mce_asset_key(source)

    @multi_asset(
        name=f"{source.name}__mce_files",  # the op's name, as run config knows it
        specs=[
            AssetSpec(
                key,
                partitions_def=partitions_def(source),
                group_name=source.name,
                kinds={source.type, "datahub"},
                description=(
                    f"DataHub MCE file per {kind.database_noun} of {kind.title} source `{source.name}`, read "
                    f"from {kind.catalog_read} only."
                ),
                owners=list(source.owners),
                tags=dict(source.tags),
                code_version=setup.rules.mce_format,  # what the files hold changes with it
                skippable=True,  # each database gets its own materialization (or observation) event below, no Output
            )
        ],
        check_specs=check_specs(source),
        can_subset=True,  # check outputs optional (evaluated per partition), and checks selectable alone
        resource_defs=setup.resources if bind_resources else None,
        partitions_def=partitions_def(source),
        # one run may cover a range of databases: they are read with one set of bulk queries
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=source.batch_size),
        pool=source_pool(source),
        op_tags=run_pod_tags(source),
    )
    @per_source_parameter(source)  # `source_resource` is injected under the source's own key (source_key)
    def mce_files(
        context: AssetExecutionContext,
        config: ExtractionConfig,
        mce_store: MCEStoreResource,
        datahub: DataHubResource,
        source_resource: SourceResource,
    ):
        if key not in context.selected_asset_keys:  # only checks selected: from the latest materializations
            yield from on_demand_evaluations(context, source, key)
            return
        databases = list(context.partition_keys)
        hold_storage_connections(context.instance)  # an event per database: one connection, not one each
        store = mce_store.open()
        started = time.monotonic()

        def progress(done: int, total: int, r: DatabaseResult) -> None:
            if done == total or done % 25 == 0 or total <= 25:
                context.log.info(
                    f"{done}/{total} databases done ({r.database}: "
                    f"{'missing' if r.missing else 'ok' if r.ok else 'FAILED'})"
                )

        report = ExtractionReport(source=source.name, kind=source.type)
        events = ExtractionEvents.of_run(
            context, key, source, setup.rules, setup.datahub.ui_url, rewrite=config.rewrite_unchanged
        )
        try:
            with source_resource.client() as client:  # open for the whole run
                for r in extract(
                    source_resource.config(),
                    databases,
                    store,
                    progress=progress,
                    client=client,
                    rewrite=config.rewrite_unchanged,
                    report=report,
                ):
                    yield from events.add(r)
            yield from events.end()
        except (SourceUnavailable, ConfigError) as e:
            # only before the first database (later faults fail their own batch): the server unreachable, or a
            # missing password variable (read when the run connects, not at load; a retry cannot help that one)
            events.mark_failed({db: str(e) for db in databases})
            raise Failure(
                description=f"{e}; nothing was read or written, every file is as it was",
                allow_retries=not isinstance(e, ConfigError),
            ) from None
        except Exception as e:  # anything else fails the run: Dagit shows every database it had not done failed
            events.mark_not_done_failed(e)
            raise
        # the run's report: one observation of the asset (not of a partition), beside the partitions' materializations
        context.log.info(report.summary())
        yield AssetObservation(asset_key=key, metadata=report_metadata(report))
        failures = events.failures
        if len(failures) < len(databases) and pushes_itself(context, setup):
            push_after_extraction(context, setup, mce_store, datahub)
        deliver_after_run(context, setup, store)  # queued schema changes to webhooks; never raises
        context.log.info(
            f"{len(databases)} databases in {time.monotonic() - started:.1f}s, "
            f"{events.observed} confirmed unchanged (observed), {len(failures)} failed"
        )
        if failures:
            events.mark_failed({f.database: f.error for f in failures})
            raise Failure(
                description=f"{len(failures)} of {len(databases)} databases failed: "
                + ", ".join(f.database for f in failures[:20]),
                metadata={
                    "errors": MetadataValue.md(bullets(f"{code(f.database)}: {text(f.error)}" for f in failures)),
                    "summary": MetadataValue.text(report.summary()),
                },
            )

    return mce_files
