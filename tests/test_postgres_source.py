"""The PostgreSQL source on a real server (Debian's postgresql, started here in its own directory and port).

- least privilege: a role with CONNECT only (the GRANT text's) is refused SELECT on every table, and extraction
  still reads every schema, table, view, materialized view, partitioned table, column, comment and key;
- conformance: DataHub's built-in `postgres` source, run on the same server, gives the same URNs, containers,
  browse paths, fields, keys and view lineage (intended differences asserted as such);
- fingerprints: a schema change moves its database's fingerprint, a data change does not;
- Dagster: the partition's asset materializes and the push sends it into DataHub Lite.
"""

from __future__ import annotations

import json

import psycopg2
import psycopg2.errors
import pytest

from metadata_assets import local_postgres
from metadata_assets.datahub import files
from metadata_assets.extract import extract
from metadata_assets.report import ExtractionReport
from metadata_assets.sources.postgres.config import PostgresSource
from metadata_assets.sources.postgres.reader import connect, grant_statements
from metadata_assets.sources.registry import kind

SHOP = """
COMMENT ON DATABASE {db} IS 'The shop';
CREATE SCHEMA sales;
COMMENT ON SCHEMA sales IS 'Orders and customers';
CREATE SCHEMA "Mixed Case";
CREATE TABLE sales.customers (id serial PRIMARY KEY, email text NOT NULL, name varchar(64));
COMMENT ON TABLE sales.customers IS 'Registered customers';
COMMENT ON COLUMN sales.customers.email IS 'Login e-mail';
CREATE TABLE public.orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id int REFERENCES sales.customers (id) ON DELETE CASCADE,
  total numeric(12, 2), doubled numeric GENERATED ALWAYS AS (total * 2) STORED,
  placed_at timestamptz DEFAULT now(), paid boolean, tags text[], meta jsonb, token uuid, raw bytea, day date);
CREATE TABLE public.events (id int, at date NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.event_notes (event_id int, at date, note text,
  FOREIGN KEY (event_id, at) REFERENCES public.events (id, at)) PARTITION BY LIST (at);
CREATE TABLE public.event_notes_all PARTITION OF public.event_notes DEFAULT;
CREATE VIEW sales.big_orders AS
  SELECT o.id, c.email, o.total FROM public.orders o JOIN sales.customers c ON c.id = o.customer_id WHERE o.total > 100;
CREATE MATERIALIZED VIEW public.daily AS SELECT placed_at::date AS day, sum(total) AS total FROM public.orders GROUP BY 1;
CREATE TABLE "Mixed Case"."Order Lines" ("Line No" int PRIMARY KEY, order_id bigint REFERENCES public.orders (id));
INSERT INTO sales.customers (email, name) VALUES ('a@example.com', 'A');
INSERT INTO public.orders (customer_id, total) VALUES (1, 250);
"""
BILLING = """
CREATE TABLE invoices (id int PRIMARY KEY, amount numeric NOT NULL);
COMMENT ON TABLE invoices IS 'Issued invoices';
"""
DATABASES = ("pg_shop", "pg_billing")


