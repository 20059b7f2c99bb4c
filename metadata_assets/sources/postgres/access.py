"""`check-access` on PostgreSQL: what the catalog role may do in each database, proven by probes.

Per database, over a connection of its own (the reader's `connect`: connect_timeout, statement_timeout, read-only
transaction, empty search_path):
- visible: the role may CONNECT (a database it may not is reported with the server's refusal);
- data: `SELECT 1 FROM <schema>.<one relation> LIMIT 0` must fail with SQLSTATE 42501 (insufficient_privilege). No
  row is read even when it succeeds. The relation probed is one the role holds SELECT on (has_any_column_privilege)
  when there is one, preferring one whose schema it has USAGE on, else the first table of a schema it has USAGE on,
  else the first table or view. The probe waits at most PROBE_LOCK_WAIT_MS for a lock (PostgreSQL locks the relation
  before it checks privileges). A database without tables or views cannot be probed;
- views: pg_get_viewdef() of one view gives SQL (pg_catalog is readable by every role that can connect);
- routines: the functions and procedures the reader catalogues (pg_proc outside the system schemas, extensions'
  own left out), and whether their source (prosrc) shows: it always does, with CONNECT alone.
The role's own attributes (superuser, pg_read_all_data) go in the account notes, as extraction reports them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import psycopg2
import psycopg2.errors

from metadata_assets.access import AccessReport, DatabaseAccess
from metadata_assets.sources.base import ConnectionLost, SourceUnavailable
from metadata_assets.sources.postgres.config import PostgresSource
from metadata_assets.sources.postgres.reader import (
    NOT_SYSTEM,
    ROUTINES_WHERE,
    DatabaseGone,
    DatabaseRefused,
    PostgresReader,
    connect,
    describe,
    error_message,
    is_connection_error,
    quote_ident,
)

INSUFFICIENT_PRIVILEGE = "42501"
PROBE_LOCK_WAIT_MS = 10_000

_RELATIONS = (
    "SELECT n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS relkind, "
    "pg_catalog.has_any_column_privilege(c.oid, 'SELECT') AS granted, "
    "pg_catalog.has_schema_privilege(n.oid, 'USAGE') AS usage "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    f"WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {NOT_SYSTEM}"
)


class _Probe:
    def __init__(self, conn, label: str):
        self.conn, self.label = conn, label

    def rows(self, sql: str, args: Sequence = ()) -> list[dict]:
        """Rows of one statement in the connection's transaction; a failure rolls it back and passes on
        (ConnectionLost for a lost connection or a statement past statement_timeout)."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, tuple(args) if args else None)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, r)) for r in cur.fetchall()]
        except psycopg2.Error as e:
            try:
                self.conn.rollback()
            except psycopg2.Error:
                pass
            if is_connection_error(e) and not isinstance(e, psycopg2.errors.LockNotAvailable):
                raise ConnectionLost(f"{self.label}: connection lost ({error_message(e)})") from None
            raise


def connection_tls(p: "_Probe", source: PostgresSource) -> str:
    """Whether this connection is encrypted (pg_stat_ssl of the session's own backend), and what sslmode checks."""
    rows = p.rows("SELECT ssl, version, cipher FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()")
    if rows and rows[0]["ssl"]:
        return f"TLS ({rows[0]['version']}, {rows[0]['cipher']}); {source.tls_description()}"
    hint = (
        "; sslmode verify-full (with sslrootcert) refuses a server without TLS or with a wrong certificate"
        if source.sslmode not in ("verify-ca", "verify-full")
        else ""
    )
    return f"NOT encrypted: catalog queries and results travel in the clear; {source.tls_description()}{hint}"


