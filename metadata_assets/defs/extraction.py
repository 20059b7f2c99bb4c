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
    DynamicPartitionsDefinition,
    Failure,
    MetadataValue,
    asset,
)

from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from metadata_assets.config import BigQuerySource, MySQLSource, ProjectConfig
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


EXTRACTION_POD = {"cpu": "250m", "memory": "512Mi"}


# set by the schema sensor on runs for changed databases: the run pushes what it extracted (defs/push.py)
PUSH_AFTER_TAG = "metadata_assets/push_after"
MAX_RETRIES_TAG = "dagster/max_retries"
EXTRACTION_RUN_RETRIES = 2


def run_tags(source: MySQLSource) -> dict[str, str]:
    """Tags for RunRequests of this source's extraction. The K8sRunLauncher sizes the run pod from *run* tags
    (op_tags only reach per-step pods under k8s_job_executor). No tag is needed for the MySQL host limit: the
    asset's pool applies to every run of it (see defs/pools.py)."""
    tags = {key: json.dumps(value, sort_keys=True) for key, value in k8s_tags(**EXTRACTION_POD).items()}
    # re-run a failed extraction run (needs run_retries enabled on the instance: deploy/values.yaml, the demo)
    tags[MAX_RETRIES_TAG] = str(EXTRACTION_RUN_RETRIES)
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


def pushed_here(context: AssetExecutionContext, cfg: ProjectConfig) -> bool:
    return cfg.datahub.push_after_change and context.run.tags.get(PUSH_AFTER_TAG) == "1"


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
        op_tags=k8s_tags(**EXTRACTION_POD),
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
        if pushed_here(context, cfg) and len(failures) < len(databases):
            from metadata_assets.defs.push import push_after_extraction  # defs/push imports this module

            yield from push_after_extraction(context, cfg, source)
        context.log.info(f"{len(databases)} databases in {time.monotonic() - started:.1f}s, "
                         f"{len(failures)} failed")
        if failures:
            raise Failure(
                description=f"{len(failures)} of {len(databases)} databases failed: "
                            + ", ".join(f.database for f in failures[:20]),
                metadata={"errors": MetadataValue.md(bullets(f"{code(f.database)}: {text(f.error)}" for f in failures))},
            )

    return mce_files
