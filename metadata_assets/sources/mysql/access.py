"""`check-access` on MySQL/MariaDB: what the catalog account may do in each database, proven by probes.

Per database, over one connection (the reader's `connect`: connect and query timeouts bounded):
- visible: it is listed in information_schema.SCHEMATA (an account with no privilege on a database sees nothing);
- data: `SELECT 1 FROM <db>.<one table> LIMIT 0` must fail with error 1142 (SELECT command denied). No row is read
  even when it succeeds. The table probed is one that information_schema.TABLE_PRIVILEGES / COLUMN_PRIVILEGES list
  with SELECT for the account when there is one (a table-level grant), else the first base table, else the first
  view; a database-level or global SELECT shows on any table. A database without tables cannot be probed;
- views: `SHOW CREATE TABLE` of one view returns its SQL (needs SHOW VIEW; MySQL 8 also wants SELECT on the view);
- routines: how many rows information_schema.ROUTINES shows for the database and whether ROUTINE_DEFINITION is
  non-null. On MariaDB 10.11 an account with only REFERENCES, SHOW VIEW sees no routine at all; `GRANT SELECT ON
  mysql.proc` shows them with their definitions (EXECUTE on the database shows them without). The grant that adds
  routine text depends on the server (`routine_grant_hint`, from VERSION()).
"""

from __future__ import annotations

from typing import Optional, Sequence

import pymysql

from metadata_assets.access import AccessReport, DatabaseAccess
from metadata_assets.sources.mysql.config import MySQLSource
from metadata_assets.sources.mysql.reader import (
    ER_TABLEACCESS_DENIED,
    MySQLReader,
    ServerVersion,
    connect,
    describe,
    quote_ident,
)

ER_COLUMNACCESS_DENIED = 1143  # ... for column
REFUSED = (ER_TABLEACCESS_DENIED, ER_COLUMNACCESS_DENIED)
ER_LOCK_WAIT_TIMEOUT = 1205
# A probe the server allows waits at most this long for the table's metadata lock (a running ALTER, LOCK TABLES);
# a refused probe never waits: the server checks privileges before it opens the table (MariaDB 10.11: verified).
# So a probe that timed out waiting for a lock was allowed: the account can read the table.
PROBE_LOCK_WAIT_S = 10


def routine_grant_hint(v: ServerVersion, user: str) -> str:
    """The optional grant that would show routine definitions to the account, on this server (from VERSION()):
    reader.ServerVersion's. MariaDB 10.11: verified (tests/test_check_access.py); the others from the manuals."""
    grant = v.routine_grant(user, ["<db>"])
    if grant:
        return " ".join(grant)
    return "none short of global SELECT (MySQL 8.0 before 8.0.20: only a routine's definer sees its text)"


def connection_tls(p: MySQLReader, source: MySQLSource) -> str:
    """Whether this connection is encrypted (the session's Ssl_version and Ssl_cipher: no privilege needed), and
    what the source's `tls:` checks."""
    status = {
        r["Variable_name"]: r["Value"]
        for r in p.query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
    }
    if status.get("Ssl_cipher"):
        return f"TLS ({status.get('Ssl_version') or '?'}, {status['Ssl_cipher']}); {source.tls.describe()}"
    hint = (
        "; tls.mode: required (with tls.ca) refuses a server without TLS"
        if source.tls.effective_mode != "required"
        else ""
    )
    return f"NOT encrypted: catalog queries and results travel in the clear; {source.tls.describe()}{hint}"


def check_access(source: MySQLSource, databases: Optional[Sequence[str]] = None) -> AccessReport:
    conn = connect(source)  # SourceUnavailable when the server cannot be reached or refuses the login
    label = describe(source)
    try:
        p = MySQLReader(conn, label)  # its query(): a lost connection raises ConnectionLost, a refusal passes
        version = p.version.text
        p.query(f"SET SESSION lock_wait_timeout = {int(PROBE_LOCK_WAIT_S)}")
        visible = {r["name"] for r in p.query("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA")}
        names = list(databases) if databases else sorted(d for d in visible if source.database_allowed(d))
        user = f"'{source.user}'@'%'"
        report = AccessReport(
            source=source.name,
            kind=source.type,
            account=f"{source.user}@{source.host}:{source.port}",
            server_version=version,
            routine_grant_hint=routine_grant_hint(p.version, user),
        )
        report.account_notes += [str(w) for w in p.privilege_warnings(names)]
        report.tls = connection_tls(p, source)
        mysql8 = p.version.show_create_view_needs_select
        for name in names:
            report.databases.append(_database(p, source, name, name in visible, mysql8))
        return report
    finally:
        conn.close()


