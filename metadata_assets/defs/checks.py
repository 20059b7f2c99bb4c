"""What changed, in Dagit: diff metadata on each partition's materialization, and per-partition asset checks.

The extraction asset records, on every database's materialization, the diff between the previous snapshot and the
new one (`schema_change_metadata`). The checks of one source (`build_schema_checks`) are evaluated from that
recorded metadata, per partition:
- `breaking_schema_changes`: WARN listing dropped tables/views/columns, narrowed or incompatible types, NOT NULL added;
- `documentation_coverage`: WARN when the share of commented tables or columns is below `source.coverage_threshold`;
- `least_privilege`: ERROR when the extraction found that the account can read data of the database (a finding with
  code `over_privileged`: a SELECT grant, a readable relation, a superuser or pg_read_all_data role), WARN when views
  lost their SQL (`view_unreadable`: SHOW VIEW missing, or a broken view). It reads the finding codes the
  materialization records as `warning_codes` ({code: count}); a materialization made before they were recorded
  passes with a description saying so. On MySQL/MariaDB the finding is the account's (SHOW GRANTS, matched against
  every database of the run, and extract.py gives it to each database of the run): a SELECT grant on one database
  fails the check on every partition extracted with it. `metadata-assets check-access` tells them apart by probes.

How they reach Dagit (Dagster 1.13): `check_specs=` on the `@asset` makes the check outputs required, and an
`AssetCheckResult` belongs to the step's single partition, while one extraction run covers a range of databases. So
the extraction asset yields one `AssetCheckEvaluation` per partition (with `partition=`) right after that
partition's materialization (`schema_check_evaluations`). The specs are declared by a separate multi-asset check
(`build_schema_checks`), which lists the checks under the asset in Dagit and re-evaluates them on demand from the
metadata of each partition's latest materialization. In extraction runs that check step shows as skipped (the asset
emits no Output, only per-partition materializations): the asset has already logged the evaluations.
Dagster's built-in column-schema-change checks are not used: they compare materializations across partitions.
"""

from typing import Mapping, Optional

from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    multi_asset_check,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from metadata_assets.defs.keys import mce_asset_key, partitions_def
from metadata_assets.diff import SchemaDiff, diff
from metadata_assets.extract import DatabaseResult
from metadata_assets.markdown import bullets
from metadata_assets.report import OVER_PRIVILEGED, VIEW_UNREADABLE, code_of
from metadata_assets.source_config import SourceConfig

BREAKING = "breaking_schema_changes"
COVERAGE = "documentation_coverage"
LEAST_PRIVILEGE = "least_privilege"
WARNING_CODES = "warning_codes"  # materialization metadata: {finding code: count} (defs/extraction.py)
DIFF_PREFIX = "diff_"


def schema_change_metadata(d: SchemaDiff) -> dict:
    """Materialization metadata for a diff: markdown, one count per kind of change, the breaking list."""
    return {
        "schema_diff": MetadataValue.md(d.markdown()),
        "schema_changed": not d.empty and not d.baseline,
        **{DIFF_PREFIX + k: v for k, v in d.counts().items()},
        "breaking_changes": MetadataValue.json(d.breaking),
    }


def warning_codes(warnings) -> dict[str, int]:
    """{finding code: number of warnings}, sorted by code: what a materialization records for `least_privilege`."""
    counts: dict[str, int] = {}
    for w in warnings:
        counts[code_of(w)] = counts.get(code_of(w), 0) + 1
    return dict(sorted(counts.items()))


def least_privilege_evaluation(key: AssetKey, partition: str, metadata: Mapping,
                               target=None) -> AssetCheckEvaluation:
    codes = _value(metadata, WARNING_CODES)
    if codes is None:
        return AssetCheckEvaluation(
            asset_key=key, check_name=LEAST_PRIVILEGE, partition=partition, passed=True,
            severity=AssetCheckSeverity.WARN, target_materialization_data=target,
            description="no warning codes recorded on this materialization (made before they were); "
                        "re-extract, or run `metadata-assets check-access`")
    over, unreadable = int(codes.get(OVER_PRIVILEGED, 0)), int(codes.get(VIEW_UNREADABLE, 0))
    if over:
        passed, severity = False, AssetCheckSeverity.ERROR
        description = (f"the account can read data of this database ({over} over-privileged finding(s); "
                       "see the materialization's warnings): revoke SELECT, see `metadata-assets grants`")
    elif unreadable:
        passed, severity = False, AssetCheckSeverity.WARN
        description = f"{unreadable} view(s) without SQL or columns (SHOW VIEW missing, or broken views)"
    else:
        passed, severity = True, AssetCheckSeverity.ERROR
        description = "no data access found; every view's SQL was readable"
    return AssetCheckEvaluation(
        asset_key=key, check_name=LEAST_PRIVILEGE, partition=partition, passed=passed, severity=severity,
        target_materialization_data=target, description=description,
        metadata={OVER_PRIVILEGED: over, VIEW_UNREADABLE: unreadable})


