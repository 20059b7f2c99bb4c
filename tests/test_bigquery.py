"""BigQuery source: config, query text, hand-written INFORMATION_SCHEMA rows -> snapshot -> MCPs, conformance with
acryl-datahub's own bigquery source helpers, and the whole path through dagster-gcp's BigQueryResource against a
loopback BigQuery REST stand-in that executes the SQL in DuckDB (tests/bigquery_stub.py): query jobs sent, a wrong
query refused, files written, Dagster partitions,
materializations and the push to DataHub Lite."""

import json
import re
import textwrap
from collections import defaultdict
from types import SimpleNamespace

import pytest
from bigquery_stub import BigQueryStub, load_rows
from dagster import DagsterInstance, SensorResult, build_sensor_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from metadata_assets.config import ConfigError, load
from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.sources.bigquery import (
    Scope,
    build_dataset,
    columns_sql,
    fingerprint_sql,
    parse_labels,
    parse_string_literal,
    schemata_sql,
    tables_sql,
)
from metadata_assets.sources.bigquery.config import BigQuerySource
from metadata_assets.sources.bigquery.emitter import BigQueryUrnRules, dataset_mcps, schema_fields
from metadata_assets.storage.layout import list_mce_databases, mce_key
from metadata_assets.storage.store import LocalStore

PROJECT = "acme-analytics"
YAML = f"""
sources:
  - name: analytics_bq
    type: bigquery
    project: {PROJECT}
    regions: [US]
    dataset_pattern: {{deny: ["tmp_.*"]}}
"""


def source(**kw) -> BigQuerySource:
    return BigQuerySource(
        **{
            "name": "analytics_bq",
            "type": "bigquery",
            "project": PROJECT,
            "regions": ["us"],
            "dataset_pattern": {"deny": ["tmp_.*"]},
            **kw,
        }
    )


def snapshots(src=None) -> dict:
    """The hand-written rows grouped per dataset, through build_dataset (what read() does after its queries)."""
    src = src or source()
    rows = load_rows()
    by = {k: defaultdict(list) for k in rows}
    for k, rs in rows.items():
        for r in rs:
            by[k][r["dataset"]].append(r)
    return {
        s["dataset"]: build_dataset(
            s["dataset"],
            {"location": s["location"]},
            by["schemata_options"][s["dataset"]],
            by["tables"][s["dataset"]],
            by["table_options"][s["dataset"]],
            by["columns"][s["dataset"]],
            by["views"][s["dataset"]],
            src,
        )
        for s in rows["schemata"]
        if src.database_allowed(s["dataset"])
    }


def write(tmp_path, text):
    p = tmp_path / "sources.yaml"
    p.write_text(textwrap.dedent(text))
    return p


# --- config ---


def test_config_defaults_and_credentials_never_inline(tmp_path):
    (s,) = load(write(tmp_path, YAML)).sources
    assert (s.project, s.regions, s.include_views, s.env, s.platform_instance, s.batch_size) == (
        PROJECT,
        ["us"],
        True,
        "PROD",
        None,
        50,
    )
    assert s.database_allowed("sales") and not s.database_allowed("tmp_scratch")
    for mutation, expected in [
        ("    regions: [US]\n", "    regions: [US]\n    credentials: /keys/sa.json\n"),
        ("    regions: [US]\n", "    regions: []\n"),
        (f"project: {PROJECT}", "project: My Project"),
        ("    regions: [US]\n", "    regions: [US]\n    password_env: X\n"),
    ]:
        with pytest.raises(ConfigError) as e:
            load(write(tmp_path, YAML.replace(*[mutation, expected])))
        msg = str(e.value)
        assert "source 'analytics_bq', field" in msg, msg
        assert any(w in msg for w in ("Application Default Credentials", "regions is empty", "invalid project id")), msg
    with pytest.raises(
        ConfigError, match="unknown source type 'bigqery' \\(supported: 'mysql', 'bigquery', 'postgres'\\)"
    ):
        load(write(tmp_path, YAML.replace("type: bigquery", "type: bigqery")))


# --- query text ---