def _database(p: MySQLReader, source: MySQLSource, name: str, visible: bool, mysql8: bool) -> DatabaseAccess:
    row = DatabaseAccess(database=name, visible=visible)
    if not source.database_allowed(name):
        row.notes.append("not allowed by the source's patterns")
    if not visible:
        row.notes.append("not visible to the account (no privilege on it, or it does not exist)")
        return row
    tables = p.query(
        "SELECT TABLE_NAME AS name, TABLE_TYPE AS type FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
        (name,),
    )
    granted = [
        r["name"]
        for r in p.query(
            "SELECT TABLE_NAME AS name FROM information_schema.TABLE_PRIVILEGES WHERE TABLE_SCHEMA = %s "
            "AND PRIVILEGE_TYPE = 'SELECT' UNION SELECT TABLE_NAME FROM information_schema.COLUMN_PRIVILEGES "
            "WHERE TABLE_SCHEMA = %s AND PRIVILEGE_TYPE = 'SELECT'",
            (name, name),
        )
    ]
    base = [t["name"] for t in tables if t["type"] != "VIEW"]
    views = [t["name"] for t in tables if t["type"] == "VIEW"]
    if granted:
        row.notes.append(f"SELECT granted on {len(granted)} table(s): " + ", ".join(sorted(granted)[:5]))
    target = (granted or base or views or [None])[0]
    if target is None:
        row.probe = "no table or view: the SELECT probe cannot run here"
        row.notes.append("no table: SELECT probe not possible")
    else:
        row.probed = target
        sql = f"SELECT 1 FROM {quote_ident(name)}.{quote_ident(target)} LIMIT 0"
        try:
            p.query(sql)
            row.data_readable, row.probe = True, f"{sql}: succeeded (the account can read data)"
        except pymysql.err.MySQLError as e:
            code, msg = (e.args[0], e.args[-1]) if len(e.args) > 1 else (None, str(e))
            if code in REFUSED:
                row.data_readable, row.probe = False, f"{sql}: refused, error {code}"
            elif code == ER_LOCK_WAIT_TIMEOUT:
                row.data_readable = True
                row.probe = (
                    f"{sql}: allowed (it waited {PROBE_LOCK_WAIT_S}s for a lock, error {code}; a refused "
                    "probe never waits)"
                )
            else:
                row.probe = f"{sql}: failed with error {code} ({msg}), not a refusal: no proof either way"
                row.notes.append(f"probe inconclusive (error {code})")
    if views:
        try:
            shown = p.query(f"SHOW CREATE TABLE {quote_ident(name)}.{quote_ident(views[0])}")
            sql_text = (shown[0].get("Create View") or "") if shown else ""
            row.views_have_sql = bool(sql_text.strip())
        except pymysql.err.MySQLError as e:
            row.views_have_sql = False
            row.notes.append(
                f"SHOW CREATE TABLE of view {views[0]!r} failed: error {e.args[0]}"
                + (" (MySQL 8 wants SELECT on the view as well as SHOW VIEW)" if mysql8 else " (SHOW VIEW missing?)")
            )
    (r,) = p.query(
        "SELECT COUNT(*) AS n, COALESCE(SUM(ROUTINE_DEFINITION IS NOT NULL), 0) AS with_text "
        "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
        (name,),
    )
    row.routines_visible = int(r["n"])
    if row.routines_visible:
        row.routine_text_visible = int(r["with_text"]) == row.routines_visible
        if 0 < int(r["with_text"]) < row.routines_visible:
            row.notes.append(f"routine text shown for {int(r['with_text'])} of {row.routines_visible}")
    return row
