"""Schema history: every schema version of a database, append-only in the store, bounded by a retention.

No Dagster, no SQL. Layout under the store root (local directory or gs://, storage/store.py's Store):
    <source>/history/<database>/<seq>-<UTC time>-<schema hash>.json.gz   one version: the catalog snapshot
    <source>/outbox/<database>@<seq>.json                                 a change waiting to be notified (notify.py)
`<seq>` counts the database's versions from 1 (8 digits, so names sort in order); the name alone says when and
what, so listing a database's history reads no version. A version file is created once and never rewritten: a
local one is linked into place only if the name is free (os.link), a GCS one uploaded with
`if_generation_match=0`; retention deletes the oldest ones, nothing else touches them.

When: extract.write_database calls `Recorder.record` only when it rewrites a database's files and the schema
version differs from the one recorded (nothing is read or written on an unchanged day), before it writes the new
files: a crash in between leaves the version recorded and the files to be written by the next run, which finds the
version already there (same schema hash) and records nothing twice. A fault while recording fails the database
(its files stay as they were), so a version is never skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

from metadata_assets.catalog import Database
from metadata_assets.change_config import History, Notifications
from metadata_assets.diff import SchemaDiff, diff
from metadata_assets.risk import at_least
from metadata_assets.storage.layout import encode_name
from metadata_assets.storage.store import Store

FORMAT = 1
_NAME = re.compile(r"^(\d{8})-(\d{8}T\d{6})Z-([0-9a-f]{16})\.json\.gz$")
MAX_QUEUED_CHANGES = 500  # changes an outbox entry carries (a payload says how many more there were)


def history_prefix(source: str, database: str) -> str:
    return f"{source}/history/{encode_name(database)}"


def outbox_prefix(source: str) -> str:
    return f"{source}/outbox"


def outbox_key(source: str, database: str, seq: int) -> str:
    return f"{outbox_prefix(source)}/{encode_name(database)}@{seq:08d}.json"  # '@' is always encoded in a name


@dataclass(frozen=True, order=True)
class VersionRef:
    """One stored version, as its name says: its number, when it was recorded, the start of its schema hash."""

    seq: int
    recorded_at: datetime
    schema_hash: str  # the first 16 hex digits of catalog.Database.schema_hash()
    key: str

    @property
    def when(self) -> str:
        return self.recorded_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def versions(store: Store, source: str, database: str) -> list[VersionRef]:
    """The database's kept versions, oldest first (one listing, no version read)."""
    out = []
    for key in store.list(history_prefix(source, database)):
        m = _NAME.match(key.rsplit("/", 1)[1])
        if m:
            out.append(
                VersionRef(
                    int(m.group(1)),
                    datetime.strptime(m.group(2), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc),
                    m.group(3),
                    key,
                )
            )
    return sorted(out)


def read(store: Store, ref: VersionRef) -> dict:
    """A version's document: seq, recorded_at, schema_hash, schema_version, seeded, snapshot (Database.to_dict)."""
    raw = store.read_bytes(ref.key)
    if raw is None:
        raise FileNotFoundError(f"{store.uri(ref.key)}: version {ref.seq} is gone (removed by retention meanwhile?)")
    return json.loads(gzip.decompress(raw))


def snapshot(doc: dict) -> Database:
    return Database.from_dict(doc["snapshot"])


def create_only(store: Store, key: str, data: bytes) -> bool:
    """Write `key` only if it does not exist; False when it did. Atomic: readers see it whole or not at all."""
    root = getattr(store, "root", None)
    if root is not None and hasattr(store, "_path"):  # LocalStore: a temp file, linked into place if the name is free
        path = store._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        finally:
            os.unlink(tmp)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    if hasattr(store, "write_if_generation"):  # GCS: an upload that succeeds only when no object has the name
        if store.write_if_generation(key, data, 0):
            return True
        return store.read_bytes(key) == data  # a retried upload whose first attempt had landed is ours
    if store.read_bytes(key) is not None:
        return False
    store.write_bytes(key, data)
    return True


