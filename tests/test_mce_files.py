"""The MCE files themselves: valid for DataHub's own tools, ingestible, deterministic, atomically written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from test_conformance import AWKWARD_DB, create_awkward

from metadata_assets.datahub.mce_json import read_mcps, serialize_mcps
from metadata_assets.extract import extract
from metadata_assets.sources.mysql.emitter import MySQLUrnRules as UrnRules
from metadata_assets.storage.database_files import data_version, read_version
from metadata_assets.storage.layout import decode_name, encode_name, mce_key, snapshot_key, version_key
from metadata_assets.storage.store import LocalStore, sha256

DATAHUB_CLI = str(Path(sys.executable).parent / "datahub")


def cli_env(home: Path) -> dict:
    return {**os.environ, "DATAHUB_TELEMETRY_ENABLED": "false", "HOME": str(home)}


def extract_all(schema, root: Path, **source_overrides) -> LocalStore:
    store = LocalStore(root)
    results = list(extract(schema.source(**source_overrides), sorted(schema.databases), store))
    assert all(r.ok and not r.missing for r in results), [(r.database, r.error) for r in results]
    return store


def mce_files(store: LocalStore) -> list[Path]:
    found = sorted((store.root / "src" / "mce").glob("*.json"))
    assert found
    return found


@pytest.fixture
def sample(schema):
    schema.load_sample()
    create_awkward(schema)
    schema.grant()
    return schema


def corrupted_copy(path: Path, out: Path) -> Path:
    """A negative control: the same file with one wrongly typed field, which the check must reject."""
    bad = json.loads(path.read_bytes())
    schema_mcp = next(m for m in bad if m["aspectName"] == "schemaMetadata")
    schema_mcp["aspect"]["json"]["fields"][0]["nullable"] = "yes"
    out.write_text(json.dumps(bad))
    return out


@pytest.mark.slow
def test_every_file_passes_datahub_check_metadata_file(sample, tmp_path):
    """`datahub check metadata-file F` for every file: in-process through the CLI's own click entry point (each
    CLI process costs ~4 s of imports), plus the installed `datahub` executable on two files to prove the real thing."""
    from click.testing import CliRunner
    from datahub.entrypoints import datahub

    store = extract_all(sample, tmp_path / "store")
    paths = mce_files(store)
    assert len(paths) == 5
    bad_path = corrupted_copy(paths[0], tmp_path / "bad.json")

    for p in paths:
        n = len(json.loads(p.read_bytes()))
        result = CliRunner().invoke(datahub, ["check", "metadata-file", str(p)])
        assert result.exit_code == 0 and f"{n} MCEs found - all valid" in result.output, (p.name, result.output)
    assert CliRunner().invoke(datahub, ["check", "metadata-file", str(bad_path)]).exit_code != 0

    awkward = next(p for p in paths if decode_name(p.stem) == sample.db(AWKWARD_DB))
    procs = {
        p: subprocess.Popen(
            [DATAHUB_CLI, "check", "metadata-file", str(p)],
            env=cli_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for p in (awkward, bad_path)
    }
    outcomes = {
        p: (proc.communicate(timeout=300)[0].decode(errors="replace"), proc.returncode) for p, proc in procs.items()
    }
    out, rc = outcomes[awkward]
    assert rc == 0 and f"{len(json.loads(awkward.read_bytes()))} MCEs found - all valid" in out, out[-2000:]
    out, rc = outcomes[bad_path]
    assert rc != 0 and "Failed to parse" in out


@pytest.mark.slow
def test_files_ingest_with_the_file_source_into_datahub_lite(sample, tmp_path):
    from datahub.lite.lite_util import get_datahub_lite

    store = extract_all(sample, tmp_path / "store")
    lite_file = tmp_path / "lite.sqlite"
    lite_config = {"type": "sqlite", "config": {"file": str(lite_file)}}
    recipe = tmp_path / "recipe.yml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "source": {"type": "file", "config": {"path": str(store.root / "src" / "mce")}},
                "sink": {"type": "datahub-lite", "config": lite_config},
            }
        )
    )
    proc = subprocess.run(
        [DATAHUB_CLI, "ingest", "-c", str(recipe)], env=cli_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    expected = [m for p in mce_files(store) for m in read_mcps(p.read_bytes())]
    assert len(expected) > 100
    lite = get_datahub_lite({"type": "sqlite", "config": {"file": str(lite_file), "read_only": True}}, read_only=True)
    try:
        assert set(lite.list_ids()) == {m.entityUrn for m in expected}
        for m in expected:
            got = lite.get(m.entityUrn, aspects=[m.aspectName], typed=True)
            assert got and got[m.aspectName] == m.aspect, (m.entityUrn, m.aspectName)
        rules = UrnRules()
        table = rules.dataset(sample.db(AWKWARD_DB), "Mixed Case-Tbl$")
        schema_md = lite.get(table, aspects=["schemaMetadata"], typed=True)["schemaMetadata"]
        assert [f.fieldPath for f in schema_md.fields] == ["id", "Ünïcode Col", "order ref", "customer"]
    finally:
        lite.close()


def test_files_read_back_as_the_proposals_written(sample, tmp_path):
    store = extract_all(sample, tmp_path / "store")
    for p in mce_files(store):
        raw = p.read_bytes()
        mcps = read_mcps(raw)
        assert serialize_mcps(mcps) == raw
        assert all(m.validate() for m in mcps)


def _read_time_zeroed(data: bytes) -> bytes:
    """A file or snapshot with the time the server was read (datasetProfile.timestampMillis, read_at_ms) set to 0:
    the one part that differs between two extractions of the same schema and statistics."""
    return re.sub(rb'("timestampMillis"|"read_at_ms"): \d+', rb"\1: 0", data)


def test_extracting_twice_gives_byte_identical_files(sample, tmp_path):
    """Byte-identical apart from when the server was read (a profile's time): the same schema and statistics give
    the same file whatever the batch composition."""
    first = extract_all(sample, tmp_path / "a")
    second = extract_all(sample, tmp_path / "b")
    # batch composition must not matter either: one database per batch, and the awkward one alone
    third = extract_all(sample, tmp_path / "c", batch_size=1)
    alone = LocalStore(tmp_path / "d")
    (r,) = extract(sample.source(), [sample.db(AWKWARD_DB)], alone)
    assert r.ok

    a = {p.name: _read_time_zeroed(p.read_bytes()) for p in mce_files(first)}
    assert len(a) == 5
    assert any(b'"datasetProfile"' in v for v in a.values())
    assert a == {p.name: _read_time_zeroed(p.read_bytes()) for p in mce_files(second)}
    assert a == {p.name: _read_time_zeroed(p.read_bytes()) for p in mce_files(third)}
    (only,) = mce_files(alone)
    assert a[only.name] == _read_time_zeroed(only.read_bytes())
    # and the snapshot files next to them
    # (their file_sha256 is of a file holding the read time)
    snaps = lambda s: {
        p.name: re.sub(rb'"file_sha256": "[0-9a-f]+"', b"", _read_time_zeroed(p.read_bytes()))
        for p in (s.root / "src" / "snapshots").glob("*.json")
    }
    assert snaps(first) == snaps(second) == snaps(third)


def test_platform_instance_urns_and_aspects(sample, tmp_path):
    store = extract_all(sample, tmp_path / "store", platform_instance="eu-1")
    rules = UrnRules(platform_instance="eu-1")
    instance_urn = "urn:li:dataPlatformInstance:(urn:li:dataPlatform:mysql,eu-1)"
    shop = sample.db("shop")
    mcps = {}
    for p in mce_files(store):
        for m in read_mcps(p.read_bytes()):
            mcps.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    datasets = {u for u in mcps if u.startswith("urn:li:dataset:")}
    assert f"urn:li:dataset:(urn:li:dataPlatform:mysql,eu-1.{shop}.orders,PROD)" in datasets
    assert len(datasets) == 16 and all(
        u.startswith("urn:li:dataset:(urn:li:dataPlatform:mysql,eu-1.") for u in datasets
    )
    containers = {u for u in mcps if u.startswith("urn:li:container:")}
    assert containers == {rules.container(db) for db in sample.databases}
    assert not containers & {UrnRules().container(db) for db in sample.databases}  # the instance is in the key
    for urn in datasets | containers:
        assert mcps[urn]["dataPlatformInstance"].instance == instance_urn, urn
        assert mcps[urn]["browsePathsV2"].path[0].urn == instance_urn, urn
    for urn in datasets:
        for fk in mcps[urn]["schemaMetadata"].foreignKeys or []:
            assert fk.foreignDataset in datasets
        for up in getattr(mcps[urn].get("upstreamLineage"), "upstreams", []):
            assert up.dataset in datasets
    assert mcps[rules.dataset(shop, "paid_orders")]["upstreamLineage"].upstreams[0].dataset == rules.dataset(
        shop, "customers"
    )


# --- atomic writes -------------------------------------------------------------------------------------------


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("fail_in", ["fsync", "replace"])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, fail_in):
    store = LocalStore(tmp_path)
    key = mce_key("src", "db")
    store.write_bytes(key, b"old content")
    target = tmp_path / "src" / "mce"

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    monkeypatch.setattr(os, fail_in, crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.write_bytes(key, b"new content " * 100_000)
    monkeypatch.undo()
    assert store.read_bytes(key) == b"old content"
    assert leftovers(target) == []
    assert store.list("src/mce") == [key]

    # a first write that fails leaves nothing at all
    monkeypatch.setattr(os, fail_in, crash)
    with pytest.raises(OSError):
        store.write_bytes(mce_key("src", "other"), b"x" * 1000)
    monkeypatch.undo()
    assert store.read_bytes(mce_key("src", "other")) is None
    assert leftovers(target) == [] and store.list("src/mce") == [key]


def test_failed_write_of_a_bad_payload_leaves_no_temp_file(tmp_path):
    store = LocalStore(tmp_path)
    key = mce_key("src", "db")
    store.write_bytes(key, b"old")
    with pytest.raises(TypeError):
        store.write_bytes(key, "not bytes")  # type: ignore[arg-type]  # f.write raises midway
    assert store.read_bytes(key) == b"old"
    assert leftovers(tmp_path / "src" / "mce") == []


def test_concurrent_readers_never_see_half_a_file(tmp_path):
    store = LocalStore(tmp_path)
    key = mce_key("src", "db")
    versions = [bytes([65 + i]) * (4 << 20) for i in range(2)]  # 4 MiB each: a torn write would show
    store.write_bytes(key, versions[0])
    stop = threading.Event()
    seen: list[bytes | None] = []

    def reader():
        while not stop.is_set():
            data = store.read_bytes(key)
            if data not in versions:
                seen.append(data)
            seen.append(b"ok")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            store.write_bytes(key, versions[i % 2])
    finally:
        stop.set()
        for t in threads:
            t.join()
    bad = [s for s in seen if s != b"ok"]
    assert not bad, f"{len(bad)} torn reads, e.g. {len(bad[0] or b'')} bytes"
    assert seen.count(b"ok") >= 2
    assert leftovers(tmp_path / "src" / "mce") == []


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    """Readers running as another user (a `datahub ingest` container, a web server) must be able to read the files."""
    store = LocalStore(tmp_path)
    store.write_bytes(mce_key("src", "db"), b"[]")
    reference = tmp_path / "reference"
    reference.write_bytes(b"")  # created the ordinary way, under the same umask
    mode = (tmp_path / "src" / "mce" / "db.json").stat().st_mode & 0o777
    assert mode == reference.stat().st_mode & 0o777


def test_unchanged_schema_keeps_the_file_and_a_change_rewrites_it(schema, tmp_path):
    """A daily refresh with no schema change rebuilds nothing; INSERTs alone change nothing; ALTER rewrites."""
    from metadata_assets.extract import extract as run_extract

    db = schema.create("keep", "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'id')", "CREATE VIEW v AS SELECT id FROM t")
    schema.grant()
    source = schema.source()
    store = LocalStore(tmp_path)
    (first,) = run_extract(source, [db], store)
    path = tmp_path / "src" / "mce" / f"{encode_name(db)}.json"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns

    schema.server.execute(f"INSERT INTO `{db}`.t VALUES (1), (2), (3)", f"ANALYZE TABLE `{db}`.t")
    (second,) = run_extract(source, [db], store)
    assert first.rewritten and not second.rewritten
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert (second.proposals, second.file_sha256, second.data_version) == (
        first.proposals,
        first.file_sha256,
        first.data_version,
    )

    (forced,) = run_extract(source, [db], store, rewrite=True)  # with today's statistics
    assert forced.rewritten and forced.schema_hash == first.schema_hash

    path.write_bytes(b"[]")  # a file that is not what the snapshot recorded is rebuilt
    (repaired,) = run_extract(source, [db], store)
    assert repaired.rewritten and path.read_bytes() != b"[]"

    schema.server.execute(f"ALTER TABLE `{db}`.t ADD COLUMN c INT")
    (changed,) = run_extract(source, [db], store)
    assert changed.rewritten and changed.data_version != first.data_version
    assert b'"fieldPath": "c"' in path.read_bytes()


def test_a_failure_while_building_proposals_keeps_the_old_file_and_snapshot(schema, tmp_path, monkeypatch):
    """Proposals are streamed into the temp file: one that fails midway changes neither the file nor its snapshot."""
    from metadata_assets import extract as extract_mod

    db = schema.create("midway", "CREATE TABLE a (id INT PRIMARY KEY)", "CREATE TABLE b (id INT PRIMARY KEY)")
    schema.grant()
    source = schema.source()
    store = LocalStore(tmp_path)
    (first,) = extract_mod.extract(source, [db], store)
    file_path = tmp_path / "src" / "mce" / f"{encode_name(db)}.json"
    snap_path = tmp_path / "src" / "snapshots" / f"{encode_name(db)}.json"
    before = file_path.read_bytes(), snap_path.read_bytes()

    schema.server.execute(f"ALTER TABLE `{db}`.b ADD COLUMN added INT")
    real = extract_mod.database_mcps

    def fails_midway(*args, **kwargs):
        for i, m in enumerate(real(*args, **kwargs)):
            if i == 5:
                raise RuntimeError("proposal 6 could not be built")
            yield m

    with monkeypatch.context() as patch:
        patch.setattr(extract_mod, "database_mcps", fails_midway)
        (failed,) = extract_mod.extract(source, [db], store)
    assert not failed.ok and "proposal 6 could not be built" in failed.error
    assert (file_path.read_bytes(), snap_path.read_bytes()) == before
    assert leftovers(file_path.parent) == []

    (fixed,) = extract_mod.extract(source, [db], store)
    assert fixed.ok and fixed.rewritten and file_path.read_bytes() != before[0]
    assert fixed.proposals == len(read_mcps(file_path.read_bytes())) == first.proposals
    assert fixed.file_sha256 == sha256(file_path.read_bytes())


def test_no_proposals_serialize_as_an_empty_list():
    assert serialize_mcps([]) == b"[]\n" == (json.dumps([], indent=2) + "\n").encode()


def test_version_records_spare_reading_snapshots(schema, tmp_path):
    """Each database gets a small version record beside its snapshot; an unchanged run and the push plan read it
    instead of the snapshot, and a store from before records gets them on its next unchanged run."""
    from metadata_assets.datahub.push import plan
    from metadata_assets.extract import extract as run_extract
    from metadata_assets.extract import rules_for

    db = schema.create("rec", "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE VIEW v AS SELECT id FROM t")
    schema.grant()
    source = schema.source()
    store = LocalStore(tmp_path)
    (first,) = run_extract(source, [db], store)
    record = read_version(store, "src", db)
    snapshot = json.loads(store.read_bytes(snapshot_key("src", db)))
    assert record == {
        "data_version": first.data_version,
        "file_sha256": first.file_sha256,
        "proposals": first.proposals,
        "file_warnings": first.warnings,
        "schema_version": data_version(first.snapshot, rules_for(source)),
        "figures": first.snapshot.profile_figures(),
    }
    assert (snapshot["data_version"], snapshot["file_sha256"]) == (record["data_version"], record["file_sha256"])

    # the snapshot is not read when the record says the schema is unchanged
    snap_path = tmp_path / "src" / "snapshots" / f"{encode_name(db)}.json"
    snap_path.write_bytes(b"not json")
    (second,) = run_extract(source, [db], store)
    assert second.ok and not second.rewritten and second.previous is second.snapshot
    assert (second.proposals, second.file_sha256) == (first.proposals, first.file_sha256)
    assert plan(store, "src", rules_for(source), state={}).pending == {db: first.data_version}
    snap_path.write_bytes(json.dumps(snapshot).encode())

    # a store from before version records: read from the snapshot, and the record is added
    (tmp_path / "src" / "versions" / f"{encode_name(db)}.json").unlink()
    assert plan(store, "src", rules_for(source), state={}).pending == {db: first.data_version}
    (third,) = run_extract(source, [db], store)
    assert not third.rewritten and read_version(store, "src", db) == record

    # a schema change replaces both; forgetting the database deletes all three files
    schema.server.execute(f"ALTER TABLE `{db}`.t ADD COLUMN c INT")
    (changed,) = run_extract(source, [db], store)
    assert changed.rewritten and read_version(store, "src", db)["data_version"] == changed.data_version
    assert changed.previous is not None and changed.previous.tables[0].columns != changed.snapshot.tables[0].columns
    from metadata_assets.datahub.push import forget_database

    forget_database(store, "src", db)
    assert [store.read_bytes(k("src", db)) for k in (mce_key, snapshot_key, version_key)] == [None, None, None]


def test_an_old_snapshot_without_file_sha256_and_no_file_is_rebuilt(schema, tmp_path):
    """A snapshot from before file_sha256 existed, its MCE file gone (a crash of an older forget): rebuilt."""
    from metadata_assets.extract import extract as run_extract

    db = schema.create("oldsnap", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    source = schema.source()
    store = LocalStore(tmp_path)
    (first,) = run_extract(source, [db], store)
    snapshot = json.loads(store.read_bytes(snapshot_key("src", db)))
    for key in ("file_sha256", "proposals", "file_warnings"):
        snapshot.pop(key)
    store.write_bytes(snapshot_key("src", db), json.dumps(snapshot).encode())
    store.delete(version_key("src", db))
    store.delete(mce_key("src", db))
    (again,) = run_extract(source, [db], store)
    assert again.ok and again.rewritten and store.read_bytes(mce_key("src", db)) is not None
    assert read_version(store, "src", db)["data_version"] == first.data_version