def _value(metadata: Mapping, key: str, default=None):
    v = metadata.get(key)
    return default if v is None else getattr(v, "value", v)


def evaluate(key: AssetKey, partition: str, metadata: Mapping, threshold: float,
             target: Optional[AssetCheckEvaluationTargetMaterializationData] = None) -> list[AssetCheckEvaluation]:
    """The three checks of one partition, from the metadata of its materialization."""
    breaking = list(_value(metadata, "breaking_changes", []) or [])
    recorded = "breaking_changes" in metadata
    t_cov = float(_value(metadata, "table_doc_coverage", 1.0))
    c_cov = float(_value(metadata, "column_doc_coverage", 1.0))
    low = [f"{what} {cov:.0%}" for what, cov in (("tables", t_cov), ("columns", c_cov)) if cov < threshold]
    return [
        AssetCheckEvaluation(
            asset_key=key, check_name=BREAKING, partition=partition, passed=not breaking,
            severity=AssetCheckSeverity.WARN, target_materialization_data=target,
            description=(f"{len(breaking)} breaking change(s) since the previous snapshot" if breaking
                         else "no breaking change" if recorded else "no diff recorded on this materialization"),
            # diff.breaking's strings are markdown already (names in code spans): listed as they are
            metadata={"breaking_changes": MetadataValue.md(bullets(str(b) for b in breaking)),
                      "count": len(breaking)},
        ),
        AssetCheckEvaluation(
            asset_key=key, check_name=COVERAGE, partition=partition, passed=not low,
            severity=AssetCheckSeverity.WARN, target_materialization_data=target,
            description=(f"documentation below {threshold:.0%}: " + ", ".join(low)) if low
            else f"documentation coverage at or above {threshold:.0%}",
            metadata={"table_doc_coverage": MetadataValue.float(t_cov),
                      "column_doc_coverage": MetadataValue.float(c_cov),
                      "threshold": MetadataValue.float(threshold)},
        ),
        least_privilege_evaluation(key, partition, metadata, target),
    ]


def latest_materialization_target(instance, key: AssetKey, partition: str,
                                   run_id: Optional[str] = None) -> Optional[AssetCheckEvaluationTargetMaterializationData]:
    """The partition's latest materialization (only if made by run_id, when given), as a check target."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
    if not records or (run_id is not None and records[0].run_id != run_id):
        return None
    rec = records[0]
    return AssetCheckEvaluationTargetMaterializationData(storage_id=rec.storage_id, run_id=rec.run_id,
                                                         timestamp=rec.timestamp)


def schema_check_evaluations(context, source: SourceConfig, key: AssetKey,
                             results: list[DatabaseResult]) -> list[AssetCheckEvaluation]:
    """The checks of freshly extracted databases: the extraction asset yields them after their materializations,
    which the instance has stored by then, so they point at them (Dagit then counts them current). One query finds
    the materializations of all of them (one per database cost 10 ms each)."""
    results = [r for r in results if r.snapshot is not None]
    if not results:
        return []
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[r.database for r in results]),
        limit=len(results)).records  # newest first: this run's, one per database
    targets: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for rec in records:
        partition = rec.partition_key
        if rec.run_id == context.run.run_id and partition not in targets:
            targets[partition] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=rec.storage_id, run_id=rec.run_id, timestamp=rec.timestamp)
    out = []
    for r in results:
        metadata = {"breaking_changes": diff(r.previous, r.snapshot).breaking,
                    "table_doc_coverage": r.table_doc_coverage, "column_doc_coverage": r.column_doc_coverage,
                    WARNING_CODES: warning_codes(r.warnings)}
        out.extend(evaluate(key, r.database, metadata, source.coverage_threshold, targets.get(r.database)))
    return out


def build_schema_checks(source: SourceConfig):

    key, parts = mce_asset_key(source), partitions_def(source)

    @multi_asset_check(
        name=f"{source.name}_schema_checks",
        specs=[
            AssetCheckSpec(BREAKING, asset=key, partitions_def=parts,
                           description="WARN on dropped tables/views/columns, narrowed types, NOT NULL added"),
            AssetCheckSpec(COVERAGE, asset=key, partitions_def=parts,
                           description=f"WARN when table or column comments cover less than "
                                       f"{source.coverage_threshold:.0%}"),
            AssetCheckSpec(LEAST_PRIVILEGE, asset=key, partitions_def=parts,
                           description="ERROR when the account can read data of the database (over_privileged "
                                       "findings), WARN when views lost their SQL (view_unreadable)"),
        ],
        can_subset=True,  # makes the check outputs optional: evaluations are logged per partition instead
    )
    def schema_checks(context: AssetCheckExecutionContext):
        for partition in context.partition_keys:
            records = context.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
            if not records:
                context.log.info(f"{partition}: never materialized, nothing to check")
                continue
            target = latest_materialization_target(context.instance, key, partition)
            for evaluation in evaluate(key, partition, records[0].asset_materialization.metadata,
                                       source.coverage_threshold, target):
                context.op_execution_context.log_event(evaluation)
        yield from ()

    return schema_checks
