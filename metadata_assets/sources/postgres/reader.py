"""Read PostgreSQL schemas from pg_catalog only: one connection and a fixed number of queries per database.

PostgreSQL's catalogs are readable by every role that can connect: pg_class, pg_attribute, pg_constraint,
pg_description, pg_get_viewdef() and pg_get_expr() list every schema, table, view and column whatever the role's
privileges on them (information_schema, by contrast, shows only what the role has some privilege on). So the catalog
account needs CONNECT on each database and nothing else: no USAGE on schemas, no SELECT (tests/test_postgres_source.py
proves SELECT is refused while extraction reads everything).

Each database is read inside one READ ONLY, REPEATABLE READ transaction, so its queries see one consistent catalog.
`search_path` is empty, so pg_get_viewdef() qualifies every name (`public.orders`): view lineage resolves without
guessing. Every value is a bound parameter.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from typing import Optional, Sequence

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from metadata_assets.catalog import CheckConstraint, Column, Database, ForeignKey, Index, Routine, Table, Trigger
from metadata_assets.report import OVER_PRIVILEGED, Finding
from metadata_assets.sources.base import ConnectionLost, SourceQueryFailed, SourceUnavailable
from metadata_assets.sources.postgres.config import PostgresSource

log = logging.getLogger(__name__)

_FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
# pg_class.relkind of what is catalogued: tables, partitioned tables, views, materialized views (as DataHub's
# built-in postgres source lists them; foreign tables and sequences are left out, as there)
_RELKINDS = ("r", "p", "v", "m")
NOT_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"

# Primary and foreign keys as each table has them. A partition's primary key is its own (an index on it), and so is a
# foreign key cloned onto a partition from its parent (same referenced table); PostgreSQL also clones a foreign key
# that references a partitioned table once per partition of it (conparentid set, another confrelid): those are left
# out, the declared key names the partitioned table.
_KEYS = (
    "(con.contype = 'p' OR con.contype = 'f' AND (con.conparentid = 0 OR con.confrelid = "
    "(SELECT p.confrelid FROM pg_catalog.pg_constraint p WHERE p.oid = con.conparentid)))"
)

# Every domain's root base type and whether it, or a domain it is built on, is NOT NULL (PostgreSQL enforces the NOT
# NULL of every domain in the chain; information_schema.columns looks at the column's own domain only).
_DOMAINS = (
    "WITH RECURSIVE dom(oid, base, nn) AS ("
    "SELECT t.oid, t.typbasetype, t.typnotnull FROM pg_catalog.pg_type t WHERE t.typtype = 'd' "
    "UNION ALL SELECT d.oid, b.typbasetype, d.nn OR b.typnotnull FROM dom d "
    "JOIN pg_catalog.pg_type b ON b.oid = d.base AND b.typtype = 'd') "
    "SELECT d.oid, d.base, d.nn FROM dom d JOIN pg_catalog.pg_type r ON r.oid = d.base AND r.typtype <> 'd'"
)
# A type as psql shows it to a reader whose search_path is the default ("$user", public): format_type() with an
# empty search_path qualifies every type outside pg_catalog; `public.` is dropped again, unless a pg_catalog type of
# the same name would make the bare name mean that one.
_TYPE_AS_PSQL = (
    "CASE WHEN tn.nspname = 'public' AND left(f.ft, 7) = 'public.' AND NOT EXISTS (SELECT 1 FROM "
    "pg_catalog.pg_type pt WHERE pt.typname = t.typname AND pt.typnamespace = 'pg_catalog'::regnamespace) "
    "THEN substr(f.ft, 8) ELSE f.ft END"
)
# Functions and procedures of the database's own (aggregates, window functions and what extensions install left out)
ROUTINES_WHERE = (
    "p.prokind IN ('f', 'p') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep WHERE dep.classid = "
    "'pg_catalog.pg_proc'::regclass AND dep.objid = p.oid AND dep.deptype = 'e')"
)
# pg_trigger.tgtype bits
_TG_BEFORE, _TG_INSTEAD = 2, 64
_TG_EVENTS = ((4, "INSERT"), (16, "UPDATE"), (8, "DELETE"), (32, "TRUNCATE"))


class DatabaseGone(Exception):
    """The database does not exist (dropped since it was listed)."""


class DatabaseRefused(Exception):
    """The server refused this database alone (no CONNECT privilege, datallowconn off, too many connections to it)."""


def describe(source: PostgresSource) -> str:
    return f"source {source.name!r} ({source.user}@{source.host}:{source.port})"


def error_message(e: BaseException) -> str:
    return (getattr(e, "pgerror", None) or str(e)).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def connect(
    source: PostgresSource,
    database: Optional[str] = None,
    query_timeout_s: Optional[float] = None,
    deadline: Optional[float] = None,
) -> psycopg2.extensions.connection:
    """A connection whose waits are bounded: the connect and login by `connect_timeout_s` (libpq's
    connect_timeout), each statement by `query_timeout_s` (the server's statement_timeout), and a peer that stops
    answering by TCP keepalives and tcp_user_timeout. With a `deadline` (time.monotonic()), the connect and each
    statement get at most what is left of it (libpq's floor: 2 s for a connect; 1 s for a statement)."""
    database = database or source.initial_database
    connect_timeout = source.connect_timeout_s
    if deadline is not None:
        connect_timeout = min(connect_timeout, deadline - time.monotonic())
    try:
        conn = psycopg2.connect(
            host=source.host,
            port=source.port,
            user=source.user,
            password=source.password(),
            dbname=database,
            sslmode=source.sslmode,
            connect_timeout=max(2, int(round(connect_timeout))),
            application_name="metadata-assets",
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            tcp_user_timeout=int(source.connect_timeout_s * 1000),
            # libpq's own TLS settings (verify-full checks the certificate's chain to sslrootcert and its host name)
            **{k: v for k in ("sslrootcert", "sslcert", "sslkey") if (v := getattr(source, k))},
        )
    except psycopg2.OperationalError as e:
        text = error_message(e)
        if "does not exist" in text and "database" in text:
            raise DatabaseGone(text) from None
        if "permission denied for database" in text or "not currently accepting connections" in text:
            raise DatabaseRefused(text) from None
        if "ssl" in text.lower() or "certificate" in text.lower():
            text += f" [{source.tls_description()}]"
        raise SourceUnavailable(f"{describe(source)}: {text}") from None
    timeout_s = query_timeout_s or source.query_timeout_s
    if deadline is not None:
        timeout_s = max(1.0, min(timeout_s, deadline - time.monotonic()))
    timeout_ms = int(timeout_s * 1000)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_catalog.set_config('search_path', '', false), "
            "pg_catalog.set_config('statement_timeout', %s, false)",
            (str(timeout_ms),),
        )
    conn.autocommit = False
    conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
    return conn


def is_connection_error(e: BaseException) -> bool:
    """A lost connection or a statement past its timeout: never a problem of the object being read."""
    return isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.errors.QueryCanceled))