def now() -> float:
    """The time versions are recorded at (a function of its own, so a test can move it)."""
    return time.time()


def _gzipped_version(doc: dict, db: Database) -> bytes:
    """`doc` with the snapshot under "snapshot", as gzip (level 1): made and compressed a table at a time
    (catalog.Database.json_chunks), so a database of 10,000 tables never holds its snapshot's whole dict or JSON
    string; the version file itself is small (bench/NOTES.md)."""
    head = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    gz = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream (mtime 0), what gzip.decompress reads
    out = [gz.compress(head[:-1].encode() + b',"snapshot":')]
    out += [gz.compress(chunk) for chunk in db.json_chunks()]
    out += [gz.compress(b"}"), gz.flush()]
    return b"".join(out)


def _version_name(seq: int, at: datetime, schema_hash: str) -> str:
    return f"{seq:08d}-{at:%Y%m%dT%H%M%S}Z-{schema_hash[:16]}.json.gz"


@dataclass
class Recorder:
    """What extract.write_database calls for a database whose files it rewrites (see the module's docstring)."""

    store: Store
    source: str
    history: History
    risk_rules: dict
    notifications: Notifications
    clock: Optional[Callable[[], float]] = None  # seconds since the epoch; None: now()
    last_diff: Optional[SchemaDiff] = None  # the diff the last `record` classified (None: it compared nothing)

    def now(self) -> float:
        return (self.clock or now)()

    def record(
        self,
        db: Database,
        previous: Optional[Database],
        schema_hash: str,
        schema_version: str,
        recorded_schema_version: Optional[str],
    ) -> Optional[VersionRef]:
        """Append `db` as the database's next version unless its schema is the last one kept; queue the change
        for notification when it is of `notifications.queue_risk` or worse. Returns the new version, or None.
        The change is queued before its version is written: a fault between the two leaves a queued change whose
        version the next run writes (and queues again under the same key, which keeps the first), never a version
        whose change was not queued."""
        self.last_diff = None  # one Recorder serves a whole extraction: no diff of another database carries over
        if recorded_schema_version is not None and recorded_schema_version == schema_version:
            return None  # the schema the files hold already (statistics moved, or a forced rewrite)
        kept = versions(self.store, self.source, db.name)
        if kept and kept[-1].schema_hash == schema_hash[:16]:
            return None  # recorded by an earlier run that did not get to write the files
        if not kept and previous is not None and previous.schema_hash()[:16] != schema_hash[:16]:
            # a store from before history was kept: its snapshot becomes the first version, so this one has a diff
            kept.append(self._append(previous, previous.schema_hash(), None, kept, seeded=True))
        ref = self._append(db, schema_hash, schema_version, kept, changed_from=previous if kept else None)
        self._prune([*kept, ref])
        return ref

    def _append(
        self,
        db: Database,
        schema_hash: str,
        schema_version: Optional[str],
        kept: list[VersionRef],
        seeded: bool = False,
        changed_from: Optional[Database] = None,
    ) -> VersionRef:
        for attempt in range(5):  # another writer of the same database took the number: take the next one
            if attempt:
                kept[:] = versions(self.store, self.source, db.name)
                if kept and kept[-1].schema_hash == schema_hash[:16]:
                    return kept.pop()
            seq = (kept[-1].seq if kept else 0) + 1
            at = datetime.fromtimestamp(self.now(), timezone.utc).replace(microsecond=0)
            key = f"{history_prefix(self.source, db.name)}/{_version_name(seq, at, schema_hash)}"
            doc = {
                "format": FORMAT,
                "source": self.source,
                "database": db.name,
                "seq": seq,
                "recorded_at": at.isoformat(),
                "schema_hash": schema_hash,
                "schema_version": schema_version,
                "seeded": seeded,
            }
            data = _gzipped_version(doc, db)
            ref = VersionRef(seq, at, schema_hash[:16], key)
            if changed_from is not None:
                self._queue(db, changed_from, ref)
            if create_only(self.store, key, data):
                return ref
        raise RuntimeError(f"{self.source}/{db.name}: could not take a version number (five concurrent writers?)")

    def _queue(self, db: Database, previous: Optional[Database], ref: VersionRef) -> None:
        d = self.last_diff = diff(previous, db, self.risk_rules)
        if d.baseline or d.empty or not at_least(d.risk, self.notifications.queue_risk):
            return
        changes = d.changes()
        entry = {
            "id": f"{self.source}/{db.name}/{ref.seq}",
            "source": self.source,
            "database": db.name,
            "seq": ref.seq,
            "recorded_at": ref.recorded_at.isoformat(),
            "queued_at_ms": int(self.now() * 1000),
            "risk": d.risk,
            "risk_counts": d.risk_counts(),
            "total_changes": len(changes),
            "changes": [c.to_dict() for c in changes[:MAX_QUEUED_CHANGES]],
            "delivered": [],
            "failures": {},
        }
        create_only(
            self.store,
            outbox_key(self.source, db.name, ref.seq),
            json.dumps(entry, sort_keys=True, ensure_ascii=False).encode(),
        )

    def _prune(self, kept: list[VersionRef]) -> None:
        """Delete the oldest versions beyond `keep_versions`, and those older than `keep_days` (never the newest)."""
        h = self.history
        cutoff = (self.now() - h.keep_days * 86400) if h.keep_days is not None else None
        doomed = kept[: -h.keep_versions] if len(kept) > h.keep_versions else []
        if cutoff is not None:
            doomed += [v for v in kept[len(doomed) : -1] if v.recorded_at.timestamp() < cutoff]
        for v in doomed:
            self.store.delete(v.key)


