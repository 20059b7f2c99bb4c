"""The reason this product exists: a catalog account that can see every schema but never a row of data."""

import json

import pymysql
import pytest

from metadata_assets.extract import extract
from metadata_assets.sources.mysql import MySQLReader, connect, grant_statements
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore


def test_select_denied_and_full_schema_extracted(schema, tmp_path):
    shop, billing, analytics, scratch = schema.load_sample()
    schema.grant()
    source = schema.source()

    conn = connect(source)
    with conn.cursor() as cur:
        for table in (f"`{shop}`.customers", f"`{billing}`.invoices", f"`{shop}`.paid_orders"):
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute(f"SELECT * FROM {table} LIMIT 1")
            assert denied.value.args[0] == 1142  # SELECT command denied
    conn.close()

    store = LocalStore(tmp_path)
    results = {r.database: r for r in extract(source, [shop, billing, analytics], store)}
    assert all(r.ok and not r.missing for r in results.values())
    assert not any("over-privileged" in w for r in results.values() for w in r.warnings)

    snap = results[shop].snapshot
    tables = {t.name: t for t in snap.tables}
    assert set(tables) == {"customers", "orders", "order_items", "tmp_import", "paid_orders"}
    assert tables["customers"].comment == "Registered customers"
    assert [c.name for c in tables["customers"].columns][:3] == ["id", "email", "name"]
    assert tables["customers"].columns[2].comment == "고객 이름"
    assert tables["customers"].columns[0].extra == "auto_increment"
    assert tables["order_items"].primary_key == ("order_id", "line_no")
    (fk,) = tables["orders"].foreign_keys
    assert (fk.name, fk.columns, fk.ref_table, fk.ref_columns, fk.on_delete) == (
        "fk_orders_customer",
        ("customer_id",),
        "customers",
        ("id",),
        "CASCADE",
    )
    assert "VIRTUAL" in tables["orders"].columns[4].extra
    assert "total" in tables["orders"].columns[4].generation_expression
    assert "select" in tables["paid_orders"].view_definition.lower()
    assert [c.name for c in tables["paid_orders"].columns] == ["id", "customer_id", "email", "total"]

    (invoice_fk,) = {t.name: t for t in results[billing].snapshot.tables}["invoices"].foreign_keys
    assert (invoice_fk.ref_database, invoice_fk.ref_table) == (shop, "orders")  # across databases

    mce = json.loads(store.read_bytes(mce_key("src", shop)))
    view_urn = f"urn:li:dataset:(urn:li:dataPlatform:mysql,{shop}.paid_orders,PROD)"
    lineage = [m for m in mce if m["entityUrn"] == view_urn and m["aspectName"] == "upstreamLineage"]
    assert {u["dataset"] for u in lineage[0]["aspect"]["json"]["upstreams"]} == {
        f"urn:li:dataset:(urn:li:dataPlatform:mysql,{shop}.orders,PROD)",
        f"urn:li:dataset:(urn:li:dataPlatform:mysql,{shop}.customers,PROD)",
    }


def test_over_privileged_account_is_flagged(schema, tmp_path):
    db = schema.create("x", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    schema.server.execute(f"GRANT SELECT ON `{db}`.* TO '{schema.user}'@'%'")
    (result,) = extract(schema.source(), [db], LocalStore(tmp_path))
    assert result.ok
    assert any("over-privileged" in w for w in result.warnings)


def test_grant_statements_are_what_extraction_needs(schema, tmp_path):
    db = schema.create("g", "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'c')")
    source = schema.source()
    stmts = grant_statements(source, [db])
    assert stmts[1] == f"GRANT REFERENCES, SHOW VIEW ON `{db}`.* TO '{schema.user}'@'%';"
    schema.server.execute(
        stmts[0].replace(f"'<password from ${schema.password_env}>'", f"'{schema.password}'").rstrip(";"),
        stmts[1].rstrip(";"),
    )
    conn = connect(source)
    assert MySQLReader(conn).list_databases(source) == [db]
    conn.close()


def test_select_on_an_unrelated_database_is_not_flagged_but_a_wildcard_match_is(schema, tmp_path):
    db = schema.create("y_1", "CREATE TABLE t (id INT PRIMARY KEY)")
    other = schema.create("other_app", "CREATE TABLE t (id INT)")
    schema.grant([db])
    schema.server.execute(f"GRANT SELECT ON `{other}`.* TO '{schema.user}'@'%'")
    (result,) = extract(schema.source(), [db], LocalStore(tmp_path))
    assert not any("over-privileged" in w for w in result.warnings)
    # `_` is a wildcard in a GRANT: this one covers the extracted database too
    schema.server.execute(f"GRANT SELECT ON `{db.replace('y_1', 'y_')}_`.* TO '{schema.user}'@'%'")
    (result,) = extract(schema.source(), [db], LocalStore(tmp_path))
    assert any("over-privileged" in w for w in result.warnings)
