"""The PostgreSQL source on a real server (Debian's postgresql, started here in its own directory and port).

- least privilege: a role with CONNECT only (the GRANT text's) is refused SELECT on every table, and extraction
  still reads every schema, table, view, materialized view, partitioned table, column, comment and key;
- conformance: DataHub's built-in `postgres` source, run on the same server, gives the same URNs, containers,
  browse paths, fields, keys and view lineage (intended differences asserted as such);
- issue 27, on `SalesERP` (a database whose name has capitals): views across schemas whose lineage names the
  datasets emitted, NOT NULL domains (in tables, views, materialized views), enums, types as psql shows them,
  partitioned tables with data and a never-analysed partition and table, functions and procedures (overloads, a
  SQL-standard body, a trigger function; extension functions and aggregates left out) as DataFlow/DataJobs, indexes,
  check constraints and triggers, in the fingerprint and the diff; conformance with the built-in there too, with
  stored procedures and with a platform instance;
- fingerprints: a schema change moves its database's fingerprint, a data change does not;
- Dagster: the partition's asset materializes and the push sends it into DataHub Lite.
"""

from __future__ import annotations

import json

import psycopg2
import psycopg2.errors
import pytest

from metadata_assets import local_postgres
from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.extract import extract
from metadata_assets.report import ExtractionReport
from metadata_assets.source_config import Pattern
from metadata_assets.sources.postgres.config import PostgresSource
from metadata_assets.sources.postgres.reader import connect, grant_statements
from metadata_assets.sources.registry import kind
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore

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
    source = PostgresSource(
        name="pgsrc",
        type="postgres",
        host=server.host,
        port=server.port,
        user="catalog",
        password_env="PG_CATALOG_PASSWORD",
    )
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
    for table in (
        "sales.customers",
        "public.orders",
        "sales.big_orders",
        "public.daily",
        "public.events_2026",
        '"Mixed Case"."Order Lines"',
    ):
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(f"SELECT * FROM {table} LIMIT 1")
        conn.rollback()
    conn.close()
    # pg_hidden: no CONNECT, not visible; `postgres`, the initial database, is a database like the others
    assert kind("postgres").list_databases(source) == sorted([*DATABASES, "postgres"])

    store = LocalStore(tmp_path)
    results = {r.database: r for r in extract(source, list(DATABASES), store)}
    assert all(r.ok and not r.missing for r in results.values()), [(r.database, r.error) for r in results.values()]
    assert not any("over-privileged" in w for r in results.values() for w in r.warnings)
    snap = results[DATABASES[0]].snapshot
    assert snap.comment == "The shop"
    assert [s["name"] for s in json.loads(snap.properties["schemas"])] == ["Mixed Case", "public", "sales"]
    tables = {t.name: t for t in snap.tables}
    assert set(tables) == {
        "sales.customers",
        "public.orders",
        "public.events",
        "public.events_2026",
        "public.event_notes",
        "public.event_notes_all",
        "sales.big_orders",
        "public.daily",
        "Mixed Case.Order Lines",
    }
    customers, orders = tables["sales.customers"], tables["public.orders"]
    assert customers.comment == "Registered customers" and customers.columns[1].comment == "Login e-mail"
    assert [(c.name, c.nullable) for c in customers.columns] == [("id", False), ("email", False), ("name", True)]
    assert customers.columns[2].column_type == "character varying(64)"
    assert "nextval" in customers.columns[0].default
    assert orders.primary_key == ("id",) and orders.columns[0].extra == "identity always"
    assert orders.columns[3].generation_expression == "(total * (2)::numeric)"
    (fk,) = orders.foreign_keys  # across schemas
    assert (fk.columns, fk.ref_table, fk.ref_columns, fk.on_delete) == (
        ("customer_id",),
        "sales.customers",
        ("id",),
        "CASCADE",
    )
    (lines_fk,) = tables["Mixed Case.Order Lines"].foreign_keys
    assert lines_fk.ref_table == "public.orders"
    assert tables["public.events"].properties["partition_key"] == "RANGE (at)"
    assert tables["public.events_2026"].properties["partition_of"] == "public.events"
    assert tables["public.events"].primary_key == ("id", "at")
    assert tables["public.events_2026"].primary_key == ("id", "at")  # a partition's key is its own
    # a key referencing a partitioned table names it, not its partitions; the partition has the parent's key
    for notes in ("public.event_notes", "public.event_notes_all"):
        assert [(k.columns, k.ref_table) for k in tables[notes].foreign_keys] == [
            (("event_id", "at"), "public.events")
        ], notes
    view, matview = tables["sales.big_orders"], tables["public.daily"]
    assert view.is_view and "public.orders" in view.view_definition and "sales.customers" in view.view_definition
    assert matview.is_view and matview.properties["materialized"] == "true"
    assert [c.name for c in view.columns] == ["id", "email", "total"]

    aspects = {}
    for m in read_mcps(store.read_bytes(mce_key("pgsrc", DATABASES[0]))):
        aspects.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    view_urn = "urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.sales.big_orders,PROD)"
    lineage = aspects[view_urn]["upstreamLineage"]
    assert {u.dataset for u in lineage.upstreams} == {
        "urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.public.orders,PROD)",
        "urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.sales.customers,PROD)",
    }
    assert {d for f in lineage.fineGrainedLineages for d in f.downstreams} == {
        f"urn:li:schemaField:({view_urn},{c})" for c in ("id", "email", "total")
    }
    assert (
        aspects["urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.public.daily,PROD)"][
            "viewProperties"
        ].materialized
        is True
    )


