"""`metadata-assets check-access` against the real servers: MariaDB (conftest's) and a PostgreSQL of this module's.

The least-privilege account is refused SELECT everywhere (exit 0) and sees view SQL; SELECT on one database (or one
table) makes the probe succeed there and the command exit 1 naming it; routines on MariaDB 10.11 stay invisible
until `GRANT SELECT ON mysql.proc`; bad input exits 2 with one line. Then the `least_privilege` asset check: ERROR
on the partition of an over-privileged account, WARN when views lost their SQL, passed otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from metadata_assets import local_postgres
from metadata_assets.cli import main
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.sources.registry import kind_of

VENV_BIN = Path(sys.executable).parent


def mysql_config(schema, tmp_path, port=None) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(f"""
sources:
  - name: src
    type: mysql
    host: {schema.server.host}
    port: {port or schema.server.port}
    user: {schema.user}
    password_env: {schema.password_env}
    database_pattern: {{allow: ["{schema.prefix}.*"]}}
  - name: bq
    type: bigquery
    project: acme-analytics
""")
    return path


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["check-access", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def rows_of(report) -> dict:
    return {d.database: d for d in report.databases}


# --- MariaDB ---------------------------------------------------------------------------------------------------


def test_least_privilege_account_exit_0_select_refused_everywhere_views_have_sql(schema, tmp_path, capsys):
    shop, billing, analytics, scratch = schema.load_sample()
    empty = schema.create("empty")
    schema.grant()
    cfg = mysql_config(schema, tmp_path)

    rc, out, err = run_cli(capsys, "--config", cfg, "--source", "src")
    assert rc == 0, out + err
    lines = out.splitlines()
    assert (
        lines[-1] == "OK: the account cannot read data in any of 5 databases (SELECT refused in 4, no table to "
        "probe in 1)"
    )
    assert lines[1].split() == ["database", "visible", "data", "view", "SQL", "routines", "notes"]
    assert any(line.startswith(shop) and "SELECT refused" in line and "SQL shown" in line for line in lines)
    assert any(line.startswith(empty) and "no probe" in line and "no table" in line for line in lines)
    assert "routine text (optional): GRANT SELECT ON mysql.proc TO" in out  # MariaDB 10.11: before 11.3

    report = kind_of(schema.source()).check_access(schema.source())
    rows = rows_of(report)
    assert sorted(rows) == sorted([shop, billing, analytics, scratch, empty])
    assert all(r.visible for r in rows.values())
    assert {name: r.data_readable for name, r in rows.items()} == {
        shop: False,
        billing: False,
        analytics: False,
        scratch: False,
        empty: None,
    }
    assert "refused, error 1142" in rows[shop].probe and f"`{shop}`." in rows[shop].probe
    assert rows[shop].views_have_sql is True  # SHOW VIEW: SHOW CREATE TABLE of the view returns SQL
    assert rows[empty].views_have_sql is None and "no table" in rows[empty].probe
    assert report.server_version.startswith("10.11") and "mariadb" in report.server_version.lower()
    assert report.account_notes == []

    rc, out, _ = run_cli(capsys, "--config", cfg, "--source", "src", "--json", "-d", shop, "-d", f"{schema.prefix}nope")
    assert rc == 0
    data = json.loads(out)
    assert data["can_read_data"] is False and data["readable_databases"] == []
    by_name = {d["database"]: d for d in data["databases"]}
    assert by_name[shop]["data_readable"] is False and by_name[shop]["views_have_sql"] is True
    assert by_name[f"{schema.prefix}nope"]["visible"] is False


def test_select_on_one_database_or_one_table_exits_1_naming_it(schema, tmp_path, capsys):
    clean = schema.create("clean", "CREATE TABLE t (id INT)")
    readable = schema.create("readable", "CREATE TABLE t (id INT)")
    one_table = schema.create("onetable", "CREATE TABLE a_first (id INT)", "CREATE TABLE z_granted (id INT)")
    schema.grant()
    schema.server.execute(f"GRANT SELECT ON `{readable}`.* TO '{schema.user}'@'%'")
    cfg = mysql_config(schema, tmp_path)

    rc, out, _ = run_cli(capsys, "--config", cfg, "--source", "src")
    assert rc == 1
    assert out.splitlines()[-1] == f"OVER-PRIVILEGED: the account can read data in 1 of 3 databases: {readable}"
    # SHOW GRANTS, as extraction reports it
    assert (
        f"account: over-privileged: the account can read data (GRANT SELECT, REFERENCES, SHOW VIEW ON `{readable}`.*"
    ) in out
    assert f"SELECT 1 FROM `{readable}`.`t` LIMIT 0: succeeded" in out  # the probe, in the row's notes

    # a table-level grant: the probe goes to the table TABLE_PRIVILEGES lists, not to the first table
    schema.server.execute(f"GRANT SELECT ON `{one_table}`.z_granted TO '{schema.user}'@'%'")
    rows = rows_of(kind_of(schema.source()).check_access(schema.source()))
    assert {n: r.data_readable for n, r in rows.items()} == {clean: False, readable: True, one_table: True}
    assert "z_granted" in rows[one_table].probe and "succeeded" in rows[one_table].probe
    assert "SELECT granted on 1 table(s): z_granted" in rows[one_table].notes


def test_a_locked_table_holds_an_allowed_probe_only_so_long_and_a_refused_one_not_at_all(schema, monkeypatch):
    """MariaDB checks privileges before it opens (and locks) a table: with LOCK TABLES ... WRITE held elsewhere, a
    refused probe fails at once with 1142, an allowed one waits lock_wait_timeout (1205): readable."""
    import time

    from metadata_assets.sources.mysql import access

    clean = schema.create("clean", "CREATE TABLE t (id INT)")
    readable = schema.create("readable", "CREATE TABLE t (id INT)")
    schema.grant()
    schema.server.execute(f"GRANT SELECT ON `{readable}`.* TO '{schema.user}'@'%'")
    monkeypatch.setattr(access, "PROBE_LOCK_WAIT_S", 1)
    holder = schema.server.connect()
    try:
        with holder.cursor() as cur:
            cur.execute(f"LOCK TABLES `{clean}`.t WRITE, `{readable}`.t WRITE")
        t0 = time.monotonic()
        report = kind_of(schema.source()).check_access(schema.source())
        took = time.monotonic() - t0
    finally:
        holder.close()
    rows = rows_of(report)
    assert rows[clean].data_readable is False and "error 1142" in rows[clean].probe
    assert rows[readable].data_readable is True and "error 1205" in rows[readable].probe
    assert 1 <= took < 5 and report.readable == [readable]


def test_mariadb_routines_visible_only_with_select_on_mysql_proc(schema, tmp_path, capsys):
    db = schema.create(
        "r", "CREATE TABLE t (id INT)", "CREATE PROCEDURE p() SELECT 1", "CREATE FUNCTION f() RETURNS INT RETURN 1"
    )
    schema.grant()
    source = schema.source()
    (row,) = kind_of(source).check_access(source).databases
    # MariaDB 10.11, REFERENCES and SHOW VIEW only: information_schema.ROUTINES shows nothing at all
    assert (row.routines_visible, row.routine_text_visible) == (0, None)
    assert row.data_readable is False

    schema.server.execute(f"GRANT SELECT ON mysql.proc TO '{schema.user}'@'%'")
    report = kind_of(source).check_access(source)
    (row,) = report.databases
    assert (row.routines_visible, row.routine_text_visible) == (2, True)
    assert row.data_readable is False and not report.can_read_data  # mysql.proc is no data of a catalogued database
    rc, out, _ = run_cli(capsys, "--config", mysql_config(schema, tmp_path), "--source", "src", "-d", db)
    assert rc == 0 and "2 (text shown)" in out


def test_bad_input_exits_2_with_one_line(schema, tmp_path, capsys):
    from metadata_assets.local_mariadb import free_port

    schema.create("x", "CREATE TABLE t (id INT)")
    schema.grant()
    cfg = mysql_config(schema, tmp_path)
    rc, out, err = run_cli(capsys, "--config", cfg, "--source", "nope")
    assert rc == 2 and out == "" and "no source named 'nope'" in err and len(err.strip().splitlines()) == 1
    rc, out, err = run_cli(capsys, "--config", cfg, "--source", "bq")
    assert rc == 2 and err.startswith("error: check-access is not available for BigQuery sources: ")
    rc, out, err = run_cli(capsys, "--config", tmp_path / "missing.yaml", "--source", "src")
    assert rc == 2 and "cannot read config" in err
    rc, out, err = run_cli(capsys, "--config", mysql_config(schema, tmp_path, port=free_port()), "--source", "src")
    assert rc == 2 and err.startswith("error: source 'src'") and len(err.strip().splitlines()) == 1


def test_as_a_subprocess_json(schema, tmp_path):
    db = schema.create("sub", "CREATE TABLE t (id INT)", "CREATE VIEW v AS SELECT id FROM t")
    schema.grant()
    cfg = mysql_config(schema, tmp_path)
    done = subprocess.run(
        [str(VENV_BIN / "metadata-assets"), "check-access", "--config", str(cfg), "--source", "src", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [(d["database"], d["visible"], d["data_readable"], d["views_have_sql"]) for d in data["databases"]] == [
        (db, True, False, True)
    ]
    assert data["verdict"].startswith("OK: ")


# --- the least_privilege asset check ---------------------------------------------------------------------------


def _evaluations(result, name):
    return {e.partition: e for e in result.get_asset_check_evaluations() if e.check_name == name}


def test_least_privilege_check_errors_for_an_over_privileged_partition(schema, tmp_path):
    from dagster import AssetCheckKey, AssetCheckSeverity, DagsterInstance, Definitions

    from metadata_assets.defs.checks import LEAST_PRIVILEGE
    from metadata_assets.defs.extraction import build_mce_asset
    from metadata_assets.defs.keys import mce_asset_key

    clean = schema.create("clean", "CREATE TABLE t (id INT)")
    views = schema.create("views", "CREATE TABLE t (id INT)", "CREATE VIEW v AS SELECT id FROM t")
    schema.grant([clean])
    schema.server.execute(f"GRANT REFERENCES ON `{views}`.* TO '{schema.user}'@'%'")  # no SHOW VIEW there
    cfg = schema.project(tmp_path)
    source = cfg.sources[0]
    key = mce_asset_key(source)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(f"{source.name}_databases", [clean, views])
    defs = Definitions(assets=[build_mce_asset(SourceSetup.of(cfg, source))])
    assert AssetCheckKey(key, LEAST_PRIVILEGE) in defs.resolve_asset_graph().asset_check_keys
    job = defs.resolve_implicit_global_asset_job_def()

    first = job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": clean, "dagster/asset_partition_range_end": views},
    )
    assert first.success
    checks = _evaluations(first, LEAST_PRIVILEGE)
    assert checks[clean].passed
    assert not checks[views].passed and checks[views].severity == AssetCheckSeverity.WARN
    assert "1 view(s) without SQL" in checks[views].description
    mats = {e.materialization.partition: e.materialization for e in first.get_asset_materialization_events()}
    assert mats[views].metadata["warning_codes"].value == {"view_unreadable": 1}
    assert mats[clean].metadata["warning_codes"].value == {}

    schema.server.execute(f"GRANT SELECT ON `{clean}`.* TO '{schema.user}'@'%'")
    second = job.execute_in_process(instance=instance, partition_key=clean)
    assert second.success
    over = _evaluations(second, LEAST_PRIVILEGE)[clean]
    assert not over.passed and over.severity == AssetCheckSeverity.ERROR
    assert "can read data" in over.description and over.metadata["over_privileged"].value == 1

    # on demand, from the latest materializations' metadata: ERROR for clean, still WARN for views
    checks_only = job.get_subset(asset_selection=set(), asset_check_selection={AssetCheckKey(key, LEAST_PRIVILEGE)})
    for partition, passed, severity in (
        (clean, False, AssetCheckSeverity.ERROR),
        (views, False, AssetCheckSeverity.WARN),
    ):
        again = _evaluations(
            checks_only.execute_in_process(instance=instance, partition_key=partition), LEAST_PRIVILEGE
        )
        assert list(again) == [partition]
        assert (again[partition].passed, again[partition].severity) == (passed, severity)

    # the least-privilege account again: passes
    schema.server.execute(f"REVOKE SELECT ON `{clean}`.* FROM '{schema.user}'@'%'")
    third = job.execute_in_process(instance=instance, partition_key=clean)
    assert _evaluations(third, LEAST_PRIVILEGE)[clean].passed


# --- PostgreSQL ------------------------------------------------------------------------------------------------

PG_DATABASES = ("ca_shop", "ca_billing", "ca_empty")


pg_execute = local_postgres.execute


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    from metadata_assets.sources.postgres.config import PostgresSource
    from metadata_assets.sources.postgres.reader import grant_statements

    server = local_postgres.start(tmp_path_factory.mktemp("pgaccess"))
    for db in (*PG_DATABASES, "ca_hidden"):
        local_postgres.create_database(server, db)
        pg_execute(server, "postgres", f'REVOKE CONNECT ON DATABASE "{db}" FROM PUBLIC')
    pg_execute(server, "postgres", "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC")
    pg_execute(
        server,
        "ca_shop",
        """
        CREATE SCHEMA sales;
        CREATE TABLE sales.customers (id int PRIMARY KEY, email text);
        CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int, total numeric);
        CREATE VIEW sales.big_orders AS SELECT o.id, c.email FROM public.orders o JOIN sales.customers c
          ON c.id = o.customer_id WHERE o.total > 100;
        CREATE FUNCTION public.order_total(int) RETURNS numeric LANGUAGE sql AS 'SELECT 1::numeric';
        CREATE EXTENSION citext;  -- its functions are the extension's, not catalogued nor counted""",
    )
    pg_execute(server, "ca_billing", "CREATE TABLE invoices (id int PRIMARY KEY)")
    source = PostgresSource(
        name="pgsrc", type="postgres", host=server.host, port=server.port, user="catalog", password_env="PG_CA_PASSWORD"
    )
    for statement in grant_statements(source, PG_DATABASES):
        if not statement.startswith("--"):
            pg_execute(server, "postgres", statement.replace("<password from $PG_CA_PASSWORD>", "secret"))
    yield server, source
    server.destroy()