def test_query_text_region_and_dataset_scoped():
    region, ds = Scope(PROJECT, region="us"), Scope(PROJECT, dataset="sales")
    assert schemata_sql(region) == (
        "SELECT schema_name AS dataset, location, creation_time, last_modified_time "
        "FROM `acme-analytics`.`region-us`.INFORMATION_SCHEMA.SCHEMATA "
        "WHERE schema_name IN UNNEST(@datasets)"
    )
    assert (
        "FROM `acme-analytics`.`sales`.INFORMATION_SCHEMA.TABLES WHERE table_schema IN UNNEST(@datasets)"
        in tables_sql(ds)
    )
    cols = columns_sql(region)
    assert (
        "`region-us`.INFORMATION_SCHEMA.COLUMNS AS c JOIN `acme-analytics`.`region-us`.INFORMATION_SCHEMA."
        "COLUMN_FIELD_PATHS AS f"
        in cols
        and "c.is_hidden = 'NO'" in cols
    )
    fp = fingerprint_sql(region)
    assert "FARM_FINGERPRINT" in fp and "INFORMATION_SCHEMA.SCHEMATA" in fp and "@datasets" not in fp
    assert "@datasets" in fingerprint_sql(ds) and "SCHEMATA" not in fingerprint_sql(ds)
    with pytest.raises(ValueError):
        Scope(PROJECT, dataset="x`; DROP TABLE y; --").view("TABLES")


def test_option_literals():
    assert parse_string_literal('"Kunden \\u2013 \\uace0\\uac1d \\"q\\""') == 'Kunden – 고객 "q"'
    assert parse_labels('[STRUCT("team", "growth"), STRUCT("env", "prod")]') == {"team": "growth", "env": "prod"}


# --- rows -> snapshot -> MCPs ---


def test_rows_to_snapshot():
    dbs = snapshots()
    assert sorted(dbs) == ["marketing", "sales"]
    sales = dbs["sales"]
    assert sales.comment == "Orders and customers, curated daily"
    assert sales.properties == {"label.env": "prod", "label.team": "growth", "location": "US"}
    orders = next(t for t in sales.tables if t.name == "orders")
    assert orders.comment == "One row per order"
    assert orders.properties == {
        "clustering": "customer_id, country",
        "clustering_columns": "customer_id,country",
        "label.pii": "none",
        "label.tier": "gold",
        "partition_columns": "order_ts",
        "partition_expiration_days": "365.0",
        "partitioning": "DATE(order_ts)",
        "require_partition_filter": "true",
    }
    cols = {c.name: c for c in orders.columns}
    assert cols["items.sku"].comment == "Stock keeping unit" and cols["items"].data_type == "ARRAY"
    assert cols["shipping.address.zip"].column_type == "STRING" and not cols["order_id"].nullable
    assert next(t for t in sales.tables if t.name == "customers").comment == "Kunden – 고객"
    view = next(t for t in sales.tables if t.name == "daily_revenue")
    assert view.table_type == "VIEW" and view.view_definition.startswith("SELECT DATE(order_ts)")
    no_views = snapshots(source(include_views=False, table_pattern={"deny": [r"sales\.events_.*"]}))
    assert [t.name for t in no_views["sales"].tables] == ["customers", "orders"]


def by_aspect(mcps):
    out = defaultdict(dict)
    for m in mcps:
        out[m.entityUrn][m.aspectName] = m.aspect
    return out