execute = local_postgres.execute


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    server = local_postgres.start(tmp_path_factory.mktemp("pgsource"))
    for db in (*DATABASES, "pg_hidden"):
        local_postgres.create_database(server, db)
        # hardened as a careful DBA does: PUBLIC may not even connect; the catalog role gets CONNECT only
        execute(server, "postgres", f'REVOKE CONNECT ON DATABASE "{db}" FROM PUBLIC')
    execute(server, "postgres", "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
    execute(server, DATABASES[0], SHOP.format(db=DATABASES[0]))
    execute(server, DATABASES[1], BILLING)
    source = PostgresSource(name="pgsrc", type="postgres", host=server.host, port=server.port, user="catalog",
                            password_env="PG_CATALOG_PASSWORD")
    # the project's own GRANT text, run as written (with a password in place of the placeholder)
    for statement in grant_statements(source, DATABASES):
        if not statement.startswith("--"):
            execute(server, "postgres", statement.replace("<password from $PG_CATALOG_PASSWORD>", "secret"))
    yield server, source
    server.destroy()


@pytest.fixture
def source(pg, monkeypatch):
    monkeypatch.setenv("PG_CATALOG_PASSWORD", "secret")
    return pg[1]


def test_select_denied_and_full_schema_extracted(pg, source, tmp_path):
    server, _ = pg
    conn = connect(source, DATABASES[0])
    for table in ("sales.customers", "public.orders", "sales.big_orders", "public.daily", "public.events_2026",
                  '"Mixed Case"."Order Lines"'):
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(f"SELECT * FROM {table} LIMIT 1")
        conn.rollback()
    conn.close()
    # pg_hidden: no CONNECT, not visible; `postgres`, the initial database, is a database like the others
    assert kind("postgres").list_databases(source) == sorted([*DATABASES, "postgres"])

    store = files.LocalStore(tmp_path)
    results = {r.database: r for r in extract(source, list(DATABASES), store)}
    assert all(r.ok and not r.missing for r in results.values()), [(r.database, r.error) for r in results.values()]
    assert not any("over-privileged" in w for r in results.values() for w in r.warnings)
    snap = results[DATABASES[0]].snapshot
    assert snap.comment == "The shop"
    assert [s["name"] for s in json.loads(snap.properties["schemas"])] == ["Mixed Case", "public", "sales"]
    tables = {t.name: t for t in snap.tables}
    assert set(tables) == {"sales.customers", "public.orders", "public.events", "public.events_2026",
                           "public.event_notes", "public.event_notes_all", "sales.big_orders", "public.daily", "Mixed Case.Order Lines"}
    customers, orders = tables["sales.customers"], tables["public.orders"]
    assert customers.comment == "Registered customers" and customers.columns[1].comment == "Login e-mail"
    assert [(c.name, c.nullable) for c in customers.columns] == [("id", False), ("email", False), ("name", True)]
    assert customers.columns[2].column_type == "character varying(64)"
    assert "nextval" in customers.columns[0].default
    assert orders.primary_key == ("id",) and orders.columns[0].extra == "identity always"
    assert orders.columns[3].generation_expression == "(total * (2)::numeric)"
    (fk,) = orders.foreign_keys  # across schemas
    assert (fk.columns, fk.ref_table, fk.ref_columns, fk.on_delete) == (
        ("customer_id",), "sales.customers", ("id",), "CASCADE")
    (lines_fk,) = tables["Mixed Case.Order Lines"].foreign_keys
    assert lines_fk.ref_table == "public.orders"
    assert tables["public.events"].properties["partition_key"] == "RANGE (at)"
    assert tables["public.events_2026"].properties["partition_of"] == "public.events"
    assert tables["public.events"].primary_key == ("id", "at")
    assert tables["public.events_2026"].primary_key == ("id", "at")  # a partition's key is its own
    # a key referencing a partitioned table names it, not its partitions; the partition has the parent's key
    for notes in ("public.event_notes", "public.event_notes_all"):
        assert [(k.columns, k.ref_table) for k in tables[notes].foreign_keys] == [
            (("event_id", "at"), "public.events")], notes
    view, matview = tables["sales.big_orders"], tables["public.daily"]
    assert view.is_view and "public.orders" in view.view_definition and "sales.customers" in view.view_definition
    assert matview.is_view and matview.properties["materialized"] == "true"
    assert [c.name for c in view.columns] == ["id", "email", "total"]

    aspects = {}
    for m in files.read_mcps(store.read_bytes(files.mce_key("pgsrc", DATABASES[0]))):
        aspects.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    view_urn = "urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.sales.big_orders,PROD)"
    lineage = aspects[view_urn]["upstreamLineage"]
    assert {u.dataset for u in lineage.upstreams} == {
        "urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.public.orders,PROD)",
        "urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.sales.customers,PROD)"}
    assert {d for f in lineage.fineGrainedLineages for d in f.downstreams} == {
        f"urn:li:schemaField:({view_urn},{c})" for c in ("id", "email", "total")}
    assert aspects["urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.public.daily,PROD)"][
        "viewProperties"].materialized is True


def test_an_account_that_can_read_data_is_warned_per_database(pg, source, tmp_path):
    server, _ = pg
    execute(server, DATABASES[1], "GRANT SELECT ON invoices TO catalog")
    try:
        results = {r.database: r for r in extract(source, list(DATABASES), files.LocalStore(tmp_path))}
    finally:
        execute(server, DATABASES[1], "REVOKE SELECT ON invoices FROM catalog")
    assert [w for w in results[DATABASES[1]].warnings if "over-privileged" in w] == [
        "over-privileged: the account can read data of 1 relation in database 'pg_billing' (public.invoices)"]
    assert not any("over-privileged" in w for w in results[DATABASES[0]].warnings)


def test_a_database_refused_alone_fails_alone_and_a_dropped_one_is_missing(pg, source, tmp_path):
    report = ExtractionReport(source="pgsrc", kind="postgres")
    results = {r.database: r for r in extract(source, ["pg_hidden", "pg_gone", *DATABASES], files.LocalStore(tmp_path),
                                              report=report)}
    assert not results["pg_hidden"].ok and "permission denied for database" in results["pg_hidden"].error
    assert results["pg_gone"].ok and results["pg_gone"].missing
    assert all(results[d].ok and not results[d].missing for d in DATABASES)
    assert (list(report.failed), report.missing, sorted(report.written)) == (["pg_hidden"], ["pg_gone"],
                                                                             sorted(DATABASES))
    # the role check, then per database read: the database row, schemas, relations, columns, keys
    assert report.statements == 1 + 5 * len(DATABASES)


def test_fingerprints_move_with_the_schema_not_the_data(pg, source):
    server, _ = pg
    pg_kind = kind("postgres")
    first = pg_kind.fingerprints(source)
    assert set(first) == {*DATABASES, "postgres"}
    execute(server, DATABASES[0], "INSERT INTO sales.customers (email) VALUES ('b@example.com'); ANALYZE")
    assert pg_kind.fingerprints(source, cursor=first) == first
    execute(server, DATABASES[0], "ALTER TABLE sales.customers ADD COLUMN phone text")
    try:
        moved = pg_kind.fingerprints(source, cursor=first)
        assert moved[DATABASES[0]] != first[DATABASES[0]] and moved[DATABASES[1]] == first[DATABASES[1]]
        execute(server, DATABASES[0], "CREATE OR REPLACE VIEW sales.big_orders AS SELECT o.id, c.email, o.total "
                                      "FROM public.orders o JOIN sales.customers c ON c.id = o.customer_id")
        assert pg_kind.fingerprints(source, cursor=moved)[DATABASES[0]] != moved[DATABASES[0]]  # view SQL counts
    finally:
        execute(server, DATABASES[0], "ALTER TABLE sales.customers DROP COLUMN phone; "
                                      "CREATE OR REPLACE VIEW sales.big_orders AS SELECT o.id, c.email, o.total "
                                      "FROM public.orders o JOIN sales.customers c ON c.id = o.customer_id "
                                      "WHERE o.total > 100")


def test_grant_text_names_connect_only(source):
    text = kind("postgres").grant_text(source, list(DATABASES))
    grants = [line for line in text if line.startswith("GRANT")]
    assert grants == ['GRANT CONNECT ON DATABASE "postgres" TO "catalog";',
                      'GRANT CONNECT ON DATABASE "pg_shop" TO "catalog";',
                      'GRANT CONNECT ON DATABASE "pg_billing" TO "catalog";']


def test_yaml_source_in_definitions_sensor_partitions_materialize_and_push(pg, source, tmp_path):
    """The Dagster path, as for MySQL: the schema sensor adds a partition per database, the partitioned asset writes
    their files, the push sends them into DataHub Lite, and a second push sends nothing."""
    from dagster import DagsterInstance, SensorResult, build_sensor_context
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from metadata_assets.config import load
    from metadata_assets.datahub.sinks import lite_reader
    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.extraction import mce_asset_key
    from metadata_assets.defs.in_process import QUIET, push_source

    server, _ = pg
    (tmp_path / "sources.yaml").write_text(f"""
sources:
  - name: pgsrc
    type: postgres
    host: {server.host}
    port: {server.port}
    user: catalog
    password_env: PG_CATALOG_PASSWORD
    database_pattern: {{allow: ["^pg_"]}}
storage: {{uri: "{tmp_path / 'mce'}"}}
datahub: {{target: lite, lite: {{path: "{tmp_path / 'lite.sqlite'}"}}}}
""")
    cfg = load(tmp_path / "sources.yaml")
    (src,) = cfg.sources
    defs = build_definitions(cfg)
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_sensor_def("pgsrc_schema_sensor")(build_sensor_context(instance=instance))
    assert isinstance(result, SensorResult)
    (add,) = result.dynamic_partitions_requests
    assert sorted(add.partition_keys) == sorted(DATABASES)  # pg_hidden: no CONNECT, not listed
    instance.add_dynamic_partitions("pgsrc_databases", list(add.partition_keys))

    job = defs.resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(instance=instance, asset_selection=[mce_asset_key(src)], run_config=QUIET,
                                 tags={ASSET_PARTITION_RANGE_START_TAG: "pg_billing",
                                       ASSET_PARTITION_RANGE_END_TAG: "pg_shop"})
    assert run.success
    mats = {e.materialization.partition: e.materialization for e in run.get_asset_materialization_events()}
    assert sorted(mats) == sorted(DATABASES) and mats["pg_shop"].metadata["views"].value == 2
    assert "postgres" in defs.resolve_assets_def(mce_asset_key(src)).specs_by_key[mce_asset_key(src)].kinds
    (observation,) = [e.event_specific_data.asset_observation for e in run.all_events
                      if e.event_type_value == "ASSET_OBSERVATION"]  # the run's ExtractionReport
    assert observation.partition is None
    assert observation.metadata["summary"].value.startswith("pgsrc: 2 databases: 2 written, 0 unchanged, 0 missing")
    outcomes = {r.data["outcome"]: r.data["databases"] for r in observation.metadata["databases"].value.records}
    assert outcomes == {"written (new or changed schema)": 2, "unchanged (files kept)": 0, "missing": 0, "failed": 0}

    pushed = []
    assert push_source(defs, instance, src, print_fn=pushed.append)
    assert pushed[0].endswith(": 2 databases, 106 proposals"), pushed  # 8 of them the tables' datasetProfile
    lite = lite_reader(str(tmp_path / "lite.sqlite"))
    try:
        got = lite.get("urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.sales.customers,PROD)",
                       aspects=None, typed=True)
        assert got["datasetProperties"].description == "Registered customers"
        assert got["datasetProfile"].columnCount == len(got["schemaMetadata"].fields)  # pg_class figures
        schema = lite.get(got["container"].container, aspects=None, typed=True)
        assert schema["containerProperties"].name == "sales"
        database = lite.get(schema["container"].container, aspects=None, typed=True)
        assert database["containerProperties"].name == "pg_shop"
    finally:
        lite.close()
    again = []
    assert push_source(defs, instance, src, print_fn=again.append)
    assert again[0].endswith(": 0 databases, 0 proposals"), again  # nothing new to send


def run_builtin(server, tmp_path):
    """DataHub's built-in postgres source, in-process, as the superuser, file sink."""
    from datahub.ingestion.run.pipeline import Pipeline

    out = tmp_path / "builtin.json"
    pipeline = Pipeline.create({
        "run_id": "pg-conformance",
        "source": {"type": "postgres", "config": {
            "host_port": f"{server.host}:{server.port}", "username": "postgres", "password": "",
            "database_pattern": {"allow": [f"^{d}$" for d in DATABASES]}, "include_views": True,
            "include_tables": True, "profiling": {"enabled": False}, "include_stored_procedures": False}},
        "sink": {"type": "file", "config": {"filename": str(out)}},
    })
    pipeline.run()
    pipeline.raise_from_status()
    return out


def aspects_of(mcps) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for m in mcps:
        out.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    return out


def test_same_urns_containers_fields_keys_and_lineage_as_builtin(pg, source, tmp_path):
    from datahub.ingestion.source.file import read_metadata_file
    from datahub.emitter.mcp import MetadataChangeProposalWrapper

    server, _ = pg
    builtin_mcps = []
    for item in read_metadata_file(run_builtin(server, tmp_path)):
        if isinstance(item, MetadataChangeProposalWrapper):
            builtin_mcps.append(item)
        elif hasattr(item, "proposedSnapshot"):  # an MCE: one aspect per entry
            for aspect in item.proposedSnapshot.aspects:
                builtin_mcps.append(MetadataChangeProposalWrapper(entityUrn=item.proposedSnapshot.urn, aspect=aspect))
    builtin = aspects_of(builtin_mcps)
    store = files.LocalStore(tmp_path / "ours")
    assert all(r.ok for r in extract(source, list(DATABASES), store))
    ours = aspects_of(m for d in DATABASES for m in files.read_mcps(store.read_bytes(files.mce_key("pgsrc", d))))

    # Intended difference: the built-in reads under the default search_path, where PostgreSQL leaves `public.` out
    # of view SQL and SQLAlchemy leaves it out of a foreign key's referred schema; it then resolves the bare name in
    # the referring table's own schema, naming tables that do not exist (pg_shop.sales.orders). The reader sets
    # search_path to '' and gets every name qualified. `into_public` maps the built-in's name to the real table.
    fixed = set()

    def into_public(urn: str) -> str:
        name = urn.split(",")[1]
        if f"urn:li:dataset:(urn:li:dataPlatform:postgres,{name},PROD)" in datasets:
            return urn
        fixed.add(name)
        db, _schema, table = name.split(".")
        return urn.replace(name, f"{db}.public.{table}")

    def of_type(aspects, prefix):
        return {u for u in aspects if u.startswith(prefix)}

    datasets = of_type(ours, "urn:li:dataset:")
    assert of_type(builtin, "urn:li:dataset:") == datasets and len(datasets) == 10
    assert of_type(builtin, "urn:li:container:") == of_type(ours, "urn:li:container:")
    for urn in of_type(ours, "urn:li:container:"):
        b, o = builtin[urn], ours[urn]
        for aspect in ("container", "subTypes", "dataPlatformInstance", "browsePathsV2"):
            if aspect in b or aspect in o:
                assert b.get(aspect) == o.get(aspect), (urn, aspect)
        assert b["containerProperties"].name == o["containerProperties"].name
    # Intended difference: PostgreSQL clones a foreign key that references a partitioned table once per partition
    # of it; the built-in lists each clone as a key of its own, the reader only the declared key (to the parent).
    partitions = {}
    for urn in datasets:
        parent = ours[urn]["datasetProperties"].customProperties.get("partition_of")
        if parent:
            partitions[urn] = urn.rsplit(".", 2)[0] + f".{parent},PROD)"
    clones = 0
    for urn in datasets:
        b, o = builtin[urn], ours[urn]
        for aspect in ("container", "subTypes", "browsePathsV2"):
            assert b[aspect] == o[aspect], (urn, aspect)
        assert b["datasetProperties"].name == o["datasetProperties"].name, urn
        assert b["datasetProperties"].description == o["datasetProperties"].description, urn
        bf, of = b["schemaMetadata"].fields, o["schemaMetadata"].fields
        assert [(f.fieldPath, f.description) for f in bf] == [(f.fieldPath, f.description) for f in of], urn
        assert [type(f.type.type).__name__ for f in bf] == [type(f.type.type).__name__ for f in of], urn
        # Intended difference: nativeDataType is PostgreSQL's own format_type ('character varying(64)', as psql
        # shows it) where the built-in gives SQLAlchemy's rendering ('VARCHAR(64)')
        assert [f.isPartOfKey for f in bf] == [f.isPartOfKey for f in of], urn
        if "viewProperties" not in o:  # the built-in marks every view column nullable
            assert [f.nullable for f in bf] == [f.nullable for f in of], urn
        fks = lambda s, fix: sorted((fix(k.foreignDataset), tuple(k.sourceFields), tuple(fix(f) for f in k.foreignFields))
                                    for k in s.foreignKeys or [])
        builtin_fks = [k for k in fks(b["schemaMetadata"], into_public)
                       if not (k[0] in partitions and (partitions[k[0]], k[1]) in {(x[0], x[1]) for x in
                                                                                    fks(b["schemaMetadata"], str)})]
        clones += len(fks(b["schemaMetadata"], str)) - len(builtin_fks)
        assert builtin_fks == fks(o["schemaMetadata"], str), urn
        if "viewProperties" in o:
            ups = lambda a, fix: {fix(u.dataset) for u in a["upstreamLineage"].upstreams} if "upstreamLineage" in a else set()
            assert ups(b, into_public) == ups(o, str) and ups(o, str), urn
    assert fixed == {"pg_shop.sales.orders", "pg_shop.Mixed Case.orders"}
    assert clones == 1  # event_notes -> events_2026
