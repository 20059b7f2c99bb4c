"""Push to DataHub Lite (the embedded default), read back with acryl-datahub's Lite API; the push asset and sensor."""

import pytest
from dagster import DagsterInstance, build_sensor_context, materialize

from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.datahub.push import MassRemovalRefused, forget_database, load_state, push
from metadata_assets.datahub.sinks import LiteSink, lite_reader
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import BLOCKED_TAG, PUSH_SOURCE_TAG, partitions_def, push_asset_key
from metadata_assets.defs.push import RETRY_POLICY, build_push_asset, build_push_sensor
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.extract import extract, rules_for
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import open_store

NO_RETRIES = {"execution": {"config": {"retries": {"disabled": {}}}}}


def urn(db: str, table: str) -> str:
    return f"urn:li:dataset:(urn:li:dataPlatform:mysql,{db}.{table},PROD)"


def refresh(cfg, databases) -> None:
    source = cfg.sources[0]
    results = list(extract(source, databases, open_store(cfg.storage.uri)))
    assert all(r.ok for r in results), [r.error for r in results]


def push_lite(cfg, **kw):
    sink = LiteSink(cfg.datahub.lite)
    try:
        return push(
            open_store(cfg.storage.uri),
            "src",
            rules_for(cfg.sources[0]),
            sink,
            max_removal_share=kw.pop("max_removal_share", cfg.datahub.max_removal_share),
            **kw,
        )
    finally:
        sink.close()


def test_lite_push_is_incremental_and_soft_deletes(schema, tmp_path):
    shop, billing, analytics, _ = schema.load_sample()
    schema.grant()
    cfg = schema.project(tmp_path, table_pattern={"deny": [".*\\.tmp_.*"]})
    refresh(cfg, [shop, billing, analytics])

    first = push_lite(cfg)
    assert sorted(first.databases_pushed) == sorted([shop, billing, analytics])
    in_files = sum(
        len(read_mcps(open_store(cfg.storage.uri).read_bytes(mce_key("src", d)))) for d in (shop, billing, analytics)
    )
    assert first.proposals_sent == in_files > 0 and not first.soft_deleted

    lite = lite_reader(cfg.datahub.lite.path)
    customers = lite.get(urn(shop, "customers"), aspects=None, typed=True)
    assert customers["status"].removed is False
    assert customers["datasetProperties"].description == "Registered customers"
    fields = {f.fieldPath: f for f in customers["schemaMetadata"].fields}
    assert fields["name"].description == "고객 이름" and fields["id"].isPartOfKey
    container_urn = customers["container"].container
    container = lite.get(container_urn, aspects=None, typed=True)
    assert container["containerProperties"].name == shop
    assert any(s.id == urn(billing, "invoices") for s in lite.search("invoices", _free_text()))
    lite.close()

    # a day without schema change: the files are rewritten, nothing is sent
    refresh(cfg, [shop, billing, analytics])
    again = push_lite(cfg)
    assert (again.proposals_sent, again.databases_pushed, again.databases_skipped) == (0, [], 3)

    # DROP TABLE: only that database is pushed, and the table is soft-deleted
    schema.server.execute(f"DROP TABLE `{billing}`.payments")
    refresh(cfg, [shop, billing, analytics])
    dropped = push_lite(cfg)
    assert dropped.databases_pushed == [billing] and dropped.soft_deleted == [urn(billing, "payments")]
    lite = lite_reader(cfg.datahub.lite.path)
    assert lite.get(urn(billing, "payments"), aspects=["status"], typed=True)["status"].removed is True
    assert lite.get(urn(billing, "invoices"), aspects=["status"], typed=True)["status"].removed is False
    lite.close()

    # a dropped database: the fail-safe guards it (shop is more than 20% of the datasets), then it goes
    before = load_state(open_store(cfg.storage.uri), "src")
    forget_database(open_store(cfg.storage.uri), "src", shop)
    with pytest.raises(MassRemovalRefused, match="allow_mass_removal"):
        push_lite(cfg)
    assert load_state(open_store(cfg.storage.uri), "src") == before
    gone = push_lite(cfg, allow_mass_removal=True)
    shop_datasets = before[shop].datasets
    assert gone.databases_removed == [shop] and set(gone.soft_deleted) == {*shop_datasets, container_urn}
    lite = lite_reader(cfg.datahub.lite.path)
    for u in [*shop_datasets, container_urn]:
        assert lite.get(u, aspects=["status"], typed=True)["status"].removed is True, u
    lite.close()
    assert shop not in load_state(open_store(cfg.storage.uri), "src")
    assert push_lite(cfg).proposals_sent == 0

    # allowed again: pushed as new, and its datasets and container come back
    refresh(cfg, [shop])
    assert push_lite(cfg).databases_pushed == [shop]
    lite = lite_reader(cfg.datahub.lite.path)
    assert all(
        lite.get(u, aspects=["status"], typed=True)["status"].removed is False for u in [*shop_datasets, container_urn]
    )
    lite.close()


def _free_text():
    from datahub.lite.lite_local import SearchFlavor

    return SearchFlavor.FREE_TEXT