def test_mcps_urns_containers_properties_lineage():
    rules = BigQueryUrnRules(project=PROJECT)
    dbs = snapshots()
    from metadata_assets.sources.bigquery.emitter import BigQueryLineageResolver

    lineage = BigQueryLineageResolver(rules)
    for db in dbs.values():
        lineage.register(db)
    warnings: list[str] = []
    sales = by_aspect(dataset_mcps(dbs["sales"], rules, lineage, warnings))
    marketing = by_aspect(dataset_mcps(dbs["marketing"], rules, lineage, warnings))
    assert warnings == []
    orders = f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.sales.orders,PROD)"
    assert set(sales) >= {
        orders,
        f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.sales.events,PROD)",
        rules.container("sales"),
        rules.project_key().as_urn(),
    }
    assert not any("events_2024" in u for u in sales)  # shards fold into one dataset, as in the built-in
    events = sales[f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.sales.events,PROD)"]["datasetProperties"]
    assert events.customProperties["max_shard_id"] == "20240102"  # the latest shard describes the table
    props = sales[orders]["datasetProperties"]
    assert props.customProperties["partitioning"] == "DATE(order_ts)"
    assert props.customProperties["label.tier"] == "gold" and props.qualifiedName == f"{PROJECT}.sales.orders"
    assert sales[orders]["container"].container == rules.container("sales")
    fields = {f.fieldPath: f for f in sales[orders]["schemaMetadata"].fields}
    assert fields["order_ts"].isPartitioningKey
    assert [t.tag for t in fields["country"].globalTags.tags] == ["urn:li:tag:CLUSTERING_COLUMN_2"]
    sku = "[version=2.0].[type=struct].[type=array].[type=struct].items.[type=string].sku"
    assert fields[sku].description == "Stock keeping unit"
    zip_ = "[version=2.0].[type=struct].[type=struct].shipping.[type=struct].address.[type=string].zip"
    assert fields[zip_].description == "Postal code"
    dsc = sales[rules.container("sales")]
    assert dsc["containerProperties"].customProperties["label.team"] == "growth"
    assert dsc["container"].container == rules.project_key().as_urn()
    assert dsc["subTypes"].typeNames == ["Dataset"]  # DatasetContainerSubTypes.BIGQUERY_DATASET
    # view lineage from the view SQL, also across datasets; every upstream is a dataset we emit
    daily = sales[f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.sales.daily_revenue,PROD)"]
    assert [u.dataset for u in daily["upstreamLineage"].upstreams] == [orders]
    assert daily["viewProperties"].viewLogic.startswith("SELECT DATE(order_ts)")
    co = marketing[f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.marketing.campaign_orders,PROD)"]
    ups = [u.dataset for u in co["upstreamLineage"].upstreams]
    assert ups == sorted([orders, f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.marketing.campaigns,PROD)"])
    assert set(ups) <= set(sales) | set(marketing)
    fine = {f.downstreams[0].rsplit(",", 1)[-1]: f.upstreams for f in co["upstreamLineage"].fineGrainedLineages}
    assert fine["amount)"] == [f"urn:li:schemaField:({orders},amount)"]


def _builtin_columns(rows):
    """The same hand-written rows as the built-in source's columns_for_dataset query returns them."""
    from datahub.ingestion.source.bigquery_v2.bigquery_schema import BigqueryColumn

    return [
        BigqueryColumn(
            name=r["column_name"],
            ordinal_position=r["ordinal_position"],
            field_path=r["field_path"],
            is_nullable=r["is_nullable"] == "YES",
            data_type=None if "." in r["field_path"] else r["data_type"],
            comment=r["description"],
            is_partition_column=r["is_partitioning_column"] == "YES",
            cluster_column_position=r["clustering_ordinal_position"],
            policy_tags=[],
        )
        for r in sorted(rows, key=lambda r: (r["ordinal_position"], "." in r["field_path"], r["field_path"]))
    ]


def test_conformance_with_datahub_bigquery_source():
    """URNs, container keys and schema fields equal what acryl-datahub's bigquery_v2 source makes of the same rows."""
    from datahub.ingestion.source.bigquery_v2.bigquery_audit import BigqueryTableIdentifier
    from datahub.ingestion.source.bigquery_v2.bigquery_config import BigQueryV2Config
    from datahub.ingestion.source.bigquery_v2.common import BigQueryIdentifierBuilder

    config = BigQueryV2Config.model_validate({"project_ids": [PROJECT]})  # the built-in's defaults
    saved = BigqueryTableIdentifier._BQ_SHARDED_TABLE_SUFFIX
    ids = BigQueryIdentifierBuilder(config, SimpleNamespace())  # sets that process-wide suffix from its config
    try:
        _compare_with_builtin(ids, config)
    finally:
        BigqueryTableIdentifier._BQ_SHARDED_TABLE_SUFFIX = saved


def _compare_with_builtin(ids, config):
    from datahub.ingestion.source.bigquery_v2.bigquery_schema_gen import BigQuerySchemaGenerator

    shim = SimpleNamespace(
        identifiers=ids,
        config=config,
        BIGQUERY_FIELD_TYPE_MAPPINGS=BigQuerySchemaGenerator.BIGQUERY_FIELD_TYPE_MAPPINGS,
    )
    shim.is_primary_key = lambda path, constraints: BigQuerySchemaGenerator.is_primary_key(shim, path, constraints)
    rules = BigQueryUrnRules(project=PROJECT)
    rows = load_rows()["columns"]
    for db in snapshots().values():
        assert (
            rules.container_key(db.name).as_urn()
            == BigQuerySchemaGenerator.gen_dataset_key(shim, PROJECT, db.name).as_urn()
        )
        assert rules.project_key().as_urn() == BigQuerySchemaGenerator.gen_project_id_key(shim, PROJECT).as_urn()
        for t in db.tables:
            assert rules.dataset(db.name, t.name) == ids.gen_dataset_urn(PROJECT, db.name, t.name)
            theirs = BigQuerySchemaGenerator.gen_schema_fields(
                shim, _builtin_columns([r for r in rows if (r["dataset"], r["table_name"]) == (db.name, t.name)]), []
            )
            ours = schema_fields(t)
            assert [f.to_obj() for f in ours] == [f.to_obj() for f in theirs], t.name
    assert any("[type=array]" in f.fieldPath for t in snapshots()["sales"].tables for f in schema_fields(t))


# --- through dagster-gcp's BigQueryResource, against the loopback stand-in ---


@pytest.fixture
def bq(tmp_path, monkeypatch):
    with BigQueryStub(PROJECT) as stub:
        for k, v in stub.environ(tmp_path).items():
            monkeypatch.setenv(k, v)
        yield stub


SELECT_TARGETS = re.compile(r"\b(?:FROM|JOIN)\s+(\S+)")


def assert_metadata_only(queries):
    for q in queries:
        for target in SELECT_TARGETS.findall(q["sql"]):
            assert ".INFORMATION_SCHEMA." in target, q["sql"]


def test_extract_through_bigquery_resource_region_mode(bq, tmp_path):
    from metadata_assets.defs.source_reads import source_client
    from metadata_assets.extract import extract

    src, store = source(), LocalStore(tmp_path / "mce")
    with source_client(src) as client:
        results = list(extract(src, ["marketing", "sales", "gone"], store, client=client))
    assert [(r.database, r.ok, r.missing) for r in results] == [
        ("marketing", True, False),
        ("sales", True, False),
        ("gone", True, True),
    ]
    assert len(bq.queries) == 6  # SCHEMATA, SCHEMATA_OPTIONS, TABLES, TABLE_OPTIONS, COLUMNS x FIELD_PATHS, VIEWS
    assert all(q["location"] == "us" and q["project"] == PROJECT for q in bq.queries)
    assert bq.queries[0]["datasets"] == ["marketing", "sales", "gone"]
    assert all(q["datasets"] == ["sales", "marketing"] for q in bq.queries[1:])  # only the datasets that exist
    assert_metadata_only(bq.queries)
    assert bq.tokens_issued >= 1  # ADC from the environment, exchanged at the stand-in's token endpoint
    assert list_mce_databases(store, "analytics_bq") == ["marketing", "sales"]
    sales = read_mcps(store.read_bytes(mce_key("analytics_bq", "sales")))
    assert f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.sales.orders,PROD)" in {m.entityUrn for m in sales}
    r = results[1]
    assert (r.tables, r.views) == (4, 1) and r.data_version and not r.warnings
    from click.testing import CliRunner
    from datahub.entrypoints import datahub

    path = tmp_path / "mce" / mce_key("analytics_bq", "sales")
    out = CliRunner().invoke(datahub, ["check", "metadata-file", str(path)])
    assert out.exit_code == 0 and f"{len(sales)} MCEs found - all valid" in out.output, out.output


