"""Read MySQL/MariaDB schemas from information_schema only, in bulk.

A fixed number of queries per batch of databases (schemata, tables, columns, keys, foreign-key rules, indexes, check
constraints, triggers, routines; each a UNION ALL of per-database branches), plus one `SHOW CREATE TABLE` per view:
with `REFERENCES, SHOW VIEW` grants, information_schema.VIEWS hides view SQL but SHOW CREATE shows it (MariaDB).
MySQL 8 refuses SHOW CREATE VIEW without SELECT on the view (error 1142): there a view's tables come from
information_schema.VIEW_TABLE_USAGE (8.0.13+) instead, table-level lineage without SQL.
Every selected column is aliased (MySQL 8 upper-cases labels otherwise); every value is a bound parameter.
What each server version offers is decided by explicit version checks (`ServerVersion`), never by trying.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, Optional, Sequence

import pymysql
import pymysql.cursors

from metadata_assets.catalog import CheckConstraint, Column, Database, ForeignKey, Index, Routine, Table, Trigger
from metadata_assets.report import OVER_PRIVILEGED, ROUTINES_HIDDEN, VIEW_BROKEN, VIEW_UNREADABLE, Finding, subject_of
from metadata_assets.sources.base import ConnectionLost, ReadStats, SourceQueryFailed, SourceUnavailable
from metadata_assets.sources.mysql.config import MySQLSource

log = logging.getLogger(__name__)


_IDENT = r"(?:`(?:[^`]|``)*`|[^.\s`]+)"
# GRANT <privileges> ON [TABLE|PROCEDURE|...] <db>.<object> TO ...   (group 1: privileges, group 2: database part)
_GRANT_ON = re.compile(rf"GRANT (.+?) ON (?:[A-Z]+ )?({_IDENT})\.({_IDENT}) TO ")


# Client errors (2xxx) that mean the connection is gone, and server errors that end the statement for reasons
# outside the object being read: shutdown (1053), connection or query killed (1927, 1317), statement time
# limits (MariaDB 1969, MySQL 3024).
_CONNECTION_ERRORS = frozenset({2003, 2006, 2013, 2055, 1053, 1927, 1317, 1969, 3024})


def is_connection_error(e: BaseException) -> bool:
    if isinstance(e, pymysql.err.InterfaceError):  # the connection object is already closed
        return True
    return isinstance(e, pymysql.err.OperationalError) and bool(e.args) and e.args[0] in _CONNECTION_ERRORS


# MySQL's "access denied for table" (SHOW CREATE VIEW on MySQL 8 without SELECT on the view)
ER_TABLEACCESS_DENIED = 1142


@dataclass(frozen=True)
class ServerVersion:
    """What VERSION() says, and what that server offers a metadata-only account (checked by number, never by trying).
    Sources: MySQL 8.0 and MariaDB manuals; MariaDB 10.11 verified here (tests), MySQL 8 on rows written from
    its manual only (tests/mysql8_manual_rows.py); MySQL before 8.0 is not supported (no test)."""

    mariadb: bool
    number: tuple[int, int, int]
    text: str = ""

    @classmethod
    def parse(cls, version: str) -> "ServerVersion":
        m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
        number = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
        return cls(mariadb="mariadb" in version.lower(), number=number, text=version)

    @property
    def has_check_constraints(self) -> bool:  # information_schema.CHECK_CONSTRAINTS
        return self.number >= ((10, 2, 1) if self.mariadb else (8, 0, 16))

    @property
    def has_view_table_usage(self) -> bool:  # information_schema.VIEW_TABLE_USAGE
        return not self.mariadb and self.number >= (8, 0, 13)

    @property
    def show_create_view_needs_select(self) -> bool:
        """MySQL 8's manual: SHOW CREATE VIEW needs SHOW VIEW *and* SELECT on the view. MariaDB: SHOW VIEW alone."""
        return not self.mariadb and self.number >= (8, 0, 0)

    @property
    def has_external_language(self) -> bool:  # ROUTINES.EXTERNAL_LANGUAGE (MySQL 8.0.32+)
        return not self.mariadb and self.number >= (8, 0, 32)

    def routine_grant(self, user: str, databases: Sequence[str]) -> list[str]:
        """The narrowest grant that shows routine definitions to the account, on this server."""
        if not self.mariadb and self.number >= (8, 0, 20):
            return [f"GRANT SHOW_ROUTINE ON *.* TO {user};"]
        if self.mariadb and self.number >= (11, 3, 0):
            return [f"GRANT SHOW CREATE ROUTINE ON {quote_ident(db)}.* TO {user};" for db in databases]
        if self.mariadb or self.number < (8, 0, 0):
            # routine definitions only (mysql.proc holds no table data; MariaDB before 11.3)
            return [f"GRANT SELECT ON mysql.proc TO {user};"]
        return []  # MySQL 8.0 before 8.0.20 (no mysql.proc): only the routine's definer or global SELECT sees it

    def routine_grant_held(self, grants: Sequence[str]) -> bool:
        """Whether SHOW GRANTS lists a grant that lets the account see routine text."""
        for g in grants:
            if re.search(r"\bSHOW_ROUTINE\b|\bSHOW CREATE ROUTINE\b", g):
                return True
            m = _GRANT_ON.match(g)
            if (
                m
                and re.search(r"\bSELECT\b|\bALL PRIVILEGES\b", m.group(1))
                and (m.group(2) == "*" or m.group(2).strip("`").lower() == "mysql")
            ):
                return True
        return False


