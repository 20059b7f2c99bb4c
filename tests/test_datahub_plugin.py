"""DataHub's own Dagster plugin beside this project: its real sensor, after real runs, into the loopback GMS stub.

The runs are real Dagster runs of this project's extraction asset (against the test MariaDB) and push asset, and of a
user's own asset in the same Definitions. The plugin's sensor (acryl-datahub-dagster-plugin 1.7.0.17: its
`make_datahub_sensor`, `DatahubSensors`, `DagsterGenerator`, `DatahubDagsterSourceConfig`) then ticks and sends what
it makes to tests/gms_stub.py over REST, which decodes every proposal with acryl-datahub's classes.
"""

import json
import time

import pytest
from dagster import AssetObservation, DagsterInstance, Definitions, MaterializeResult, asset, build_sensor_context
from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorCursor

pytest.importorskip("datahub_dagster_plugin")
# the plugin's asset sensor is a multi_asset_sensor, which Dagster marks superseded
pytestmark = pytest.mark.filterwarnings("ignore::dagster.SupersessionWarning")

import gms_stub  # noqa: E402
from datahub.emitter.serialization_helper import post_json_transform  # noqa: E402
from datahub.ingestion.graph.client import DatahubClientConfig  # noqa: E402
from datahub.metadata.schema_classes import MetadataChangeProposalClass  # noqa: E402
from datahub.utilities.urns.dataset_urn import DatasetUrn  # noqa: E402
from datahub_dagster_plugin.client.dagster_generator import DatahubDagsterSourceConfig  # noqa: E402
from datahub_dagster_plugin.sensors import datahub_sensors as plugin  # noqa: E402
from gms_stub import GmsStub  # noqa: E402

from metadata_assets import datahub_plugin  # noqa: E402
from metadata_assets.definitions import build_definitions  # noqa: E402
from metadata_assets.defs.keys import mce_asset_key, push_asset_key  # noqa: E402

OURS = {
    "urn:li:dataset:(urn:li:dataPlatform:dagster,src.mce_files,PROD)",
    "urn:li:dataset:(urn:li:dataPlatform:dagster,src.datahub_push,PROD)",
}
USER_DATASET = "urn:li:dataset:(urn:li:dataPlatform:dagster,prod.snowflake.sales.orders,PROD)"
USER_TABLE = "urn:li:dataset:(urn:li:dataPlatform:snowflake,sales.orders,PROD)"
FLOW = "urn:li:dataFlow:(dagster,prod/__ASSET_JOB,PROD)"


def job_urn(op: str) -> str:
    return f"urn:li:dataJob:({FLOW},prod/{op})"


@asset(key=["prod", "snowflake", "sales", "orders"])
def orders(context):
    """A user's own asset in the same code location: observed and materialized, as the plugin expects."""
    context.log_event(AssetObservation(asset_key=context.asset_key, metadata={"rows": 3}))
    return MaterializeResult(metadata={"rows": 3})


def every_key_to_dagster(asset_key):
    """A user's converter that maps every asset key (the plugin's default skips keys of fewer than 3 parts)."""
    return DatasetUrn(platform="dagster", name=".".join(asset_key), env="PROD")


decode_upsert = gms_stub.decode_proposal  # the stub's own decoder


def with_patches(obj: dict):
    """The plugin writes datasetProperties as PATCH (DatasetPatchBuilder, Dataset.generate_mcp), which GMS accepts
    and the stub's decoder (UPSERT aspects only) would answer 400: a PATCH is decoded with acryl-datahub's
    MetadataChangeProposalClass and its JSON patch parsed; every other proposal as the stub decodes it."""
    if obj.get("changeType") != "PATCH":
        return decode_upsert(obj)
    mcpc = MetadataChangeProposalClass.from_obj(post_json_transform(obj))
    assert mcpc.validate() and isinstance(json.loads(mcpc.aspect.value), list), obj
    return mcpc


@pytest.fixture
def runs(schema, tmp_path):
    """Three real runs in one instance: an extraction of a MariaDB database, the push, and the user's asset."""
    db = schema.create("plugin", "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20))")
    schema.grant()
    cfg = schema.project(tmp_path)
    source = cfg.sources[0]
    defs = Definitions.merge(build_definitions(cfg), Definitions(assets=[orders]))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(f"{source.name}_databases", [db])
    job = defs.resolve_implicit_global_asset_job_def()
    started = time.monotonic()
    for selection, partition in (([mce_asset_key(source)], db), ([push_asset_key(source)], None), ([orders.key], None)):
        assert job.execute_in_process(instance=instance, asset_selection=selection, partition_key=partition).success
    print(f"3 runs: {time.monotonic() - started:.1f}s")
    return defs, instance


