"""storage.database_files.DatabaseFiles on its own: what it reads, and the older formats it still reads."""

from __future__ import annotations

import json

import pytest

from metadata_assets.catalog import Database
from metadata_assets.report import OTHER
from metadata_assets.storage.database_files import DatabaseFiles, VersionRecord, read_version
from metadata_assets.storage.layout import mce_key, snapshot_key, version_key
from metadata_assets.storage.store import LocalStore, sha256


class CountingStore(LocalStore):
    def __init__(self, root):
        super().__init__(root)
        self.reads: list[str] = []

    def read_bytes(self, key):
        self.reads.append(key)
        return super().read_bytes(key)


def written(store, db: Database) -> VersionRecord:
    record = VersionRecord(data_version="v1", schema_version="s1", figures={}, file_warnings=["w"], proposals=2)
    DatabaseFiles(store, "src", db.name).write([b"[\n", b"]\n"], db, record)
    return record


def test_write_then_read_back_each_file_once(tmp_path):
    store = CountingStore(tmp_path)
    db = Database(name="shop", tables=[])
    record = written(store, db)
    assert record.file_sha256 == sha256(b"[\n]\n") == store.sha256(mce_key("src", "shop"))
    assert json.loads(store.read_bytes(snapshot_key("src", "shop")))["data_version"] == "v1"
    store.reads.clear()
    files = DatabaseFiles(store, "src", "shop")
    assert files.recorded() == read_version(store, "src", "shop")
    assert files.recorded()["file_warning_codes"] == [[OTHER, None]]
    assert files.intact() and files.version(rules=None) == ("v1", record.file_sha256)
    # the version record read once by `files` (and once by read_version above); the snapshot never
    assert store.reads == [version_key("src", "shop")] * 2


def test_a_store_from_before_version_records(tmp_path):
    store = LocalStore(tmp_path)
    db = Database(name="shop", tables=[])
    written(store, db)
    store.delete(version_key("src", "shop"))  # what a store written before version records holds
    files = DatabaseFiles(store, "src", "shop")
    assert files.recorded()["data_version"] == "v1"  # the snapshot carries it
    files.keep(["w"])
    assert read_version(store, "src", "shop")["data_version"] == "v1"


def test_version_without_record_or_snapshot_is_the_bytes(tmp_path):
    store = LocalStore(tmp_path)
    store.write_bytes(mce_key("src", "shop"), b"[]")
    sha = sha256(b"[]")
    assert DatabaseFiles(store, "src", "shop").version(rules=None) == ("file:" + sha, sha)
    assert DatabaseFiles(store, "src", "shop").sent_version(None, b"[]", ("old", "other")) == "file:" + sha


class KilledBeforeTheRename(LocalStore):
    """The MCE file's write dies once its before_commit ran, before the rename."""

    def write_chunks(self, key, chunks, before_commit=None):
        def then_die():
            if before_commit is not None:
                before_commit()
            raise RuntimeError("killed before the rename")

        return super().write_chunks(key, chunks, then_die if key.startswith("src/mce/") else before_commit)


def test_a_new_version_is_forgotten_before_the_file_commits_and_the_same_one_is_not(tmp_path):
    db = Database(name="shop", tables=[])
    written(LocalStore(tmp_path), db)
    store = KilledBeforeTheRename(tmp_path)
    same = VersionRecord(data_version="v1", schema_version="s1", figures={}, file_warnings=[])
    with pytest.raises(RuntimeError):
        DatabaseFiles(store, "src", "shop").write([b"[]"], db, same)
    assert read_version(store, "src", "shop") is not None  # the version it holds is still the file's
    new = VersionRecord(data_version="v2", schema_version="s2", figures={}, file_warnings=[])
    with pytest.raises(RuntimeError):
        DatabaseFiles(store, "src", "shop").write([b"[]"], db, new)
    # neither the old version (the file is the old one) nor the new one: a push versions the file by its bytes
    assert store.read_bytes(version_key("src", "shop")) is None
    assert store.read_bytes(snapshot_key("src", "shop")) is None
    assert store.read_bytes(mce_key("src", "shop")) == b"[\n]\n"
    DatabaseFiles(store, "src", "shop").forget()
    assert store.list("src/mce") == store.list("src/snapshots") == store.list("src/versions") == []
