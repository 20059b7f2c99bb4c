"""Stores: where a source's files live, with atomic writes. A local directory here (LocalStore); `gs://bucket/prefix`
stores in gcs.py, behind the same Store protocol. What lives where in a store: layout.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Protocol


class Store(Protocol):
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def write_chunks(
        self, key: str, chunks: Iterable[bytes], before_commit: Optional[Callable[[], None]] = None
    ) -> str: ...
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

    def write_chunks(
        self, key: str, chunks: Iterable[bytes], before_commit: Optional[Callable[[], None]] = None
    ) -> str:
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
        """The sha256 of the stored bytes, read in pieces (an MCE file can be large); None when absent."""
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
        return sorted(
            f"{prefix.rstrip('/')}/{p.name}" for p in base.iterdir() if p.is_file() and not p.name.startswith(".")
        )

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
        from metadata_assets.storage.locks import local_lock

        return local_lock(self._path(key), self.uri(key), wait_s)


def open_store(uri: str) -> Store:
    if uri.startswith("gs://"):
        from metadata_assets.storage.gcs import GCSStore

        return GCSStore.from_uri(uri)
    return LocalStore(uri)


def sha256(data: bytes) -> str:
    """The hex sha256 of `data`: what Store.sha256 gives for these bytes stored."""
    return hashlib.sha256(data).hexdigest()
