"""MCE files: one deterministic JSON list of proposals per database, written atomically.

The store is a local directory here; `gs://bucket/prefix` stores live in datahub/gcs.py behind the same interface.
Layout under the store root, per source:
    <source>/mce/<database>.json        the MCE file (what `datahub ingest` with the file source reads)
    <source>/snapshots/<database>.json  the catalog snapshot it was built from (for diffs)
    <source>/versions/<database>.json   the file's data version and sha256 (version_key)
Database names are percent-encoded into file names (see encode_name), so any name (spaces, slashes, dots) is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Protocol

import pydantic_core
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.serialization_helper import pre_json_transform

from metadata_assets.datahub import aspect_json
from metadata_assets.report import codes_record


class Store(Protocol):
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def write_chunks(self, key: str, chunks: Iterable[bytes],
                     before_commit: Optional[Callable[[], None]] = None) -> str: ...
    def read_bytes(self, key: str) -> Optional[bytes]: ...
    def sha256(self, key: str) -> Optional[str]: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def uri(self, key: str) -> str: ...
    def lock(self, key: str, wait_s: float, lease_s: float): ...
    def remove_stale_temp(self, prefix: str, older_than_s: float = 600) -> int: ...


def _default_file_mode() -> int:
    umask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()

# LocalStore.write_bytes's temp files: `.<name, up to 50 characters>.<mkstemp's 8 random characters>.tmp`, in the
# directory of the file they become. One is left behind only when its writer died between creating and renaming it.
_TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(_TMP_SUFFIX), re.DOTALL)


class LocalStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()

    def _path(self, key: str) -> Path:
        return self.root / key

    def write_bytes(self, key: str, data: bytes) -> None:
        """Temp file in the same directory, fsync, rename: readers see the old file or the new one, never half."""
        self.write_chunks(key, (data,))

    def write_chunks(self, key: str, chunks: Iterable[bytes],
                     before_commit: Optional[Callable[[], None]] = None) -> str:
        """write_bytes for data made piece by piece, so it is never whole in memory. `before_commit` runs once
        every piece is on disk, just before the rename; if anything before the rename fails, the old file stays.
        Returns the sha256 of what was written."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:50]}.", suffix=_TMP_SUFFIX, dir=path.parent)
        digest = hashlib.sha256()
        try:
            # mkstemp makes the file 0600: give it the mode any new file gets, so other readers (a `datahub ingest`
            # run as another user, a web server) can read it
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                for chunk in chunks:
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            if before_commit is not None:
                before_commit()
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest.hexdigest()

    def read_bytes(self, key: str) -> Optional[bytes]:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def sha256(self, key: str) -> Optional[str]:
        """The sha256 of the stored bytes, read in pieces (an MCE file can be 80 MB); None when absent."""
        try:
            with open(self._path(key), "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        # dot files left out: write_bytes's temp files (.<name>.<random>.tmp), fresh or left by a killed writer
        return sorted(f"{prefix.rstrip('/')}/{p.name}" for p in base.iterdir()
                      if p.is_file() and not p.name.startswith("."))

    def remove_stale_temp(self, prefix: str, older_than_s: float = 600) -> int:
        """Delete write_bytes's temp files under `<root>/<prefix>` (recursively) last modified more than
        `older_than_s` ago: a writer killed between writing and renaming leaves one for good. Younger ones may
        belong to a write in progress and stay. Only regular files named as write_bytes names them are touched.
        Returns how many were deleted."""
        base = self._path(prefix)
        cutoff = time.time() - older_than_s
        removed = 0
        for dirpath, _dirs, names in os.walk(base):  # nothing when base does not exist; symlinks not followed
            for name in names:
                if not _TMP_NAME.fullmatch(name):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or st.st_mtime >= cutoff:
                        continue
                    os.unlink(path)
                except FileNotFoundError:
                    continue  # renamed into place or removed by someone else meanwhile
                removed += 1
        return removed

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def lock(self, key: str, wait_s: float, lease_s: float):
        """An exclusive lock (flock, released when the holder exits, kill -9 included): a context manager;
        LockBusy when not had within wait_s. `lease_s` matters only to stores whose locks can outlive a holder."""
        from metadata_assets.datahub.locks import local_lock

        return local_lock(self._path(key), self.uri(key), wait_s)


def open_store(uri: str) -> Store:
    if uri.startswith("gs://"):
        from metadata_assets.datahub.gcs import GCSStore

        return GCSStore.from_uri(uri)
    return LocalStore(uri)


# Kept as they are in file and object names: ASCII letters, digits, '_', '-' and printable non-ASCII characters.
# Everything else ('.', '/', '%', spaces, controls) is percent-encoded. Leaving non-ASCII raw keeps the longest
# database name (64 BMP characters, at most 3 UTF-8 bytes each) well inside the 255-byte file name limit, where
# percent-encoding every byte would need up to 9 bytes a character.
_SAFE_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def encode_name(database: str) -> str:
    return "".join(
        c if c in _SAFE_ASCII or (c > "\x7f" and c.isprintable()) else urllib.parse.quote(c, safe="").replace(".", "%2E")
        for c in database
    )


def decode_name(file_stem: str) -> str:
    return urllib.parse.unquote(file_stem)


def mce_key(source: str, database: str) -> str:
    return f"{source}/mce/{encode_name(database)}.json"


def snapshot_key(source: str, database: str) -> str:
    return f"{source}/snapshots/{encode_name(database)}.json"


def version_key(source: str, database: str) -> str:
    """A few hundred bytes per database: the data version of its MCE file, the file's sha256, its proposal count and
    warnings (read_version). Written after the snapshot, deleted with it: what an unchanged extraction and the push
    plan read instead of the whole snapshot (~80 MB at 10,000 tables)."""
    return f"{source}/versions/{encode_name(database)}.json"


def read_version(store: Store, source: str, database: str) -> Optional[dict]:
    raw = store.read_bytes(version_key(source, database))
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None  # not one we wrote whole (cannot happen with atomic writes): the snapshot says
    return doc if isinstance(doc, dict) and doc.get("data_version") and doc.get("file_sha256") else None


def write_version(store: Store, source: str, database: str, data_version: str, file_sha256: str,
                  proposals: int, file_warnings: list[str], schema_version: Optional[str] = None,
                  figures: Optional[dict] = None) -> None:
    """`schema_version`: the data version without the statistics; `figures`: the statistics the file carries (what
    the next extraction compares the server's with, to rewrite the file only when they moved enough)."""
    doc = {"data_version": data_version, "file_sha256": file_sha256, "proposals": proposals,
           "file_warnings": list(file_warnings)}
    if schema_version is not None:
        doc["schema_version"] = schema_version
        doc["figures"] = figures or {}
    if file_warnings:  # each warning's [code, subject] (report.Finding), read back by report.from_record
        doc["file_warning_codes"] = codes_record(file_warnings)
    store.write_bytes(version_key(source, database), json.dumps(doc, sort_keys=True, ensure_ascii=False).encode())


def list_mce_databases(store: Store, source: str) -> list[str]:
    return sorted(decode_name(k.rsplit("/", 1)[1][: -len(".json")])
                  for k in store.list(f"{source}/mce") if k.endswith(".json"))


def proposal_obj(m: MetadataChangeProposalWrapper) -> dict:
    """`m.to_obj(simplified_structure=True)` without its round trip through a JSON string (about 2x faster), the
    aspect converted by aspect_json (about 4x faster than avrogen's own walk).

    Same dict, same key order: tests/test_serialization.py compares the two on every proposal of a real schema.
    """
    if m.systemMetadata is not None or rare_shape(m):
        return m.to_obj(simplified_structure=True)  # shapes our files never hold: the library's own path
    return simplified_obj(m)


def rare_shape(m: MetadataChangeProposalWrapper) -> bool:
    """A proposal with parts simplified_obj does not convert (none of ours has them)."""
    return m.auditHeader is not None or m.headers is not None or m.entityKeyAspect is not None or m.aspect is None


def simplified_obj(m: MetadataChangeProposalWrapper, with_system_metadata: bool = False) -> dict:
    """proposal_obj's dict, built directly (not for a rare_shape); `systemMetadata` added when asked and set, as
    the library's to_obj places it (after the aspect)."""
    obj = {"entityType": m.entityType, "entityUrn": m.entityUrn, "changeType": m.changeType,
           "aspectName": m.aspectName, "aspect": {"json": pre_json_transform(aspect_json.to_obj(m.aspect))}}
    if with_system_metadata and m.systemMetadata is not None:
        obj["systemMetadata"] = aspect_json.to_obj(m.systemMetadata)
    return obj


def serialize_mcps(mcps: Iterable[MetadataChangeProposalWrapper]) -> bytes:
    """The file format of DataHub's file sink (simplified aspects); fixed key order and indent, so deterministic."""
    return b"".join(serialize_mcps_chunks(mcps))


def serialize_mcps_chunks(mcps: Iterable[MetadataChangeProposalWrapper]) -> Iterator[bytes]:
    """serialize_mcps one proposal at a time: the same bytes as `json.dumps(list, indent=2)`, in pieces, so a
    database of 10,000 tables never has all its proposals (or their JSON) in memory at once. Each element of an
    indented list is the element's own indented JSON shifted by one level (JSON strings hold no raw newline)."""
    first = True
    for m in mcps:
        yield (b"[\n  " if first else b",\n  ") + _indented_json(m).replace(b"\n", b"\n  ")
        first = False
    yield b"[]\n" if first else b"\n]\n"


def _indented_json(m: MetadataChangeProposalWrapper) -> bytes:
    """`json.dumps(proposal_obj(m), indent=2, ensure_ascii=False)` in UTF-8. Python's encoder has no C path with an
    indent (2.3 s of 78,005 proposals at W); pydantic_core's (Rust) writes the same bytes for the values
    aspect_json.to_file_obj lets through (8x faster). Anything else takes Python's encoder."""
    if m.systemMetadata is None and not rare_shape(m) and type(m.entityType) is str \
            and type(m.entityUrn) is str and type(m.changeType) is str and type(m.aspectName) is str:
        aspect = aspect_json.to_file_obj(m.aspect)
        if aspect is not None:
            obj = {"entityType": m.entityType, "entityUrn": m.entityUrn, "changeType": m.changeType,
                   "aspectName": m.aspectName, "aspect": {"json": aspect}}
            try:
                return pydantic_core.to_json(obj, indent=2)
            except pydantic_core.PydanticSerializationError:
                pass  # a lone surrogate: Python's encoder below raises the UnicodeEncodeError it always did
    return json.dumps(proposal_obj(m), indent=2, ensure_ascii=False).encode("utf-8")


_PLAIN_KEYS = frozenset({"entityType", "entityUrn", "changeType", "aspectName", "aspect"})


def plain_proposal(obj: dict) -> bool:
    """A proposal of the shape extraction writes: an UPSERT of one known aspect as simplified JSON."""
    from datahub.emitter.aspect import ASPECT_MAP

    aspect = obj.get("aspect")
    return (obj.keys() <= _PLAIN_KEYS and obj.get("changeType") == "UPSERT" and obj.get("aspectName") in ASPECT_MAP
            and type(aspect) is dict and aspect.keys() == {"json"})


def read_mcps(data: bytes) -> list[MetadataChangeProposalWrapper]:
    """The proposals of an MCE file: what MetadataChangeProposalWrapper.from_obj gives for each, the aspects of the
    shapes our files hold decoded by aspect_json (about 3x faster; tests/test_serialization.py compares)."""
    from datahub.emitter.aspect import ASPECT_MAP

    out = []
    for obj in json.loads(data):
        aspect = obj.get("aspect")
        if plain_proposal(obj):
            cls = ASPECT_MAP[obj["aspectName"]]
            out.append(MetadataChangeProposalWrapper(
                entityType=obj["entityType"], entityUrn=obj["entityUrn"], changeType=obj["changeType"],
                aspectName=obj["aspectName"], aspect=aspect_json.from_file_obj(cls, aspect["json"])))
            continue
        if aspect and "json" in aspect:  # simplified structure: re-nest as DataHub's serialized form
            obj = {**obj, "aspect": {"value": json.dumps(aspect["json"]), "contentType": "application/json"}}
        out.append(MetadataChangeProposalWrapper.from_obj(obj))
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_version(db, rules, schema_hash: Optional[str] = None, figures: Optional[dict] = None) -> str:
    """A database's data version: its schema hash, its kind's MCE format and URN rules (`rules.version_parts()`),
    and the table statistics its file carries (`figures`, catalog.Database.profile_figures) when it has a profile.
    What Dagster shows as the data version, and what a push compares with what DataHub last confirmed."""
    parts = [schema_hash or db.schema_hash(), *rules.version_parts()]
    if figures:
        parts.append(sorted(figures.items()))
    return sha256(json.dumps(parts).encode())