def recorder_for(source, store: Store) -> Optional[Recorder]:
    """The source's Recorder (None when its history is disabled)."""
    if not source.history.enabled:
        return None
    return Recorder(store, source.name, source.history, dict(source.risk.rules), source.notifications)


# --- reading a timeline -----------------------------------------------------------------------------------------


@dataclass
class Entry:
    ref: VersionRef
    doc: dict
    diff: SchemaDiff  # from the version before it (baseline: the first one kept)


def parse_when(value, end_of_day: bool = False) -> Optional[datetime]:
    """A date (YYYY-MM-DD: its start, or with `end_of_day` its last second) or an ISO datetime; UTC when naive."""
    if value is None or isinstance(value, datetime):
        return value
    text = str(value).strip()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date: give YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)") from None
    if end_of_day and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        when = when.replace(hour=23, minute=59, second=59)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def timeline(store: Store, source: str, database: str, rules=None, since=None) -> list[Entry]:
    """The database's versions recorded at or after `since` (a date or datetime, UTC when naive), oldest first, each
    with its diff from the version before it."""
    since = parse_when(since)
    refs = versions(store, source, database)
    first = next((i for i, r in enumerate(refs) if since is None or r.recorded_at >= since), len(refs))
    out: list[Entry] = []
    prev = snapshot(read(store, refs[first - 1])) if first > 0 else None
    for ref in refs[first:]:
        doc = read(store, ref)
        cur = snapshot(doc)
        out.append(Entry(ref, doc, diff(prev, cur, rules)))
        prev = cur
    return out


def at(store: Store, source: str, database: str, when) -> Optional[tuple[VersionRef, Database]]:
    """The schema as it was at `when` (a bare date: at the end of that day): the last version recorded at or before
    it (None: none that old is kept)."""
    when = parse_when(when, end_of_day=True)
    refs = [r for r in versions(store, source, database) if r.recorded_at <= when]
    if not refs:
        return None
    return refs[-1], snapshot(read(store, refs[-1]))