def test_push_asset_and_sensor(schema, tmp_path):
    a = schema.create("a", "CREATE TABLE t1 (id INT PRIMARY KEY COMMENT 'id')", "CREATE TABLE t2 (x INT)")
    b = schema.create("b", "CREATE TABLE u (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path)
    source = cfg.sources[0]
    mce_asset, push_asset = build_mce_asset(SourceSetup.of(cfg, source)), build_push_asset(SourceSetup.of(cfg, source))
    sensor = build_push_sensor(SourceSetup.of(cfg, source))
    assert push_asset.op.retry_policy == RETRY_POLICY

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(partitions_def(source).name, [a, b])

    def extract_partition(db):
        assert materialize([mce_asset], instance=instance, partition_key=db).success

    def tick(cursor):
        result = sensor(build_sensor_context(instance=instance, cursor=cursor))
        return result.run_requests or [], result.cursor

    for db in (a, b):
        extract_partition(db)
    requests, cursor = tick(None)
    assert [r.asset_selection for r in requests] == [[push_asset_key(source)]]

    result = materialize([push_asset], instance=instance, run_config=NO_RETRIES)
    md = result.asset_materializations_for_node(push_asset.op.name)[0].metadata
    assert (md["databases_pushed"].value, md["proposals_sent"].value > 0, md["failures"].value) == (2, True, 0)
    assert {"databases_skipped", "entities_soft_deleted", "duration_s"} <= set(md)

    # unchanged re-extraction: materializations without a new data version trigger nothing
    extract_partition(a)
    requests, cursor = tick(cursor)
    assert requests == []

    schema.server.execute(f"ALTER TABLE `{a}`.t2 ADD COLUMN y INT COMMENT 'new'")
    extract_partition(a)
    requests, cursor = tick(cursor)
    assert len(requests) == 1
    result = materialize([push_asset], instance=instance, run_config=NO_RETRIES)
    md = result.asset_materializations_for_node(push_asset.op.name)[0].metadata
    assert (md["databases_pushed"].value, md["databases_skipped"].value) == (1, 1)
    assert tick(cursor)[0] == []

    # a database forgotten (dropped): the sensor asks once; the fail-safe refuses without retries
    forget_database(open_store(cfg.storage.uri), "src", b)
    requests, cursor = tick(cursor)
    assert len(requests) == 1 and tick(cursor)[0] == []
    failed = materialize([push_asset], instance=instance, raise_on_error=False, tags={PUSH_SOURCE_TAG: "src"})
    assert not failed.success
    assert "allow_mass_removal" in _failure_text(failed)
    assert instance.get_run_by_id(failed.run_id).tags[BLOCKED_TAG] == "fail_safe"
    retrying = build_push_sensor(SourceSetup.of(cfg, source), retry_failed_after_s=0)
    assert not retrying(build_sensor_context(instance=instance, cursor=cursor)).run_requests  # retrying is useless
    ok = materialize(
        [push_asset],
        instance=instance,
        run_config={**NO_RETRIES, "ops": {push_asset.op.name: {"config": {"allow_mass_removal": True}}}},
    )
    md = ok.asset_materializations_for_node(push_asset.op.name)[0].metadata
    assert (md["databases_removed"].value, md["entities_soft_deleted"].value) == (1, 2)


def _failure_text(result) -> str:
    return " ".join(
        str(e.event_specific_data.error.message)
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
    )


def test_a_crash_between_file_and_snapshot_never_skips_the_new_file(schema, tmp_path, monkeypatch):
    """Extraction dies after writing the new MCE file but before its snapshot: the next push still sends it."""
    from metadata_assets.storage.store import LocalStore

    db = schema.create("crash", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path)
    refresh(cfg, [db])
    assert push_lite(cfg).databases_pushed == [db]

    schema.server.execute(f"ALTER TABLE `{db}`.t ADD COLUMN added INT COMMENT 'new'")
    real_write = LocalStore.write_chunks  # the snapshot is written in pieces (catalog.json_chunks)

    def crash_on_snapshot(self, key, chunks, *args, **kw):
        if "/snapshots/" in key:
            raise OSError("killed")
        return real_write(self, key, chunks, *args, **kw)

    monkeypatch.setattr(LocalStore, "write_chunks", crash_on_snapshot)
    (result,) = extract(cfg.sources[0], [db], open_store(cfg.storage.uri))
    assert not result.ok
    monkeypatch.setattr(LocalStore, "write_chunks", real_write)

    second = push_lite(cfg)
    assert second.databases_pushed == [db]  # versioned by the file's bytes: pending, not skipped
    lite = lite_reader(cfg.datahub.lite.path)
    fields = {f.fieldPath for f in lite.get(urn(db, "t"), aspects=None, typed=True)["schemaMetadata"].fields}
    lite.close()
    assert "added" in fields


def test_a_push_with_nothing_to_send_leaves_datahub_lite_untouched(schema, tmp_path):
    """Lite's close() re-indexes every entity it holds: a quiet push must not open it at all."""
    import os

    db = schema.create("quiet", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path)
    refresh(cfg, [db])
    assert push_lite(cfg).databases_pushed == [db]
    lite_file = tmp_path / "lite.sqlite"
    before = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(tmp_path.glob("lite.sqlite*"))]
    refresh(cfg, [db])
    sink = LiteSink(cfg.datahub.lite)
    try:
        quiet = push(open_store(cfg.storage.uri), "src", rules_for(cfg.sources[0]), sink, max_removal_share=0.2)
        assert (quiet.proposals_sent, quiet.databases_skipped) == (0, 1) and sink._opened is None
    finally:
        sink.close()
    after = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(tmp_path.glob("lite.sqlite*"))]
    assert after == before and os.path.exists(lite_file)