def test_grants_command_prints_iam_bindings(tmp_path, capsys):
    from metadata_assets import cli

    assert cli.main(["grants", "--config", str(write(tmp_path, YAML))]) == 0
    out = capsys.readouterr().out
    assert f"gcloud projects add-iam-policy-binding {PROJECT} " in out
    assert out.count("--role=roles/bigquery.metadataViewer") == 1 and out.count("--role=roles/bigquery.jobUser") == 1
    assert "roles/bigquery.dataViewer" not in out and "\nGRANT " not in out


def test_per_dataset_mode_and_fingerprints(bq):
    from metadata_assets.defs.source_reads import list_databases, read_fingerprints, source_client
    from metadata_assets.sources.bigquery import BigQueryReader

    region_fp = read_fingerprints(source())
    assert sorted(region_fp) == ["marketing", "sales"] and len(bq.queries) == 1
    src = source(regions=None)
    assert list_databases(src) == ["marketing", "sales"]
    with source_client(src) as client:
        reader = BigQueryReader(client, src)
        (sales,) = reader.read(["sales"])
    assert sales.comment == "Orders and customers, curated daily" and sales.properties["label.team"] == "growth"
    assert sales.schema_hash() == snapshots()["sales"].schema_hash()  # same snapshot whichever way it was read
    assert reader.queries == 4 and all(
        "`acme-analytics`.`sales`.INFORMATION_SCHEMA" in q["sql"] for q in bq.queries[-4:]
    )
    fp = read_fingerprints(src)
    assert sorted(fp) == ["marketing", "sales"]
    # a DDL change (e.g. a new column description) moves that dataset's fingerprint only
    bq.rows["tables"][0]["ddl"] += "\n-- changed"
    after = read_fingerprints(source())
    assert after["sales"] != region_fp["sales"] and after["marketing"] == region_fp["marketing"]
    assert_metadata_only(bq.queries)