class PostgresReader:
    """Catalog reads of one database over its own connection."""

    def __init__(self, conn: psycopg2.extensions.connection, label: str = "PostgreSQL server"):
        self.conn = conn
        self.label = label
        self.statements = 0
        self.tables_filtered = 0

    def _query(self, sql: str, args: Sequence = ()) -> list[dict]:
        self.statements += 1
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, tuple(args) if args else None)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row)) for row in cur.fetchall()]
        except psycopg2.Error as e:
            if is_connection_error(e):
                raise ConnectionLost(f"{self.label}: connection lost ({error_message(e)})") from None
            self._rollback()
            raise SourceQueryFailed(f"{self.label}: pg_catalog query failed: {error_message(e)}") from None

    def _rollback(self) -> None:
        try:
            self.conn.rollback()
        except psycopg2.Error:
            pass

    def list_databases(self, source: PostgresSource) -> list[str]:
        """Databases that accept connections, the account may CONNECT to, and the patterns allow; sorted."""
        rows = self._query(
            "SELECT datname AS name FROM pg_catalog.pg_database WHERE datallowconn AND NOT "
            "datistemplate AND pg_catalog.has_database_privilege(oid, 'CONNECT')"
        )
        self.conn.rollback()
        return sorted(r["name"] for r in rows if source.database_allowed(r["name"]))

    def role_warnings(self) -> list[str]:
        """Role attributes that let the account read every table: the catalog account should have none."""
        row = self._query(
            "SELECT r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, "
            "EXISTS (SELECT 1 FROM pg_catalog.pg_roles d WHERE d.rolname IN ('pg_read_all_data') "
            "AND pg_catalog.pg_has_role(r.oid, d.oid, 'MEMBER')) AS read_all "
            "FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
        )[0]
        self.conn.rollback()
        out = []
        if row["superuser"]:
            out.append(Finding("over-privileged: the account is a superuser and can read data", OVER_PRIVILEGED))
        if row["read_all"]:
            out.append(
                Finding(
                    "over-privileged: the account is a member of pg_read_all_data and can read data", OVER_PRIVILEGED
                )
            )
        return out

    def read(self, name: str, source: PostgresSource) -> tuple[Database, list[str]]:
        """(snapshot of the connected database, warnings that the account can read its data)."""
        try:
            return self._read(name, source)
        finally:
            self._rollback()  # end the read-only transaction

    def _read(self, name: str, source: PostgresSource) -> tuple[Database, list[str]]:
        dbrow = self._query(
            "SELECT pg_catalog.pg_encoding_to_char(encoding) AS charset, datcollate AS collation, "
            "pg_catalog.shobj_description(oid, 'pg_database') AS comment "
            "FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()"
        )[0]
        schemas = [
            s
            for s in self._query(
                "SELECT n.nspname AS name, pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment "
                f"FROM pg_catalog.pg_namespace n WHERE {NOT_SYSTEM} ORDER BY n.nspname"
            )
            if source.schema_allowed(name, s["name"])
        ]
        allowed_schemas = [s["name"] for s in schemas]
        found = self._query(
            "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind, c.relispartition, "
            "c.reltuples::bigint AS reltuples, c.relpages::bigint * pg_catalog.current_setting('block_size')::bigint "
            "AS data_length, pg_catalog.current_setting('block_size')::bigint AS block_size, "
            "pg_catalog.obj_description(c.oid, 'pg_class') AS comment, "
            "CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partition_key, "
            "CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END AS partition_bound, "
            "(SELECT pn.nspname || '.' || pc.relname FROM pg_catalog.pg_inherits i "
            " JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent "
            " JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace "
            " WHERE c.relispartition AND i.inhrelid = c.oid) AS partition_of, "
            "CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END AS view_definition, "
            # a partitioned table holds no rows itself: the sums over its leaf partitions that were ever analysed
            # (reltuples -1: never; PostgreSQL 14+), with how many leaves there are and how many count
            "CASE WHEN c.relkind = 'p' THEN (SELECT pg_catalog.json_build_array(count(*), "
            " count(*) FILTER (WHERE lc.reltuples >= 0), sum(lc.reltuples::bigint) FILTER (WHERE lc.reltuples >= 0), "
            " sum(lc.relpages::bigint) FILTER (WHERE lc.reltuples >= 0)) "
            # the partition tree walked through pg_inherits (pg_partition_tree() is PostgreSQL 12+)
            " FROM (WITH RECURSIVE tree(relid) AS (SELECT i.inhrelid FROM pg_catalog.pg_inherits i "
            "  WHERE i.inhparent = c.oid UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i "
            "  JOIN tree ON i.inhparent = tree.relid) SELECT relid FROM tree) pt "
            " JOIN pg_catalog.pg_class lc ON lc.oid = pt.relid WHERE lc.relkind <> 'p') END AS leaves, "
            "pg_catalog.has_any_column_privilege(c.oid, 'SELECT') AS readable "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = ANY(%s) AND n.nspname = ANY(%s)",
            (list(_RELKINDS), allowed_schemas),
        )
        rels = [
            r
            for r in found
            if source.table_allowed(name, f"{r['schema']}.{r['name']}")
            and (source.include_views or r["relkind"] not in ("v", "m"))
        ]
        self.tables_filtered += len(found) - len(rels)
        oids = [r["oid"] for r in rels]
        columns = self._query(
            "SELECT a.attrelid AS rel, a.attname::text AS name, a.attnum AS ordinal, "
            f"{_TYPE_AS_PSQL} AS column_type, "
            # a domain is typed as its root base type (an enum or array domain as such)
            "CASE WHEN t.typcategory = 'A' THEN 'array' WHEN t.typtype = 'e' THEN 'enum' WHEN t.typtype = 'd' THEN "
            " CASE WHEN bt.typcategory = 'A' THEN 'array' WHEN bt.typtype = 'e' THEN 'enum' ELSE bt.typname::text END "
            " ELSE t.typname::text END AS data_type, "
            "a.attnotnull OR coalesce(dm.nn, false) AS notnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS dflt, "
            "a.attidentity AS identity, "
            "a.attgenerated AS generated, pg_catalog.col_description(a.attrelid, a.attnum) AS comment, "
            "CASE WHEN a.attcollation <> t.typcollation THEN co.collname::text END AS collation "
            "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
            "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace "
            "CROSS JOIN LATERAL (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS ft) f "
            f"LEFT JOIN ({_DOMAINS}) dm ON dm.oid = t.oid "
            "LEFT JOIN pg_catalog.pg_type bt ON bt.oid = dm.base "
            "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation "
            "WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped",
            (oids,),
        )
        keys = self._query(
            "SELECT con.conrelid AS rel, con.conname::text AS name, con.contype AS kind, "
            "ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) JOIN pg_catalog.pg_attribute a "
            " ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols, "
            "rn.nspname::text AS ref_schema, rc.relname::text AS ref_table, "
            "ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) JOIN pg_catalog.pg_attribute a "
            " ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) AS ref_cols, "
            "con.confupdtype AS on_update, con.confdeltype AS on_delete, "
            "CASE WHEN con.contype = 'c' THEN pg_catalog.pg_get_expr(con.conbin, con.conrelid) END AS clause "
            "FROM pg_catalog.pg_constraint con LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid "
            "LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace "
            f"WHERE ({_KEYS} OR con.contype = 'c') AND con.conrelid = ANY(%s::oid[])",
            (oids,),
        )
        # secondary indexes (the primary key's is Table.primary_key): key columns (INCLUDE columns left out) as
        # pg_get_indexdef shows each, an expression as its expression; the access method (btree, gin, ...)
        indexes = self._query(
            "SELECT i.indrelid AS rel, ic.relname::text AS name, i.indisunique AS uniq, am.amname::text AS method, "
            "ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k "
            " ORDER BY k) AS cols, pg_catalog.obj_description(i.indexrelid, 'pg_class') AS comment "
            "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_catalog.pg_am am ON am.oid = ic.relam "
            "WHERE i.indrelid = ANY(%s::oid[]) AND NOT i.indisprimary",
            (oids,),
        )
        triggers = self._query(
            "SELECT tg.tgrelid AS rel, tg.tgname::text AS name, tg.tgtype::int AS type, "
            "pg_catalog.pg_get_triggerdef(tg.oid) AS statement FROM pg_catalog.pg_trigger tg "
            "WHERE tg.tgrelid = ANY(%s::oid[]) AND NOT tg.tgisinternal",
            (oids,),
        )
        routines = self._routines(name, source, allowed_schemas) if source.include_stored_procedures else []

        db = Database(
            name=name,
            charset=dbrow["charset"],
            collation=dbrow["collation"],
            comment=dbrow["comment"] or "",
            read_at_ms=int(time.time() * 1000),
            statistics_note="row count: pg_class.reltuples, the planner's estimate as of the last VACUUM or "
            "ANALYZE; size: relpages x block_size, as of then too; a partitioned table: "
            "the sums over its analysed partitions; a table never analysed has none",
        )
        db.properties["schemas"] = json.dumps(
            [{"name": s["name"], "comment": s["comment"] or ""} for s in schemas], ensure_ascii=False
        )
        cols_of: dict[int, list[dict]] = defaultdict(list)
        for c in columns:
            cols_of[c["rel"]].append(c)
        # each table's constraints (kind p, f, c), indexes (i) and triggers (t)
        keys_of: dict[int, list[dict]] = defaultdict(list)
        for k in keys:
            keys_of[k["rel"]].append(k)
        for i in indexes:
            keys_of[i["rel"]].append({**i, "kind": "i"})
        for x in triggers:
            keys_of[x["rel"]].append({**x, "kind": "t"})
        db.routines = routines
        readable = sorted(f"{r['schema']}.{r['name']}" for r in rels if r["readable"])
        for r in sorted(rels, key=lambda r: (r["schema"], r["name"])):
            db.tables.append(_table(r, cols_of.get(r["oid"], []), keys_of.get(r["oid"], []), name))
        warnings = []
        if readable:
            shown = ", ".join(readable[:5]) + (f" and {len(readable) - 5} more" if len(readable) > 5 else "")
            warnings.append(
                Finding(
                    f"over-privileged: the account can read data of {len(readable)} relation"
                    f"{'s' if len(readable) > 1 else ''} in database {name!r} ({shown})",
                    OVER_PRIVILEGED,
                )
            )
        return db, warnings

    def _routines(self, database: str, source: PostgresSource, schemas: list[str]) -> list[Routine]:
        """Functions and procedures of the allowed schemas, with their source: pg_proc is readable by every role
        that can connect, prosrc included (no EXECUTE or other grant needed); a body in SQL-standard form (BEGIN
        ATOMIC, PostgreSQL 14+) has no prosrc: then pg_get_functiondef()'s CREATE statement."""
        rows = self._query(
            "SELECT n.nspname::text AS schema, p.proname::text AS name, p.prokind::text AS kind, "
            "l.lanname::text AS language, pg_catalog.pg_get_function_arguments(p.oid) AS arguments, "
            "CASE WHEN p.prokind = 'f' THEN pg_catalog.pg_get_function_result(p.oid) END AS returns, "
            "CASE WHEN coalesce(p.prosrc, '') = '' THEN pg_catalog.pg_get_functiondef(p.oid) ELSE p.prosrc END "
            "AS definition, pg_catalog.obj_description(p.oid, 'pg_proc') AS comment, p.provolatile::text AS volatility, "
            "p.prosecdef AS definer FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
            f"JOIN pg_catalog.pg_language l ON l.oid = p.prolang WHERE {ROUTINES_WHERE} AND n.nspname = ANY(%s)",
            (schemas,),
        )
        out = []
        for r in rows:
            if not source.procedure_pattern.allowed(f"{database}.{r['schema']}.{r['name']}"):
                continue
            out.append(
                Routine(
                    name=r["name"],
                    routine_type="PROCEDURE" if r["kind"] == "p" else "FUNCTION",
                    definition=r["definition"],
                    comment=r["comment"] or "",
                    returns=r["returns"],
                    language=r["language"].upper(),
                    deterministic=r["volatility"] == "i",
                    data_access={"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}.get(r["volatility"]),
                    security_type="DEFINER" if r["definer"] else "INVOKER",
                    schema=r["schema"],
                    arguments=r["arguments"],
                )
            )
        return sorted(out, key=lambda r: (r.schema, r.routine_type, r.name, r.arguments))

    def fingerprint(self, source: PostgresSource, name: str) -> str:
        """One statement: a digest of everything that shapes this database's MCE file (view SQL included, which
        pg_catalog shows); row estimates and sizes left out."""
        row = self._query(
            "SELECT md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) AS h FROM ("
            "SELECT 'd' || coalesce(pg_catalog.shobj_description(oid, 'pg_database'), '') || datcollate AS x "
            "FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database() "
            "UNION ALL SELECT 'n' || n.nspname || '|' || coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '') "
            f"FROM pg_catalog.pg_namespace n WHERE {NOT_SYSTEM} "
            "UNION ALL SELECT 'c' || n.nspname || '.' || c.relname || '|' || c.relkind::text || '|' || "
            "coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '') || '|' || "
            "coalesce(pg_catalog.pg_get_partkeydef(c.oid), '') || '|' || coalesce(pg_catalog.pg_get_expr(c.relpartbound, "
            "c.oid), '') || '|' || CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.md5(pg_catalog.pg_get_viewdef(c.oid)) "
            "ELSE '' END FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {NOT_SYSTEM} "
            "UNION ALL SELECT 'a' || a.attrelid::regclass::text || '|' || a.attname || '|' || a.attnum || '|' || "
            "pg_catalog.format_type(a.atttypid, a.atttypmod) || '|' || a.attnotnull::text || '|' || a.attidentity::text || '|' || "
            "a.attgenerated::text || '|' || a.attcollation || '|' || coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '') "
            "|| '|' || coalesce(pg_catalog.col_description(a.attrelid, a.attnum), '') "
            "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            f"WHERE c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND {NOT_SYSTEM} "
            "UNION ALL SELECT 'k' || con.conrelid::regclass::text || '|' || con.conname || '|' || "
            "pg_catalog.pg_get_constraintdef(con.oid) FROM pg_catalog.pg_constraint con "
            "JOIN pg_catalog.pg_class c ON c.oid = con.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE ({_KEYS} OR con.contype = 'c') AND {NOT_SYSTEM} "
            # a domain's NOT NULL and base type shape its columns' nullability and type
            "UNION ALL SELECT 'y' || t.oid::regtype::text || '|' || t.typnotnull::text || '|' || t.typbasetype::regtype::text "
            "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
            f"WHERE t.typtype = 'd' AND {NOT_SYSTEM} "
            "UNION ALL SELECT 'i' || i.indrelid::regclass::text || '|' || pg_catalog.pg_get_indexdef(i.indexrelid) || '|' || "
            "coalesce(pg_catalog.obj_description(i.indexrelid, 'pg_class'), '') FROM pg_catalog.pg_index i "
            "JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE NOT i.indisprimary AND {NOT_SYSTEM} "
            "UNION ALL SELECT 't' || tg.tgrelid::regclass::text || '|' || pg_catalog.pg_get_triggerdef(tg.oid) "
            "FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid "
            f"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE NOT tg.tgisinternal AND {NOT_SYSTEM}"
            + (
                " UNION ALL SELECT 'p' || p.oid::regprocedure::text || '|' || "
                "pg_catalog.md5(pg_catalog.pg_get_functiondef(p.oid)) || '|' || "
                "coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '') FROM pg_catalog.pg_proc p "
                f"JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE {ROUTINES_WHERE} AND {NOT_SYSTEM}"
                if source.include_stored_procedures
                else ""
            )
            + ") parts"
        )[0]
        self._rollback()
        return row["h"]


def _table(r: dict, cols: list[dict], keys: list[dict], database: str) -> Table:
    kind = r["relkind"]
    props = {"schema": r["schema"], "table": r["name"]}
    if kind == "m":
        props["materialized"] = "true"
    if kind == "p":
        props["partitioned"] = "true"
        props["partition_key"] = r["partition_key"] or ""
    if r["partition_of"]:
        props["partition_of"] = r["partition_of"]
        props["partition_bound"] = r["partition_bound"] or ""
    # reltuples -1 (PostgreSQL 14+): never vacuumed or analysed, so neither the row count nor relpages is known yet
    analysed = r["reltuples"] is not None and r["reltuples"] >= 0
    rows, size = (r["reltuples"], r["data_length"]) if analysed else (None, None)
    if kind == "p":
        # a partitioned table's own figures are always empty: the sums over its analysed leaf partitions, none
        # when no leaf was ever analysed; how many leaves count is said in the properties
        leaves, counted, leaf_rows, leaf_pages = r["leaves"] or (0, 0, None, None)
        rows = int(leaf_rows) if counted else None
        size = int(leaf_pages) * r["block_size"] if counted else None
        props["partition_statistics"] = f"sum over {counted} of {leaves} leaf partitions (the analysed ones)"
    table = Table(
        name=f"{r['schema']}.{r['name']}",
        table_type="VIEW" if kind in ("v", "m") else "BASE TABLE",
        comment=r["comment"] or "",
        row_estimate=rows,
        data_length=size,
        view_definition=r["view_definition"],
        properties=props,
        columns=[
            Column(
                name=c["name"],
                ordinal=int(c["ordinal"]),
                column_type=c["column_type"],
                data_type=c["data_type"],
                nullable=not c["notnull"],
                default=c["dflt"] if not c["generated"] else None,
                extra={"a": "identity always", "d": "identity by default"}.get(c["identity"] or "", "")
                or ("stored generated" if c["generated"] == "s" else ""),
                generation_expression=c["dflt"] if c["generated"] else None,
                comment=c["comment"] or "",
                collation=c["collation"],
            )
            for c in sorted(cols, key=lambda c: int(c["ordinal"]))
        ],
    )
    for k in keys:
        if k["kind"] == "p":
            table.primary_key = tuple(k["cols"])
    for k in sorted((k for k in keys if k["kind"] == "i"), key=lambda k: k["name"]):
        table.indexes.append(
            Index(
                name=k["name"],
                columns=tuple(k["cols"]),
                unique=k["uniq"],
                index_type=k["method"],
                comment=k["comment"] or "",
            )
        )
    for k in sorted((k for k in keys if k["kind"] == "c"), key=lambda k: k["name"]):
        table.checks.append(CheckConstraint(name=k["name"], clause=k["clause"]))
    for k in sorted((k for k in keys if k["kind"] == "t"), key=lambda k: k["name"]):
        table.triggers.append(
            Trigger(
                name=k["name"],
                timing="INSTEAD OF" if k["type"] & _TG_INSTEAD else "BEFORE" if k["type"] & _TG_BEFORE else "AFTER",
                event=" OR ".join(e for bit, e in _TG_EVENTS if k["type"] & bit),
                statement=k["statement"],
            )
        )
    for k in sorted((k for k in keys if k["kind"] == "f"), key=lambda k: k["name"]):
        table.foreign_keys.append(
            ForeignKey(
                name=k["name"],
                columns=tuple(k["cols"]),
                ref_database=database,
                ref_table=f"{k['ref_schema']}.{k['ref_table']}",
                ref_columns=tuple(k["ref_cols"]),
                on_update=_FK_ACTIONS.get(k["on_update"]),
                on_delete=_FK_ACTIONS.get(k["on_delete"]),
            )
        )
    return table


def list_databases(source: PostgresSource, deadline: Optional[float] = None) -> list[str]:
    conn = connect(source, deadline=deadline)
    try:
        return PostgresReader(conn, describe(source)).list_databases(source)
    finally:
        conn.close()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant_statements(source: PostgresSource, databases: Sequence[str]) -> list[str]:
    """The least-privilege grants: CONNECT per database, nothing else (pg_catalog is readable by every role)."""
    role = quote_ident(source.user)
    out = [
        f"CREATE ROLE {role} LOGIN PASSWORD '<password from ${source.password_env}>';",
        "-- nothing else: no USAGE on schemas, no SELECT; check that PUBLIC holds no SELECT on tables either",
    ]
    for db in [source.initial_database, *[d for d in databases if d != source.initial_database]]:
        out.append(f"GRANT CONNECT ON DATABASE {quote_ident(db)} TO {role};")
    return out