def test_an_account_that_can_read_data_is_warned_per_database(pg, source, tmp_path):
    server, _ = pg
    execute(server, DATABASES[1], "GRANT SELECT ON invoices TO catalog")
    try:
        results = {r.database: r for r in extract(source, list(DATABASES), LocalStore(tmp_path))}
    finally:
        execute(server, DATABASES[1], "REVOKE SELECT ON invoices FROM catalog")
    assert [w for w in results[DATABASES[1]].warnings if "over-privileged" in w] == [
        "over-privileged: the account can read data of 1 relation in database 'pg_billing' (public.invoices)"
    ]
    assert not any("over-privileged" in w for w in results[DATABASES[0]].warnings)


def test_a_database_refused_alone_fails_alone_and_a_dropped_one_is_missing(pg, source, tmp_path):
    report = ExtractionReport(source="pgsrc", kind="postgres")
    results = {
        r.database: r
        for r in extract(source, ["pg_hidden", "pg_gone", *DATABASES], LocalStore(tmp_path), report=report)
    }
    assert not results["pg_hidden"].ok and "permission denied for database" in results["pg_hidden"].error
    assert results["pg_gone"].ok and results["pg_gone"].missing
    assert all(results[d].ok and not results[d].missing for d in DATABASES)
    assert (list(report.failed), report.missing, sorted(report.written)) == (
        ["pg_hidden"],
        ["pg_gone"],
        sorted(DATABASES),
    )
    # the role check, then per database read: the database row, schemas, relations, columns, keys and check
    # constraints, indexes, triggers, routines
    assert report.statements == 1 + 8 * len(DATABASES)


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
        execute(
            server,
            DATABASES[0],
            "CREATE OR REPLACE VIEW sales.big_orders AS SELECT o.id, c.email, o.total "
            "FROM public.orders o JOIN sales.customers c ON c.id = o.customer_id",
        )
        assert pg_kind.fingerprints(source, cursor=moved)[DATABASES[0]] != moved[DATABASES[0]]  # view SQL counts
    finally:
        execute(
            server,
            DATABASES[0],
            "ALTER TABLE sales.customers DROP COLUMN phone; "
            "CREATE OR REPLACE VIEW sales.big_orders AS SELECT o.id, c.email, o.total "
            "FROM public.orders o JOIN sales.customers c ON c.id = o.customer_id "
            "WHERE o.total > 100",
        )


def test_grant_text_names_connect_only(source):
    text = kind("postgres").grant_text(source, list(DATABASES))
    grants = [line for line in text if line.startswith("GRANT")]
    assert grants == [
        'GRANT CONNECT ON DATABASE "postgres" TO "catalog";',
        'GRANT CONNECT ON DATABASE "pg_shop" TO "catalog";',
        'GRANT CONNECT ON DATABASE "pg_billing" TO "catalog";',
    ]


