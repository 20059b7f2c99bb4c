"""Names that need quoting work end to end: extraction, file names, URNs, view SQL and the Dagster asset.

Unicode, spaces, backticks, hyphens, dollar signs, dots and reserved words, in database, table, column and view
names; plus a view whose base table was dropped (a warning, never a failed database).
"""

from __future__ import annotations

import json

import pytest

from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.extract import extract
from metadata_assets.sources.mysql import quote_ident
from metadata_assets.sources.mysql.emitter import MySQLUrnRules as UrnRules
from metadata_assets.storage.layout import decode_name, encode_name, list_mce_databases, mce_key, snapshot_key
from metadata_assets.storage.store import LocalStore, open_store, sha256

# database name suffixes (the test prefix goes in front)
AWKWARD_DATABASES = ["ünï cødé", "we$ird-name", "back`tick", "select", "a.b", "..", "sl/ash", "100%", "주문" * 20]


@pytest.mark.parametrize(
    "name",
    [
        "shop",
        ".",
        "..",
        "...",
        "/",
        "a/b",
        "../etc",
        "a.b",
        "%2E",
        "%",
        "100%",
        "back`tick",
        "ü ñ",
        "we$ird-name",
        "select",
        " lead",
        "tab\tname",
        "가" * 64,
        "\u0085ctl",
        "A",
        "a",
        "-x",
        "_",
        ".hidden",
    ],
)
def test_file_name_encoding_round_trips_and_is_one_safe_path_component(name):
    encoded = encode_name(name)
    assert decode_name(encoded) == name
    assert "/" not in encoded and "\\" not in encoded and "\0" not in encoded
    assert encoded not in (".", "..") and not encoded.startswith(".")  # LocalStore.list hides dot files
    assert all(c.isprintable() and c not in " \t" for c in encoded)
    assert len(mce_key("src", name).rsplit("/", 1)[1].encode()) <= 255  # a file name, not a path
    assert decode_name(mce_key("src", name).rsplit("/", 1)[1][: -len(".json")]) == name


def test_file_names_stay_short_for_the_longest_database_names():
    """MySQL allows 64 characters of the BMP in a database name; every printable one must fit a 255-byte file name.

    (Non-printable non-ASCII characters are percent-encoded, 6 to 9 bytes each: a name made of many of them fails
    its own database with 'File name too long', loudly and alone.)"""
    for ch in ("a", " ", "%", "/", ".", "가", "\ufffd", "é", "ß"):
        assert len((encode_name(ch * 64) + ".json").encode()) <= 255, repr(ch)
    assert encode_name("A") != encode_name("a")


def test_distinct_names_never_share_a_file():
    names = ["a.b", "a%2Eb", "a%2eb", "a b", "a%20b", "a+b", "a/b", "a%2Fb", "ü", "%C3%BC", "%FC"]
    assert len({encode_name(n) for n in names}) == len(names)


def create_awkward_databases(schema) -> dict[str, str]:
    """suffix -> full database name; each holds awkward tables, columns and a view over them."""
    out = {}
    for suffix in AWKWARD_DATABASES:
        out[suffix] = schema.create(
            suffix,
            "CREATE TABLE `table` (`select` INT NOT NULL PRIMARY KEY COMMENT 'reserved', "
            "`ünï cødé` VARCHAR(8) NULL COMMENT 'ü', `we$ird-col` INT NULL, `back``tick` INT NULL, "
            "`from.dot` DATE NULL) COMMENT='reserved word as a table name'",
            "CREATE TABLE `주문 내역-$1` (`번호` INT NOT NULL PRIMARY KEY COMMENT '주문 번호', "
            "`table ref` INT NULL, CONSTRAINT `fk-주문` FOREIGN KEY (`table ref`) REFERENCES `table` (`select`))",
            "CREATE VIEW `view of ``table``` AS SELECT t.`select`, t.`ünï cødé`, t.`back``tick`, k.`번호` "
            "FROM `table` t JOIN `주문 내역-$1` k ON k.`table ref` = t.`select`",
        )
    return out


