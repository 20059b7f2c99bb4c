"""What changed, in Dagit: diff metadata on each partition's materialization, and per-partition asset checks.

The extraction asset records, on every database's materialization, the diff between the previous snapshot and the
new one as one table (`schema_change_metadata`), and the checks are evaluated from what it recorded, per partition:
- `breaking_schema_changes`: WARN listing the changes classed breaking (risk.py, with the source's `risk.rules`
  overrides: by default dropped tables/views/columns, narrowed or incompatible types, NOT NULL added, primary key
  changed, a view broken): the diff table's `breaking` column, filled from the same classification;
- `documentation_coverage`: WARN when the share of commented tables or columns is below `source.coverage_threshold`;
- `least_privilege`: ERROR when the extraction found that the account can read data of the database (a finding with
  code `over_privileged`: a SELECT grant on it or on every database, a readable relation, a superuser or
  pg_read_all_data role), WARN when views lost their SQL (`view_unreadable`: SHOW VIEW missing, MySQL 8's SELECT
  requirement, or a broken view). It reads the finding codes the materialization records as `warning_codes`
  ({code: count}); a materialization made before they were recorded passes with a description saying so.

How they reach Dagit (Dagster 1.13): the checks are `check_specs` of the extraction asset itself, a `multi_asset`
with `can_subset=True` (so its check outputs are optional): an extraction run has a single step, nothing shows as
skipped. One run covers a range of databases while an `AssetCheckResult` belongs to the step's single partition, so
the asset yields one `AssetCheckEvaluation` per partition (with `partition=`) right after that partition's
materialization (defs/outcome.py). Selecting only the checks (Dagit's "Execute" on a check, for a
partition or a range) runs the same step without the asset: it re-evaluates them from the metadata of each
partition's latest materialization (`on_demand_evaluations`), reading no database. Each materialization also lists
its own check results (`checks`), so a partition's page says how it fared. A database a scheduled refresh finds
unchanged is observed, not materialized (defs/unchanged.py): its checks keep pointing at its latest materialization,
which stays the latest, so Dagit keeps them current without new evaluations.
Dagster's built-in column-schema-change checks are not used: they compare materializations across partitions.
"""

from typing import Mapping, Optional

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from metadata_assets.defs.keys import mce_asset_key, partitions_def
from metadata_assets.diff import SchemaDiff
from metadata_assets.extract import DatabaseResult
from metadata_assets.markdown import bullets, code, text
from metadata_assets.report import OVER_PRIVILEGED, VIEW_UNREADABLE, code_of
from metadata_assets.source_config import SourceConfig

BREAKING = "breaking_schema_changes"
COVERAGE = "documentation_coverage"
LEAST_PRIVILEGE = "least_privilege"
WARNING_CODES = "warning_codes"  # materialization metadata: {finding code: count} (defs/extraction.py)


DIFF_SCHEMA = TableSchema(
    columns=[
        TableColumn("change", "string"),
        TableColumn("object", "string", description="table, view, column or routine"),
        TableColumn("detail", "string", description="before → after"),
        TableColumn("breaking", "string", description="why a reader of the data can break ('' when it cannot)"),
    ]
)


def schema_change_metadata(d: SchemaDiff) -> dict:
    """Materialization metadata for a diff: whether the schema changed, and one table of the changes."""
    if d.baseline:
        rows = [{"change": "first snapshot", "object": d.database, "detail": "nothing to compare with", "breaking": ""}]
    else:
        rows = d.rows()
    return {
        "schema_changed": not d.empty and not d.baseline,
        "schema_diff": MetadataValue.table(records=[TableRecord(r) for r in rows], schema=DIFF_SCHEMA),
        "schema_risk": MetadataValue.text(risk_summary(d)),
    }


def risk_summary(d: SchemaDiff) -> str:
    """The diff's worst class and its counts ("breaking (1 breaking, 2 safe)"); "none" when nothing changed."""
    counts = d.risk_counts()
    if not counts:
        return "none"
    return f"{d.risk} (" + ", ".join(f"{counts[c]} {c}" for c in ("breaking", "warning", "safe") if c in counts) + ")"


