"""The run's ExtractionReport (report.py) from real extractions on MariaDB: outcomes per database, what the patterns
left out, statements, phases, and typed warnings that keep their kind through the version record."""

from metadata_assets.extract import extract
from metadata_assets.report import (
    DATABASE_MISSING,
    OVER_PRIVILEGED,
    ROUTINES_HIDDEN,
    VIEW_BROKEN,
    ExtractionReport,
    code_of,
)
from metadata_assets.source_config import Pattern
from metadata_assets.storage.store import LocalStore


def test_report_counts_outcomes_filtered_tables_statements_and_typed_warnings(schema, tmp_path):
    a = schema.create(
        "a",
        "CREATE TABLE t (id INT PRIMARY KEY, c INT)",
        "CREATE TABLE tmp_x (id INT)",
        "CREATE TABLE u (id INT)",
        "CREATE VIEW v AS SELECT c FROM t",
        "ALTER TABLE t DROP COLUMN c",
    )
    b = schema.create("b", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    source = schema.source(table_pattern=Pattern(deny=[r".*\.tmp_.*"]))
    store = LocalStore(tmp_path)
    gone = schema.db("gone")

    first = ExtractionReport(source="src", kind="mysql")
    results = list(extract(source, [a, b, gone], store, report=first))
    assert [r.database for r in results] == [a, b, gone]
    assert (first.requested, first.written, first.unchanged, first.missing, first.failed) == (3, [a, b], [], [gone], {})
    assert (first.tables, first.views, first.tables_filtered) == (3, 1, 1)  # tmp_x left out by the pattern
    # SHOW GRANTS, VERSION(), SCHEMATA, TABLES, COLUMNS, KEY_COLUMN_USAGE, REFERENTIAL_CONSTRAINTS, STATISTICS,
    # CHECK_CONSTRAINTS, TRIGGERS, ROUTINES, one SHOW CREATE
    assert first.statements == 12
    assert first.phases_s["read"] > 0 and first.phases_s["connect"] > 0 and first.duration_s >= first.phases_s["read"]
    by_code = {(db, code_of(w), getattr(w, "subject", None)) for db, w in first.warnings}
    # routines not visible (no routine grant): once for the source (database ""), not per database
    assert by_code == {("", ROUTINES_HIDDEN, None), (a, VIEW_BROKEN, "v"), (gone, DATABASE_MISSING, gone)}
    assert first.warning_counts() == {ROUTINES_HIDDEN: 1, VIEW_BROKEN: 1, DATABASE_MISSING: 1}
    assert first.summary().startswith(
        "src: 3 databases: 2 written, 0 unchanged, 1 missing, 0 failed; 3 tables, "
        "1 views (1 left out by patterns); 12 statements; "
    )
    assert first.summary().endswith("; warnings: 1 routines_hidden, 1 view_broken, 1 database_missing")

    # unchanged: the files are kept and the view's warning comes from the version record with its kind and subject
    again = ExtractionReport(source="src", kind="mysql")
    list(extract(source, [a, b], store, report=again))
    assert (again.written, again.unchanged, again.proposals_written) == ([], [a, b], 0)
    (warning,) = [w for db, w in again.warnings if db]
    view_warning = next(w for db, w in first.warnings if db == a)
    assert (str(warning), warning.code, warning.subject) == (str(view_warning), VIEW_BROKEN, "v")


def test_an_account_that_can_read_data_is_an_over_privileged_finding(schema, tmp_path):
    db = schema.create("op", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    schema.server.execute(f"GRANT SELECT ON `{db}`.* TO '{schema.user}'@'%'")
    report = ExtractionReport(source="src", kind="mysql")
    list(extract(schema.source(), [db], LocalStore(tmp_path), report=report))
    assert [(d, code_of(w)) for d, w in report.warnings] == [("", ROUTINES_HIDDEN), (db, OVER_PRIVILEGED)]


def test_a_grant_on_one_database_flags_that_database_only(schema, tmp_path):
    a = schema.create("opa", "CREATE TABLE t (id INT PRIMARY KEY)")
    b = schema.create("opb", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    schema.server.execute(f"GRANT SELECT ON `{b}`.`t` TO '{schema.user}'@'%'")
    results = {r.database: r for r in extract(schema.source(), [a, b], LocalStore(tmp_path))}
    assert [code_of(w) for w in results[a].warnings] == []
    assert [code_of(w) for w in results[b].warnings] == [OVER_PRIVILEGED]


def test_the_routine_grant_silences_the_routine_warning_and_shows_routines(schema, tmp_path):
    db = schema.create(
        "rt",
        "CREATE TABLE t (id INT PRIMARY KEY)",
        "CREATE FUNCTION plus1(x INT) RETURNS INT DETERMINISTIC RETURN x + 1",
    )
    schema.grant()
    report = ExtractionReport(source="src", kind="mysql")
    (r,) = extract(schema.source(), [db], LocalStore(tmp_path / "a"), report=report)
    assert r.snapshot.routines == [] and [code_of(w) for _, w in report.warnings] == [ROUTINES_HIDDEN]
    (warning,) = [w for _, w in report.warnings]
    assert "GRANT SELECT ON mysql.proc TO" in warning  # MariaDB before 11.3: the one grant that shows routine text

    schema.server.execute(f"GRANT SELECT ON mysql.proc TO '{schema.user}'@'%'")  # routine definitions, no table data
    report = ExtractionReport(source="src", kind="mysql")
    (r,) = extract(schema.source(), [db], LocalStore(tmp_path / "b"), report=report)
    assert report.warnings == [] and [x.name for x in r.snapshot.routines] == ["plus1"]
    assert r.snapshot.routines[0].definition == "RETURN x + 1"

    report = ExtractionReport(source="src", kind="mysql")  # not asked for: not read, no warning
    (r,) = extract(schema.source(include_stored_procedures=False), [db], LocalStore(tmp_path / "c"), report=report)
    assert report.warnings == [] and r.snapshot.routines == []
