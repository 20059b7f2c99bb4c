"""MySQL/MariaDB as a SourceKind: one connection per run (replaced when it breaks), fingerprints with rotating key
parts, GRANT text, check-access probes (access.py), proposals of the SQL emitter with MySQL's hooks (emitter.py)."""

from __future__ import annotations

import logging
import re
import time
import zlib
from typing import Optional, Sequence

from metadata_assets.catalog import Database
from metadata_assets.sources.base import (
    SENSOR_TICK_DEADLINE_S,
    AccessProbes,
    ConnectionLost,
    DatabaseFailure,
    FailureCause,
    ReadStats,
    Session,
    SourceQueryFailed,
    SourceUnavailable,
    SQLServerKind,
    digest,
)
from metadata_assets.sources.mysql.config import MySQLSource
from metadata_assets.sources.mysql.reader import (
    Deadline,
    MySQLReader,
    connect,
    describe,
    grant_statements,
    list_databases,
    server_version,
)

log = logging.getLogger(__name__)

# A tick's connect and fingerprint statements end within SENSOR_TICK_DEADLINE_S together (reader.Deadline).
SENSOR_QUERY_TIMEOUT_S = SENSOR_TICK_DEADLINE_S  # each statement's own bound (the deadline above bounds their sum)
# Each tick reads the costly key parts for this many databases (plus new ones); see MySQLKind.fingerprints.
KEY_SLICE = 250


class MySQLSession(Session):
    """One connection for a run, replaced when it breaks: each batch is read again once over a new connection."""

    def __init__(self, source: MySQLSource):
        self.source = source
        self.stats = ReadStats()
        self.conn = connect(source)  # unreachable at the start: the run fails with SourceUnavailable
        self.reader = MySQLReader(self.conn, describe(source), self.stats)
        self.down: Optional[DatabaseFailure] = None  # set once the server could not be reached again
        self._per_database: dict[str, list[str]] = {}

    def privilege_warnings(self, databases: Sequence[str]) -> list[str]:
        everywhere, self._per_database = self.reader.privilege_findings(databases)
        return everywhere

    def source_warnings(self, databases: Sequence[str]) -> list[str]:
        return self.reader.routine_warnings(self.source, databases)

    def read_batch(self, batch: list[str]) -> tuple[dict[str, Database], Optional[DatabaseFailure]]:
        if self.down:
            return {}, self.down
        for attempt in (1, 2):
            try:
                return {db.name: db for db in self.reader.read(batch, self.source)}, None
            except SourceQueryFailed as e:
                return {}, DatabaseFailure(FailureCause.BATCH, str(e))
            except ConnectionLost as e:
                log.warning("%s (attempt %d of 2 for a batch of %d databases)", e, attempt, len(batch))
                error = f"{e}; nothing of this batch was written, its previous files are kept"
            self._reconnect()
            if self.down:
                return {}, DatabaseFailure(FailureCause.SOURCE, f"{error}; then {self.down}")
        return {}, DatabaseFailure(FailureCause.BATCH, error)

    def _reconnect(self) -> None:
        self.close()
        try:
            self.conn = connect(self.source)
        except SourceUnavailable as e:
            self.conn, self.down = None, DatabaseFailure(FailureCause.SOURCE, f"cannot reconnect: {e}")
            return
        self.reader = MySQLReader(self.conn, describe(self.source), self.stats)

    def access_warnings(self, database: str) -> list[str]:
        return list(self._per_database.get(database, ()))  # grants on this database (privilege_warnings)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # already broken
                pass
            self.conn = None