def breaking_of(metadata: Mapping) -> Optional[list[str]]:
    """The breaking changes a materialization recorded, as markdown (names in code spans; None: no diff)."""
    table = _value(metadata, "schema_diff")
    if hasattr(table, "records"):  # MetadataValue.table
        return [
            f"{r.data['change']} {code(r.data['object'])}: {text(r.data['breaking'])}"
            for r in table.records
            if r.data.get("breaking")
        ]
    if "breaking_changes" in metadata:  # materializations from before the table
        return [str(b) for b in _value(metadata, "breaking_changes", []) or []]
    return None


def warning_codes(warnings) -> dict[str, int]:
    """{finding code: number of warnings}, sorted by code: what a materialization records for `least_privilege`."""
    counts: dict[str, int] = {}
    for w in warnings:
        counts[code_of(w)] = counts.get(code_of(w), 0) + 1
    return dict(sorted(counts.items()))


def least_privilege_evaluation(key: AssetKey, partition: str, metadata: Mapping, target=None) -> AssetCheckEvaluation:
    codes = _value(metadata, WARNING_CODES)
    if codes is None:
        return AssetCheckEvaluation(
            asset_key=key,
            check_name=LEAST_PRIVILEGE,
            partition=partition,
            passed=True,
            severity=AssetCheckSeverity.WARN,
            target_materialization_data=target,
            description="no warning codes recorded on this materialization (made before they were); "
            "re-extract, or run `metadata-assets check-access`",
        )
    over, unreadable = int(codes.get(OVER_PRIVILEGED, 0)), int(codes.get(VIEW_UNREADABLE, 0))
    if over:
        passed, severity = False, AssetCheckSeverity.ERROR
        description = (
            f"the account can read data of this database ({over} over-privileged finding(s); "
            "see the materialization's warnings): revoke SELECT, see `metadata-assets grants`"
        )
    elif unreadable:
        passed, severity = False, AssetCheckSeverity.WARN
        description = f"{unreadable} view(s) without SQL or columns (SHOW VIEW missing, or broken views)"
    else:
        passed, severity = True, AssetCheckSeverity.ERROR
        description = "no data access found; every view's SQL was readable"
    return AssetCheckEvaluation(
        asset_key=key,
        check_name=LEAST_PRIVILEGE,
        partition=partition,
        passed=passed,
        severity=severity,
        target_materialization_data=target,
        description=description,
        metadata={OVER_PRIVILEGED: over, VIEW_UNREADABLE: unreadable},
    )


def pct(share: float) -> MetadataValue:
    """A share as a percent, one decimal: 0.8182 -> 81.8."""
    return MetadataValue.float(round(100 * share, 1))


def coverage_of(metadata: Mapping) -> tuple[float, float]:
    """(tables, columns) documented, as shares, from a materialization's metadata (old ones: *_doc_coverage)."""
    t, c = _value(metadata, "documented_tables_pct"), _value(metadata, "documented_columns_pct")
    if t is not None and c is not None:
        return float(t) / 100, float(c) / 100
    return float(_value(metadata, "table_doc_coverage", 1.0)), float(_value(metadata, "column_doc_coverage", 1.0))


def _value(metadata: Mapping, key: str, default=None):
    v = metadata.get(key)
    return default if v is None else getattr(v, "value", v)