@pytest.fixture
def pg_cfg(pg, tmp_path, monkeypatch):
    server, source = pg
    monkeypatch.setenv("PG_CA_PASSWORD", "secret")
    path = tmp_path / "pg.yaml"
    path.write_text(f"""
sources:
  - name: pgsrc
    type: postgres
    host: {server.host}
    port: {server.port}
    user: catalog
    password_env: PG_CA_PASSWORD
""")
    return path


def test_postgres_connect_only_role_exit_0(pg, pg_cfg, capsys):
    server, source = pg
    rc, out, err = run_cli(capsys, "--config", pg_cfg, "--source", "pgsrc")
    assert rc == 0, out + err
    assert out.splitlines()[-1] == (
        "OK: the account cannot read data in any of 4 databases (SELECT refused in 2, no table to probe in 2)"
    )
    report = kind_of(source).check_access(source)
    rows = rows_of(report)
    assert sorted(rows) == sorted([*PG_DATABASES, "postgres"])  # ca_hidden: no CONNECT, not listed
    assert {n: r.data_readable for n, r in rows.items()} == {
        "ca_shop": False,
        "ca_billing": False,
        "ca_empty": None,
        "postgres": None,
    }
    # the probe goes to a schema the role has USAGE on (public): the table itself refuses, SQLSTATE 42501
    assert rows["ca_shop"].probe == (
        'SELECT 1 FROM "public"."orders" LIMIT 0: refused, SQLSTATE 42501 (permission denied for table orders)'
    )
    assert rows["ca_shop"].views_have_sql is True  # pg_get_viewdef() for a CONNECT-only role
    assert (rows["ca_shop"].routines_visible, rows["ca_shop"].routine_text_visible) == (1, True)
    assert rows["ca_empty"].views_have_sql is None and rows["ca_empty"].routines_visible == 0
    assert report.server_version.startswith("PostgreSQL 15") and report.account_notes == []
    assert report.routine_grant_hint is None

    rc, out, _ = run_cli(capsys, "--config", pg_cfg, "--source", "pgsrc", "--json", "-d", "ca_hidden", "-d", "ca_gone")
    assert rc == 0
    by_name = {d["database"]: d for d in json.loads(out)["databases"]}
    assert (
        by_name["ca_hidden"]["visible"] is False
        and "permission denied for database" in by_name["ca_hidden"]["notes"][0]
    )
    assert by_name["ca_gone"]["visible"] is False and by_name["ca_gone"]["notes"] == ["does not exist"]


