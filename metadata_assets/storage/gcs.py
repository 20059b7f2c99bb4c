"""MCE files on Google Cloud Storage: the `gs://bucket/prefix` implementation of the Store protocol (store.py).

Atomicity: a GCS object upload is all-or-nothing; readers see the previous generation until the new one is
finalized, never a partial object (files up to 8 MiB go up in one multipart request, larger ones as a resumable
upload that also only becomes visible when complete).

Preconditions: every upload names the generation it replaces (`if_generation_match`, 0 = "must not exist").
That makes the upload idempotent: google-cloud-storage 3.x retries uploads on transient errors, and a retried
request whose first attempt had landed gets 412 instead of writing twice. On 412 we re-read and either find our
bytes already there or write again against the new generation: with two concurrent writers of one file the last
one wins whole (never a mix), which is what a re-extraction wants.

Determinism: writing bytes identical to the stored object (same size and CRC32C) is a no-op, so an unchanged
database does not create a new generation.

Credentials come from the environment (Application Default Credentials: Workload Identity on GKE); with
STORAGE_EMULATOR_HOST set the client talks anonymously to that emulator. Nothing here imports Dagster.
"""

from __future__ import annotations

import base64
import hashlib
import random
import tempfile
import time
from typing import Callable, Iterable, Optional

import google_crc32c
from google.api_core.exceptions import NotFound, PreconditionFailed
from google.cloud import storage


def crc32c_b64(data: bytes) -> str:
    """The CRC32C of `data` as GCS reports it (big-endian, base64)."""
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


class GCSStore:
    def __init__(self, bucket: str, prefix: str = "", client: Optional[storage.Client] = None, max_attempts: int = 5):
        if not bucket:
            raise ValueError("GCSStore needs a bucket name")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.client = client or storage.Client()
        self.bucket = self.client.bucket(bucket)
        self.max_attempts = max_attempts

    @classmethod
    def from_uri(cls, uri: str, client: Optional[storage.Client] = None) -> "GCSStore":
        if not uri.startswith("gs://"):
            raise ValueError(f"not a gs:// URI: {uri!r}")
        bucket, _, prefix = uri[len("gs://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r} (want gs://bucket/prefix)")
        return cls(bucket, prefix, client=client)

    def _name(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _current(self, name: str) -> Optional[storage.Blob]:
        return self.bucket.get_blob(name)  # None when absent

    def write_if_generation(self, key: str, data: bytes, generation: int) -> bool:
        """One upload that succeeds only if the object is still at `generation` (0: absent). False on 412."""
        blob = self.bucket.blob(self._name(key))
        try:
            blob.upload_from_string(
                data, content_type="application/json", if_generation_match=generation, checksum="crc32c"
            )
        except PreconditionFailed:
            return False
        return True

    def write_bytes(self, key: str, data: bytes) -> None:
        self._write(
            key, len(data), crc32c_b64(data), lambda generation: self.write_if_generation(key, data, generation)
        )

    def write_chunks(
        self, key: str, chunks: Iterable[bytes], before_commit: Optional[Callable[[], None]] = None
    ) -> str:
        """write_bytes for data made piece by piece: spooled to a local temp file (in memory up to 16 MiB), then
        uploaded as one object. `before_commit` runs before the upload. Returns the sha256 of the bytes."""
        digest, crc, size = hashlib.sha256(), google_crc32c.Checksum(), 0
        with tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool:
            for chunk in chunks:
                digest.update(chunk)
                crc.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            if before_commit is not None:
                before_commit()
            want_crc = base64.b64encode(crc.digest()).decode()

            def upload(generation: int) -> bool:
                spool.seek(0)
                try:
                    self.bucket.blob(self._name(key)).upload_from_file(
                        spool,
                        size=size,
                        content_type="application/json",
                        if_generation_match=generation,
                        checksum="crc32c",
                    )
                except PreconditionFailed:
                    return False
                return True

            self._write(key, size, want_crc, upload)
        return digest.hexdigest()

    def _write(self, key: str, size: int, want_crc: str, upload: Callable[[int], bool]) -> None:
        name = self._name(key)
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # writers racing on one object: back off, apart
            current = self._current(name)
            if current is not None and current.size == size and current.crc32c == want_crc:
                return  # identical bytes already stored (also what we find after a retried upload that had landed)
            if upload(current.generation if current is not None else 0):
                return
        raise RuntimeError(f"{self.uri(key)}: object kept changing under {self.max_attempts} conditional writes")

    def read_bytes(self, key: str) -> Optional[bytes]:
        try:
            return self.bucket.blob(self._name(key)).download_as_bytes()
        except NotFound:
            return None

    def sha256(self, key: str) -> Optional[str]:
        """The sha256 of the object's bytes, streamed (GCS keeps only MD5 and CRC32C); None when absent."""
        try:
            with self.bucket.blob(self._name(key)).open("rb", chunk_size=8 << 20) as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        except NotFound:
            return None

    def list(self, prefix: str) -> list[str]:
        """Keys directly under `prefix` (like a directory listing: no recursion, no dot-files)."""
        base = prefix.strip("/")
        name_prefix = self._name(base) + "/"
        out = []
        for blob in self.client.list_blobs(self.bucket, prefix=name_prefix, delimiter="/"):
            leaf = blob.name[len(name_prefix) :]
            if leaf and not leaf.startswith("."):
                out.append(f"{base}/{leaf}")
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self.bucket.blob(self._name(key)).delete()
        except NotFound:
            pass

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(key)}"

    def remove_stale_temp(self, prefix: str, older_than_s: float = 600) -> int:
        """Nothing to remove: an upload is one request, visible whole or not at all (no temp objects)."""
        return 0

    def lock(self, key: str, wait_s: float, lease_s: float):
        """An exclusive lock object (locks.py): a context manager; LockBusy when not had in wait_s."""
        from metadata_assets.storage.locks import gcs_lock

        return gcs_lock(self, key, self.uri(key), wait_s, lease_s)