def test_awkward_names_extract_to_files_urns_and_view_sql(schema, tmp_path):
    dbs = create_awkward_databases(schema)
    schema.grant()
    store = LocalStore(tmp_path)
    results = {r.database: r for r in extract(schema.source(), sorted(dbs.values()), store)}
    assert set(results) == set(dbs.values())
    bad = {n: (r.error, r.warnings) for n, r in results.items() if not r.ok or r.missing or r.warnings}
    assert not bad

    # one file per database, and the file names decode back to the database names
    assert list_mce_databases(store, "src") == sorted(dbs.values())
    rules = UrnRules()
    for db, r in results.items():
        assert (r.tables, r.views, r.columns) == (2, 1, 5 + 2 + 4)
        mcps = read_mcps(store.read_bytes(mce_key("src", db)))
        by_urn: dict[str, dict] = {}
        for m in mcps:
            by_urn.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
        table, orders, view = (rules.dataset(db, t) for t in ("table", "주문 내역-$1", "view of `table`"))
        assert set(by_urn) == {rules.container(db), table, orders, view}
        assert table == f"urn:li:dataset:(urn:li:dataPlatform:mysql,{db}.table,PROD)"
        assert by_urn[rules.container(db)]["containerProperties"].name == db
        assert [f.fieldPath for f in by_urn[table]["schemaMetadata"].fields] == [
            "select",
            "ünï cødé",
            "we$ird-col",
            "back`tick",
            "from.dot",
        ]
        assert by_urn[table]["schemaMetadata"].fields[1].description == "ü"
        (fk,) = by_urn[orders]["schemaMetadata"].foreignKeys
        assert (fk.name, fk.foreignDataset) == ("fk-주문", table)
        assert fk.foreignFields == [f"urn:li:schemaField:({table},select)"]

        # the view's SQL comes from SHOW CREATE TABLE with every name quoted, and parses into lineage
        sql = by_urn[view]["viewProperties"].viewLogic
        assert f"VIEW {quote_ident(db)}.`view of ``table```" in sql
        assert f"from ({quote_ident(db)}.`table` `t` join {quote_ident(db)}.`주문 내역-$1` `k`" in sql
        lineage = by_urn[view]["upstreamLineage"]
        assert sorted(u.dataset for u in lineage.upstreams) == sorted([table, orders])
        assert {f.downstreams[0].rsplit(",", 1)[1][:-1] for f in lineage.fineGrainedLineages} == {
            "select",
            "ünï cødé",
            "back`tick",
            "번호",
        }
        snapshot = json.loads(store.read_bytes(snapshot_key("src", db)))
        assert snapshot["name"] == db


def test_view_whose_base_table_was_dropped_is_a_warning_not_a_failure(schema, tmp_path):
    db = schema.create(
        "broken views",
        "CREATE TABLE `base t` (id INT PRIMARY KEY, `näme` VARCHAR(5))",
        "CREATE TABLE kept (id INT PRIMARY KEY COMMENT 'still here')",
        "CREATE VIEW `orphan-v$` AS SELECT id, `näme` FROM `base t`",
        "CREATE VIEW `fine view` AS SELECT id FROM kept",
        "DROP TABLE `base t`",
    )
    schema.grant()
    store = LocalStore(tmp_path)
    (r,) = extract(schema.source(), [db], store)
    assert r.ok and not r.missing and r.error is None
    assert (r.tables, r.views) == (1, 2)
    assert len([w for w in r.warnings if "orphan-v$" in w]) == 1, r.warnings
    assert not any("fine view" in w for w in r.warnings)
    mcps = read_mcps(store.read_bytes(mce_key("src", db)))
    rules = UrnRules()
    urns = {m.entityUrn for m in mcps}
    assert {rules.dataset(db, "kept"), rules.dataset(db, "orphan-v$"), rules.dataset(db, "fine view")} <= urns
    orphan = {m.aspectName: m.aspect for m in mcps if m.entityUrn == rules.dataset(db, "orphan-v$")}
    assert "View" in orphan["subTypes"].typeNames and "status" in orphan
    fine = {m.aspectName: m.aspect for m in mcps if m.entityUrn == rules.dataset(db, "fine view")}
    assert [u.dataset for u in fine["upstreamLineage"].upstreams] == [rules.dataset(db, "kept")]


