"""MySQL 8 / Aurora MySQL 3 / Cloud SQL for MySQL branches of the reader, on rows written from the MySQL 8.0 manual
(tests/mysql8_manual_rows.py; no MySQL 8 server runs here).

No MySQL 8 server can run here; each version-dependent branch is selected by an explicit version check
(reader.ServerVersion) and exercised with the rows and error codes MySQL 8.0 documents.
"""

import pytest
from mysql8_manual_rows import DB, USER, ManualRowsConnection, MySQL8

from metadata_assets.report import ROUTINES_HIDDEN, VIEW_UNREADABLE, code_of
from metadata_assets.sources.mysql.config import MySQLSource
from metadata_assets.sources.mysql.emitter import MySQLUrnRules as UrnRules
from metadata_assets.sources.mysql.reader import MySQLReader, ServerVersion, grant_statements
from metadata_assets.sources.sql_emitter import database_mcps

SOURCE = MySQLSource(name="aurora", type="mysql", host="aurora.example", user=USER, password_env="UNUSED")


def read(server: MySQL8, source: MySQLSource = SOURCE):
    reader = MySQLReader(ManualRowsConnection(server), "MySQL 8 rows from the manual")
    (db,) = reader.read([DB], source)
    return reader, db


def aspects(db) -> dict:
    out: dict = {}
    for m in database_mcps(db, UrnRules()):
        out.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    return out


def test_a_view_without_select_gets_table_lineage_from_view_table_usage():
    server = MySQL8("8.0.36")
    reader, db = read(server)
    (view,) = [t for t in db.tables if t.is_view]
    assert view.view_definition is None and view.view_upstreams == ((DB, "orders"),)
    (warning,) = [w for w in db.warnings if code_of(w) == VIEW_UNREADABLE]
    assert "refuses SHOW CREATE VIEW without SELECT on the view (error 1142)" in warning
    assert "table-level lineage from information_schema.VIEW_TABLE_USAGE" in warning
    assert f"GRANT SELECT ON `{DB}`.`recent_orders` would add its SQL and column lineage" in warning
    assert "lets the account read the view's rows" in warning
    assert view.comment == ""  # MySQL's 'VIEW' placeholder is not a comment

    got = aspects(db)
    rules = UrnRules()
    lineage = got[rules.dataset(DB, "recent_orders")]["upstreamLineage"]
    assert [u.dataset for u in lineage.upstreams] == [rules.dataset(DB, "orders")]
    assert lineage.fineGrainedLineages is None  # no SQL: no column lineage
    assert got[rules.dataset(DB, "recent_orders")]["viewProperties"].viewLogic == ""


def test_mysql8_tables_indexes_checks_profile_and_types():
    server = MySQL8("8.0.36")
    _, db = read(server)
    orders = next(t for t in db.tables if t.name == "orders")
    assert db.comment == "" and db.collation == "utf8mb4_0900_ai_ci"
    assert [(i.name, i.columns, i.unique) for i in orders.indexes] == [("by_total", ("total",), False)]
    assert [(c.name, c.clause) for c in orders.checks] == [("orders_chk_1", "(`total` >= 0)")]
    assert any("JOIN information_schema.CHECK_CONSTRAINTS" in s for s in server.seen)

    got = aspects(db)[UrnRules().dataset(DB, "orders")]
    profile = got["datasetProfile"]
    assert (profile.rowCount, profile.columnCount, profile.sizeInBytes) == (1200, 3, 81920 + 16384)
    props = got["datasetProperties"].customProperties
    assert props["check_constraints"] == "orders_chk_1: (`total` >= 0)"
    # information_schema_stats_expiry: the figures may be a day old, and the profile's dataset says so
    assert "caches these for up to 86400 s (information_schema_stats_expiry)" in props["statistics"]
    types = {f.fieldPath: type(f.type.type).__name__ for f in got["schemaMetadata"].fields}
    assert types["paid"] == "BytesTypeClass"  # BIT(1) as the built-in types it


def test_statistics_not_cached_when_expiry_is_zero():
    _, db = read(MySQL8("8.0.36", stats_expiry=0))
    assert "caches" not in db.statistics_note and "estimate" in db.statistics_note