def describe(source: MySQLSource) -> str:
    return f"source {source.name!r} ({source.user}@{source.host}:{source.port})"


def tls_args(source: MySQLSource) -> dict:
    """pymysql's TLS arguments for `source.tls`. pymysql 1.2 (pinned) with none of them is the mysql client's
    PREFERRED mode: TLS when the server offers it, its certificate unchecked. With an SSLContext it requires TLS and
    refuses a server that does not offer it before the login is sent (CR_SSL_CONNECTION_ERROR); the context checks
    the certificate against `ca` and, with verify_identity, the host name against `host`."""
    tls = source.tls
    mode = tls.effective_mode
    if mode == "disabled":
        return {"ssl_disabled": True}
    if mode == "preferred":
        return {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca:
        ctx.check_hostname = tls.checks_host_name
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for what, load in (
        ("ca", lambda: tls.ca and ctx.load_verify_locations(cafile=tls.ca)),
        ("cert", lambda: tls.cert and ctx.load_cert_chain(tls.cert, tls.key)),
    ):
        try:
            load()
        except (OSError, ssl.SSLError) as e:
            path = tls.ca if what == "ca" else f"{tls.cert}{f' / {tls.key}' if tls.key else ''}"
            raise SourceUnavailable(
                f"{describe(source)}: field tls.{what}: cannot load {path}: {getattr(e, 'strerror', None) or e}"
            ) from None
    return {"ssl": ctx}


class Deadline:
    """One bound on the wall-clock time of a connection's whole use, the connect included: when it passes, the socket
    is shut down, so whatever waits on it (a step of the login handshake, a statement, rows arriving slowly) ends at
    once with a lost connection. pymysql's timeouts bound each socket operation, never their sum. close() when done."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._conn: Optional[pymysql.connections.Connection] = None
        self._done = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="mysql-deadline").start()

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def watch(self, conn: pymysql.connections.Connection) -> None:
        self._conn = conn

    def _watch(self) -> None:
        if self._done.wait(self.left()):
            return
        self.passed = True
        while not self._done.is_set():  # until close(): the socket may appear only once a TCP connect returns
            sock = getattr(self._conn, "_sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._done.wait(0.05)

    def close(self) -> None:
        self._done.set()


def connect(
    source: MySQLSource,
    database: Optional[str] = None,
    query_timeout_s: Optional[float] = None,
    deadline: Optional[Deadline] = None,
) -> pymysql.connections.Connection:
    """A connection whose every wait is bounded: the TCP connect and each read or write of the handshake by
    `connect_timeout_s` (pymysql applies its read timeout to the handshake: a peer that accepts TCP but never
    speaks MySQL would otherwise hold it for the read timeout), then each query by `query_timeout_s`. With a
    `deadline`, the connect and everything after it end when it passes, whatever each wait's own bound."""
    timeout = source.connect_timeout_s
    if deadline is not None:
        timeout = max(0.1, min(timeout, deadline.left()))
    tls = tls_args(source)
    try:
        conn = pymysql.connect(
            host=source.host,
            port=source.port,
            user=source.user,
            password=source.password(),
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            cursorclass=pymysql.cursors.DictCursor,
            defer_connect=True,
            **tls,
        )
        if deadline is not None:
            deadline.watch(conn)
        conn.connect()
    except pymysql.err.MySQLError as e:
        text = str(e.args[-1] if e.args else e)
        if re.search(r"SSL|TLS|certificate", text, re.I):
            text += f" [{source.tls.describe()}]"
        raise SourceUnavailable(f"{describe(source)}: {text}") from None
    # pymysql reads these per socket operation (pinned 1.2.x): from here on a query may take query_timeout_s
    conn._read_timeout = conn._write_timeout = query_timeout_s or source.query_timeout_s
    return conn


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _ts(v) -> Optional[str]:
    return v.isoformat(sep=" ") if isinstance(v, datetime) else (str(v) if v is not None else None)


# The key parts of a fingerprint: {where}/{where_r} filter them to one database per UNION ALL branch.
_KEY_PARTS_SQL = (
    "SELECT TABLE_SCHEMA AS db, 'k' AS part, COUNT(*) AS n, SUM(CRC32(CONCAT_WS('|', CONSTRAINT_NAME, "
    "TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, IFNULL(REFERENCED_TABLE_SCHEMA, ''), "
    "IFNULL(REFERENCED_TABLE_NAME, ''), IFNULL(REFERENCED_COLUMN_NAME, '')))) AS h "
    "FROM information_schema.KEY_COLUMN_USAGE {where} GROUP BY TABLE_SCHEMA "
    "UNION ALL SELECT CONSTRAINT_SCHEMA, 'r', COUNT(*), SUM(CRC32(CONCAT_WS('|', CONSTRAINT_NAME, "
    "UPDATE_RULE, DELETE_RULE))) FROM information_schema.REFERENTIAL_CONSTRAINTS {where_r} "
    "GROUP BY CONSTRAINT_SCHEMA "
    # indexes (never CARDINALITY, which moves with the data)
    "UNION ALL SELECT TABLE_SCHEMA, 'i', COUNT(*), SUM(CRC32(CONCAT_WS('|', TABLE_NAME, INDEX_NAME, NON_UNIQUE, "
    "SEQ_IN_INDEX, IFNULL(COLUMN_NAME, ''), IFNULL(SUB_PART, ''), INDEX_TYPE, INDEX_COMMENT))) "
    "FROM information_schema.STATISTICS {where} GROUP BY TABLE_SCHEMA"
)
# Routines, when catalogued: definition and characteristics (visible only with a routine grant)
_ROUTINE_PART_SQL = (
    " UNION ALL SELECT ROUTINE_SCHEMA, 'p', COUNT(*), SUM(CRC32(CONCAT_WS('|', ROUTINE_NAME, ROUTINE_TYPE, "
    "IFNULL(ROUTINE_DEFINITION, ''), ROUTINE_COMMENT, DTD_IDENTIFIER, IS_DETERMINISTIC, SQL_DATA_ACCESS, "
    "SECURITY_TYPE))) FROM information_schema.ROUTINES GROUP BY ROUTINE_SCHEMA"
)


class MySQLReader:
    """Bulk information_schema reads over one connection."""

    def __init__(
        self, conn: pymysql.connections.Connection, label: str = "MySQL server", stats: Optional[ReadStats] = None
    ):
        self.conn = conn
        self.label = label  # names the source in errors (sources.mysql.describe)
        self.stats = stats if stats is not None else ReadStats()
        self._version: Optional[ServerVersion] = None
        self._grants: Optional[list[str]] = None
        self._stats_expiry: Optional[int] = None

    def query(self, sql: str, args: Sequence = ()) -> list[dict]:
        """Rows of one statement. A lost connection raises ConnectionLost; other server errors pass unchanged
        (per-object statements such as SHOW CREATE and check-access's probes catch them; bulk statements go
        through _bulk)."""
        self.stats.statements += 1
        try:
            with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
                # no args: no %-formatting at all, so a '%' in a quoted name (SHOW CREATE TABLE `100%`.v) stays
                cur.execute(sql, tuple(args) if args else None)
                return list(cur.fetchall())
        except pymysql.err.MySQLError as e:
            if is_connection_error(e):
                raise ConnectionLost(f"{self.label}: connection lost ({e.args[-1] if e.args else e})") from None
            raise

    def _bulk(self, sql: str, args: Sequence = ()) -> list[dict]:
        """A statement that reads a whole batch: any failure is the project's own error naming the source."""
        try:
            return self.query(sql, args)
        except pymysql.err.MySQLError as e:
            raise SourceQueryFailed(
                f"{self.label}: information_schema query failed: {e.args[-1] if e.args else e}"
            ) from None

    def _per_database(self, branch: str, dbs: Sequence[str]) -> list[dict]:
        """One statement for the batch: a UNION ALL of one `... = %s` branch per database.

        MariaDB answers `TABLE_SCHEMA = 'x'` on information_schema by opening that database's tables only, but
        `TABLE_SCHEMA IN (...)` (and a join between two information_schema tables) by scanning every database on
        the server: with 3,000 databases in batches of 200 that made each batch as slow as reading everything.
        """
        return self._bulk(" UNION ALL ".join([branch] * len(dbs)), dbs)

    @property
    def version(self) -> ServerVersion:
        if self._version is None:
            self._version = ServerVersion.parse(self._bulk("SELECT VERSION() AS v")[0]["v"])
        return self._version

    @property
    def is_mariadb(self) -> bool:
        return self.version.mariadb

    def grants(self) -> list[str]:
        """SHOW GRANTS of the account, read once per reader."""
        if self._grants is None:
            self._grants = [next(iter(row.values())) for row in self._bulk("SHOW GRANTS")]
        return self._grants

    def list_databases(self, source: MySQLSource) -> list[str]:
        """Databases that exist, are visible to the account and match the source's patterns, sorted."""
        rows = self._bulk("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA")
        return sorted(r["name"] for r in rows if source.database_allowed(r["name"]))

    def read(self, databases: Sequence[str], source: MySQLSource) -> Iterator[Database]:
        """One snapshot per requested database, in the order given; a missing database yields nothing.
        Every statement is run by fetch_batch, before the first snapshot is built."""
        if not databases:
            return
        dbs = list(databases)
        rows = self.fetch_batch(dbs, source)
        # the batch's columns become Column objects first, their row dicts freed as they go (a dict of 14 keys per
        # column); the strings that repeat (types, charsets, names such as `id`) are shared
        by_table_cols = _columns_by_table(rows.pop("columns"))
        keys = rows["keys"]
        rules = {(r["db"], r["tbl"], r["name"]): r for r in rows["rules"]}
        for k in keys:
            r = rules.get((k["db"], k["tbl"], k["name"]), {})
            k["on_update"], k["on_delete"] = r.get("on_update"), r.get("on_delete")
        extras = self._table_extras(rows["indexes"], rows["checks"], rows["triggers"])
        routines, note, read_at_ms = rows["routines"], rows["statistics_note"], rows["read_at_ms"]

        by_db_tables: dict[str, list[dict]] = defaultdict(list)
        for t in rows["tables"]:
            by_db_tables[t["db"]].append(t)
        by_table_keys: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for k in keys:
            by_table_keys[(k["db"], k["tbl"])].append(k)
        found = {s["name"]: s for s in rows["schemata"]}

        filtered = 0
        for name in dbs:
            s = found.get(name)
            if s is None:
                continue
            db = Database(
                name=name,
                charset=s["charset"],
                collation=s["collation"],
                comment=s.get("comment") or "",
                read_at_ms=read_at_ms,
                routines=routines.get(name, []),
                statistics_note=note,
            )
            for t in sorted(by_db_tables.get(name, ()), key=lambda r: r["name"]):
                if not self._wanted(source, name, t):
                    filtered += 1
                    continue
                table = self._table(
                    name,
                    t,
                    by_table_cols.get((name, t["name"]), []),
                    by_table_keys.get((name, t["name"]), []),
                    db.warnings,
                )
                table.indexes, table.checks, table.triggers = (x.get((name, t["name"]), []) for x in extras)
                db.tables.append(table)
            self._read_views(db, rows["views"], rows["view_table_usage"])
            yield db
        self.stats.tables_filtered += filtered  # once the batch is read whole (a batch read again counts once)

    @staticmethod
    def _wanted(source: MySQLSource, database: str, t: dict) -> bool:
        return source.table_allowed(database, t["name"]) and (t["table_type"] != "VIEW" or source.include_views)

    def fetch_batch(self, databases: Sequence[str], source: MySQLSource) -> dict:
        """Every statement `read` runs for a batch, and what each returned: the rows of each bulk statement, the
        statistics note and read time, the routines, and per view its SHOW CREATE rows (or the server's error) and
        MySQL 8's VIEW_TABLE_USAGE where SHOW CREATE was refused. `read` builds the snapshots from it and runs no
        statement of its own; the benchmark's floor (bench/run.py) runs exactly this and nothing else
        (tests/test_floor.py checks both)."""
        dbs = list(databases)
        comment = ", SCHEMA_COMMENT AS comment" if self.is_mariadb else ""
        # SCHEMATA too per database: `SCHEMA_NAME IN (...)` scans every database of the server
        out: dict = {
            "schemata": self._per_database(
                "SELECT SCHEMA_NAME AS name, DEFAULT_CHARACTER_SET_NAME AS charset, "
                f"DEFAULT_COLLATION_NAME AS collation{comment} "
                "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                dbs,
            )
        }
        out["tables"] = self._per_database(
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS name, TABLE_TYPE AS table_type, ENGINE AS engine, "
            "TABLE_ROWS AS row_estimate, DATA_LENGTH AS data_length, INDEX_LENGTH AS index_length, "
            "CREATE_TIME AS create_time, "
            "UPDATE_TIME AS update_time, TABLE_COMMENT AS comment, TABLE_COLLATION AS collation "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            dbs,
        )
        out["columns"] = self._per_database(
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, COLUMN_NAME AS name, ORDINAL_POSITION AS ordinal, "
            "COLUMN_DEFAULT AS dflt, IS_NULLABLE AS nullable, DATA_TYPE AS data_type, COLUMN_TYPE AS column_type, "
            "COLUMN_KEY AS col_key, EXTRA AS extra, GENERATION_EXPRESSION AS gen_expr, "
            "COLUMN_COMMENT AS comment, CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s",
            dbs,
        )
        out["keys"] = self._per_database(
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, COLUMN_NAME AS col, "
            "ORDINAL_POSITION AS ordinal, REFERENCED_TABLE_SCHEMA AS ref_db, REFERENCED_TABLE_NAME AS ref_tbl, "
            "REFERENCED_COLUMN_NAME AS ref_col FROM information_schema.KEY_COLUMN_USAGE "
            "WHERE TABLE_SCHEMA = %s AND (CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL)",
            dbs,
        )
        out["rules"] = self._per_database(
            "SELECT CONSTRAINT_SCHEMA AS db, TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, "
            "UPDATE_RULE AS on_update, DELETE_RULE AS on_delete "
            "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s",
            dbs,
        )
        out["read_at_ms"] = int(time.time() * 1000)
        out["statistics_note"] = self.statistics_note()
        out["indexes"], out["checks"], out["triggers"] = self._extras_rows(dbs)
        out["routines"] = self._routines(dbs, source)
        # SHOW CREATE per view, in the order read() builds them: databases as given, tables by name
        found = {s["name"] for s in out["schemata"]}
        by_db: dict[str, list[dict]] = defaultdict(list)
        for t in out["tables"]:
            by_db[t["db"]].append(t)
        views: dict[tuple[str, str], object] = {}
        usage: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for name in dbs:
            if name not in found:
                continue
            for t in sorted(by_db.get(name, ()), key=lambda r: r["name"]):
                if t["table_type"] != "VIEW" or not self._wanted(source, name, t):
                    continue
                try:
                    views[(name, t["name"])] = self.query(
                        f"SHOW CREATE TABLE {quote_ident(name)}.{quote_ident(t['name'])}"
                    )
                except pymysql.err.MySQLError as e:  # refused or broken view; a lost connection raises ConnectionLost
                    views[(name, t["name"])] = e
                    if (
                        e.args
                        and e.args[0] == ER_TABLEACCESS_DENIED
                        and self.version.show_create_view_needs_select
                        and self.version.has_view_table_usage
                        and name not in usage
                    ):
                        usage[name] = self._view_table_usage(name)
        out["views"], out["view_table_usage"] = views, usage
        return out

    @staticmethod
    def _table(db: str, t: dict, cols: list[Column], keys: list[dict], warnings: list[str]) -> Table:
        is_view = t["table_type"] == "VIEW"
        comment = t["comment"] or ""
        if is_view:
            # information_schema puts 'VIEW' (or an error text for a broken view) where a table has its comment.
            if comment.startswith(f"View '{db}.{t['name']}' references invalid"):
                warnings.append(Finding(f"view {t['name']!r}: {comment}", VIEW_BROKEN, t["name"]))
            comment = ""
        table = Table(
            name=t["name"],
            table_type=t["table_type"],
            engine=t["engine"],
            comment=comment,
            collation=t["collation"],
            create_time=_ts(t["create_time"]),
            update_time=_ts(t["update_time"]),
            row_estimate=t["row_estimate"],
            data_length=t["data_length"],
            index_length=t["index_length"],
            columns=sorted(cols, key=lambda c: c.ordinal),
        )
        pk = sorted((k for k in keys if k["name"] == "PRIMARY"), key=lambda k: int(k["ordinal"]))
        table.primary_key = tuple(k["col"] for k in pk)
        fks: dict[str, list[dict]] = defaultdict(list)
        for k in keys:
            if k["ref_tbl"] is not None:
                fks[k["name"]].append(k)
        for fk_name in sorted(fks):
            parts = sorted(fks[fk_name], key=lambda k: int(k["ordinal"]))
            table.foreign_keys.append(
                ForeignKey(
                    name=fk_name,
                    columns=tuple(p["col"] for p in parts),
                    ref_database=parts[0]["ref_db"],
                    ref_table=parts[0]["ref_tbl"],
                    ref_columns=tuple(p["ref_col"] for p in parts),
                    on_update=parts[0]["on_update"],
                    on_delete=parts[0]["on_delete"],
                )
            )
        return table

    def statistics_note(self) -> str:
        """What a profile's figures are on this server: estimates, and on MySQL 8 possibly cached for a day."""
        note = (
            "row count: information_schema.TABLES.TABLE_ROWS, an estimate (InnoDB samples pages); size: "
            "DATA_LENGTH + INDEX_LENGTH"
        )
        if self.version.mariadb or self.version.number < (8, 0, 0):
            return note
        if self._stats_expiry is None:
            self._stats_expiry = int(self._bulk("SELECT @@information_schema_stats_expiry AS e")[0]["e"])
        if self._stats_expiry:
            note += (
                f"; MySQL caches these for up to {self._stats_expiry} s (information_schema_stats_expiry), "
                "so they may be that old"
            )
        return note

    def _extras_rows(self, dbs: list[str]) -> tuple[list[dict], list[dict], list[dict]]:
        """The batch's rows of STATISTICS, CHECK_CONSTRAINTS and TRIGGERS.

        STATISTICS and CHECK_CONSTRAINTS are visible with REFERENCES; TRIGGERS only with the TRIGGER privilege
        (which also allows creating and dropping triggers: not asked for, so they are usually absent)."""
        index_rows = self._per_database(
            "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, INDEX_NAME AS name, NON_UNIQUE AS non_unique, "
            "SEQ_IN_INDEX AS seq, COLUMN_NAME AS col, SUB_PART AS sub_part, INDEX_TYPE AS index_type, "
            "INDEX_COMMENT AS comment FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND INDEX_NAME <> 'PRIMARY'",
            dbs,
        )
        check_rows: list[dict] = []
        if self.version.has_check_constraints:
            if self.version.mariadb:
                branch = (
                    "SELECT CONSTRAINT_SCHEMA AS db, TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, "
                    "CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = %s"
                )
            else:  # MySQL's CHECK_CONSTRAINTS has no TABLE_NAME: TABLE_CONSTRAINTS names the table
                branch = (
                    "SELECT tc.TABLE_SCHEMA AS db, tc.TABLE_NAME AS tbl, cc.CONSTRAINT_NAME AS name, "
                    "cc.CHECK_CLAUSE AS clause FROM information_schema.TABLE_CONSTRAINTS tc "
                    "JOIN information_schema.CHECK_CONSTRAINTS cc ON cc.CONSTRAINT_SCHEMA = tc.TABLE_SCHEMA "
                    "AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME "
                    "WHERE tc.CONSTRAINT_TYPE = 'CHECK' AND tc.TABLE_SCHEMA = %s"
                )
            check_rows = self._per_database(branch, dbs)
        trigger_rows = self._per_database(
            "SELECT EVENT_OBJECT_SCHEMA AS db, EVENT_OBJECT_TABLE AS tbl, TRIGGER_NAME AS name, "
            "ACTION_TIMING AS timing, EVENT_MANIPULATION AS event, ACTION_STATEMENT AS stmt "
            "FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = %s",
            dbs,
        )
        return index_rows, check_rows, trigger_rows

    @staticmethod
    def _table_extras(
        index_rows: list[dict],
        check_rows: list[dict],
        trigger_rows: list[dict],
    ) -> tuple[dict, dict, dict]:
        """({(db, table): [Index]}, {(db, table): [CheckConstraint]}, {(db, table): [Trigger]}) of the batch."""
        indexes: dict[tuple[str, str], list[Index]] = defaultdict(list)
        parts: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for r in index_rows:
            parts[(r["db"], r["tbl"], r["name"])].append(r)
        for (db, tbl, name), rows in sorted(parts.items()):
            rows.sort(key=lambda r: int(r["seq"]))
            cols = tuple((r["col"] or "<expression>") + (f"({r['sub_part']})" if r["sub_part"] else "") for r in rows)
            indexes[(db, tbl)].append(
                Index(
                    name=name,
                    columns=cols,
                    unique=str(rows[0]["non_unique"]) == "0",
                    index_type=rows[0]["index_type"],
                    comment=rows[0]["comment"] or "",
                )
            )
        checks: dict[tuple[str, str], list[CheckConstraint]] = defaultdict(list)
        for r in sorted(check_rows, key=lambda r: r["name"]):
            checks[(r["db"], r["tbl"])].append(CheckConstraint(name=r["name"], clause=r["clause"]))
        triggers: dict[tuple[str, str], list[Trigger]] = defaultdict(list)
        for r in sorted(trigger_rows, key=lambda r: r["name"]):
            triggers[(r["db"], r["tbl"])].append(
                Trigger(name=r["name"], timing=r["timing"], event=r["event"], statement=r["stmt"])
            )
        return indexes, checks, triggers

    def _routines(self, dbs: list[str], source: MySQLSource) -> dict[str, list[Routine]]:
        """Stored procedures and functions the account can see, by database (none unless a routine grant is held:
        see ServerVersion.routine_grant)."""
        if not source.include_stored_procedures:
            return {}
        language = "EXTERNAL_LANGUAGE" if self.version.has_external_language else "NULL"
        out: dict[str, list[Routine]] = defaultdict(list)
        rows = self._per_database(
            "SELECT ROUTINE_SCHEMA AS db, ROUTINE_NAME AS name, ROUTINE_TYPE AS routine_type, "
            "ROUTINE_DEFINITION AS definition, ROUTINE_COMMENT AS comment, DTD_IDENTIFIER AS return_type, "
            f"{language} AS lang, IS_DETERMINISTIC AS is_deterministic, SQL_DATA_ACCESS AS data_access, "
            "SECURITY_TYPE AS security_type FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
            dbs,
        )
        for r in sorted(rows, key=lambda r: (r["routine_type"], r["name"])):
            if not source.procedure_pattern.allowed(f"{r['db']}.{r['name']}"):
                continue
            out[r["db"]].append(
                Routine(
                    name=r["name"],
                    routine_type=r["routine_type"],
                    definition=r["definition"],
                    comment=r["comment"] or "",
                    returns=r["return_type"] if r["routine_type"] == "FUNCTION" else None,
                    language=r["lang"] or "SQL",
                    deterministic=None if r["is_deterministic"] is None else r["is_deterministic"] == "YES",
                    data_access=r["data_access"],
                    security_type=r["security_type"],
                )
            )
        return out

    def routine_warnings(self, source: MySQLSource, databases: Sequence[str]) -> list[str]:
        """One warning for the source when routines are asked for but the account holds no grant that shows them."""
        if not source.include_stored_procedures or self.version.routine_grant_held(self.grants()):
            return []
        grant = self.version.routine_grant(f"'{source.user}'@'%'", list(databases)[:1] or ["<database>"])
        how = (
            f"to catalog them, {grant[0].rstrip(';')} (optional: shows routine definitions, never table data)"
            if grant
            else "this server version has no grant for routine text narrower than the definer's own"
        )
        return [
            Finding(
                f"stored procedures and functions are not visible to {source.user!r}, so none are "
                f"catalogued: {how}; or set include_stored_procedures: false",
                ROUTINES_HIDDEN,
            )
        ]

    def _read_views(self, db: Database, shown: dict, usage: dict) -> None:
        """The views' SQL (or why there is none) from what fetch_batch read: `shown` {(db, view): SHOW CREATE rows
        or the server's error}, `usage` {db: VIEW_TABLE_USAGE of db} where MySQL 8 refused SHOW CREATE."""
        for t in db.tables:
            if not t.is_view:
                continue
            rows = shown.get((db.name, t.name), [])
            if isinstance(rows, pymysql.err.MySQLError):  # refused or broken view
                e = rows
                code = e.args[0] if e.args else None
                if code == ER_TABLEACCESS_DENIED and self.version.show_create_view_needs_select:
                    if self.version.has_view_table_usage:
                        t.view_upstreams = tuple(sorted(usage.get(db.name, {}).get(t.name, ())))
                        got = "table-level lineage from information_schema.VIEW_TABLE_USAGE, no SQL"
                    else:
                        got = "no SQL and no lineage (VIEW_TABLE_USAGE needs MySQL 8.0.13+)"
                    db.warnings.append(
                        Finding(
                            f"view {t.name!r}: MySQL {'.'.join(map(str, self.version.number))} refuses SHOW CREATE "
                            f"VIEW without SELECT on the view (error {code}): {got}. "
                            f"GRANT SELECT ON {quote_ident(db.name)}.{quote_ident(t.name)} would add its SQL and "
                            "column lineage, but also lets the account read the view's rows",
                            VIEW_UNREADABLE,
                            t.name,
                        )
                    )
                    continue
                db.warnings.append(
                    Finding(f"view {t.name!r}: SHOW CREATE TABLE failed: {e.args[-1]}", VIEW_UNREADABLE, t.name)
                )
                continue
            if rows:
                t.view_definition = rows[0].get("Create View") or rows[0].get("Create Table")
            if not t.columns and not any(subject_of(w) == t.name for w in db.warnings):
                db.warnings.append(
                    Finding(
                        f"view {t.name!r}: no columns visible (broken view or missing SHOW VIEW grant)",
                        VIEW_UNREADABLE,
                        t.name,
                    )
                )

    def _view_table_usage(self, database: str) -> dict[str, list[tuple[str, str]]]:
        """{view: [(database, table), ...]} from information_schema.VIEW_TABLE_USAGE (MySQL 8.0.13+)."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for r in self._bulk(
            "SELECT VIEW_NAME AS view_name, TABLE_SCHEMA AS db, TABLE_NAME AS tbl "
            "FROM information_schema.VIEW_TABLE_USAGE WHERE VIEW_SCHEMA = %s",
            [database],
        ):
            out[r["view_name"]].append((r["db"], r["tbl"]))
        return out

    def privilege_warnings(self, databases: Iterable[str]) -> list[str]:
        """Grants that let this account read data in any of `databases` (or everywhere): it should have none."""
        everywhere, per_database = self.privilege_findings(databases)
        return everywhere + sorted({w for ws in per_database.values() for w in ws}, key=str)

    def privilege_findings(self, databases: Iterable[str]) -> tuple[list[str], dict[str, list[str]]]:
        """(warnings for grants on every database, {database: warnings for grants that match it}): a grant on
        one database flags that database only."""
        dbs = list(databases)
        everywhere: list[str] = []
        per_database: dict[str, list[str]] = defaultdict(list)
        for grant in self.grants():
            # the database part may be a quoted name holding spaces, dots or doubled backticks: `a.b c`.*
            m = _GRANT_ON.match(grant)
            if not m:
                continue
            privs, db_part = m.group(1), m.group(2)
            if not re.search(r"\bSELECT\b|\bALL PRIVILEGES\b", privs):
                continue
            if db_part.startswith("`"):
                db_part = db_part[1:-1].replace("``", "`")
            w = Finding(
                f"over-privileged: the account can read data ({grant.split(' IDENTIFIED')[0]})", OVER_PRIVILEGED
            )
            if db_part == "*":
                everywhere.append(w)
                continue
            pattern = _grant_pattern(db_part)
            for db in dbs:
                if pattern.fullmatch(db):
                    per_database[db].append(w)
        return everywhere, dict(per_database)

    def fingerprints(self, source: MySQLSource, key_databases: Optional[Sequence[str]] = None) -> dict[str, str]:
        """One cheap query: a fingerprint per allowed database of everything that shapes its MCE file.

        Parts: s (database), t (tables), c (columns), p (routines, when catalogued), k (key columns), r (foreign-key
        rules), i (indexes), as `part:count:crc`. With `key_databases`, the k, r and i parts are computed only for
        those databases (a second statement). Check constraints and triggers are not in it (a change to them alone
        waits for the daily schedule).

        Row counts, sizes and times are left out, so INSERT/UPDATE/DELETE never change a fingerprint.
        Known blind spot: VIEW_DEFINITION is empty for an account without SELECT, so a view redefined with the
        same columns keeps its fingerprint; the daily schedule re-reads it (tests/test_fingerprints.py).
        Changes to tables that table_pattern excludes do move it: the re-extraction then finds nothing new.
        """
        schema_comment = ", SCHEMA_COMMENT" if self.is_mariadb else ""  # MySQL has no database comments
        cheap = (
            "SELECT SCHEMA_NAME AS db, 's' AS part, 1 AS n, "
            f"CRC32(CONCAT_WS('|', DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME{schema_comment})) AS h "
            "FROM information_schema.SCHEMATA "
            "UNION ALL SELECT TABLE_SCHEMA, 't', COUNT(*), SUM(CRC32(CONCAT_WS('|', TABLE_NAME, TABLE_TYPE, "
            "IFNULL(ENGINE, ''), TABLE_COMMENT, IFNULL(TABLE_COLLATION, '')))) "
            "FROM information_schema.TABLES GROUP BY TABLE_SCHEMA "
            "UNION ALL SELECT TABLE_SCHEMA, 'c', COUNT(*), SUM(CRC32(CONCAT_WS('|', TABLE_NAME, COLUMN_NAME, "
            "ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, IFNULL(COLUMN_DEFAULT, '<none>'), COLUMN_KEY, EXTRA, "
            "IFNULL(GENERATION_EXPRESSION, ''), COLUMN_COMMENT, IFNULL(COLLATION_NAME, '')))) "
            "FROM information_schema.COLUMNS GROUP BY TABLE_SCHEMA"
        ) + (_ROUTINE_PART_SQL if source.include_stored_procedures else "")
        if key_databases is None:
            rows = self._bulk(cheap + " UNION ALL " + _KEY_PARTS_SQL.format(where="", where_r=""))
        else:
            # Key parts open every table fully (Open_full_table): over a whole large server they cost more than
            # everything else together, so the caller asks for them for a slice of databases at a time.
            rows = self._bulk(cheap) + self._key_rows(list(key_databases))
        return _join_parts(rows, source)

    def key_fingerprints(self, source: MySQLSource, databases: Sequence[str]) -> dict[str, str]:
        """Only the k and r parts, for the given databases (one statement, a branch per database)."""
        return _join_parts(self._key_rows(list(databases)), source)

    def _key_rows(self, dbs: list[str]) -> list[dict]:
        if not dbs:
            return []
        branch = _KEY_PARTS_SQL.format(where="WHERE TABLE_SCHEMA = %s", where_r="WHERE CONSTRAINT_SCHEMA = %s")
        per_branch = branch.count("%s")
        return self._bulk(" UNION ALL ".join([branch] * len(dbs)), [db for db in dbs for _ in range(per_branch)])


def _columns_by_table(rows: list[dict]) -> dict[tuple[str, str], list[Column]]:
    """{(database, table): [Column]} of COLUMNS rows, emptying `rows` as it goes (each row dict freed once read);
    equal strings share one object."""
    shared: dict = {}

    def one(v):
        return shared.setdefault(v, v) if v is not None else None

    out: dict[tuple[str, str], list[Column]] = defaultdict(list)
    rows.reverse()
    while rows:
        c = rows.pop()
        out[(c["db"], c["tbl"])].append(
            Column(
                name=one(c["name"]),
                ordinal=int(c["ordinal"]),
                column_type=one(c["column_type"]),
                data_type=one(c["data_type"]),
                nullable=c["nullable"] == "YES",
                default=one(c["dflt"]),
                key=one(c["col_key"] or ""),
                extra=one(c["extra"] or ""),
                generation_expression=one(c["gen_expr"] or None),
                comment=one(c["comment"] or ""),
                charset=one(c["charset"]),
                collation=one(c["collation"]),
            )
        )
    return out


def _join_parts(rows: list[dict], source: MySQLSource) -> dict[str, str]:
    parts: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        parts[r["db"]].append(f"{r['part']}:{r['n']}:{r['h']}")
    return {db: "|".join(sorted(p)) for db, p in parts.items() if source.database_allowed(db)}


def _grant_pattern(db_part: str) -> re.Pattern:
    r"""A GRANT's database name as a regex: `%` and `_` are wildcards there, `\_` and `\%` literal."""
    out, i = [], 0
    while i < len(db_part):
        ch = db_part[i]
        if ch == "\\" and i + 1 < len(db_part):
            out.append(re.escape(db_part[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE)


def list_databases(source: MySQLSource) -> list[str]:
    """Connect, list the allowed databases, disconnect: what the partitions sensor needs."""
    conn = connect(source)
    try:
        return MySQLReader(conn, describe(source)).list_databases(source)
    finally:
        conn.close()


def grant_statements(
    source: MySQLSource, databases: Sequence[str], version: Optional[ServerVersion] = None
) -> list[str]:
    """The least-privilege grants for the catalog account: metadata visible, data never readable; then, as a
    comment, the optional grant that shows routine definitions (for `version` when known, else for each server)."""
    user = f"'{source.user}'@'%'"
    out = [f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY '<password from ${source.password_env}>';"]
    for db in databases:
        out.append(f"GRANT REFERENCES, SHOW VIEW ON {quote_ident(db)}.* TO {user};")
    if not source.include_stored_procedures:
        return out
    out.append("-- optional, to catalog stored procedures and functions (routine definitions, never table data):")
    if version is not None:
        grant = version.routine_grant(user, databases)
        out.extend(f"-- {g}" for g in grant) if grant else out.append(
            f"--   none on {version.text}: only a routine's definer sees its text (MySQL 8.0.20+ has SHOW_ROUTINE)"
        )
        return out
    for label, v in (
        ("MySQL 8.0.20+", ServerVersion(False, (8, 0, 20))),
        ("MariaDB 11.3+", ServerVersion(True, (11, 3, 0))),
        ("MariaDB before 11.3", ServerVersion(True, (10, 11, 0))),
    ):
        out.extend(f"--   {label}: {g}" for g in v.routine_grant(user, databases))
    return out


def server_version(source: MySQLSource) -> ServerVersion:
    conn = connect(source)
    try:
        return MySQLReader(conn, describe(source)).version
    finally:
        conn.close()