class MySQLKind(SQLServerKind, AccessProbes):
    type = "mysql"
    platform = "mysql"
    title = "MySQL"
    catalog_read = "information_schema"

    def pool(self, source: MySQLSource) -> str:
        return "mysql_" + re.sub(r"[^A-Za-z0-9_]", "_", f"{source.host}_{source.port}")

    def list_databases(self, source: MySQLSource, client=None) -> list[str]:
        return list_databases(source)

    def session(self, source: MySQLSource, client=None) -> MySQLSession:
        return MySQLSession(source)

    def fingerprints(
        self, source: MySQLSource, client=None, cursor: Optional[dict[str, str]] = None, tick: Optional[int] = None
    ) -> dict[str, str]:
        """Digests `<tables+columns>.<keys>`. Key parts (key columns, foreign-key rules) make MariaDB open every
        table in full: over a 3,000-database server they cost more than all other parts together. Each tick reads
        them for KEY_SLICE databases (plus new ones; `tick`, default the current minute, picks the slice); the
        others keep the key digest of the cursor, so a key-only change is seen within ceil(N / KEY_SLICE) ticks."""
        cursor = cursor or {}
        deadline = Deadline(SENSOR_TICK_DEADLINE_S)
        try:
            return self._fingerprints(source, cursor, tick, KEY_SLICE, deadline)
        except (SourceUnavailable, SourceQueryFailed) as e:
            if not deadline.passed:
                raise
            raise SourceQueryFailed(
                f"{describe(source)}: the fingerprint read did not finish within the sensor tick's deadline of "
                f"{deadline.seconds:g}s (connect and statements together, inside Dagster's 60 s sensor timeout); "
                f"nothing was changed, the next tick tries again ({e})"
            ) from None
        finally:
            deadline.close()

    def _fingerprints(
        self, source: MySQLSource, cursor: dict[str, str], tick: Optional[int], key_slice: int, deadline: Deadline
    ) -> dict[str, str]:
        conn = connect(source, query_timeout_s=min(source.query_timeout_s, SENSOR_QUERY_TIMEOUT_S), deadline=deadline)
        try:
            reader = MySQLReader(conn, describe(source))
            if not cursor or any("." not in v for v in cursor.values()):  # first tick, or an older cursor format
                full = reader.fingerprints(source)
                cheap = {db: "|".join(p for p in fp.split("|") if p[0] in "stcp") for db, fp in full.items()}
                keyed = {db: "|".join(p for p in fp.split("|") if p[0] in "kri") for db, fp in full.items()}
            else:
                cheap = reader.fingerprints(source, key_databases=[])
                n_slices = -(-len(cheap) // key_slice) or 1
                tick = int(time.time() // 60) if tick is None else tick
                chosen = [
                    db for db in cheap if db not in cursor or zlib.crc32(db.encode()) % n_slices == tick % n_slices
                ]
                keyed = {db: "" for db in chosen}
                keyed.update(reader.key_fingerprints(source, chosen))
        finally:
            conn.close()
        return {
            db: f"{digest(fp)}.{digest(keyed[db]) if db in keyed else cursor[db].split('.', 1)[1]}"
            for db, fp in cheap.items()
        }

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        import pymysql

        return (pymysql.err.MySQLError,)

    def error_text(self, e: BaseException) -> str:
        return str(e.args[-1]) if e.args else str(e)  # pymysql: (code, message)

    def grant_text(self, source: MySQLSource, databases: Optional[Sequence[str]]) -> list[str]:
        version = None
        if databases:
            dbs = list(databases)
        else:  # the account exists: ask the server which routine grant it offers too
            dbs, version = list_databases(source), server_version(source)
        return [
            f"-- source {source.name}: {source.host}:{source.port}, {len(dbs)} databases",
            f"-- TLS (optional): ALTER USER '{source.user}'@'%' REQUIRE {'X509' if source.tls.cert else 'SSL'}; "
            f"makes the server refuse this account without TLS (the source: {source.tls.describe()})",
            *grant_statements(source, dbs, version),
        ]

    def check_access(self, source: MySQLSource, databases: Optional[Sequence[str]] = None, client=None):
        from metadata_assets.sources.mysql.access import check_access

        return check_access(source, databases)

    def rules_class(self):
        from metadata_assets.sources.mysql.emitter import MySQLUrnRules

        return MySQLUrnRules


KIND = MySQLKind()
