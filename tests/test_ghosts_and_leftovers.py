"""Fault-review fixes, against the real MariaDB where the fault comes from the server.

- a view whose base table was dropped: its schema is replaced by an empty one, its lineage never names the gone table
- lineage across databases: left out only when the table is known to be gone (its database read in the same batch)
- system-versioned tables: the hidden row_end column in MariaDB's PRIMARY key is no schema field, so no key either
- temp files of a killed writer (LocalStore.remove_stale_temp) and of the lineage resolver's schema cache
- the demo's DataHub Lite listing leaves out what a push soft-deleted
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from datahub.emitter.mce_builder import make_schema_field_urn
from datahub.metadata.urns import SchemaFieldUrn

from metadata_assets.catalog import Column, Database, ForeignKey, Table
from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.extract import extract
from metadata_assets.sources.mysql import quote_ident
from metadata_assets.sources.mysql.emitter import MySQLUrnRules as UrnRules
from metadata_assets.sources.sql_emitter import LineageResolver, database_mcps
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore, open_store

RULES = UrnRules()


def extract_ok(source, databases, store) -> dict:
    results = {r.database: r for r in extract(source, databases, store)}
    assert all(r.ok and not r.missing for r in results.values()), {d: r.error for d, r in results.items()}
    return results


def aspects_of(store, db: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for m in read_mcps(store.read_bytes(mce_key("src", db))):
        out.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    return out


def push_lite(cfg, store):
    from metadata_assets.datahub.push import push
    from metadata_assets.datahub.sinks import LiteSink

    sink = LiteSink(cfg.datahub.lite)
    try:
        return push(store, "src", RULES, sink, max_removal_share=1.0)
    finally:
        sink.close()


def lite_aspects(cfg, urn: str) -> dict:
    from metadata_assets.datahub.sinks import lite_reader

    lite = lite_reader(cfg.datahub.lite.path)
    try:
        return lite.get(urn, aspects=None, typed=True) or {}
    finally:
        lite.close()


# --- 1 + 2: a view whose base table was dropped --------------------------------------------------------------


def test_view_over_a_dropped_table_gets_an_empty_schema_and_no_ghost_lineage(schema, tmp_path):
    db = schema.create(
        "orphans",
        "CREATE TABLE base (id INT PRIMARY KEY, y VARCHAR(5))",
        "CREATE TABLE kept (id INT PRIMARY KEY)",
        "CREATE VIEW v AS SELECT b.id, b.y, k.id AS kid FROM base b JOIN kept k ON k.id = b.id",
        "CREATE VIEW fine AS SELECT id FROM kept",
    )
    schema.grant()
    cfg = schema.project(tmp_path)
    store = LocalStore(tmp_path / "store")
    v, base, kept = RULES.dataset(db, "v"), RULES.dataset(db, "base"), RULES.dataset(db, "kept")

    extract_ok(cfg.sources[0], [db], store)
    before = aspects_of(store, db)[v]
    assert [f.fieldPath for f in before["schemaMetadata"].fields] == ["id", "y", "kid"]
    assert sorted(u.dataset for u in before["upstreamLineage"].upstreams) == [base, kept]
    push_lite(cfg, store)
    assert len(lite_aspects(cfg, v)["schemaMetadata"].fields) == 3

    schema.server.execute(f"DROP TABLE {quote_ident(db)}.base")
    (r,) = extract_ok(cfg.sources[0], [db], store).values()
    after = aspects_of(store, db)
    sm = after[v]["schemaMetadata"]
    # the same aspect shape as for any table, with no fields: it replaces what DataHub holds
    assert sm.fields == [] and sm.primaryKeys is None and sm.foreignKeys is None
    assert (sm.schemaName, sm.platform, sm.platformSchema) == (
        before["schemaMetadata"].schemaName,
        before["schemaMetadata"].platform,
        before["schemaMetadata"].platformSchema,
    )
    # lineage: the gone table is named nowhere, neither as a dataset nor through its columns
    up = after[v]["upstreamLineage"]
    assert [u.dataset for u in up.upstreams] == [kept]
    assert {SchemaFieldUrn.from_string(f).parent for fl in up.fineGrainedLineages or [] for f in fl.upstreams} == {kept}
    assert base not in (store.read_bytes(mce_key("src", db)) or b"").decode()
    assert [u.dataset for u in after[RULES.dataset(db, "fine")]["upstreamLineage"].upstreams] == [kept]
    # one warning for the view, saying the lineage was left out (the reader's broken-view warning carries it)
    mine = [w for w in r.warnings if w.startswith("view 'v'")]
    assert len(mine) == 1 and f"lineage to missing table '{db}.base' left out" in mine[0], r.warnings
    for m in read_mcps(store.read_bytes(mce_key("src", db))):
        m.validate()

    # pushed: DataHub (Lite) now holds the empty schema, not the view's previous columns
    push_lite(cfg, store)
    stored = lite_aspects(cfg, v)
    assert stored["schemaMetadata"].fields == []
    assert [u.dataset for u in stored["upstreamLineage"].upstreams] == [kept]


def test_all_upstreams_gone_sends_an_empty_lineage(schema, tmp_path):
    """The view read only the dropped table: an upstreamLineage with no upstreams replaces the one DataHub holds."""
    db = schema.create("only", "CREATE TABLE base (id INT)", "CREATE VIEW v AS SELECT id FROM base", "DROP TABLE base")
    schema.grant()
    store = LocalStore(tmp_path)
    (r,) = extract_ok(schema.source(), [db], store).values()
    up = aspects_of(store, db)[RULES.dataset(db, "v")]["upstreamLineage"]
    assert up.upstreams == [] and not up.fineGrainedLineages
    assert any(f"lineage to missing table '{db}.base' left out" in w for w in r.warnings), r.warnings


@pytest.mark.parametrize("batch_size", [1, 10])
def test_lineage_to_other_databases_is_left_out_only_when_known_gone(schema, tmp_path, batch_size):
    other = schema.create("other", "CREATE TABLE gone (id INT)", "CREATE TABLE here (id INT)")
    outside = schema.create("outside", "CREATE TABLE gone2 (id INT)")
    db = schema.create(
        "views",
        f"CREATE VIEW both_v AS SELECT g.id AS a, h.id AS b FROM {quote_ident(other)}.gone g "
        f"JOIN {quote_ident(other)}.here h ON h.id = g.id",
        f"CREATE VIEW out_v AS SELECT id FROM {quote_ident(outside)}.gone2",
    )
    schema.server.execute(f"DROP TABLE {quote_ident(other)}.gone", f"DROP TABLE {quote_ident(outside)}.gone2")
    schema.grant()
    store = LocalStore(tmp_path)
    # `outside` is not extracted at all; `other` is in the views' batch only with batch_size 10
    results = extract_ok(schema.source(batch_size=batch_size), [other, db], store)
    got = aspects_of(store, db)
    here, gone = RULES.dataset(other, "here"), RULES.dataset(other, "gone")
    both = got[RULES.dataset(db, "both_v")]["upstreamLineage"]
    fine_ups = {SchemaFieldUrn.from_string(f).parent for fl in both.fineGrainedLineages or [] for f in fl.upstreams}
    if batch_size == 10:  # `other` was read with the view: its `gone` is known gone
        assert [u.dataset for u in both.upstreams] == [here] and fine_ups == {here}
        assert any(f"lineage to missing table '{other}.gone' left out" in w for w in results[db].warnings)
    else:  # `other` was read in another batch: nothing known here, the lineage stays as the SQL says
        assert sorted(u.dataset for u in both.upstreams) == sorted([here, gone])
        assert not any("lineage to missing" in w for w in results[db].warnings)
    # a database not read at all: kept
    assert [u.dataset for u in got[RULES.dataset(db, "out_v")]["upstreamLineage"].upstreams] == [
        RULES.dataset(outside, "gone2")
    ]


def _view(name: str, sql: str, columns: tuple[str, ...] = ()) -> Table:
    return Table(
        name=name,
        table_type="VIEW",
        view_definition=sql,
        columns=[
            Column(name=c, ordinal=i + 1, column_type="int(11)", data_type="int", nullable=True)
            for i, c in enumerate(columns)
        ],
    )


def _table(name: str, *columns: str) -> Table:
    return Table(
        name=name,
        table_type="BASE TABLE",
        columns=[
            Column(name=c, ordinal=i + 1, column_type="int(11)", data_type="int", nullable=True)
            for i, c in enumerate(columns)
        ],
    )


def test_table_allowed_tells_filtered_out_from_gone():
    """With the source's table_pattern (table_allowed), a table absent from a registered snapshot is gone unless the
    pattern leaves it out, whether or not the view has columns; a registered table without columns is no ghost."""
    a = Database(
        name="a",
        tables=[
            _table("t", "id"),
            _table("nocols"),
            _view(
                "v",
                "CREATE VIEW `a`.`v` AS SELECT t.id, d.id AS did, x.id AS xid, "
                "n.id AS nid FROM `a`.`t` t JOIN `a`.`denied` d JOIN `a`.`dropped` x "
                "JOIN `a`.`nocols` n",
                ("id", "did", "xid", "nid"),
            ),
        ],
    )
    allowed = lambda db, t: t != "denied"  # noqa: E731
    with LineageResolver(RULES, table_allowed=allowed) as lineage:
        lineage.register(a)
        up, warn = lineage.upstream_lineage(a, a.tables[-1], RULES.dataset("a", "v"))
    assert sorted(u.dataset for u in up.upstreams) == sorted(RULES.dataset("a", t) for t in ("t", "denied", "nocols"))
    assert warn == "view 'v': lineage to missing table 'a.dropped' left out"
    # without table_allowed, a view the server could open (it has columns) keeps every upstream
    with LineageResolver(RULES) as lineage:
        lineage.register(a)
        up, warn = lineage.upstream_lineage(a, a.tables[-1], RULES.dataset("a", "v"))
    assert len(up.upstreams) == 4 and warn is None


# --- 3: system-versioned tables ---------------------------------------------------------------------------------


def test_system_versioned_primary_key_names_only_fields(schema, tmp_path):
    db = schema.create(
        "versioned",
        "CREATE TABLE sv (id INT PRIMARY KEY, x INT) WITH SYSTEM VERSIONING",
        "CREATE TABLE child (id INT PRIMARY KEY, sv_id INT, FOREIGN KEY fk_sv (sv_id) REFERENCES sv (id)) "
        "WITH SYSTEM VERSIONING",
    )
    # the server's side of it, as the fault review found it
    conn = schema.server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = 'sv' AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (db,),
            )
            assert [r[0] for r in cur.fetchall()] == ["id", "row_end"]
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = 'sv' ORDER BY ORDINAL_POSITION",
                (db,),
            )
            assert [r[0] for r in cur.fetchall()] == ["id", "x"]
    finally:
        conn.close()
    schema.grant()
    store = LocalStore(tmp_path)
    (r,) = extract_ok(schema.source(), [db], store).values()
    got = aspects_of(store, db)
    for name in ("sv", "child"):
        sm = got[RULES.dataset(db, name)]["schemaMetadata"]
        fields = [f.fieldPath for f in sm.fields]
        assert sm.primaryKeys == ["id"] and set(sm.primaryKeys) <= set(fields), (name, sm.primaryKeys)
        assert [f.fieldPath for f in sm.fields if f.isPartOfKey] == ["id"]
    (fk,) = got[RULES.dataset(db, "child")]["schemaMetadata"].foreignKeys
    assert fk.sourceFields == [make_schema_field_urn(RULES.dataset(db, "child"), "sv_id")]
    # the snapshot keeps the key as the server lists it: its serialized form and hash are what they were
    sv = next(t for t in r.snapshot.tables if t.name == "sv")
    assert sv.primary_key == ("id", "row_end") and sv.visible_primary_key == ("id",)
    d = r.snapshot.to_dict()
    assert not any(k.startswith("visible_") for t in d["tables"] for k in t)
    assert Database.from_dict(d).schema_hash() == r.snapshot.schema_hash() == r.schema_hash


def test_foreign_key_over_a_hidden_column_is_left_out():
    t = Table(
        name="t",
        table_type="SYSTEM VERSIONED",
        columns=_table("t", "id", "p").columns,
        primary_key=("id", "row_end"),
        foreign_keys=[
            ForeignKey("fk_ok", ("p",), "d", "parent", ("id",)),
            ForeignKey("fk_hidden", ("p", "row_end"), "d", "parent", ("id", "row_end")),
        ],
    )
    assert [fk.name for fk in t.visible_foreign_keys] == ["fk_ok"]
    db = Database(name="d", tables=[t])
    sm = next(m.aspect for m in database_mcps(db, RULES) if m.aspectName == "schemaMetadata")
    assert sm.primaryKeys == ["id"] and [fk.name for fk in sm.foreignKeys] == ["fk_ok"]
    assert db.to_dict()["tables"][0]["primary_key"] == ("id", "row_end")


# --- 4: temp files of a killed writer -----------------------------------------------------------------------------


def test_remove_stale_temp_deletes_only_old_write_temp_files(tmp_path):
    store = LocalStore(tmp_path)
    store.write_bytes("src/mce/a.json", b"[]")
    # a real leftover: a writer killed between writing its temp file and renaming it
    code = (
        "import os, sys; from metadata_assets.storage.store import LocalStore\n"
        "os.replace = lambda *a: os._exit(9)\n"
        f"LocalStore({str(tmp_path)!r}).write_bytes('src/snapshots/b%2Ec.json', b'{{}}')\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 9
    (killed,) = (tmp_path / "src" / "snapshots").iterdir()
    assert killed.name.startswith(".b%2Ec.json.") and killed.name.endswith(".tmp")
    stale = tmp_path / "src" / "mce" / ".a.json.abc_1234.tmp"
    fresh = tmp_path / "src" / "mce" / ".a.json.zzzz9999.tmp"
    others = [tmp_path / "src" / "mce" / n for n in (".keep", "x.tmp", ".a.json.tmp", ".push.lock")]
    for p in [stale, fresh, *others]:
        p.write_bytes(b"x")
    hour_ago = time.time() - 3600
    for p in [killed, stale, *others]:
        os.utime(p, (hour_ago, hour_ago))

    assert store.list("src/mce") == ["src/mce/a.json", "src/mce/x.tmp"]  # dot files (temp files) never listed
    assert store.remove_stale_temp("src/nowhere") == 0
    assert store.remove_stale_temp("src") == 2
    assert not killed.exists() and not stale.exists()
    assert fresh.exists() and all(p.exists() for p in others)
    assert store.read_bytes("src/mce/a.json") == b"[]"
    assert store.remove_stale_temp("src", older_than_s=0) == 1 and not fresh.exists()


# --- 5: the lineage resolver's temporary directory ----------------------------------------------------------------


@pytest.fixture
def private_tmpdir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches: make it read TMPDIR again
    assert tempfile.gettempdir() == str(d)
    return d


def test_lineage_resolver_close_deletes_its_temp_dir(private_tmpdir):
    db = Database(name="a", tables=[_table("t", "id"), _view("v", "CREATE VIEW `a`.`v` AS SELECT id FROM `a`.`t`")])
    lineage = LineageResolver(RULES)
    lineage.register(db)
    up, _ = lineage.upstream_lineage(db, db.tables[1], RULES.dataset("a", "v"))
    assert [u.dataset for u in up.upstreams] == [RULES.dataset("a", "t")]
    (made,) = private_tmpdir.iterdir()  # the schema cache: tmpXXXXXXXX/sqlite.db
    assert (made / "sqlite.db").exists()
    lineage.close()
    assert list(private_tmpdir.iterdir()) == []
    lineage.close()  # idempotent

    with LineageResolver(RULES) as lineage:
        lineage.register(db)
        assert len(list(private_tmpdir.iterdir())) == 1
    assert list(private_tmpdir.iterdir()) == []
    # database_mcps with no resolver given makes one and closes it
    assert any(m.aspectName == "upstreamLineage" for m in database_mcps(db, RULES))
    assert list(private_tmpdir.iterdir()) == []


def test_extraction_leaves_no_temp_dir(schema, tmp_path, private_tmpdir):
    """Needs extract() to close the resolver of each batch (LineageResolver.close)."""
    db = schema.create("tmpdirs", "CREATE TABLE t (id INT)", "CREATE VIEW v AS SELECT id FROM t")
    db2 = schema.create("tmpdirs2", "CREATE TABLE t (id INT)")
    schema.grant()
    extract_ok(schema.source(batch_size=1), [db, db2], LocalStore(tmp_path / "store"))
    assert list(private_tmpdir.iterdir()) == []


# --- 6: the demo's Lite listing -----------------------------------------------------------------------------------


def listed(lines: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ln in lines[1:]:
        folder, names = ln.strip().split(": ", 1)
        out.setdefault(folder.split("/")[-2], set()).update(names.split(", "))
    return out


def test_demo_listing_leaves_out_soft_deleted_tables_and_databases(schema, tmp_path):
    from metadata_assets.datahub.push import forget_database
    from metadata_assets.demo_run import lite_listing

    a = schema.create(
        "lista", "CREATE TABLE t1 (id INT)", "CREATE TABLE t2 (id INT)", "CREATE VIEW v AS SELECT id FROM t1"
    )
    b = schema.create("listb", "CREATE TABLE t3 (id INT)")
    schema.grant()
    cfg = schema.project(tmp_path)
    store = open_store(cfg.storage.uri)
    extract_ok(cfg.sources[0], [a, b], store)
    push_lite(cfg, store)
    assert listed(lite_listing(cfg.datahub.lite.path)) == {a: {"t1", "t2", "v"}, b: {"t3"}}

    schema.server.execute(f"DROP TABLE {quote_ident(a)}.t2", f"DROP DATABASE {quote_ident(b)}")
    schema.databases.remove(b)
    extract_ok(cfg.sources[0], [a], store)
    forget_database(store, "src", b)  # what the partition sensor does for a database that went
    report = push_lite(cfg, store)
    assert RULES.dataset(a, "t2") in report.soft_deleted and RULES.dataset(b, "t3") in report.soft_deleted
    assert lite_aspects(cfg, RULES.dataset(b, "t3"))["status"].removed is True  # Lite keeps it, soft-deleted
    assert listed(lite_listing(cfg.datahub.lite.path)) == {a: {"t1", "v"}}


def test_catalog_ls_hides_soft_deleted_entities_unless_all(schema, tmp_path, capsys):
    import yaml

    from metadata_assets.cli import main

    a = schema.create("cls", "CREATE TABLE t1 (id INT)", "CREATE TABLE t2 (id INT)")
    schema.grant()
    cfg = schema.project(tmp_path)
    config = tmp_path / "sources.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "src",
                        "type": "mysql",
                        "host": schema.server.host,
                        "port": schema.server.port,
                        "user": schema.user,
                        "password_env": schema.password_env,
                    }
                ],
                "storage": {"uri": cfg.storage.uri},
                "datahub": {"lite": {"path": cfg.datahub.lite.path}},
            }
        )
    )
    store = open_store(cfg.storage.uri)
    extract_ok(cfg.sources[0], [a], store)
    push_lite(cfg, store)
    schema.server.execute(f"DROP TABLE {quote_ident(a)}.t2")
    extract_ok(cfg.sources[0], [a], store)
    push_lite(cfg, store)
    folder = f"/databases/mysql/instances/default/databases/{a}/tables"
    capsys.readouterr()
    assert main(["catalog", "ls", folder, "--config", str(config)]) == 0
    assert [ln.split()[0] for ln in capsys.readouterr().out.splitlines()] == ["t1"]
    assert main(["catalog", "ls", folder, "--all", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == ["t1", "t2"] and lines[1].endswith("(soft-deleted)")
    assert main(["catalog", "show", RULES.dataset(a, "t2"), "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "soft-deleted" in captured.err and '"removed": true' in captured.out
    assert main(["catalog", "show", RULES.dataset(a, "nope"), "--config", str(config)]) == 1
    assert main(["catalog", "ls", "/no/such/path", "--config", str(config)]) == 1