def test_yaml_source_in_definitions_sensor_partitions_materialize_and_push(pg, source, tmp_path):
    """The Dagster path, as for MySQL: the schema sensor adds a partition per database, the partitioned asset writes
    their files, the push sends them into DataHub Lite, and a second push sends nothing."""
    from dagster import DagsterInstance, SensorResult, build_sensor_context
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from metadata_assets.config import load
    from metadata_assets.datahub.sinks import lite_reader
    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.in_process import QUIET, push_source
    from metadata_assets.defs.keys import mce_asset_key

    server, _ = pg
    for db in DATABASES:  # figures for every table (a never-analysed one has none, so no datasetProfile)
        execute(server, db, "ANALYZE")
    (tmp_path / "sources.yaml").write_text(f"""
sources:
  - name: pgsrc
    type: postgres
    host: {server.host}
    port: {server.port}
    user: catalog
    password_env: PG_CATALOG_PASSWORD
    database_pattern: {{allow: ["^pg_"]}}
storage: {{uri: "{tmp_path / "mce"}"}}
datahub: {{target: lite, lite: {{path: "{tmp_path / "lite.sqlite"}"}}}}
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
    run = job.execute_in_process(
        instance=instance,
        asset_selection=[mce_asset_key(src)],
        run_config=QUIET,
        tags={ASSET_PARTITION_RANGE_START_TAG: "pg_billing", ASSET_PARTITION_RANGE_END_TAG: "pg_shop"},
    )
    assert run.success
    mats = {e.materialization.partition: e.materialization for e in run.get_asset_materialization_events()}
    assert sorted(mats) == sorted(DATABASES) and mats["pg_shop"].metadata["views"].value == 2
    assert "postgres" in defs.resolve_assets_def(mce_asset_key(src)).specs_by_key[mce_asset_key(src)].kinds
    (observation,) = [
        e.event_specific_data.asset_observation for e in run.all_events if e.event_type_value == "ASSET_OBSERVATION"
    ]  # the run's ExtractionReport
    assert observation.partition is None
    assert observation.metadata["summary"].value.startswith("pgsrc: 2 databases: 2 written, 0 unchanged, 0 missing")
    outcomes = {r.data["outcome"]: r.data["databases"] for r in observation.metadata["databases"].value.records}
    assert outcomes == {"written (new or changed schema)": 2, "unchanged (files kept)": 0, "missing": 0, "failed": 0}

    pushed = []
    assert push_source(defs, instance, src, print_fn=pushed.append)
    assert pushed[0].endswith(": 2 databases, 106 proposals"), pushed  # 8 of them the tables' datasetProfile
    lite = lite_reader(str(tmp_path / "lite.sqlite"))
    try:
        got = lite.get(
            "urn:li:dataset:(urn:li:dataPlatform:postgres,pg_shop.sales.customers,PROD)", aspects=None, typed=True
        )
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
    pipeline = Pipeline.create(
        {
            "run_id": "pg-conformance",
            "source": {
                "type": "postgres",
                "config": {
                    "host_port": f"{server.host}:{server.port}",
                    "username": "postgres",
                    "password": "",
                    "database_pattern": {"allow": [f"^{d}$" for d in DATABASES]},
                    "include_views": True,
                    "include_tables": True,
                    "profiling": {"enabled": False},
                    "include_stored_procedures": False,
                },
            },
            "sink": {"type": "file", "config": {"filename": str(out)}},
        }
    )
    pipeline.run()
    pipeline.raise_from_status()
    return out


def aspects_of(mcps) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for m in mcps:
        out.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    return out


def test_same_urns_containers_fields_keys_and_lineage_as_builtin(pg, source, tmp_path):
    from datahub.emitter.mcp import MetadataChangeProposalWrapper
    from datahub.ingestion.source.file import read_metadata_file

    server, _ = pg
    builtin_mcps = []
    for item in read_metadata_file(run_builtin(server, tmp_path)):
        if isinstance(item, MetadataChangeProposalWrapper):
            builtin_mcps.append(item)
        elif hasattr(item, "proposedSnapshot"):  # an MCE: one aspect per entry
            for aspect in item.proposedSnapshot.aspects:
                builtin_mcps.append(MetadataChangeProposalWrapper(entityUrn=item.proposedSnapshot.urn, aspect=aspect))
    builtin = aspects_of(builtin_mcps)
    store = LocalStore(tmp_path / "ours")
    assert all(r.ok for r in extract(source, list(DATABASES), store))
    ours = aspects_of(m for d in DATABASES for m in read_mcps(store.read_bytes(mce_key("pgsrc", d))))

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
        fks = lambda s, fix: sorted(
            (fix(k.foreignDataset), tuple(k.sourceFields), tuple(fix(f) for f in k.foreignFields))
            for k in s.foreignKeys or []
        )
        builtin_fks = [
            k
            for k in fks(b["schemaMetadata"], into_public)
            if not (
                k[0] in partitions and (partitions[k[0]], k[1]) in {(x[0], x[1]) for x in fks(b["schemaMetadata"], str)}
            )
        ]
        clones += len(fks(b["schemaMetadata"], str)) - len(builtin_fks)
        assert builtin_fks == fks(o["schemaMetadata"], str), urn
        if "viewProperties" in o:
            ups = lambda a, fix: (
                {fix(u.dataset) for u in a["upstreamLineage"].upstreams} if "upstreamLineage" in a else set()
            )
            assert ups(b, into_public) == ups(o, str) and ups(o, str), urn
    assert fixed == {"pg_shop.sales.orders", "pg_shop.Mixed Case.orders"}
    assert clones == 1  # event_notes -> events_2026


# --- issue 27: real-schema shapes, in a database whose name has capitals -----------------------------------------
ERP = "SalesERP"
ERP_SQL = """
CREATE EXTENSION citext;
CREATE SCHEMA inventory;
CREATE SCHEMA sales;
COMMENT ON SCHEMA sales IS 'Sales documents';
CREATE SCHEMA reporting;
CREATE DOMAIN public.positive_qty AS integer NOT NULL CHECK (VALUE > 0);
CREATE DOMAIN public."Sku" AS varchar(20) NOT NULL;
CREATE DOMAIN public.qty2 AS public.positive_qty;
CREATE DOMAIN inventory.note AS text;
CREATE TYPE public.order_state AS ENUM ('new', 'paid', 'shipped');
CREATE TYPE sales.channel AS ENUM ('web', 'shop');
CREATE DOMAIN public.state_d AS public.order_state NOT NULL;
CREATE TABLE inventory.items (
  sku public."Sku" PRIMARY KEY, name text NOT NULL, qty public.positive_qty, spare public.qty2, note inventory.note,
  doc tsvector, email citext, CONSTRAINT name_not_blank CHECK (name <> ''));
CREATE INDEX items_lower_name ON inventory.items (lower(name));
CREATE INDEX items_doc ON inventory.items USING gin (doc);
CREATE UNIQUE INDEX items_name_qty ON inventory.items (name, qty) INCLUDE (note);
COMMENT ON INDEX inventory.items_doc IS 'full-text search';
CREATE TABLE sales.orders (
  id int PRIMARY KEY, sku public."Sku" REFERENCES inventory.items (sku), qty public.positive_qty,
  state public.order_state NOT NULL DEFAULT 'new', channel sales.channel, history public.order_state[],
  fixed public.state_d, placed date NOT NULL, CHECK (qty < 1000));
CREATE TABLE sales.audit (order_id int, at timestamptz DEFAULT now());
CREATE FUNCTION sales.log_order() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO sales.audit (order_id) VALUES (NEW.id); RETURN NEW; END$$;
CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE ON sales.orders FOR EACH ROW EXECUTE FUNCTION sales.log_order();
CREATE TABLE sales.shipments (id int, shipped date NOT NULL, qty public.positive_qty) PARTITION BY RANGE (shipped);
CREATE TABLE sales.shipments_2025 PARTITION OF sales.shipments FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE sales.shipments_2026 PARTITION OF sales.shipments FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE sales.shipments_2027 PARTITION OF sales.shipments FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE TABLE sales.never_analysed (id int);
INSERT INTO inventory.items (sku, name, qty, spare) VALUES ('A-1', 'Anvil', 5, 1), ('B-2', 'Bell', 7, 2);
INSERT INTO sales.orders (id, sku, qty, placed, fixed) VALUES (1, 'A-1', 2, '2026-01-05', 'new');
INSERT INTO sales.shipments SELECT g, DATE '2025-06-01' + (g % 400), 1 FROM generate_series(1, 1000) g;
INSERT INTO sales.never_analysed SELECT generate_series(1, 10);
ANALYZE inventory.items; ANALYZE sales.orders; ANALYZE sales.audit;
ANALYZE sales.shipments_2025; ANALYZE sales.shipments_2026;
CREATE VIEW reporting.order_lines AS
  SELECT o.id, o.sku, i.name, o.qty, o.fixed FROM sales.orders o JOIN inventory.items i ON i.sku = o.sku;
CREATE MATERIALIZED VIEW reporting.stock AS SELECT sku, qty, spare, note FROM inventory.items;
CREATE VIEW public.open_orders AS SELECT id, state, history FROM sales.orders WHERE state <> 'shipped';
CREATE PROCEDURE sales.ship(order_id int) LANGUAGE sql AS
  $$ UPDATE sales.orders SET state = 'shipped' WHERE id = order_id $$;
CREATE PROCEDURE sales.ship(order_id int, on_day date) LANGUAGE sql AS
  $$ INSERT INTO sales.shipments (id, shipped, qty) SELECT id, on_day, qty FROM sales.orders WHERE id = order_id $$;
COMMENT ON PROCEDURE sales.ship(int) IS 'Mark an order shipped';
CREATE FUNCTION inventory.in_stock(s text) RETURNS integer LANGUAGE sql STABLE
  RETURN (SELECT qty FROM inventory.items WHERE sku = s);
CREATE AGGREGATE public.total_qty (integer) (sfunc = int4pl, stype = integer);
"""
ERP_VIEWS = ("reporting.order_lines", "reporting.stock", "public.open_orders")


@pytest.fixture(scope="module")
def erp(tmp_path_factory):
    """A server of its own with the mixed-case database, hardened like `pg`; the catalog role gets the GRANT text."""
    server = local_postgres.start(tmp_path_factory.mktemp("pgerp"))
    local_postgres.create_database(server, ERP)
    execute(
        server,
        "postgres",
        f'REVOKE CONNECT ON DATABASE "{ERP}" FROM PUBLIC; REVOKE CONNECT ON DATABASE postgres FROM PUBLIC',
    )
    execute(server, ERP, ERP_SQL)
    src = PostgresSource(
        name="erp",
        type="postgres",
        host=server.host,
        port=server.port,
        user="catalog",
        password_env="PG_CATALOG_PASSWORD",
        database_pattern={"allow": [f"^{ERP}$"]},
    )
    for statement in grant_statements(src, [ERP]):
        if not statement.startswith("--"):
            execute(server, "postgres", statement.replace("<password from $PG_CATALOG_PASSWORD>", "secret"))
    yield server, src
    server.destroy()


@pytest.fixture
def erp_source(erp, monkeypatch):
    monkeypatch.setenv("PG_CATALOG_PASSWORD", "secret")
    return erp[1]


def erp_urn(table: str) -> str:
    return f"urn:li:dataset:(urn:li:dataPlatform:postgres,{ERP}.{table},PROD)"


@pytest.fixture
def erp_extracted(erp_source, tmp_path):
    store = LocalStore(tmp_path / "ours")
    (result,) = extract(erp_source, [ERP], store)
    assert result.ok and not result.missing, result.error
    return result, aspects_of(read_mcps(store.read_bytes(mce_key("erp", ERP))))


def test_erp_select_denied_and_routines_readable_with_connect_only(erp, erp_source):
    """Least privilege holds on every relation of the new shapes, and pg_proc shows every routine's source (prosrc
    and pg_get_functiondef) to the CONNECT-only role: no grant is needed for routine definitions."""
    conn = connect(erp_source, ERP)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname IN "
                "('public', 'sales', 'inventory', 'reporting')"
            )
            relations = cur.fetchall()
        conn.rollback()
        assert len(relations) == 11
        for schema, name in relations:
            with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(f'SELECT * FROM "{schema}"."{name}" LIMIT 0')
            conn.rollback()
        with conn.cursor() as cur:
            cur.execute(
                "SELECT p.proname, p.prosrc, pg_catalog.pg_get_functiondef(p.oid) FROM pg_catalog.pg_proc p "
                "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN "
                "('sales', 'inventory') ORDER BY 1, 2"
            )
            shown = cur.fetchall()
            cur.execute("SELECT pg_catalog.current_setting('server_version_num')::int")
            (version,) = cur.fetchone()
        assert version >= 110000
        assert [(name, bool(defn)) for name, _src, defn in shown] == [
            ("in_stock", True),
            ("log_order", True),
            ("ship", True),
            ("ship", True),
        ]
        assert "INSERT INTO sales.audit" in dict((n, s) for n, s, _ in shown)["log_order"]
        assert dict((n, s) for n, s, _ in shown)["in_stock"] == ""  # a SQL-standard body: only functiondef shows it
    finally:
        conn.close()


def test_erp_domains_enums_types_and_nullability(erp_extracted):
    result, ours = erp_extracted
    tables = {t.name: t for t in result.snapshot.tables}
    assert len(tables) == 11
    cols = lambda t: {c.name: c for c in tables[t].columns}
    items, orders = cols("inventory.items"), cols("sales.orders")
    # NOT NULL domains (directly, or a domain over one) are non-nullable; a plain domain is not
    assert [(n, items[n].nullable) for n in ("sku", "qty", "spare", "note", "doc")] == [
        ("sku", False),
        ("qty", False),
        ("spare", False),
        ("note", True),
        ("doc", True),
    ]
    # as psql shows types: bare in pg_catalog and public (the default search_path), qualified elsewhere
    assert [items[n].column_type for n in ("sku", "qty", "spare", "note", "doc", "email")] == [
        '"Sku"',
        "positive_qty",
        "qty2",
        "inventory.note",
        "tsvector",
        "citext",
    ]
    assert [orders[n].column_type for n in ("state", "channel", "history", "fixed")] == [
        "order_state",
        "sales.channel",
        "order_state[]",
        "state_d",
    ]
    # a domain is typed as its root base type
    assert [items[n].data_type for n in ("sku", "qty", "spare", "note")] == ["varchar", "int4", "int4", "text"]
    assert [orders[n].data_type for n in ("state", "channel", "history", "fixed")] == ["enum", "enum", "array", "enum"]
    # views and materialized views: a column of a NOT NULL domain is non-nullable, as information_schema says
    lines, stock = cols("reporting.order_lines"), cols("reporting.stock")
    assert [(n, lines[n].nullable) for n in lines] == [
        ("id", True),
        ("sku", False),
        ("name", True),
        ("qty", False),
        ("fixed", False),
    ]
    assert [(n, stock[n].nullable) for n in stock] == [("sku", False), ("qty", False), ("spare", False), ("note", True)]
    fields = {f.fieldPath: f for f in ours[erp_urn("inventory.items")]["schemaMetadata"].fields}
    assert fields["sku"].nativeDataType == '"Sku"' and fields["sku"].nullable is False
    assert type(fields["sku"].type.type).__name__ == "StringTypeClass"
    assert type(fields["qty"].type.type).__name__ == "NumberTypeClass"
    assert type(fields["doc"].type.type).__name__ == "StringTypeClass"


def test_erp_lineage_keeps_the_database_case(erp_extracted):
    """Every view's upstreams and column lineage name datasets this file emits (`SalesERP.…`, not `saleserp.…`)."""
    _, ours = erp_extracted
    from datahub.metadata.urns import SchemaFieldUrn

    emitted = {u for u in ours if u.startswith("urn:li:dataset:")}
    seen = 0
    for view in ERP_VIEWS:
        lineage = ours[erp_urn(view)]["upstreamLineage"]
        for up in lineage.upstreams:
            assert up.dataset in emitted, (view, up.dataset)
            seen += 1
        assert lineage.fineGrainedLineages, view
        for fine in lineage.fineGrainedLineages:
            assert {SchemaFieldUrn.from_string(f).parent for f in fine.upstreams} <= emitted, view
    assert seen == 2 + 1 + 1
    assert {u.dataset for u in ours[erp_urn("reporting.order_lines")]["upstreamLineage"].upstreams} == {
        erp_urn("sales.orders"),
        erp_urn("inventory.items"),
    }
    # procedure lineage too: the SQL procedures read and write tables of this database, under its real name
    jobs = {u: a for u, a in ours.items() if u.startswith("urn:li:dataJob:")}
    io = [a["dataJobInputOutput"] for a in jobs.values() if "dataJobInputOutput" in a]
    assert io and all(d in emitted for x in io for d in [*x.inputDatasets, *x.outputDatasets])
    assert {d for x in io for d in x.outputDatasets} >= {erp_urn("sales.orders"), erp_urn("sales.shipments")}