def test_yaml_source_in_definitions_partitions_materialize_and_push(bq, tmp_path):
    from metadata_assets.datahub.sinks import lite_reader
    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.in_process import QUIET, push_source
    from metadata_assets.defs.keys import mce_asset_key

    cfg = load(
        write(
            tmp_path,
            YAML
            + textwrap.dedent(f"""
        storage: {{uri: "{tmp_path / "mce"}"}}
        datahub: {{target: lite, lite: {{path: "{tmp_path / "lite.sqlite"}"}}}}
        """),
        )
    )
    defs = build_definitions(cfg)
    (src,) = cfg.sources
    instance = DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("analytics_bq_schema_sensor")
    result = sensor(build_sensor_context(instance=instance))
    assert isinstance(result, SensorResult)
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == ["marketing", "sales"]
    instance.add_dynamic_partitions("analytics_bq_databases", list(add.partition_keys))
    assert [r.tags.get(ASSET_PARTITION_RANGE_START_TAG) for r in result.run_requests] == ["marketing"]

    job = defs.resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(
        instance=instance,
        asset_selection=[mce_asset_key(src)],
        run_config=QUIET,
        tags={ASSET_PARTITION_RANGE_START_TAG: "marketing", ASSET_PARTITION_RANGE_END_TAG: "sales"},
    )
    assert run.success
    mats = {e.materialization.partition: e.materialization for e in run.get_asset_materialization_events()}
    assert sorted(mats) == ["marketing", "sales"] and mats["sales"].metadata["views"].value == 1
    assert set(instance.get_materialized_partitions(mce_asset_key(src))) == {"marketing", "sales"}
    assert "bigquery" in defs.resolve_assets_def(mce_asset_key(src)).specs_by_key[mce_asset_key(src)].kinds

    assert push_source(defs, instance, src, print_fn=lambda m: None)
    lite = lite_reader(str(tmp_path / "lite.sqlite"))
    try:
        got = lite.get(
            f"urn:li:dataset:(urn:li:dataPlatform:bigquery,{PROJECT}.sales.orders,PROD)", aspects=None, typed=True
        )
        assert got["datasetProperties"].description == "One row per order"
        assert got["container"].container == BigQueryUrnRules(PROJECT).container("sales")
        assert any("[type=array]" in f.fieldPath for f in got["schemaMetadata"].fields)
        dataset = lite.get(got["container"].container, aspects=None, typed=True)
        assert dataset["containerProperties"].name == "sales"
    finally:
        lite.close()


def test_sensor_skips_when_the_account_may_not_run_queries(bq, tmp_path):
    from dagster import SkipReason

    from metadata_assets.defs.schema_sensor import build_schema_sensor

    cfg = load(write(tmp_path, YAML))
    bq.deny_queries = True
    result = build_schema_sensor(SourceSetup.of(cfg, cfg.sources[0]))(
        build_sensor_context(instance=DagsterInstance.ephemeral())
    )
    assert isinstance(result, SkipReason)
    assert "fingerprint query failed on source 'analytics_bq'" in result.skip_message
    assert "bigquery.jobs.create" in result.skip_message