@pytest.mark.slow
def test_dagster_asset_materializes_an_awkward_partition(schema, tmp_path):
    from dagster import DagsterInstance

    from metadata_assets.definitions import build_definitions
    from metadata_assets.storage.database_files import data_version

    db = schema.create(
        "ünï cødé $db-1",
        "CREATE TABLE `select` (`from` INT PRIMARY KEY COMMENT 'documented', `back``tick` INT)",
        "CREATE TABLE `주문` (`번호` INT PRIMARY KEY) COMMENT='주문 테이블'",
        "CREATE VIEW `v-1 $` AS SELECT `from` FROM `select`",
    )
    schema.grant()
    cfg = schema.project(tmp_path)
    defs = build_definitions(cfg)
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("src_databases", [db])
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, partition_key=db)
        assert result.success
        (mat,) = result.asset_materializations_for_node("src__mce_files")
    assert mat.partition == db
    md = {k: v.value for k, v in mat.metadata.items()}
    store = open_store(cfg.storage.uri)
    assert md["path"] == store.uri(mce_key("src", db))
    with open(md["path"], "rb") as f:
        data = f.read()
    assert md["file_sha256"] == sha256(data)
    assert (md["tables"], md["views"], md["columns"]) == (2, 1, 4)
    assert md["documented_tables_pct"] == 33.3  # one table comment of 2 tables + 1 view
    assert md["documented_columns_pct"] == 50.0  # `from` and its view column, of 4
    assert md["warning_count"] == 0
    snapshot = read_mcps(data)
    assert md["proposals"] == len(snapshot)
    from metadata_assets.catalog import Database

    db_snapshot = Database.from_dict(json.loads(store.read_bytes(snapshot_key("src", db))))
    assert (
        md["content_hash"]
        == data_version(db_snapshot, UrnRules(), figures=db_snapshot.profile_figures())
        == mat.tags["dagster/data_version"]
    )


@pytest.mark.parametrize("suffix", ["sp ace", "a.b", "back`tick", "100%"])
def test_select_grant_on_an_awkward_database_name_is_flagged(schema, tmp_path, suffix):
    db = schema.create(suffix, "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    (clean,) = extract(schema.source(), [db], LocalStore(tmp_path / "a"))
    assert clean.ok and clean.warnings == []
    schema.server.execute(f"GRANT SELECT ON {quote_ident(db)}.* TO '{schema.user}'@'%'")
    (r,) = extract(schema.source(), [db], LocalStore(tmp_path / "b"))
    assert r.ok
    assert [w for w in r.warnings if "over-privileged" in w] == [
        f"over-privileged: the account can read data (GRANT SELECT, REFERENCES, SHOW VIEW ON {quote_ident(db)}.* "
        f"TO `{schema.user}`@`%`)"
    ]


@pytest.mark.parametrize("batch_size", [1, 10])
def test_lineage_keeps_the_case_of_names_in_other_databases(schema, tmp_path, batch_size):
    """MySQL names are case-sensitive: a view over `Other`.`MixedTbl` must point at that table's own URN, whether
    or not the other database is read in the same batch (sqlglot lower-cases tables it cannot resolve)."""
    other = schema.create("Other DB", "CREATE TABLE `MixedTbl` (`MixedCol` INT PRIMARY KEY, `low` INT)")
    denied = schema.create("Zz", "CREATE TABLE `Hidden_T` (`Col` INT)")
    db = schema.create(
        "Views",
        f"CREATE VIEW `Cross V` AS SELECT m.`MixedCol`, m.`low` FROM {quote_ident(other)}.`MixedTbl` m",
        f"CREATE VIEW `Denied V` AS SELECT `Col` FROM {quote_ident(denied)}.`Hidden_T`",
    )
    schema.grant()
    source = schema.source(batch_size=batch_size, table_pattern={"deny": [".*\\.hidden_t"]})
    store = LocalStore(tmp_path)
    results = {r.database: r for r in extract(source, [other, db, denied], store)}
    assert all(r.ok for r in results.values())
    rules = UrnRules()
    mcps = {(m.entityUrn, m.aspectName): m.aspect for m in read_mcps(store.read_bytes(mce_key("src", db)))}
    cross = mcps[(rules.dataset(db, "Cross V"), "upstreamLineage")]
    assert [u.dataset for u in cross.upstreams] == [rules.dataset(other, "MixedTbl")]
    assert sorted(u for f in cross.fineGrainedLineages for u in f.upstreams) == [
        f"urn:li:schemaField:({rules.dataset(other, 'MixedTbl')},MixedCol)",
        f"urn:li:schemaField:({rules.dataset(other, 'MixedTbl')},low)",
    ]
    # a table left out by table_pattern is not emitted, but lineage still names it by the same rules
    hidden = mcps[(rules.dataset(db, "Denied V"), "upstreamLineage")]
    assert [u.dataset for u in hidden.upstreams] == [rules.dataset(denied, "Hidden_T")]