def test_erp_routines_indexes_checks_triggers(erp_extracted):
    result, ours = erp_extracted
    snap = result.snapshot
    # extension (citext) functions and aggregates are left out; overloads are routines of their own
    assert [(r.schema, r.name, r.routine_type, r.arguments) for r in snap.routines] == [
        ("inventory", "in_stock", "FUNCTION", "s text"),
        ("sales", "log_order", "FUNCTION", ""),
        ("sales", "ship", "PROCEDURE", "IN order_id integer"),
        ("sales", "ship", "PROCEDURE", "IN order_id integer, IN on_day date"),
    ]
    in_stock, log_order, ship1, _ship2 = snap.routines
    assert in_stock.returns == "integer" and in_stock.data_access == "STABLE" and in_stock.language == "SQL"
    assert in_stock.definition.startswith("CREATE OR REPLACE FUNCTION inventory.in_stock(s text)")
    assert log_order.language == "PLPGSQL" and log_order.returns == "trigger"
    assert ship1.comment == "Mark an order shipped" and ship1.returns is None
    tables = {t.name: t for t in snap.tables}
    items, orders = tables["inventory.items"], tables["sales.orders"]
    assert [(i.name, i.columns, i.unique, i.index_type, i.comment) for i in items.indexes] == [
        ("items_doc", ("doc",), False, "gin", "full-text search"),
        ("items_lower_name", ("lower(name)",), False, "btree", ""),
        ("items_name_qty", ("name", "qty"), True, "btree", ""),
    ]
    assert [(c.name, c.clause) for c in items.checks] == [("name_not_blank", "(name <> ''::text)")]
    assert [(c.name, c.clause) for c in orders.checks] == [("orders_qty_check", "((qty)::integer < 1000)")]
    (trigger,) = orders.triggers
    assert (trigger.name, trigger.timing, trigger.event) == ("orders_audit", "AFTER", "INSERT OR UPDATE")
    assert "EXECUTE FUNCTION sales.log_order()" in trigger.statement
    props = ours[erp_urn("inventory.items")]["datasetProperties"].customProperties
    assert props["indexes"] == (
        "items_doc gin (doc); items_lower_name btree (lower(name)); items_name_qty UNIQUE btree (name, qty)"
    )
    assert props["check_constraints"] == "name_not_blank: (name <> ''::text)"
    assert ours[erp_urn("sales.orders")]["datasetProperties"].customProperties["triggers"] == (
        "orders_audit: AFTER INSERT OR UPDATE"
    )

    # a DataFlow per schema with routines, in the database container, browsable under it; a DataJob per routine in
    # its schema's container
    flows = {u for u in ours if u.startswith("urn:li:dataFlow:")}
    assert flows == {f"urn:li:dataFlow:(postgres,{ERP}.{s}.stored_procedures,PROD)" for s in ("inventory", "sales")}
    db_container = ours[erp_urn("sales.orders")]["browsePathsV2"].path[0].urn
    sales_container = ours[erp_urn("sales.orders")]["container"].container
    for flow in flows:
        assert ours[flow]["container"].container == db_container
        assert [e.urn for e in ours[flow]["browsePathsV2"].path] == [db_container]
        assert ours[flow]["status"].removed is False
    jobs = {u: a for u, a in ours.items() if u.startswith("urn:li:dataJob:")}
    assert len(jobs) == 4
    sales_jobs = [a for u, a in jobs.items() if ".sales.stored_procedures" in u]
    assert all(a["container"].container == sales_container for a in sales_jobs) and len(sales_jobs) == 3
    assert all([e.urn for e in a["browsePathsV2"].path] == [db_container, sales_container] for a in sales_jobs)
    assert sorted(a["subTypes"].typeNames[0] for a in jobs.values()) == [
        "Function",
        "Function",
        "Stored Procedure",
        "Stored Procedure",
    ]