def test_mysql_schema_hash_unchanged_by_the_properties_field():
    """catalog.Table/Database gained `properties` for BigQuery (and later routines, indexes, check constraints,
    triggers, view_upstreams, index_length and read_at_ms); empty or volatile, they leave the hash exactly as it
    was before they existed."""
    import hashlib

    from metadata_assets.catalog import Column, Database, Table

    db = Database(
        name="shop",
        charset="utf8mb4",
        tables=[
            Table(
                name="t",
                table_type="BASE TABLE",
                columns=[Column(name="id", ordinal=1, column_type="int(11)", data_type="int", nullable=False)],
            )
        ],
    )
    old = db.to_dict()
    old.pop("warnings"), old.pop("properties"), old.pop("routines"), old.pop("read_at_ms"), old.pop("statistics_note")
    for t in old["tables"]:
        for k in (
            "create_time",
            "update_time",
            "row_estimate",
            "data_length",
            "properties",
            "index_length",
            "indexes",
            "checks",
            "triggers",
            "view_upstreams",
        ):
            t.pop(k)
    canon = json.dumps(old, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert db.schema_hash() == hashlib.sha256(canon.encode()).hexdigest()
    db.tables[0].properties["partitioning"] = "DATE(ts)"
    assert db.schema_hash() != hashlib.sha256(canon.encode()).hexdigest()


def test_diff_sees_nested_field_changes():
    """Nested fields are snapshot columns named by field path, so the schema checks see a dropped nested field."""
    import copy

    from metadata_assets.diff import diff

    before = snapshots()["sales"]
    after = copy.deepcopy(before)
    orders = next(t for t in after.tables if t.name == "orders")
    orders.columns = [c for c in orders.columns if c.name != "items.qty"]
    d = diff(before, after)
    assert [(c.table, c.column, c.kind, c.breaking) for c in d.columns] == [
        ("orders", "items.qty", "removed", "column dropped")
    ]


# --- the stand-in executes what it is sent: a wrong query fails ---

QUERY_FUNCTIONS = (
    "schemata_sql",
    "schemata_options_sql",
    "tables_sql",
    "table_options_sql",
    "columns_sql",
    "views_sql",
    "fingerprint_sql",
)


def test_the_stand_in_runs_every_query_in_duckdb(bq):
    """Every query of a read and a sensor tick was parsed as GoogleSQL and executed in DuckDB; the fingerprint the
    tick got is the one its SQL computes from the hand-written rows (XOR of per-table hashes, one per dataset's DDL)."""
    from bigquery_stub import farm_fingerprint_standin

    from metadata_assets.defs.source_reads import source_client
    from metadata_assets.sources.bigquery import BigQueryReader

    with source_client(source()) as client:
        reader = BigQueryReader(client, source())
        list(reader.read(["marketing", "sales"]))
        parts = reader.fingerprints()
    assert len(bq.queries) == 7 and all(q["duckdb_sql"] and q["error"] is None for q in bq.queries)
    assert "farm_fingerprint" in bq.queries[-1]["duckdb_sql"].lower()
    rows = load_rows()
    h = 0
    for t in rows["tables"]:
        if t["dataset"] == "sales":
            h ^= farm_fingerprint_standin(f"{t['table_name']}|{t['table_type']}|{t['ddl']}")
    n = sum(t["dataset"] == "sales" for t in rows["tables"])
    ddl = next(s["ddl"] for s in rows["schemata"] if s["dataset"] == "sales")
    assert parts["sales"] == "|".join(sorted([f"us:t:{n}:{h}", f"us:s:1:{farm_fingerprint_standin(ddl)}"]))


@pytest.mark.parametrize("name", QUERY_FUNCTIONS)
def test_a_wrong_query_fails(bq, monkeypatch, name):
    """Each query the reader sends, with one column misspelt, is refused as BigQuery refuses it (HTTP 400
    invalidQuery -> BadRequest): the stand-in cannot answer a query it did not run."""
    from google.api_core.exceptions import BadRequest

    from metadata_assets.defs.source_reads import source_client
    from metadata_assets.sources.bigquery import BigQueryReader
    from metadata_assets.sources.bigquery import reader as reader_mod

    original = getattr(reader_mod, name)
    old, new, column = {
        "schemata_sql": ("schema_name AS", "schema_nam AS", "schema_nam"),
        "schemata_options_sql": ("option_value", "option_val", "option_val"),
        "tables_sql": ("table_type", "table_typ", "table_typ"),
        "table_options_sql": ("option_value", "option_valu", "option_valu"),
        "columns_sql": ("f.field_path", "f.fieldpath", "fieldpath"),
        "views_sql": ("view_definition", "view_def", "view_def"),
        "fingerprint_sql": ("IFNULL(ddl", "IFNULL(dll", "dll"),
    }[name]
    monkeypatch.setattr(reader_mod, name, lambda scope: original(scope).replace(old, new))
    with source_client(source()) as client, pytest.raises(BadRequest) as e:
        reader = BigQueryReader(client, source())
        reader.fingerprints() if name == "fingerprint_sql" else list(reader.read(["marketing", "sales"]))
    assert f'"{column}"' in str(e.value) and "Binder Error" in str(e.value), str(e.value)
    assert new in bq.queries[-1]["sql"] and bq.queries[-1]["error"]


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELEC 1", "Syntax error"),
        ("SELECT table_name FROM `acme-analytics`.`region-us`.INFORMATION_SCHEMA.TABLEZ", "Not found: Table"),
        ("SELECT table_name FROM `other-project`.`region-us`.INFORMATION_SCHEMA.TABLES", "Access Denied"),
        ("SELECT schema_name FROM `acme-analytics`.`sales`.INFORMATION_SCHEMA.SCHEMATA", "dataset qualifier"),
        (
            "SELECT table_name FROM `acme-analytics`.`region-us`.INFORMATION_SCHEMA.TABLES WHERE table_schema IN "
            "UNNEST(@dataset)",
            "Query parameter 'dataset' not found",
        ),
        ("SELECT table_schema, COUNT(*) AS n FROM `acme-analytics`.`region-us`.INFORMATION_SCHEMA.TABLES", "GROUP BY"),
        ("SELECT sales.orders.order_id FROM `acme-analytics`.sales.orders", "INFORMATION_SCHEMA views only"),
    ],
)
def test_queries_the_stand_in_refuses(bq, sql, message):
    from google.api_core.exceptions import BadRequest
    from google.cloud import bigquery

    from metadata_assets.defs.source_reads import source_client

    with source_client(source()) as client, pytest.raises(BadRequest) as e:
        params = [bigquery.ArrayQueryParameter("datasets", "STRING", ["sales"])]
        client.query(
            sql,
            job_config=bigquery.QueryJobConfig(query_parameters=params),
            api_method="QUERY",
            location="us",
            job_retry=None,
        ).result()
    assert message in str(e.value), str(e.value)


