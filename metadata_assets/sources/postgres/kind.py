"""PostgreSQL as a SourceKind: a connection per database (pg_catalog is per database), fingerprints read database by
database within a time budget, CONNECT-only grants, check-access probes (access.py), proposals of the SQL emitter
with PostgreSQL's hooks (emitter.py)."""

from __future__ import annotations

import logging
import re
import time
import zlib
from typing import Optional, Sequence

from metadata_assets.catalog import Database
from metadata_assets.sources.base import (
    SENSOR_TICK_DEADLINE_S,
    UNREAD,
    AccessProbes,
    ConnectionLost,
    DatabaseFailure,
    FailureCause,
    ReadStats,
    Session,
    SourceQueryFailed,
    SourceUnavailable,
    SQLServerKind,
)
from metadata_assets.sources.postgres.config import PostgresSource
from metadata_assets.sources.postgres.reader import (
    DatabaseGone,
    DatabaseRefused,
    PostgresReader,
    connect,
    describe,
    grant_statements,
    list_databases,
)

log = logging.getLogger(__name__)

# A sensor evaluation ends after 60 s (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS): a tick starts no database already in
# the cursor after this long (those it did not reach keep their last digest and come first on the next tick), and
# none at all after SENSOR_TICK_DEADLINE_S, every connect and statement bounded by what is left of it.
FINGERPRINT_BUDGET_S = 40.0


class PostgresSession(Session):
    """Checks the account once (on the initial database), then reads each database over a connection of its own."""

    def __init__(self, source: PostgresSource):
        self.source = source
        self.stats = ReadStats()
        conn = connect(source)  # unreachable at the start: the run fails with SourceUnavailable
        try:
            reader = PostgresReader(conn, describe(source))
            self._role_warnings = reader.role_warnings()
            self.stats.statements += reader.statements
        finally:
            conn.close()
        self._access: dict[str, list[str]] = {}
        self.down: Optional[DatabaseFailure] = None

    def privilege_warnings(self, databases: Sequence[str]) -> list[str]:
        return list(self._role_warnings)

    def access_warnings(self, database: str) -> list[str]:
        return self._access.get(database, [])

    def read_batch(self, batch: list[str]) -> tuple[dict[str, Database | DatabaseFailure], Optional[DatabaseFailure]]:
        out: dict[str, Database | DatabaseFailure] = {}
        for name in batch:
            if self.down:
                return {}, self.down
            for attempt in (1, 2):
                try:
                    out[name] = self._read(name)
                    break
                except DatabaseGone:
                    break  # dropped since it was listed: missing, not failed
                except (DatabaseRefused, SourceQueryFailed) as e:
                    out[name] = DatabaseFailure(
                        FailureCause.DATABASE, f"{describe(self.source)}, database {name!r}: {e}"
                    )
                    break
                except (ConnectionLost, SourceUnavailable) as e:
                    log.warning("%s (attempt %d of 2 for database %s)", e, attempt, name)
                    if attempt == 2 or isinstance(e, SourceUnavailable) and not self._reachable():
                        # nothing read of this batch is written: one lost server means a partial batch otherwise
                        self.down = DatabaseFailure(
                            FailureCause.SOURCE, f"{e}; nothing of this batch was written, its previous files are kept"
                        )
                        return {}, self.down
        return out, None

    def _read(self, name: str) -> Database:
        conn = connect(self.source, name)
        try:
            reader = PostgresReader(conn, f"{describe(self.source)}, database {name!r}")
            try:
                db, warnings = reader.read(name, self.source)
            finally:
                self.stats.statements += reader.statements  # sent, whether the read succeeded or not
            self.stats.tables_filtered += reader.tables_filtered
        finally:
            conn.close()
        self._access[name] = warnings
        return db

    def _reachable(self) -> bool:
        try:
            connect(self.source).close()
            return True
        except SourceUnavailable:
            return False

    def close(self) -> None:
        pass  # each database's connection is closed after its read


class PostgresKind(SQLServerKind, AccessProbes):
    type = "postgres"
    platform = "postgres"
    title = "PostgreSQL"
    catalog_read = "pg_catalog"

    def pool(self, source: PostgresSource) -> str:
        return "postgres_" + re.sub(r"[^A-Za-z0-9_]", "_", f"{source.host}_{source.port}")

    def list_databases(self, source: PostgresSource, client=None) -> list[str]:
        return list_databases(source)

    def session(self, source: PostgresSource, client=None) -> PostgresSession:
        return PostgresSession(source)

    def fingerprints(
        self, source: PostgresSource, client=None, cursor: Optional[dict[str, str]] = None, tick: Optional[int] = None
    ) -> dict[str, str]:
        """{database: md5 of its catalog}: one connection and one statement per allowed database. Databases are
        read in an order that rotates with `tick` (new ones first); past FINGERPRINT_BUDGET_S the rest keep the
        cursor's digest, and past SENSOR_TICK_DEADLINE_S (every connect and statement bounded by what is left of
        it) databases new to the cursor get UNREAD, so a tick stays bounded on a server of thousands of databases."""
        started = time.monotonic()
        hard = started + SENSOR_TICK_DEADLINE_S
        cursor = {db: fp for db, fp in (cursor or {}).items() if fp != UNREAD}
        timeout = min(source.query_timeout_s, FINGERPRINT_BUDGET_S)
        databases = list_databases(source, deadline=hard)
        tick = int(time.time() // 60) if tick is None else tick
        known = sorted((db for db in databases if db in cursor), key=lambda db: (zlib.crc32(db.encode()) - tick) % 4096)
        order = [db for db in databases if db not in cursor] + known
        deadline = started + FINGERPRINT_BUDGET_S
        out: dict[str, str] = {}
        for db in order:
            if time.monotonic() > deadline and db in cursor:
                out[db] = cursor[db]
                continue
            if time.monotonic() >= hard:
                out[db] = UNREAD
                continue
            try:
                conn = connect(source, db, query_timeout_s=timeout, deadline=hard)
            except DatabaseGone:
                continue
            except DatabaseRefused:
                out[db] = "refused"
                continue
            except SourceUnavailable:
                if time.monotonic() < hard:
                    raise
                out[db] = cursor.get(db, UNREAD)  # cut short by the tick's deadline: this database waits a tick
                continue
            try:
                out[db] = PostgresReader(conn, describe(source)).fingerprint(source, db)
            except ConnectionLost:  # a statement past its timeout included
                if time.monotonic() < hard:
                    raise
                out[db] = cursor.get(db, UNREAD)
            finally:
                conn.close()
        return dict(sorted(out.items()))

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        import psycopg2

        return (psycopg2.Error,)

    def error_text(self, e: BaseException) -> str:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__

    def grant_text(self, source: PostgresSource, databases: Optional[Sequence[str]]) -> list[str]:
        dbs = list(databases) if databases else list_databases(source)
        return [
            f"-- source {source.name}: {source.host}:{source.port}, {len(dbs)} databases",
            f"-- TLS (optional): in pg_hba.conf, 'hostssl all {source.user} <client network> "
            f"{'cert' if source.sslcert else 'scram-sha-256'}' and no 'host' line for it make the server refuse "
            f"this account without TLS (the source: {source.tls_description()})",
            *grant_statements(source, dbs),
        ]

    def check_access(self, source: PostgresSource, databases: Optional[Sequence[str]] = None, client=None):
        from metadata_assets.sources.postgres.access import check_access

        return check_access(source, databases)

    def rules_class(self):
        from metadata_assets.sources.postgres.emitter import PostgresUrnRules

        return PostgresUrnRules


KIND = PostgresKind()