def test_erp_partitioned_and_never_analysed_profiles(erp_extracted):
    result, ours = erp_extracted
    tables = {t.name: t for t in result.snapshot.tables}
    leaves = [tables[f"sales.shipments_{y}"] for y in (2025, 2026)]
    parent = tables["sales.shipments"]
    assert sum(t.row_estimate for t in leaves) == 1000
    assert parent.row_estimate == 1000 and parent.data_length == sum(t.data_length for t in leaves) > 0
    assert parent.properties["partition_statistics"] == "sum over 2 of 3 leaf partitions (the analysed ones)"
    profile = ours[erp_urn("sales.shipments")]["datasetProfile"]
    assert (profile.rowCount, profile.sizeInBytes) == (1000, parent.data_length)
    # never analysed: the planner's -1 is unknown, not 0: no figures, no profile
    for name in ("sales.never_analysed", "sales.shipments_2027"):
        assert (tables[name].row_estimate, tables[name].data_length) == (None, None), name
        assert "datasetProfile" not in ours[erp_urn(name)], name


def run_builtin_on(server, tmp_path, databases, **extra):
    """DataHub's built-in postgres source, in-process, as the superuser, file sink; its output as aspects."""
    from datahub.emitter.mcp_builder import mcps_from_mce
    from datahub.ingestion.run.pipeline import Pipeline
    from datahub.ingestion.source.file import read_metadata_file
    from datahub.metadata.schema_classes import MetadataChangeEventClass

    out = tmp_path / "builtin.json"
    pipeline = Pipeline.create(
        {
            "run_id": "pg-conformance-erp",
            "source": {
                "type": "postgres",
                "config": {
                    "host_port": f"{server.host}:{server.port}",
                    "username": "postgres",
                    "password": "",
                    "database_pattern": {"allow": [f"^{d}$" for d in databases]},
                    "include_views": True,
                    "include_tables": True,
                    "profiling": {"enabled": False},
                    **extra,
                },
            },
            "sink": {"type": "file", "config": {"filename": str(out)}},
        }
    )
    pipeline.run()
    pipeline.raise_from_status()
    return aspects_of(
        m
        for item in read_metadata_file(out)
        for m in (mcps_from_mce(item) if isinstance(item, MetadataChangeEventClass) else [item])
    )