def test_a_sensor_tick_ends_at_its_deadline(bq, tmp_path, monkeypatch):
    """The tick's queries and API calls end within one total deadline (base.SENSOR_TICK_DEADLINE_S, 45 s, inside
    Dagster's 60 s): each answer 1 s late, per-dataset mode (a list, then a get and a query per dataset), the deadline
    at 1.5 s: the tick skips with the deadline's reason before the calls could add up (generous bound: 4 s)."""
    import time

    from dagster import SkipReason

    from metadata_assets.defs.schema_sensor import build_schema_sensor
    from metadata_assets.sources.bigquery import kind as bq_kind

    cfg = load(write(tmp_path, YAML.replace("    regions: [US]\n", "")))
    bq.delay_s = 1.0
    monkeypatch.setattr(bq_kind, "SENSOR_TICK_DEADLINE_S", 1.5)
    started = time.monotonic()
    result = build_schema_sensor(SourceSetup.of(cfg, cfg.sources[0]))(
        build_sensor_context(instance=DagsterInstance.ephemeral())
    )
    elapsed = time.monotonic() - started
    assert isinstance(result, SkipReason), result
    assert "did not finish within the sensor tick's deadline of 1.5s" in result.skip_message
    assert elapsed < 4, elapsed
    assert len(bq.requests) < 5  # list + get + query + get + query would be 5 calls (and 5 s) without the deadline
