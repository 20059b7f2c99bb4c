"""An extraction run's report (report.ExtractionReport) as Dagster metadata: tables Dagit renders as tables, a
summary line, and the run's duration as the one number worth plotting. No SQL here."""

from __future__ import annotations

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from metadata_assets.report import ExtractionReport, code_of, subject_of

MAX_ROWS = 200  # per table: a run of a few thousand databases stays readable (the log has the rest)

_OUTCOMES = TableSchema(
    columns=[TableColumn("outcome", "string"), TableColumn("databases", "int"), TableColumn("names", "string")]
)
_COST = TableSchema(columns=[TableColumn("measure", "string"), TableColumn("value", "string")])
_WARNINGS = TableSchema(
    columns=[
        TableColumn("database", "string"),
        TableColumn("kind", "string"),
        TableColumn("about", "string"),
        TableColumn("warning", "string"),
    ]
)


def _names(names: list[str], limit: int = 20) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def report_metadata(report: ExtractionReport) -> dict:
    outcomes = [
        ("written (new or changed schema)", report.written),
        ("unchanged (files kept)", report.unchanged),
        ("missing", report.missing),
        ("failed", list(report.failed)),
    ]
    cost = [
        ("tables", report.tables),
        ("views", report.views),
        ("columns", report.columns),
        ("tables and views left out by patterns", report.tables_filtered),
        ("proposals written", report.proposals_written),
        ("SQL statements / query jobs", report.statements),
        ("API calls", report.api_calls),
        *((f"{phase} (s)", f"{seconds:.2f}") for phase, seconds in report.phases_s.items()),
    ]
    metadata = {
        "summary": MetadataValue.text(report.summary()),
        "databases": MetadataValue.table(
            [TableRecord({"outcome": o, "databases": len(n), "names": _names(n)}) for o, n in outcomes],
            schema=_OUTCOMES,
        ),
        "cost": MetadataValue.table([TableRecord({"measure": m, "value": str(v)}) for m, v in cost], schema=_COST),
        "duration_s": MetadataValue.float(round(report.duration_s, 3)),
        "warnings": MetadataValue.table(
            [
                TableRecord({"database": db, "kind": code_of(w), "about": subject_of(w) or "", "warning": str(w)})
                for db, w in report.warnings[:MAX_ROWS]
            ],
            schema=_WARNINGS,
        ),
    }
    if report.failed:
        metadata["errors"] = MetadataValue.table(
            [
                TableRecord({"database": db, "kind": "failed", "about": "", "warning": e})
                for db, e in list(report.failed.items())[:MAX_ROWS]
            ],
            schema=_WARNINGS,
        )
    return metadata