@pytest.mark.parametrize("version, language", [("8.0.36", "SQL"), ("8.0.25", "SQL")])
def test_routines_with_show_routine(version, language):
    grant = f"GRANT SHOW_ROUTINE ON *.* TO `{USER}`@`%`"
    server = MySQL8(version, grants=(grant,))
    reader, db = read(server)
    assert [(r.name, r.routine_type, r.language) for r in db.routines] == [("close_day", "PROCEDURE", language)]
    assert reader.routine_warnings(SOURCE, [DB]) == []
    jobs = [u for u in aspects(db) if u.startswith("urn:li:dataJob:")]
    assert jobs == [f"urn:li:dataJob:(urn:li:dataFlow:(mysql,{DB}.stored_procedures,PROD),close_day)"]


def test_routines_hidden_warn_once_with_the_grant_this_server_offers():
    reader, db = read(MySQL8("8.0.36"))
    assert db.routines == []
    (warning,) = reader.routine_warnings(SOURCE, [DB])
    assert code_of(warning) == ROUTINES_HIDDEN and f"GRANT SHOW_ROUTINE ON *.* TO '{USER}'@'%'" in warning

    reader, _ = read(MySQL8("8.0.19"))  # before SHOW_ROUTINE existed
    (warning,) = reader.routine_warnings(SOURCE, [DB])
    assert "no grant for routine text narrower than the definer's own" in warning


def test_before_8_0_13_a_view_without_select_has_no_lineage_and_says_so():
    server = MySQL8("8.0.12")
    _, db = read(server)
    (view,) = [t for t in db.tables if t.is_view]
    assert view.view_upstreams == () and view.checks == []
    (warning,) = [w for w in db.warnings if code_of(w) == VIEW_UNREADABLE]
    assert "no SQL and no lineage (VIEW_TABLE_USAGE needs MySQL 8.0.13+)" in warning
    assert not any("VIEW_TABLE_USAGE" in s or "TABLE_CONSTRAINTS" in s for s in server.seen)


def test_server_versions_and_their_grants():
    mysql, aurora3, old_maria, maria = (
        ServerVersion.parse(v) for v in ("8.0.36", "8.0.28-aurora", "10.11.19-MariaDB-0+deb12u1", "11.4.2-MariaDB")
    )
    assert not mysql.mariadb and mysql.show_create_view_needs_select and mysql.has_view_table_usage
    assert aurora3.number == (8, 0, 28) and not aurora3.has_external_language
    assert old_maria.mariadb and not old_maria.show_create_view_needs_select and old_maria.has_check_constraints
    assert old_maria.routine_grant("'u'@'%'", ["d"]) == ["GRANT SELECT ON mysql.proc TO 'u'@'%';"]
    assert maria.routine_grant("'u'@'%'", ["d"]) == ["GRANT SHOW CREATE ROUTINE ON `d`.* TO 'u'@'%';"]
    assert mysql.routine_grant_held(["GRANT SHOW_ROUTINE ON *.* TO `u`@`%`"])
    assert old_maria.routine_grant_held(["GRANT SELECT ON `mysql`.`proc` TO `u`@`%`"])
    assert not old_maria.routine_grant_held(["GRANT REFERENCES, SHOW VIEW ON `d`.* TO `u`@`%`"])

    lines = grant_statements(SOURCE, ["shop"], mysql)
    assert lines[-1] == f"-- GRANT SHOW_ROUTINE ON *.* TO '{USER}'@'%';"
    assert any(
        line.startswith("--   MariaDB before 11.3: GRANT SELECT ON mysql.proc")
        for line in grant_statements(SOURCE, ["shop"])
    )
    assert not any(
        "ROUTINE" in line or "proc" in line
        for line in grant_statements(SOURCE.model_copy(update={"include_stored_procedures": False}), ["shop"])
    )


def test_fingerprints_without_schema_comments():
    reader = MySQLReader(ManualRowsConnection(MySQL8("8.0.36")), "MySQL 8 rows from the manual")
    fingerprints = reader.fingerprints(SOURCE)
    assert set(fingerprints) == {DB}
    assert fingerprints[DB] == "c:4:44|i:1:7|k:1:7|p:0:55|s:1:11|t:2:22"
    no_routines = reader.fingerprints(SOURCE.model_copy(update={"include_stored_procedures": False}))
    assert "p:" not in no_routines[DB]