def evaluate(
    key: AssetKey,
    partition: str,
    metadata: Mapping,
    threshold: float,
    target: Optional[AssetCheckEvaluationTargetMaterializationData] = None,
) -> list[AssetCheckEvaluation]:
    """The three checks of one partition, from the metadata of its materialization."""
    found = breaking_of(metadata)
    breaking, recorded = found or [], found is not None
    t_cov, c_cov = coverage_of(metadata)
    low = [f"{what} {cov:.0%}" for what, cov in (("tables", t_cov), ("columns", c_cov)) if cov < threshold]
    return [
        AssetCheckEvaluation(
            asset_key=key,
            check_name=BREAKING,
            partition=partition,
            passed=not breaking,
            severity=AssetCheckSeverity.WARN,
            target_materialization_data=target,
            description=(
                f"{len(breaking)} breaking change(s) since the previous snapshot"
                if breaking
                else "no breaking change"
                if recorded
                else "no diff recorded on this materialization"
            ),
            metadata={"breaking_changes": MetadataValue.md(bullets(breaking)), "count": len(breaking)},
        ),
        AssetCheckEvaluation(
            asset_key=key,
            check_name=COVERAGE,
            partition=partition,
            passed=not low,
            severity=AssetCheckSeverity.WARN,
            target_materialization_data=target,
            description=(f"documentation below {threshold:.0%}: " + ", ".join(low))
            if low
            else f"documentation coverage at or above {threshold:.0%}",
            metadata={
                "documented_tables_pct": pct(t_cov),
                "documented_columns_pct": pct(c_cov),
                "threshold_pct": pct(threshold),
            },
        ),
        least_privilege_evaluation(key, partition, metadata, target),
    ]


def target_of(rec) -> AssetCheckEvaluationTargetMaterializationData:
    """A materialization record as the target of a check evaluation."""
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=rec.storage_id, run_id=rec.run_id, timestamp=rec.timestamp
    )


def materialization_targets(
    context, key: AssetKey, partitions: list[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """{partition: its materialization by this run, as a check evaluation's target}: the extraction asset yields
    the checks of freshly extracted databases after their materializations, which the instance has stored by then,
    so the evaluations point at them (Dagit then counts them current). One query for all of them (one per database
    cost a query each)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=len(partitions)
    ).records  # newest first: this run's, one per database
    targets: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for rec in records:
        partition = rec.partition_key
        if rec.run_id == context.run.run_id and partition not in targets:
            targets[partition] = target_of(rec)
    return targets


def result_metadata(r: DatabaseResult, d: SchemaDiff) -> dict:
    """What the checks read, for a database just extracted (the same entries its materialization records); `d`:
    its diff."""
    return {
        **schema_change_metadata(d),
        "documented_tables_pct": pct(r.table_doc_coverage),
        "documented_columns_pct": pct(r.column_doc_coverage),
        WARNING_CODES: warning_codes(r.warnings),
    }


def checks_summary(evaluations: list[AssetCheckEvaluation]) -> str:
    """One line per check for a partition's own materialization: `passed`, or the severity and why."""
    return "\n".join(
        f"{e.check_name}: {'passed' if e.passed else e.severity.value}" + ("" if e.passed else f" ({e.description})")
        for e in evaluations
    )


def check_specs(source: SourceConfig) -> list[AssetCheckSpec]:
    """The checks of the extraction asset, per partition."""
    key, parts = mce_asset_key(source), partitions_def(source)
    return [
        AssetCheckSpec(
            BREAKING,
            asset=key,
            partitions_def=parts,
            description="WARN on changes classed breaking (dropped tables/views/columns, narrowed "
            "types, NOT NULL added, primary key changed, ...; see the source's risk rules)",
        ),
        AssetCheckSpec(
            COVERAGE,
            asset=key,
            partitions_def=parts,
            description=f"WARN when table or column comments cover less than {source.coverage_threshold:.0%}",
        ),
        AssetCheckSpec(
            LEAST_PRIVILEGE,
            asset=key,
            partitions_def=parts,
            description="ERROR when the account can read data of the database (over_privileged "
            "findings), WARN when views lost their SQL (view_unreadable)",
        ),
    ]


def on_demand_evaluations(context, source: SourceConfig, key: AssetKey):
    """The selected checks of the run's partitions, from each one's latest materialization (no database read)."""
    selected = {k.name for k in context.selected_asset_check_keys}
    for partition in context.partition_keys:
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        if not records:
            context.log.info(f"{partition}: never materialized, nothing to check")
            continue
        rec = records[0]
        target = target_of(rec)
        for evaluation in evaluate(
            key, partition, rec.asset_materialization.metadata, source.coverage_threshold, target
        ):
            if evaluation.check_name in selected:
                yield evaluation
