"""The push of one source's MCE files to DataHub: an unpartitioned asset, and the sensor that starts it.

The extraction asset logs its own events per database (a materialization, or an observation when the database is
unchanged; no Output), so the push asset is not a step of the same run (it would be skipped). Extraction runs push
at their end themselves (push_after_extraction, when datahub.push_from_extraction); the sensor watches extraction's
materializations and requests a push run when a database materialized with a data version DataHub does not have
yet, when a database's files were forgotten, or (push_from_extraction off) after each extraction run.
"""

import hashlib
import json
import time
from datetime import timedelta
from typing import Optional

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetRecordsFilter,
    Backoff,
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    sensor,
)

from metadata_assets.config import ConfigError
from metadata_assets.datahub.push import MassRemovalRefused, PushFailed, PushReport, load_state, push
from metadata_assets.datahub.sinks import DataHubUnavailable
from metadata_assets.defs.keys import (
    BLOCKED_TAG,
    DATA_VERSION_TAG,
    mce_asset_key,
    push_asset_key,
    push_pool,
)
from metadata_assets.defs.keys import (
    PUSH_SOURCE_TAG as SOURCE_TAG,
)
from metadata_assets.defs.resources import DATAHUB_KEY, STORE_KEY, DataHubResource, MCEStoreResource
from metadata_assets.defs.runs import ACTIVE_RUN_STATUSES, active_extraction_runs
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.markdown import bullets, code
from metadata_assets.source_config import SourceConfig
from metadata_assets.storage.layout import list_mce_databases
from metadata_assets.storage.locks import LockBusy

RETRY_POLICY = RetryPolicy(max_retries=3, delay=60, backoff=Backoff.EXPONENTIAL)


class PushConfig(Config):
    allow_mass_removal: bool = False  # let this run soft-delete more than datahub.max_removal_share


def _metadata(r: PushReport) -> dict:
    return {
        "target": MetadataValue.text(r.target),
        "databases_pushed": len(r.databases_pushed),
        "databases_skipped": r.databases_skipped,
        "databases_removed": len(r.databases_removed),
        "proposals_sent": r.proposals_sent,
        "entities_soft_deleted": len(r.soft_deleted),
        "failures": len(r.failures) + len(r.not_attempted),
        **({"stopped": MetadataValue.text(r.stopped)} if r.stopped else {}),
        "duration_s": MetadataValue.float(round(r.duration_s, 3)),
        "pushed": MetadataValue.md(bullets(code(d) for d in r.databases_pushed[:200])),
        "soft_deleted": MetadataValue.md(bullets(code(u) for u in r.soft_deleted[:200])),
    }


def _push_source(
    context: AssetExecutionContext, setup: SourceSetup, mce_store: MCEStoreResource, datahub: DataHubResource, **kw
) -> PushReport:
    """Push one source from the store to the sink its resources open (what the push asset and an extraction run's
    own push share). ConfigError or ValueError when the store, the sink or the push state cannot be opened."""
    store = mce_store.open()
    sink = datahub.open()
    try:
        return push(
            store,
            setup.source.name,
            setup.rules,
            sink,
            max_removal_share=setup.datahub.max_removal_share,
            run_id=context.run.run_id,
            progress=context.log.info,
            deadline_s=setup.datahub.push_deadline_s,
            **kw,
        )
    finally:
        sink.close()


def freshness_policy(source: SourceConfig) -> Optional[FreshnessPolicy]:
    """Stale when DataHub was not confirmed in sync with the databases for `freshness_hours`. On the push asset, not
    the extraction asset: Dagster's freshness counts materializations only, and a refresh that finds a database
    unchanged observes its partition (defs/unchanged.py), so a quiet day would look stale there. The push that ends
    each refresh materializes this asset even when it sends nothing (an extraction run's own push, or, with
    push_from_extraction off, the push sensor's run after a refresh's observations)."""
    return (
        FreshnessPolicy.time_window(fail_window=timedelta(hours=source.freshness_hours))
        if source.freshness_hours
        else None
    )


