"""The partitioned extraction asset of one source: one dynamic partition per allowed database."""


import json
import re
import time

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    BackfillPolicy,
    Config,
    DagsterRunStatus,
    DynamicPartitionsDefinition,
    Failure,
    MetadataValue,
    RunsFilter,
    asset,
)

from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
)

from metadata_assets.config import BigQuerySource, MySQLSource, ProjectConfig, RunPod
from metadata_assets.datahub.files import open_store
from metadata_assets.defs.checks import schema_change_metadata, schema_check_evaluations
from metadata_assets.defs.source_clients import extract_through_client
from metadata_assets.diff import diff
from metadata_assets.extract import DatabaseResult
from metadata_assets.markdown import bullets, code, text, warnings_markdown
from metadata_assets.sources.mysql import SourceUnavailable

DATA_VERSION_TAG = "dagster/data_version"


def partitions_def(source: MySQLSource) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=f"{source.name}_databases")


def mce_asset_key(source: MySQLSource) -> AssetKey:
    return AssetKey([source.name, "mce_files"])


def mysql_pool(source: MySQLSource) -> str:
    """One concurrency pool per MySQL host, shared by every source on that host (BigQuery: per project)."""
    if isinstance(source, BigQuerySource):
        return "bigquery_" + re.sub(r"[^A-Za-z0-9_]", "_", source.project)
    return "mysql_" + re.sub(r"[^A-Za-z0-9_]", "_", f"{source.host}_{source.port}")


def push_pool(source: MySQLSource) -> str:
    """The push of a source runs alone: its pool has one slot (defs/pools.py)."""
    return "datahub_push_" + source.name


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags that make one run materialize the partition range keys[0]..keys[-1] (contiguous keys)."""
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def k8s_tags(cpu: str, memory: str) -> dict:
    return {"dagster-k8s/config": {"container_config": {"resources": {
        "requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}}}}


EXTRACTION_POD = {"cpu": RunPod().cpu, "memory": RunPod().memory}  # the default; sources.yaml: run_pod


def run_pod_tags(source: MySQLSource) -> dict:
    return k8s_tags(cpu=source.run_pod.cpu, memory=source.run_pod.memory)


# set by the schema sensor on runs for changed databases: the run pushes what it extracted (defs/push.py)
PUSH_AFTER_TAG = "metadata_assets/push_after"
# on every extraction run the schedule and the sensors request: the source it reads
EXTRACT_SOURCE_TAG = "metadata_assets/extract_source"
# an extraction run shown as queued or running for longer is taken as stuck (its worker killed where no run
# monitoring ends it): it no longer holds back the push of the others; a real run of 200 databases takes minutes
STUCK_RUN_S = 6 * 3600
MAX_RETRIES_TAG = "dagster/max_retries"
EXTRACTION_RUN_RETRIES = 2


def run_tags(source: MySQLSource) -> dict[str, str]:
    """Tags for RunRequests of this source's extraction. The K8sRunLauncher sizes the run pod from *run* tags
    (op_tags only reach per-step pods under k8s_job_executor). No tag is needed for the MySQL host limit: the
    asset's pool applies to every run of it (see defs/pools.py)."""
    tags = {key: json.dumps(value, sort_keys=True) for key, value in run_pod_tags(source).items()}
    # re-run a failed extraction run (needs run_retries enabled on the instance: deploy/values.yaml, the demo)
    tags[MAX_RETRIES_TAG] = str(EXTRACTION_RUN_RETRIES)
    tags[EXTRACT_SOURCE_TAG] = source.name
    return tags


def materialization(key: AssetKey, r: DatabaseResult) -> AssetMaterialization:
    metadata = {
        "path": MetadataValue.path(r.uri),
        "tables": r.tables,
        "views": r.views,
        "columns": r.columns,
        "table_doc_coverage": MetadataValue.float(round(r.table_doc_coverage, 4)),
        "column_doc_coverage": MetadataValue.float(round(r.column_doc_coverage, 4)),
        "proposals": r.proposals,
        "rewritten": r.rewritten,
        "content_hash": MetadataValue.text(r.data_version or ""),
        "file_sha256": MetadataValue.text(r.file_sha256 or ""),
        "warnings": MetadataValue.md(warnings_markdown(r.warnings)),
        "warning_count": len(r.warnings),
    }
    if r.snapshot is not None:  # what changed since the previous snapshot of this database (defs/checks.py)
        metadata.update(schema_change_metadata(diff(r.previous, r.snapshot)))
    return AssetMaterialization(asset_key=key, partition=r.database, metadata=metadata,
                                tags={DATA_VERSION_TAG: r.data_version})


ACTIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                       DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def active_extraction_runs(instance, source: MySQLSource, besides: str = "") -> list[str]:
    """Ids of the source's extraction runs requested by the schedule or the sensors (EXTRACT_SOURCE_TAG) that are
    queued or running, other than `besides`; runs shown so for over STUCK_RUN_S are left out."""
    records = instance.get_run_records(
        RunsFilter(statuses=ACTIVE_RUN_STATUSES, tags={EXTRACT_SOURCE_TAG: source.name}), limit=1000)
    fresh_after = time.time() - STUCK_RUN_S
    return [r.dagster_run.run_id for r in records
            if r.dagster_run.run_id != besides and r.create_timestamp.timestamp() > fresh_after]


def pushes_itself(context: AssetExecutionContext, cfg: ProjectConfig, source: MySQLSource) -> bool:
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
    # Rebuild the files of databases whose schema did not change too (fresh row estimates, sizes and times in the
    # files; DataHub gets them with the next schema change, as the push sends changed versions only).
    rewrite_unchanged: bool = False


def build_mce_asset(cfg: ProjectConfig, source: MySQLSource):
    key = mce_asset_key(source)

    @asset(
        key=key,
        partitions_def=partitions_def(source),
        # one run may cover a range of databases: they are read with one set of bulk queries
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=source.batch_size),
        group_name=source.name,
        kinds={source.type, "datahub"},
        output_required=False,  # each database gets its own materialization event below
        pool=mysql_pool(source),
        op_tags=run_pod_tags(source),
        description=(f"DataHub MCE file per database of MySQL source `{source.name}` "
                     f"({source.host}:{source.port}), read from information_schema only."
                     if isinstance(source, MySQLSource) else
                     f"DataHub MCE file per dataset of BigQuery source `{source.name}` (project "
                     f"{source.project}), read from INFORMATION_SCHEMA only."),
    )
    def mce_files(context: AssetExecutionContext, config: ExtractionConfig):
        databases = list(context.partition_keys)
        store = open_store(cfg.storage.uri)
        started = time.monotonic()
        failures: list[DatabaseResult] = []

        def progress(done: int, total: int, r: DatabaseResult) -> None:
            if done == total or done % 25 == 0 or total <= 25:
                context.log.info(f"{done}/{total} databases done ({r.database}: "
                                 f"{'missing' if r.missing else 'ok' if r.ok else 'FAILED'})")

        results = extract_through_client(source, databases, store, progress=progress,
                                         rewrite=config.rewrite_unchanged)
        try:
            for r in results:
                for w in r.warnings:
                    context.log.warning(f"{r.database}: {w}")
                if not r.ok:
                    failures.append(r)
                    context.log.error(f"{r.database}: {r.error}")
                elif not r.missing:
                    yield materialization(key, r)  # a generator with no Output: only these events materialize
                    yield from schema_check_evaluations(context, source, key, r)  # per partition (defs/checks.py)
        except SourceUnavailable as e:  # only before the first database: later faults fail their own batch
            raise Failure(description=f"{e}; nothing was read or written, every file is as it was") from None
        if len(failures) < len(databases) and pushes_itself(context, cfg, source):
            from metadata_assets.defs.push import push_after_extraction  # defs/push imports this module

            push_after_extraction(context, cfg, source)
        context.log.info(f"{len(databases)} databases in {time.monotonic() - started:.1f}s, "
                         f"{len(failures)} failed")
        if failures:
            raise Failure(
                description=f"{len(failures)} of {len(databases)} databases failed: "
                            + ", ".join(f.database for f in failures[:20]),
                metadata={"errors": MetadataValue.md(bullets(f"{code(f.database)}: {text(f.error)}" for f in failures))},
            )

    return mce_files
