"""The whole Definitions load, and real partitions materialize through Dagster against the real MariaDB."""

import json

from dagster import DagsterInstance, DynamicPartitionsDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from metadata_assets.definitions import build_definitions
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import mce_asset_key
from metadata_assets.defs.push import build_push_asset
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore


def test_demo_definitions_load(monkeypatch):
    monkeypatch.setenv("DEMO_MYSQL_PASSWORD", "unused")
    import importlib

    import metadata_assets.definitions as mod

    defs = importlib.reload(mod).defs()  # the @definitions loader Dagster's tools call
    key = mce_asset_key(mod.load().sources[0])
    assert key in defs.resolve_all_asset_keys()
    spec = defs.resolve_assets_def(key)
    assert isinstance(spec.partitions_def, DynamicPartitionsDefinition)
    assert spec.partitions_def.name == "demo_mysql_databases"
    assert defs.resolve_all_job_defs()  # the implicit asset job builds


def test_range_run_materializes_each_partition_with_its_own_metadata(schema, tmp_path):
    shop, billing, analytics, _ = schema.load_sample()
    gone = schema.create("gone", "CREATE TABLE t (id INT)")
    schema.grant()
    cfg = schema.project(tmp_path)
    defs = build_definitions(cfg)
    instance = DagsterInstance.ephemeral()
    source = cfg.sources[0]
    keys = [analytics, billing, gone, shop]
    instance.add_dynamic_partitions(f"{source.name}_databases", keys)
    schema.server.execute(f"DROP DATABASE `{gone}`")  # vanished between listing and extraction

    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, tags={ASSET_PARTITION_RANGE_START_TAG: analytics, ASSET_PARTITION_RANGE_END_TAG: shop}
    )
    assert result.success

    mats = {
        m.partition: m
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }
    assert sorted(mats) == [analytics, billing, shop]  # one each; the vanished database none
    shop_meta = mats[shop].metadata
    assert (shop_meta["tables"].value, shop_meta["views"].value) == (4, 1)
    assert shop_meta["columns"].value == 6 + 6 + 4 + 1 + 4
    assert 0 < shop_meta["documented_columns_pct"].value < 100
    assert shop_meta["path"].value == LocalStore(cfg.storage.uri).uri(mce_key("src", shop))
    assert mats[shop].tags["dagster/data_version"] == shop_meta["content_hash"].value
    assert mats[shop].tags["dagster/data_version"] != mats[billing].tags["dagster/data_version"]
    assert json.loads(open(shop_meta["path"].value).read())[0]["entityType"] == "container"
    logs = " ".join(e.message for e in instance.all_logs(result.run_id) if e.message)
    assert "4/4 databases done" in logs and f"database {gone!r} does not exist" in logs


def test_stores_sinks_and_sources_are_resources_registered_in_the_definitions(schema, tmp_path):
    """The Definitions register the store, DataHub and each source as ConfigurableResources, and the assets read and
    write through them: the same Definitions with another store and another DataHub Lite write there instead."""
    from dagster import Definitions

    from metadata_assets.datahub.sinks import lite_reader
    from metadata_assets.defs.in_process import QUIET, push_source
    from metadata_assets.defs.resources import (
        DataHubResource,
        MCEStoreResource,
        SourceResource,
        project_resources,
    )

    db = schema.create("res", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path)
    source = cfg.sources[0]
    defs = build_definitions(cfg)
    assert set(defs.get_repository_def().get_top_level_resources()) == {"mce_store", "datahub", "src_source"}
    resources = defs.resources
    assert {k: type(v) for k, v in resources.items()} == {
        "mce_store": MCEStoreResource,
        "datahub": DataHubResource,
        "src_source": SourceResource,
    }
    assert resources["mce_store"].uri == cfg.storage.uri
    assert resources["datahub"].lite_path == cfg.datahub.lite.path
    assert resources["src_source"].config() == source  # the source's settings, the password's variable name only
    assert schema.password not in resources["src_source"].settings_json
    assert defs.resolve_assets_def(mce_asset_key(source)).required_resource_keys >= {"mce_store", "src_source"}

    elsewhere = {
        **project_resources(cfg),
        "mce_store": MCEStoreResource(uri=str(tmp_path / "other_store")),
        "datahub": DataHubResource(target="lite", lite_path=str(tmp_path / "other_lite.sqlite")),
    }
    swapped = Definitions(
        assets=[
            build_mce_asset(SourceSetup.of(cfg, source), bind_resources=False),
            build_push_asset(SourceSetup.of(cfg, source), bind_resources=False),
        ],
        resources=elsewhere,
    )
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(f"{source.name}_databases", [db])
    run = swapped.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[mce_asset_key(source)], partition_key=db, run_config=QUIET
    )
    assert run.success
    assert LocalStore(tmp_path / "other_store").read_bytes(mce_key("src", db)) is not None
    assert LocalStore(cfg.storage.uri).read_bytes(mce_key("src", db)) is None
    assert push_source(swapped, instance, source, print_fn=lambda m: None)
    lite = lite_reader(str(tmp_path / "other_lite.sqlite"))
    try:
        assert lite.get(f"urn:li:dataset:(urn:li:dataPlatform:mysql,{db}.t,PROD)", aspects=None, typed=True)
    finally:
        lite.close()


def test_assets_of_several_sources_built_alone_share_one_set_of_resources(tmp_path):
    """Another project building two sources' assets itself passes one project_resources(cfg) to each SourceSetup:
    they then form one job. Built with resources each of their own, Dagster refuses the job (one object per key)."""
    import pytest
    from dagster import DagsterInvalidDefinitionError, Definitions

    from metadata_assets.config import load
    from metadata_assets.defs.resources import project_resources

    path = tmp_path / "sources.yaml"
    path.write_text(
        f"storage:\n  uri: {tmp_path / 'mce'}\nsources:\n"
        "  - {name: a, type: mysql, host: db1, user: catalog, password_env: A_PW}\n"
        "  - {name: b, type: postgres, host: db2, user: catalog, password_env: B_PW}\n"
    )
    cfg = load(str(path))

    def assets(resources):
        setups = [SourceSetup.of(cfg, s, resources) for s in cfg.sources]
        return [build(setup) for setup in setups for build in (build_mce_asset, build_push_asset)]

    job = Definitions(assets=assets(project_resources(cfg))).resolve_implicit_global_asset_job_def()
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "a/mce_files",
        "a/datahub_push",
        "b/mce_files",
        "b/datahub_push",
    }
    with pytest.raises(DagsterInvalidDefinitionError, match="Conflicting versions of resource with key 'mce_store'"):
        Definitions(assets=assets(None)).resolve_implicit_global_asset_job_def()