def build_push_asset(setup: SourceSetup, retry_policy: RetryPolicy = RETRY_POLICY, bind_resources: bool = True):
    """The source's push asset; its resources (the store and DataHub) bound or left to the Definitions, as for
    build_mce_asset."""
    source = setup.source

    @asset(
        resource_defs={STORE_KEY: setup.store, DATAHUB_KEY: setup.sink} if bind_resources else None,
        key=push_asset_key(source),
        deps=[mce_asset_key(source)],
        group_name=source.name,
        kinds={"datahub"},
        retry_policy=retry_policy,  # DataHub down: retried; the fail-safe and bad config are not
        pool=push_pool(source),  # one push per source at a time, whoever launched it (UI, sensor)
        op_tags={SOURCE_TAG: source.name},
        owners=list(source.owners),
        tags=dict(source.tags),
        freshness_policy=freshness_policy(source),
        description=(
            f"Pushes the MCE files of `{source.name}` whose schema changed since the last confirmed push "
            f"to {setup.datahub.target} DataHub; soft-deletes dropped tables and databases."
        ),
    )
    def datahub_push(
        context: AssetExecutionContext, config: PushConfig, mce_store: MCEStoreResource, datahub: DataHubResource
    ) -> MaterializeResult:
        try:
            report = _push_source(context, setup, mce_store, datahub, allow_mass_removal=config.allow_mass_removal)
        except (ConfigError, ValueError) as e:  # a retry cannot fix configuration or an unknown state format
            raise Failure(description=f"source {source.name!r}: {e}", allow_retries=False) from None
        except MassRemovalRefused as e:
            context.instance.add_run_tags(context.run.run_id, {BLOCKED_TAG: "fail_safe"})
            raise Failure(description=str(e), allow_retries=False) from None
        except PushFailed as e:
            # refused credentials, or a deadline spent on a hung DataHub: the step's retries would only repeat it
            # (the push sensor retries a failed push an hour later)
            raise Failure(description=str(e), metadata=_metadata(e.report), allow_retries=e.retryable) from None
        except LockBusy as e:  # another push of this source (started outside the daemon's pool) is running
            raise Failure(description=f"source {source.name!r}: {e}; this push will be retried") from None
        except DataHubUnavailable as e:
            raise Failure(description=f"source {source.name!r}: {e}; every changed file stays pending") from None
        context.log.info(
            f"{report.target}: {len(report.databases_pushed)} databases pushed, "
            f"{report.databases_skipped} unchanged, {len(report.databases_removed)} removed, "
            f"{report.proposals_sent} proposals, {len(report.soft_deleted)} soft-deleted"
        )
        return MaterializeResult(metadata=_metadata(report))

    return datahub_push


SELF_PUSH_LOCK_WAIT_S = 15  # another self-pushing run's small push ends well within this; a long push does not


def push_after_extraction(
    context: AssetExecutionContext, setup: SourceSetup, mce_store: MCEStoreResource, datahub: DataHubResource
) -> None:
    """The push an extraction run makes at its end (defs/extraction.py, pushes_itself): a run the schema sensor
    started for a few changed databases, or the last extraction run of its source. The change reaches DataHub
    without waiting for the push sensor's tick and a run of its own. Best effort by design: whatever stops it
    (DataHub down or refusing, another push holding the lock, the fail-safe) is logged and leaves the files
    pending; the push sensor then starts the push asset, with its retries and fail-safe, as before. It reports a
    materialization of the push asset with the same metadata as the asset's own, as a runless event: in the
    extraction step it would count among that step's materializations of databases."""
    try:
        report = _push_source(context, setup, mce_store, datahub, lock_wait_s=SELF_PUSH_LOCK_WAIT_S)
    except Exception as e:  # best effort: whatever stops it, the extraction stands and the files stay pending
        context.log.warning(
            f"push from this run stopped: {type(e).__name__}: {e}; the files it did not push stay "
            f"pending and the push sensor pushes them"
        )
        return
    context.log.info(
        f"pushed from this run: {len(report.databases_pushed)} databases, {report.proposals_sent} "
        f"proposals, {len(report.soft_deleted)} soft-deleted"
    )
    context.instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key=push_asset_key(setup.source),
            metadata={
                **_metadata(report),
                "pushed_by": MetadataValue.text("extraction run"),
                "pushed_by_run": MetadataValue.dagster_run(context.run.run_id),
            },
        )
    )


def _push_running(context: SensorEvaluationContext, source: SourceConfig) -> bool:
    runs = context.instance.get_run_records(
        RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags={SOURCE_TAG: source.name}), limit=1
    )
    return bool(runs)