def test_postgres_select_on_one_table_exits_1_naming_its_database(pg, pg_cfg, capsys):
    server, source = pg
    pg_execute(server, "ca_billing", "GRANT SELECT ON invoices TO catalog")
    # SELECT on a table whose schema the role has no USAGE on: still refused (at the schema), and said so
    pg_execute(server, "ca_shop", "GRANT SELECT ON sales.customers TO catalog")
    try:
        rc, out, _ = run_cli(capsys, "--config", pg_cfg, "--source", "pgsrc")
        rows = rows_of(kind_of(source).check_access(source))
    finally:
        pg_execute(server, "ca_billing", "REVOKE SELECT ON invoices FROM catalog")
        pg_execute(server, "ca_shop", "REVOKE SELECT ON sales.customers FROM catalog")
    assert rc == 1
    assert out.splitlines()[-1] == "OVER-PRIVILEGED: the account can read data in 1 of 4 databases: ca_billing"
    assert rows["ca_billing"].data_readable is True
    assert rows["ca_billing"].probe == 'SELECT 1 FROM "public"."invoices" LIMIT 0: succeeded (the role can read data)'
    assert rows["ca_shop"].data_readable is False
    assert "permission denied for schema sales" in rows["ca_shop"].probe
    assert rows["ca_shop"].notes == ["SELECT granted on 1 relation(s): sales.customers (no USAGE on their schema)"]


