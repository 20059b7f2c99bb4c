"""Exclusive locks in a store, so that two writers of one file (a source's push state) never interleave.

Local directory: `flock` on a lock file. The kernel releases it when the holder exits, kill -9 included, so a
crashed push never blocks the next one.
GCS: a lock object created with `if_generation_match=0` (only one creator can win), holding its holder and an
expiry. The holder deletes it (naming its generation) when done; one whose holder died is taken over once expired,
so the lease must outlast the longest legitimate holder (a push stops at its deadline: lease = deadline + margin).
No Dagster here.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator


class LockBusy(RuntimeError):
    """Another process holds the lock and did not release it within the wait."""


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


@contextmanager
def local_lock(path: Path, what: str, wait_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(errors="replace").strip() or "unknown"
                    raise LockBusy(f"{what} is held by another process ({holder}); waited {wait_s:.0f}s") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def gcs_lock(store, key: str, what: str, wait_s: float, lease_s: float) -> Iterator[None]:
    """`store` is a storage.gcs.GCSStore."""
    from google.api_core.exceptions import NotFound, PreconditionFailed

    name = store._name(key)
    deadline = time.monotonic() + wait_s
    while True:
        body = json.dumps({"holder": _holder(), "expires": time.time() + lease_s}).encode()
        if store.write_if_generation(key, body, 0):
            break
        blob = store.bucket.get_blob(name)
        if blob is None:
            continue  # released between the two calls
        try:
            doc = json.loads(blob.download_as_bytes(if_generation_match=blob.generation))
        except (NotFound, PreconditionFailed, ValueError):
            continue
        if doc.get("expires", 0) < time.time():  # its holder died: take it over, naming the generation we saw
            try:
                store.bucket.blob(name).delete(if_generation_match=blob.generation)
            except (NotFound, PreconditionFailed):
                pass
            continue
        if time.monotonic() >= deadline:
            raise LockBusy(f"{what} is held by another process ({doc.get('holder', 'unknown')}); waited {wait_s:.0f}s")
        time.sleep(0.5)
    generation = store.bucket.get_blob(name).generation
    try:
        yield
    finally:
        try:
            store.bucket.blob(name).delete(if_generation_match=generation)
        except (NotFound, PreconditionFailed):
            pass