def _failed_push_to_retry(context: SensorEvaluationContext, source: SourceConfig, after_s: float):
    """The last push run of this source, if it failed (DataHub down past the RetryPolicy) long enough ago."""
    runs = context.instance.get_run_records(RunsFilter(tags={SOURCE_TAG: source.name}), limit=1)
    if not runs:
        return None
    run = runs[0]
    if (
        run.dagster_run.status != DagsterRunStatus.FAILURE
        or BLOCKED_TAG in run.dagster_run.tags
        or run.end_time is None
        or time.time() - run.end_time < after_s
    ):
        return None
    return run


def build_push_sensor(
    setup: SourceSetup,
    minimum_interval_seconds: Optional[int] = None,
    page: int = 1000,
    retry_failed_after_s: float = 3600,
):
    source, push_from_extraction = setup.source, setup.datahub.push_from_extraction
    mce_key = mce_asset_key(source)

    @sensor(
        name=f"{source.name}_datahub_push_sensor",
        minimum_interval_seconds=minimum_interval_seconds or setup.datahub.push_sensor_interval_s,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=[push_asset_key(source)],
        description=(
            f"Requests a DataHub push of `{source.name}` when a database materialized with a schema "
            f"version DataHub does not have yet, when databases were dropped, or (an hour later) to "
            f"retry a push that failed."
        ),
    )
    def push_sensor(context: SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        if _push_running(context, source):
            return SkipReason("a push of this source is already queued or running")
        # read before the state: a run that ends after this saved its push in the state we read next
        extracting = set(active_extraction_runs(context.instance, source)) if push_from_extraction else set()
        store = setup.store.open()
        state = load_state(store, source.name)

        after = cursor.get("after")
        latest: dict[str, Optional[str]] = {}  # partition -> data version of its newest materialization
        while True:
            result = context.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=mce_key, after_storage_id=after), limit=page, ascending=True
            )
            for rec in result.records:
                if mat := rec.asset_materialization:
                    latest[mat.partition] = mat.tags.get(DATA_VERSION_TAG) if mat.tags else None
                after = rec.storage_id
            if not result.has_more:
                break
        # an older materialization superseded by a newer one already pushed is not a change
        changed = {
            db for db, version in latest.items() if (pushed := state.get(db)) is None or pushed.data_version != version
        }

        if changed and extracting:
            # cursor kept: the next tick looks at these materializations again, after the last run's own push
            return SkipReason(
                f"{len(extracting)} extraction run(s) of this source still queued or running (e.g. "
                f"{sorted(extracting)[0]}): the last one pushes what they extracted; waiting"
            )
        gone = sorted(set(state) - set(list_mce_databases(store, source.name)))
        gone_hash = hashlib.sha256(json.dumps(gone).encode()).hexdigest()[:16] if gone else None
        reasons = []
        refreshed_after = cursor.get("refreshed_after")
        if not push_from_extraction:
            # no extraction run pushes at its end: a push run confirms each refresh (each run's report observation),
            # which keeps the push asset's freshness true on a day without changes (freshness_policy)
            newest = context.instance.fetch_observations(
                AssetRecordsFilter(asset_key=mce_key, after_storage_id=refreshed_after), limit=1
            ).records
            if newest:
                refreshed_after = newest[0].storage_id
                if not changed:
                    reasons.append("an extraction run ended: confirming DataHub is in sync")
        new_cursor = json.dumps({"after": after, "gone": gone_hash, "refreshed_after": refreshed_after})
        if changed:
            reasons.append(f"{len(changed)} databases with a new schema version")
        if gone and gone_hash != cursor.get("gone"):
            reasons.append(f"{len(gone)} databases dropped")
        if not reasons and (failed := _failed_push_to_retry(context, source, retry_failed_after_s)):
            # files not confirmed pushed stay pending; without this they would wait for the next schema change
            reasons.append(f"retrying failed push run {failed.dagster_run.run_id}")
        if not reasons:
            return SensorResult(skip_reason=SkipReason("nothing new to push"), cursor=new_cursor)
        context.log.info("; ".join(reasons))
        return SensorResult(
            run_requests=[RunRequest(asset_selection=[push_asset_key(source)], tags={SOURCE_TAG: source.name})],
            cursor=new_cursor,
        )

    return push_sensor