def test_erp_conformance_with_builtin(erp, erp_extracted, tmp_path):
    """The mixed-case database against the built-in `postgres` source with include_stored_procedures. Everything
    agrees except the intended differences the README lists, each asserted here as exactly what differs."""
    server, _ = erp
    _, ours = erp_extracted
    builtin = run_builtin_on(server, tmp_path, [ERP], include_stored_procedures=True)
    of_type = lambda a, prefix: {u for u in a if u.startswith(prefix)}
    datasets = of_type(ours, "urn:li:dataset:")
    assert of_type(builtin, "urn:li:dataset:") == datasets and len(datasets) == 11
    assert of_type(builtin, "urn:li:container:") == of_type(ours, "urn:li:container:")
    descriptions = {}
    for urn in of_type(ours, "urn:li:container:"):
        b, o = builtin[urn], ours[urn]
        for aspect in ("status", "container", "subTypes", "dataPlatformInstance", "browsePathsV2"):
            assert b.get(aspect) == o.get(aspect), (urn, aspect)
        assert b["containerProperties"].name == o["containerProperties"].name
        assert b["containerProperties"].description is None
        if o["containerProperties"].description:
            descriptions[o["containerProperties"].name] = o["containerProperties"].description
    # intended: a schema's comment is its container's description (the built-in reads none)
    assert descriptions == {"sales": "Sales documents", "public": "standard public schema"}

    types, nullability = set(), set()
    for urn in sorted(datasets):
        b, o = builtin[urn], ours[urn]
        table = urn.split(",")[1].split(".", 1)[1]
        for aspect in ("status", "container", "subTypes", "browsePathsV2"):
            assert b[aspect] == o[aspect], (urn, aspect)
        assert b["datasetProperties"].name == o["datasetProperties"].name, urn
        bf, of = b["schemaMetadata"].fields, o["schemaMetadata"].fields
        assert [(f.fieldPath, f.description, f.isPartOfKey) for f in bf] == [
            (f.fieldPath, f.description, f.isPartOfKey) for f in of
        ], urn
        for x, y in zip(bf, of):
            if type(x.type.type) is not type(y.type.type):
                types.add((table, x.fieldPath, type(x.type.type).__name__, type(y.type.type).__name__))
            if x.nullable != y.nullable:
                nullability.add((table, x.fieldPath, x.nullable, y.nullable))
        if "viewProperties" in o:
            # intended (a bug of the built-in): its lineage names the database lowercased, datasets nobody emits
            lower = lambda s: s.replace(f"postgres,{ERP}.", f"postgres,{ERP.lower()}.")
            b_ups = {u.dataset for u in b["upstreamLineage"].upstreams}
            o_ups = {u.dataset for u in o["upstreamLineage"].upstreams}
            assert b_ups == {lower(u) for u in o_ups} and not b_ups & datasets, urn
    # intended: domain columns get their base type's class (the built-in: Null, SQLAlchemy does not know the
    # domain); tsvector is String (text search lexemes, as psql shows them), the built-in Bytes
    assert types == {
        ("inventory.items", "sku", "NullTypeClass", "StringTypeClass"),
        ("inventory.items", "qty", "NullTypeClass", "NumberTypeClass"),
        ("inventory.items", "spare", "NullTypeClass", "NumberTypeClass"),
        ("inventory.items", "note", "NullTypeClass", "StringTypeClass"),
        ("inventory.items", "doc", "BytesTypeClass", "StringTypeClass"),
        ("sales.orders", "sku", "NullTypeClass", "StringTypeClass"),
        ("sales.orders", "qty", "NullTypeClass", "NumberTypeClass"),
        ("sales.orders", "fixed", "NullTypeClass", "EnumTypeClass"),
        ("sales.shipments", "qty", "NullTypeClass", "NumberTypeClass"),
        *{(f"sales.shipments_{y}", "qty", "NullTypeClass", "NumberTypeClass") for y in (2025, 2026, 2027)},
        ("reporting.order_lines", "sku", "NullTypeClass", "StringTypeClass"),
        ("reporting.order_lines", "qty", "NullTypeClass", "NumberTypeClass"),
        ("reporting.order_lines", "fixed", "NullTypeClass", "EnumTypeClass"),
        ("reporting.stock", "sku", "NullTypeClass", "StringTypeClass"),
        ("reporting.stock", "qty", "NullTypeClass", "NumberTypeClass"),
        ("reporting.stock", "spare", "NullTypeClass", "NumberTypeClass"),
        ("reporting.stock", "note", "NullTypeClass", "StringTypeClass"),
    }, sorted(types)
    # a column of a NOT NULL domain is non-nullable on both sides, in tables, views and materialized views.
    # Intended: a domain over a NOT NULL domain (qty2 over positive_qty) too: PostgreSQL enforces every domain's NOT
    # NULL in the chain, where the built-in (as information_schema) looks at the column's own domain only
    assert nullability == {("inventory.items", "spare", True, False), ("reporting.stock", "spare", True, False)}, (
        sorted(nullability)
    )

    # routines: the built-in's flow and jobs (procedures) are ours, aspect for aspect; ours adds functions
    flow = f"urn:li:dataFlow:(postgres,{ERP}.sales.stored_procedures,PROD)"
    assert of_type(builtin, "urn:li:dataFlow:") == {flow}
    assert of_type(ours, "urn:li:dataFlow:") == {flow, flow.replace(".sales.", ".inventory.")}
    for aspect in ("dataFlowInfo", "subTypes", "container", "status", "browsePathsV2"):
        assert ours[flow][aspect] == builtin[flow][aspect], aspect
    b_jobs = of_type(builtin, "urn:li:dataJob:")
    assert len(b_jobs) == 2 and b_jobs <= of_type(ours, "urn:li:dataJob:")
    for job in b_jobs:
        for aspect in ("subTypes", "container", "dataTransformLogic", "status", "browsePathsV2"):
            assert ours[job][aspect] == builtin[job][aspect], (job, aspect)
        o_info, b_info = ours[job]["dataJobInfo"], builtin[job]["dataJobInfo"]
        assert (o_info.name, o_info.type, o_info.description) == (b_info.name, b_info.type, b_info.description)
        assert (b_info.customProperties or {}).items() <= o_info.customProperties.items()
        io_b, io_o = builtin[job].get("dataJobInputOutput"), ours[job]["dataJobInputOutput"]
        # intended: the built-in's procedure lineage has the same lowercased database; ours names our datasets
        lower = lambda urns: sorted(u.replace(f",{ERP}.", f",{ERP.lower()}.") for u in urns)
        assert (sorted(io_b.inputDatasets), sorted(io_b.outputDatasets)) == (
            lower(io_o.inputDatasets),
            lower(io_o.outputDatasets),
        ), job
        assert {*io_o.inputDatasets, *io_o.outputDatasets} <= datasets, job