def tick(make_sensor, defs, instance, monkeypatch) -> GmsStub:
    """The ticks of the sensor `make_sensor(stub)` makes, from before the first run until its cursor stops moving
    (each run-status sensor of the plugin handles one run per tick), into a fresh stub: what it received."""
    monkeypatch.setattr(gms_stub, "decode_proposal", with_patches)
    stub = GmsStub().start()
    try:
        context = build_sensor_context(
            instance=instance,
            definitions=defs,
            cursor=RunStatusSensorCursor(record_id=-1, record_timestamp=None).to_json(),
        )
        seen = None
        for _ in range(8):
            make_sensor(stub)(context)
            if context.cursor == seen:
                break
            seen = context.cursor
        return stub
    finally:
        stub.stop()


def dataset_urns(stub: GmsStub) -> set[str]:
    """Every dataset the proposals name: as entity, or as an inlet/outlet of a DataJob or a run."""
    urns = {u for u in stub.urns() if u.startswith("urn:li:dataset:")}
    for p in stub.proposals:
        aspect = getattr(p, "aspect", None)
        for field in ("inputDatasets", "outputDatasets", "inputs", "outputs"):
            urns.update(u for u in getattr(aspect, field, None) or () if str(u).startswith("urn:li:dataset:"))
    return urns


def test_plugin_makes_no_dataset_of_the_catalog_assets_and_keeps_the_rest(runs, monkeypatch):
    defs, instance = runs

    def config(url, **kw):
        return DatahubDagsterSourceConfig(datahub_client_config=DatahubClientConfig(server=url), **kw)

    cases = {
        "plugin, default config": lambda s: plugin.make_datahub_sensor(config(s.url), monitor_all_code_locations=True),
        "plugin, user's converter": lambda s: plugin.make_datahub_sensor(
            config(s.url, asset_keys_to_dataset_urn_converter=every_key_to_dagster), monitor_all_code_locations=True
        ),
        "ours, default config": lambda s: datahub_plugin.make_datahub_sensor(
            config(s.url), monitor_all_code_locations=True
        ),
        "ours, user's converter": lambda s: datahub_plugin.make_datahub_sensor(
            config(s.url, asset_keys_to_dataset_urn_converter=every_key_to_dagster), monitor_all_code_locations=True
        ),
        "ours, sources named": lambda s: datahub_plugin.make_datahub_sensor(
            config(s.url), sources=["src"], monitor_all_code_locations=True
        ),
    }
    sent = {}
    for name, make in cases.items():
        started = time.monotonic()
        stub = tick(make, defs, instance, monkeypatch)
        sent[name] = stub
        print(f"{name}: {len(stub.proposals)} proposals in {time.monotonic() - started:.2f}s")

    # the plugin as it comes: the extraction run's observation (its ExtractionReport) becomes a `dagster` dataset
    # (the converter is not asked for observations), also an inlet of the op's DataJob
    default = sent["plugin, default config"]
    mce = "urn:li:dataset:(urn:li:dataPlatform:dagster,src.mce_files,PROD)"
    assert mce in default.urns()
    assert {"datasetProperties", "subTypes", "status", "browsePathsV2"} <= set(default.aspects(mce))
    assert mce in dataset_urns(default)
    # a converter that maps keys makes the materializations of both assets datasets too
    assert OURS <= sent["plugin, user's converter"].urns()

    for name in ("ours, default config", "ours, user's converter", "ours, sources named"):
        stub = sent[name]
        # none of this project's assets, anywhere: no entity, no inlet or outlet
        assert not {u for u in dataset_urns(stub) if "mce_files" in u or "datahub_push" in u}, name
        # the rest of the plugin's output goes through: the runs' DataFlow and DataJobs (the extraction op too),
        # their run instances, and the user's asset with its lineage to the table its key names
        assert {
            FLOW,
            job_urn("src__mce_files"),
            job_urn("src__datahub_push"),
            job_urn("prod__snowflake__sales__orders"),
            USER_DATASET,
        } <= stub.urns(), name
        assert "dataJobInfo" in stub.aspects(job_urn("src__mce_files"))
        assert sum(u.startswith("urn:li:dataProcessInstance:") for u in stub.urns()) >= 6  # 3 runs, 3 ops
        assert USER_DATASET in dataset_urns(stub)
        # exactly what the plugin sends, less this project's assets
        base = sent["plugin, user's converter" if "converter" in name else "plugin, default config"]
        assert stub.urns() == base.urns() - OURS, name
    assert USER_TABLE in sent["ours, default config"].urns()  # the plugin's default rule for 3+ part keys


def test_catalog_asset_keys():
    assert datahub_plugin.is_catalog_asset_key(["shop_eu", "mce_files"])
    assert datahub_plugin.is_catalog_asset_key(("shop_eu", "datahub_push"), sources=["shop_eu"])
    assert not datahub_plugin.is_catalog_asset_key(["shop_eu", "mce_files"], sources=["other"])
    assert not datahub_plugin.is_catalog_asset_key(["prod", "snowflake", "mce_files"])
    assert not datahub_plugin.is_catalog_asset_key(["orders"])