def test_postgres_pg_read_all_data_reads_every_database_with_tables(pg, pg_cfg, capsys):
    server, source = pg
    pg_execute(server, "postgres", "GRANT pg_read_all_data TO catalog")
    try:
        report = kind_of(source).check_access(source)
    finally:
        pg_execute(server, "postgres", "REVOKE pg_read_all_data FROM catalog")
    assert report.readable == ["ca_billing", "ca_shop"] and report.exit_code() == 1
    assert report.account_notes == ["over-privileged: the account is a member of pg_read_all_data and can read data"]


def test_postgres_initial_database_refused_exits_2(pg, pg_cfg, capsys):
    pg_cfg.write_text(pg_cfg.read_text() + "    initial_database: ca_hidden\n")
    rc, out, err = run_cli(capsys, "--config", pg_cfg, "--source", "pgsrc")
    assert rc == 2 and out == ""
    assert err.startswith("error: source 'pgsrc' (catalog@") and "initial database 'ca_hidden'" in err
    assert "permission denied for database" in err and len(err.strip().splitlines()) == 1


def test_postgres_probe_waits_for_a_lock_only_so_long(pg, monkeypatch):
    """PostgreSQL locks the relation before it checks privileges: a table held in ACCESS EXCLUSIVE mode (a long
    ALTER, VACUUM FULL) would hold a refused probe too. The probe gives up after its lock timeout: inconclusive."""
    import time

    from metadata_assets.sources.postgres import access

    server, source = pg
    monkeypatch.setenv("PG_CA_PASSWORD", "secret")
    monkeypatch.setattr(access, "PROBE_LOCK_WAIT_MS", 300)
    holder = psycopg2.connect(host=server.host, port=server.port, user="postgres", dbname="ca_billing")
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE")  # held until rollback
        t0 = time.monotonic()
        report = kind_of(source).check_access(source, ["ca_billing", "ca_shop"])
        took = time.monotonic() - t0
    finally:
        holder.rollback()
        holder.close()
    rows = rows_of(report)
    assert took < 5
    assert rows["ca_billing"].data_readable is None and rows["ca_billing"].probed == "public.invoices"
    assert (
        "SQLSTATE 55P03" in rows["ca_billing"].probe
        and "probe inconclusive (SQLSTATE 55P03)" in rows["ca_billing"].notes
    )
    assert rows["ca_shop"].data_readable is False
    assert report.exit_code() == 0
    assert report.verdict() == (
        "OK: no SELECT probe succeeded in any of 2 databases (SELECT refused in 1, probe inconclusive in 1, see notes)"
    )