def test_erp_fingerprint_and_diff_see_indexes_checks_triggers_routines_and_domains(erp, erp_source, tmp_path):
    """Each kind of object moves the database's fingerprint and shows in the diff of two extractions; data and
    ANALYZE move neither."""
    from metadata_assets.diff import diff

    server, _ = erp
    pg_kind = kind("postgres")
    before_fp = pg_kind.fingerprints(erp_source)[ERP]
    (before,) = extract(erp_source, [ERP], LocalStore(tmp_path / "a"))
    execute(server, ERP, "INSERT INTO sales.never_analysed VALUES (11); ANALYZE sales.audit")
    assert pg_kind.fingerprints(erp_source)[ERP] == before_fp
    changes = {
        "index": ("CREATE INDEX orders_placed ON sales.orders (placed)", "DROP INDEX sales.orders_placed"),
        "check": (
            "ALTER TABLE sales.audit ADD CONSTRAINT audit_id CHECK (order_id > 0)",
            "ALTER TABLE sales.audit DROP CONSTRAINT audit_id",
        ),
        "trigger": (
            "CREATE TRIGGER audit_log BEFORE DELETE ON sales.audit FOR EACH ROW EXECUTE FUNCTION sales.log_order()",
            "DROP TRIGGER audit_log ON sales.audit",
        ),
        "routine": (
            "CREATE OR REPLACE PROCEDURE sales.ship(order_id int) LANGUAGE sql AS "
            "$$ UPDATE sales.orders SET state = 'paid' WHERE id = order_id $$",
            "CREATE OR REPLACE PROCEDURE sales.ship(order_id int) LANGUAGE sql AS "
            "$$ UPDATE sales.orders SET state = 'shipped' WHERE id = order_id $$",
        ),
        "domain": ("ALTER DOMAIN public.positive_qty DROP NOT NULL", "ALTER DOMAIN public.positive_qty SET NOT NULL"),
    }
    seen = {}
    for what, (do, undo) in changes.items():
        execute(server, ERP, do)
        try:
            assert pg_kind.fingerprints(erp_source)[ERP] != before_fp, what
            (after,) = extract(erp_source, [ERP], LocalStore(tmp_path / what))
            d = diff(before.snapshot, after.snapshot)
            seen[what] = sorted([c.describe() for c in d.tables] + [c.describe() for c in d.columns])
        finally:
            execute(server, ERP, undo)
    assert pg_kind.fingerprints(erp_source)[ERP] == before_fp
    assert len(seen["index"]) == 1 and "index orders_placed" in seen["index"][0]
    assert len(seen["check"]) == 1 and "check constraint audit_id" in seen["check"][0]
    assert len(seen["trigger"]) == 1 and "trigger audit_log" in seen["trigger"][0]
    # one overload changed, named with its arguments; the other is untouched
    assert seen["routine"] == ["routine `sales.ship(IN order_id integer)` changed"]
    # every column of the domain, or of a domain over it, in tables, partitions, views and materialized views
    assert seen["domain"] == sorted(
        f"column `{t}`.`{c}` became nullable"
        for t, c in (
            ("inventory.items", "qty"),
            ("inventory.items", "spare"),
            ("sales.orders", "qty"),
            *((f"sales.shipments{p}", "qty") for p in ("", "_2025", "_2026", "_2027")),
            ("reporting.order_lines", "qty"),
            ("reporting.stock", "qty"),
            ("reporting.stock", "spare"),
        )
    ), seen["domain"]