def check_access(source: PostgresSource, databases: Optional[Sequence[str]] = None) -> AccessReport:
    try:
        conn = connect(source)  # SourceUnavailable when the server cannot be reached or refuses the login
    except (DatabaseGone, DatabaseRefused) as e:  # the listing needs the initial database
        raise SourceUnavailable(f"{describe(source)}: initial database {source.initial_database!r}: {e}") from None
    try:
        reader = PostgresReader(conn, describe(source))
        version = _Probe(conn, describe(source)).rows("SELECT pg_catalog.version() AS v")[0]["v"]
        tls = connection_tls(_Probe(conn, describe(source)), source)
        conn.rollback()
        listed = reader.list_databases(source)
        role_notes = [str(w) for w in reader.role_warnings()]
    finally:
        conn.close()
    report = AccessReport(
        source=source.name,
        kind=source.type,
        account=f"{source.user}@{source.host}:{source.port}",
        server_version=version.split(" on ")[0],
        account_notes=role_notes,
        tls=tls,
    )
    for name in list(databases) if databases else listed:
        report.databases.append(_database(source, name))
    return report


def _database(source: PostgresSource, name: str) -> DatabaseAccess:
    row = DatabaseAccess(database=name, visible=False)
    if not source.database_allowed(name):
        row.notes.append("not allowed by the source's patterns")
    try:
        conn = connect(source, name)
    except DatabaseGone:
        row.notes.append("does not exist")
        return row
    except DatabaseRefused as e:
        row.notes.append(f"refused: {e}")
        return row
    row.visible = True
    label = f"{describe(source)}, database {name!r}"
    try:
        p = _Probe(conn, label)
        (summary,) = p.rows(
            "SELECT count(*) AS n, count(*) FILTER (WHERE granted) AS granted, "
            "count(*) FILTER (WHERE granted AND usage) AS reachable, "
            "(array_agg(schema || '.' || name ORDER BY schema, name) FILTER (WHERE granted))[1:5] AS shown "
            f"FROM ({_RELATIONS}) r"
        )
        if summary["granted"]:
            row.notes.append(
                f"SELECT granted on {summary['granted']} relation(s): "
                + ", ".join(summary["shown"])
                + ("" if summary["reachable"] else " (no USAGE on their schema)")
            )
        targets = p.rows(
            f"SELECT schema, name, relkind FROM ({_RELATIONS}) r ORDER BY granted AND usage DESC, "
            "granted DESC, usage DESC, relkind IN ('v', 'm'), schema, name LIMIT 1"
        )
        if not targets:
            row.probe = "no table or view: the SELECT probe cannot run here"
            row.notes.append("no table: SELECT probe not possible")
        else:
            t = targets[0]
            row.probed = f"{t['schema']}.{t['name']}"
            sql = f"SELECT 1 FROM {quote_ident(t['schema'])}.{quote_ident(t['name'])} LIMIT 0"
            try:
                p.rows("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (str(PROBE_LOCK_WAIT_MS),))
                p.rows(sql)
                row.data_readable, row.probe = True, f"{sql}: succeeded (the role can read data)"
            except psycopg2.Error as e:
                if e.pgcode == INSUFFICIENT_PRIVILEGE:
                    row.data_readable = False
                    row.probe = f"{sql}: refused, SQLSTATE {e.pgcode} ({error_message(e).removeprefix('ERROR:  ')})"
                else:
                    row.probe = f"{sql}: failed with SQLSTATE {e.pgcode} ({error_message(e)}), not a refusal"
                    row.notes.append(f"probe inconclusive (SQLSTATE {e.pgcode})")
            conn.rollback()
        views = p.rows(
            "SELECT pg_catalog.pg_get_viewdef(c.oid) AS sql FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('v', 'm') AND {NOT_SYSTEM} ORDER BY n.nspname, c.relname LIMIT 1"
        )
        if views:
            row.views_have_sql = bool((views[0]["sql"] or "").strip())
        (r,) = p.rows(
            "SELECT count(*) AS n, count(*) FILTER (WHERE p.prosrc IS NOT NULL) AS with_text "
            "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
            f"WHERE {ROUTINES_WHERE} AND {NOT_SYSTEM}"
        )  # those the reader catalogues
        row.routines_visible = int(r["n"])
        if row.routines_visible:
            row.routine_text_visible = int(r["with_text"]) == row.routines_visible
        conn.rollback()
    finally:
        conn.close()
    return row
