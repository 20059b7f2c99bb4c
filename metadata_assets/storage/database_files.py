"""A database's stored files: its MCE file, its snapshot and its version record (where they live: layout.py), and
the older formats a store may still hold: a store from before version records, whose snapshot carries what the
record holds (its data version, the file's sha256, proposals and warnings), and older snapshots still, without
a data version.

DatabaseFiles.write writes them in this order: the MCE file (atomically; just before it commits, an old version
that differs from the new one is forgotten: its record and snapshot deleted), then the snapshot, then the version
record. Whoever reads a version (DatabaseFiles.version) takes the record's, else the snapshot's, else versions the
file by its bytes: between the file and the other two neither the old version (new file) nor the new one (old file)
can be seen, so a crash anywhere in between means a re-push, never a skipped or wrongly recorded one.
No Dagster here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from metadata_assets.catalog import Database
from metadata_assets.report import codes_record
from metadata_assets.storage.layout import mce_key, snapshot_key, version_key
from metadata_assets.storage.store import Store, sha256


def data_version(db: Database, rules, schema_hash: Optional[str] = None, figures: Optional[dict] = None) -> str:
    """A database's data version: its schema hash, its kind's MCE format and URN rules (`rules.version_parts()`),
    and the table statistics its file carries (`figures`, catalog.Database.profile_figures) when it has a profile.
    What Dagster shows as the data version, and what a push compares with what DataHub last confirmed."""
    parts = [schema_hash or db.schema_hash(), *rules.version_parts()]
    if figures:
        parts.append(sorted(figures.items()))
    return sha256(json.dumps(parts).encode())


@dataclass
class VersionRecord:
    """What a version record holds, and a snapshot's header repeats: the data version of the MCE file, the schema
    version (the data version without the statistics), the statistics the file carries (`figures`: what the next
    extraction compares the server's with, to rewrite the file only when they moved enough), the file's sha256,
    its proposal count and warnings."""

    data_version: str
    schema_version: str
    figures: dict
    file_warnings: list[str]
    proposals: int = 0
    file_sha256: Optional[str] = None

    def header(self) -> dict:
        """The keys the snapshot carries beside the schema, in its order (the version record adds the warnings'
        codes)."""
        return {k: getattr(self, k) for k in _HEADER_KEYS}


_HEADER_KEYS = ("data_version", "schema_version", "figures", "file_sha256", "proposals", "file_warnings")


def read_version(store: Store, source: str, database: str) -> Optional[dict]:
    """The database's version record (layout.version_key); None when there is none."""
    raw = store.read_bytes(version_key(source, database))
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None  # not one we wrote whole (cannot happen with atomic writes): the snapshot says
    return doc if isinstance(doc, dict) and doc.get("data_version") and doc.get("file_sha256") else None


def write_version(store: Store, source: str, database: str, record: VersionRecord) -> None:
    doc = {**record.header(), "file_warnings": list(record.file_warnings)}  # written with sorted keys
    if record.file_warnings:  # each warning's [code, subject] (report.Finding), read back by report.from_record
        doc["file_warning_codes"] = codes_record(record.file_warnings)
    store.write_bytes(version_key(source, database), json.dumps(doc, sort_keys=True, ensure_ascii=False).encode())


_UNREAD = object()


class DatabaseFiles:
    """One database's files in a store. An instance reads the version record and the snapshot at most once and keeps
    what it read (until its write), so what an extraction decides on is what its write forgets: make a new one to
    see them as they are now."""

    def __init__(self, store: Store, source: str, database: str):
        self.store, self.source, self.database = store, source, database
        self.mce_key = mce_key(source, database)
        self._record = _UNREAD
        self._snapshot = _UNREAD

    @property
    def uri(self) -> str:
        """Where the MCE file is (a path, or a gs:// URI)."""
        return self.store.uri(self.mce_key)

    def read_file(self) -> Optional[bytes]:
        """The MCE file's bytes (read afresh each time); None when there is none."""
        return self.store.read_bytes(self.mce_key)

    def snapshot(self) -> Optional[dict]:
        """The stored snapshot as JSON (its header's keys beside the schema); None when there is none."""
        if self._snapshot is _UNREAD:
            raw = self.store.read_bytes(snapshot_key(self.source, self.database))
            self._snapshot = json.loads(raw) if raw else None
        return self._snapshot

    def previous(self) -> Optional[Database]:
        """The stored snapshot: the schema the MCE file was built from."""
        doc = self.snapshot()
        return Database.from_dict(doc) if doc else None

    def recorded(self) -> Optional[dict]:
        """The version record when there is one (a few hundred bytes), else the snapshot when it carries a data
        version (a store from before version records); None when neither does."""
        if self._record is _UNREAD:
            self._record = read_version(self.store, self.source, self.database)
        if self._record is not None:
            return self._record
        doc = self.snapshot()
        return doc if doc and doc.get("data_version") else None

    def intact(self) -> bool:
        """The MCE file is the one recorded() describes (its sha256)."""
        return self.store.sha256(self.mce_key) == self.recorded()["file_sha256"]

    def keep(self, file_warnings: list[str]) -> None:
        """The files stay as they are (an unchanged schema); a store from before version records gets the version
        record of what its snapshot carries, warnings as given (the record's, read back)."""
        recorded = self.recorded()
        if self._record is None:  # recorded() is the snapshot's
            write_version(
                self.store,
                self.source,
                self.database,
                VersionRecord(
                    data_version=recorded["data_version"],
                    schema_version=recorded["schema_version"],
                    figures=recorded.get("figures") or {},
                    file_warnings=file_warnings,
                    proposals=recorded.get("proposals", 0),
                    file_sha256=recorded["file_sha256"],
                ),
            )

    def write(
        self,
        chunks: Iterable[bytes],
        snapshot: Database,
        record: VersionRecord,
        before_snapshot: Optional[Callable[[], None]] = None,
    ) -> None:
        """Write the MCE file from `chunks` (never whole in memory), then `snapshot` with `record` as its header,
        then the version record; the old version is forgotten just before the new file commits (the module's
        docstring). `record` is read once the file is written, so its proposals and warnings may be filled while
        `chunks` is consumed; its file_sha256 is set here. A failure before the file commits leaves the old files as
        they were. `before_snapshot` runs between the file and the snapshot."""

        def forget_old_version() -> None:
            if any(
                doc is not None and doc.get("data_version") != record.data_version
                for doc in (self.recorded(), self.snapshot())
            ):
                self._forget_version()

        record.file_sha256 = self.store.write_chunks(self.mce_key, chunks, before_commit=forget_old_version)
        self._record = self._snapshot = _UNREAD
        if before_snapshot is not None:
            before_snapshot()
        # the snapshot carries its data version (a push compares strings instead of re-hashing every snapshot) and
        # what the next unchanged run reports without rebuilding the file; written a table at a time (the whole
        # dict and its string at once would raise the peak memory of a large database: bench/NOTES.md)
        self.store.write_chunks(snapshot_key(self.source, self.database), snapshot.json_chunks(record.header()))
        write_version(self.store, self.source, self.database, record)

    def forget(self) -> None:
        """Delete the database's files: the MCE file, then its version record and snapshot."""
        self.store.delete(self.mce_key)
        self._forget_version()

    def _forget_version(self) -> None:
        self.store.delete(version_key(self.source, self.database))
        self.store.delete(snapshot_key(self.source, self.database))
        self._record = self._snapshot = None

    def version(self, rules) -> tuple[str, Optional[str]]:
        """(the data version of the files, the sha256 of the MCE file it describes; None when an older snapshot
        does not say): the same value extraction tags its materialization with. The version record's, else the
        snapshot's (computed from it when older than data versions), else the file's bytes' (no snapshot: written
        by something else than extraction, or an extraction is between its writes)."""
        recorded = self.recorded()
        if recorded is not None:
            return recorded["data_version"], recorded.get("file_sha256")
        doc = self.snapshot()
        if doc is not None:
            return data_version(Database.from_dict(doc), rules), doc.get("file_sha256")
        sha = sha256(self.read_file() or b"")
        return "file:" + sha, sha

    def sent_version(self, rules, data: bytes, planned: tuple[str, Optional[str]]) -> str:
        """The version of the file bytes a push sent (`data`). The plan's (`planned`, what version() said then)
        holds if the file is still the one it describes; else the files' as they are now, if they describe these
        bytes; else the bytes themselves (a version no snapshot has: the next push sends the database again rather
        than skip a file it never sent)."""
        sha = sha256(data)
        if planned[1] == sha:
            return planned[0]
        version, file_sha = self.version(rules)  # read only when the plan's no longer holds
        return version if file_sha == sha else "file:" + sha