def test_erp_routines_can_be_left_out_or_filtered(erp_source, tmp_path):
    """include_stored_procedures: false reads no routine (one statement fewer) and the fingerprint ignores them;
    procedure_pattern matches "database.schema.routine", as the built-in's."""
    pg_kind = kind("postgres")
    off = erp_source.model_copy(update={"include_stored_procedures": False})
    report = ExtractionReport(source="erp", kind="postgres")
    (r,) = extract(off, [ERP], LocalStore(tmp_path / "off"), report=report)
    assert r.ok and r.snapshot.routines == [] and report.statements == 1 + 7
    aspects = aspects_of(read_mcps(LocalStore(tmp_path / "off").read_bytes(mce_key("erp", ERP))))
    assert not [u for u in aspects if u.startswith(("urn:li:dataFlow:", "urn:li:dataJob:"))]
    assert pg_kind.fingerprints(off)[ERP] != pg_kind.fingerprints(erp_source)[ERP]
    only = erp_source.model_copy(update={"procedure_pattern": Pattern(allow=[rf"{ERP}\.sales\.ship$"])})
    (r,) = extract(only, [ERP], LocalStore(tmp_path / "only"))
    assert [x.label for x in r.snapshot.routines] == [
        "sales.ship(IN order_id integer)",
        "sales.ship(IN order_id integer, IN on_day date)",
    ]


def test_erp_platform_instance_as_builtin(erp, erp_source, tmp_path):
    """With a platform instance: the same URNs, instance aspects and browse paths as the built-in, routines too."""
    server, _ = erp
    builtin = run_builtin_on(server, tmp_path, [ERP], include_stored_procedures=True, platform_instance="eu-1")
    src = erp_source.model_copy(update={"platform_instance": "eu-1"})
    store = LocalStore(tmp_path / "ours")
    (r,) = extract(src, [ERP], store)
    assert r.ok, r.error
    ours = aspects_of(read_mcps(store.read_bytes(mce_key("erp", ERP))))
    entities = {u for u in builtin if u.split(":")[2] in ("dataset", "container", "dataFlow", "dataJob")}
    assert entities <= set(ours) and len([u for u in entities if ",eu-1." in u]) == 11 + 2 + 1
    for urn in entities:
        for aspect in ("dataPlatformInstance", "browsePathsV2", "container", "status"):
            assert builtin[urn].get(aspect) == ours[urn].get(aspect), (urn, aspect)
    for urn in (u for u in ours if u.startswith(("urn:li:dataFlow:", "urn:li:dataJob:"))):
        assert (
            ours[urn]["browsePathsV2"].path[0].id == "urn:li:dataPlatformInstance:(urn:li:dataPlatform:postgres,eu-1)"
        )
