"""URN conformance with DataHub's own mysql source.

DataHub's built-in `mysql` source (run in-process, as root: it needs SELECT to DESCRIBE) and this project's extract()
(run with the least-privilege account) read the same schema: the demo sample plus a database full of awkward names.
Both outputs are decoded with acryl-datahub's own classes and compared entity by entity.

Differences that are intended are asserted as such below (so the README cannot silently go stale):
- nativeDataType: ours is the server's full column type (`int(11)`, `decimal(12,2)`), the built-in's is SQLAlchemy's
  rendering (`INTEGER(11)`, `DECIMAL(12, 2)`);
- ours adds: schemaMetadata.primaryKeys, field jsonProps (default, extra, key, generation expression, charset,
  collation), datasetProperties.customProperties (table_type, engine, collation, times, indexes, check constraints,
  triggers), containerProperties description (schema comment, MariaDB) and charset/collation; a table-level
  datasetProfile (row estimate, columns, size: the built-in's with `profiling.profile_table_level_only`, compared
  in test_procedures_domains_and_profiles_as_builtin with procedures and domains);
- views: the built-in marks every view column nullable and leaves its description empty; ours keeps what
  information_schema says (NOT NULL and the base column's comment carried through). View SQL: ours is SHOW CREATE
  TABLE read without a default database, so names are qualified (`db`.`t`); the built-in's is unqualified.
- MariaDB sequences: ours emits them as datasets (table_type SEQUENCE); the built-in skips them.
- a column name containing a backtick: the built-in reports it with the backtick doubled (SQLAlchemy parses SHOW
  CREATE TABLE and does not unquote it); ours reports the real name.
- view lineage: same upstream datasets and the same column-level mapping; the built-in also emits `query` entities
  and stamps (time, query urn, transformOperation, confidence 0.9) that would break byte-determinism; ours does not.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
from datahub.metadata.urns import SchemaFieldUrn

from metadata_assets.extract import extract
from metadata_assets.sources.mysql import quote_ident
from metadata_assets.sources.mysql.emitter import MySQLUrnRules as UrnRules
from metadata_assets.storage.layout import snapshot_key
from metadata_assets.storage.store import LocalStore

AWKWARD_DB = "Wëird db-$1"


def create_awkward(schema) -> str:
    """A database whose every name needs quoting: unicode, spaces, hyphens, `$`, backticks, reserved words."""
    shop = quote_ident(schema.db("shop"))
    return schema.create(
        AWKWARD_DB,
        "CREATE TABLE `order` (`select` INT NOT NULL COMMENT 'reserved word', "
        "`from` VARCHAR(10) NULL COMMENT 'has a `backtick` and ''quote''', PRIMARY KEY (`select`)) "
        "COMMENT='a table called order'",
        "CREATE TABLE `Mixed Case-Tbl$` (`id` INT NOT NULL, `Ünïcode Col` VARCHAR(5) NOT NULL DEFAULT 'x', "
        "`order ref` INT NULL, `customer` BIGINT UNSIGNED NULL, PRIMARY KEY (`id`, `Ünïcode Col`), "
        "CONSTRAINT `fk-order` FOREIGN KEY (`order ref`) REFERENCES `order` (`select`), "
        f"CONSTRAINT `fk customer` FOREIGN KEY (`customer`) REFERENCES {shop}.`customers` (`id`))",
        "CREATE TABLE `back``tick` (`a``b` INT COMMENT 'c`d')",
        "CREATE TABLE `주문 내역` (`번호` INT PRIMARY KEY COMMENT '주문 번호')",
        "CREATE VIEW `v-1 $view` AS SELECT o.`select`, m.`Ünïcode Col` FROM `order` o "
        "JOIN `Mixed Case-Tbl$` m ON m.`order ref` = o.`select`",
        f"CREATE VIEW `x-db view` AS SELECT id, total FROM {shop}.`orders`",
    )


def run_builtin(schema, tmp_path, platform_instance=None, **extra) -> pathlib.Path:
    """DataHub's built-in mysql source, in-process, file sink."""
    from datahub.ingestion.run.pipeline import Pipeline

    out = tmp_path / "builtin.json"
    config = {
        "host_port": f"{schema.server.host}:{schema.server.port}",
        "username": "root",
        "password": "",
        "include_views": True,
        "include_tables": True,
        "profiling": {"enabled": False},
        "include_stored_procedures": False,
        "database_pattern": {"allow": [f"^{re.escape(schema.prefix)}.*"]},
        **extra,
    }
    if platform_instance:
        config["platform_instance"] = platform_instance
    pipeline = Pipeline.create(
        {
            "run_id": "conformance",
            "source": {"type": "mysql", "config": config},
            "sink": {"type": "file", "config": {"filename": str(out)}},
        }
    )
    pipeline.run()
    pipeline.raise_from_status()
    return out


def run_ours(schema, tmp_path, **source_overrides) -> tuple[LocalStore, list]:
    store = LocalStore(tmp_path / "ours")
    results = list(extract(schema.source(**source_overrides), sorted(schema.databases), store))
    assert all(r.ok and not r.missing for r in results), [(r.database, r.error) for r in results]
    return store, results


def load_aspects(paths, repeats_equal: bool = False) -> dict[str, dict[str, object]]:
    """entity urn -> aspect name -> aspect object, MCEs split into MCPs with acryl-datahub's helpers. An aspect sent
    twice fails, unless `repeats_equal` (the built-in with stored procedures sends some twice): then equal twice."""
    from datahub.emitter.mcp_builder import mcps_from_mce
    from datahub.ingestion.source.file import read_metadata_file
    from datahub.metadata.schema_classes import MetadataChangeEventClass

    out: dict[str, dict[str, object]] = {}
    for p in paths:
        for item in read_metadata_file(pathlib.Path(p)):
            for m in mcps_from_mce(item) if isinstance(item, MetadataChangeEventClass) else [item]:
                if repeats_equal and m.aspectName in out.get(m.entityUrn, {}):
                    assert out[m.entityUrn][m.aspectName] == m.aspect, f"{m.entityUrn} {m.aspectName} differs"
                assert repeats_equal or m.aspectName not in out.get(m.entityUrn, {}), (
                    f"{m.entityUrn} {m.aspectName} twice"
                )
                out.setdefault(m.entityUrn, {})[m.aspectName] = m.aspect
    return out


def our_files(store: LocalStore) -> list[pathlib.Path]:
    return sorted((store.root / "src" / "mce").glob("*.json"))


def of_type(aspects: dict, prefix: str) -> set[str]:
    return {u for u in aspects if u.startswith(prefix)}


def fields(aspects: dict, urn: str) -> list[tuple]:
    return [
        (f.fieldPath, f.nullable, f.description, bool(f.isPartOfKey)) for f in aspects[urn]["schemaMetadata"].fields
    ]


def foreign_keys(aspects: dict, urn: str) -> list[tuple]:
    return sorted(
        (fk.name, fk.foreignDataset, tuple(fk.foreignFields), tuple(fk.sourceFields))
        for fk in aspects[urn]["schemaMetadata"].foreignKeys or []
    )


def is_view(aspects: dict, urn: str) -> bool:
    return "View" in aspects[urn]["subTypes"].typeNames


def column_lineage(aspects: dict, urn: str) -> set[tuple]:
    lineage = aspects[urn].get("upstreamLineage")
    if lineage is None:
        return set()
    return {(tuple(f.downstreams), tuple(sorted(f.upstreams))) for f in lineage.fineGrainedLineages or []}


def upstream_datasets(aspects: dict, urn: str) -> set[str]:
    lineage = aspects[urn].get("upstreamLineage")
    return {u.dataset for u in lineage.upstreams} if lineage else set()


@pytest.fixture
def both(schema, tmp_path):
    schema.load_sample()
    create_awkward(schema)
    schema.grant()
    builtin = load_aspects([run_builtin(schema, tmp_path)])
    store, results = run_ours(schema, tmp_path)
    return builtin, load_aspects(our_files(store)), results


def test_same_entities_fields_keys_and_lineage_as_builtin(both, schema):
    builtin, ours, _ = both
    datasets = of_type(ours, "urn:li:dataset:")
    assert of_type(builtin, "urn:li:dataset:") == datasets
    assert of_type(builtin, "urn:li:container:") == of_type(ours, "urn:li:container:")
    # the built-in's extra entities are only its view query entities
    assert {u.split(":")[2] for u in set(builtin) - set(ours)} <= {"query"}
    assert len(datasets) == 10 + 6  # sample (5 + 3 + 1 + 1) + awkward (4 tables + 2 views)
    awkward = UrnRules().dataset(schema.db(AWKWARD_DB), "Mixed Case-Tbl$")
    assert awkward in datasets

    views = {u for u in datasets if is_view(ours, u)}
    assert {u for u in datasets if is_view(builtin, u)} == views and len(views) == 4

    for urn in sorted(datasets):
        b, o = builtin[urn], ours[urn]
        for aspect in ("status", "container", "subTypes", "browsePathsV2"):
            assert b[aspect] == o[aspect], (urn, aspect)
        assert (b["datasetProperties"].name, b["datasetProperties"].description) == (
            o["datasetProperties"].name,
            o["datasetProperties"].description,
        ), urn
        assert b["schemaMetadata"].schemaName == o["schemaMetadata"].schemaName
        assert foreign_keys(builtin, urn) == foreign_keys(ours, urn), urn
        if urn in views:
            # intended: the built-in drops nullability and comments of view columns; paths and keys agree
            assert [f[0] for f in fields(builtin, urn)] == [f[0] for f in fields(ours, urn)], urn
            assert [f[3] for f in fields(builtin, urn)] == [f[3] for f in fields(ours, urn)], urn
            assert all(nullable and desc is None for _, nullable, desc, _ in fields(builtin, urn))
            assert upstream_datasets(builtin, urn) == upstream_datasets(ours, urn), urn
            assert column_lineage(builtin, urn) == column_lineage(ours, urn), urn
            assert column_lineage(ours, urn), urn
        else:
            # known built-in bug (SQLAlchemy parses SHOW CREATE TABLE and keeps a column name's backtick doubled)
            assert [(p.replace("``", "`"), *rest) for p, *rest in fields(builtin, urn)] == fields(ours, urn), urn
            # every property the built-in sets, we set the same way
            assert b["datasetProperties"].customProperties.items() <= o["datasetProperties"].customProperties.items()

    for urn in of_type(ours, "urn:li:container:"):
        b, o = builtin[urn], ours[urn]
        for aspect in ("status", "subTypes", "browsePathsV2", "dataPlatformInstance"):
            assert b[aspect] == o[aspect], (urn, aspect)
        assert b["containerProperties"].name == o["containerProperties"].name
        assert b["containerProperties"].customProperties.items() <= o["containerProperties"].customProperties.items()

    # the FKs that matter most: composite primary key, a reserved-word target, a cross-database reference
    shop_customers = UrnRules().dataset(schema.db("shop"), "customers")
    assert {fk[1] for fk in foreign_keys(ours, awkward)} == {
        shop_customers,
        UrnRules().dataset(schema.db(AWKWARD_DB), "order"),
    }
    assert [f[0] for f in fields(ours, awkward) if f[3]] == ["id", "Ünïcode Col"]


def test_intended_differences_are_the_documented_ones(both):
    """What the README lists as intended differences, proven on real output (fails if either side changes)."""
    builtin, ours, _ = both
    orders = next(u for u in ours if u.endswith("_shop.orders,PROD)"))
    b_types = [f.nativeDataType for f in builtin[orders]["schemaMetadata"].fields]
    o_types = [f.nativeDataType for f in ours[orders]["schemaMetadata"].fields]
    assert o_types[:4] == [
        "bigint(20) unsigned",
        "bigint(20) unsigned",
        "enum('new','paid','shipped','cancelled')",
        "decimal(12,2)",
    ]
    assert b_types[:4] == [
        "BIGINT(20) UNSIGNED",
        "BIGINT(20) UNSIGNED",
        "ENUM('new','paid','shipped','cancelled')",
        "DECIMAL(12, 2)",
    ]
    assert ours[orders]["schemaMetadata"].primaryKeys == ["id"] and not builtin[orders]["schemaMetadata"].primaryKeys
    assert json.loads(ours[orders]["schemaMetadata"].fields[4].jsonProps)["extra"] == "VIRTUAL GENERATED"
    assert {"engine", "table_type"} <= set(ours[orders]["datasetProperties"].customProperties)
    # row estimates and sizes are a datasetProfile (as the built-in's with profiling on), not properties
    assert "datasetProfile" in ours[orders] and "datasetProfile" not in builtin[orders]
    assert not {"row_estimate", "data_length"} & set(ours[orders]["datasetProperties"].customProperties)

    paid = next(u for u in ours if u.endswith("_shop.paid_orders,PROD)"))
    assert [f.nullable for f in ours[paid]["schemaMetadata"].fields] == [False] * 4
    assert ours[paid]["schemaMetadata"].fields[2].description == "Login e-mail, unique"
    o_sql, b_sql = ours[paid]["viewProperties"].viewLogic, builtin[paid]["viewProperties"].viewLogic
    assert re.sub(r"`[^`]*_shop`\.", "", o_sql) == b_sql
    b_up, o_up = builtin[paid]["upstreamLineage"].upstreams, ours[paid]["upstreamLineage"].upstreams
    assert all(u.query for u in b_up) and not any(u.query for u in o_up)
    assert all(u.auditStamp.time == 0 for u in o_up)

    backtick = next(u for u in ours if u.endswith(".back`tick,PROD)"))
    assert [f.fieldPath for f in ours[backtick]["schemaMetadata"].fields] == ["a`b"]  # the column's real name
    assert [f.fieldPath for f in builtin[backtick]["schemaMetadata"].fields] == ["a``b"]


@pytest.mark.slow
def test_same_urns_with_a_platform_instance(schema, tmp_path):
    schema.load_sample()
    create_awkward(schema)
    schema.grant()
    builtin = load_aspects([run_builtin(schema, tmp_path, platform_instance="eu-1")])
    store, _ = run_ours(schema, tmp_path, platform_instance="eu-1")
    ours = load_aspects(our_files(store))
    datasets = of_type(ours, "urn:li:dataset:")
    assert of_type(builtin, "urn:li:dataset:") == datasets and len(datasets) == 16
    assert all(",eu-1." in u for u in datasets)
    assert of_type(builtin, "urn:li:container:") == of_type(ours, "urn:li:container:")
    for urn in datasets:
        assert builtin[urn]["dataPlatformInstance"] == ours[urn]["dataPlatformInstance"], urn
        assert builtin[urn]["browsePathsV2"] == ours[urn]["browsePathsV2"], urn
        assert foreign_keys(builtin, urn) == foreign_keys(ours, urn), urn
        assert upstream_datasets(builtin, urn) == upstream_datasets(ours, urn), urn
    for urn in of_type(ours, "urn:li:container:"):
        assert builtin[urn]["dataPlatformInstance"] == ours[urn]["dataPlatformInstance"], urn
        assert builtin[urn]["browsePathsV2"] == ours[urn]["browsePathsV2"], urn


def test_every_lineage_upstream_is_a_urn_we_emit(both, schema):
    _, ours, results = both
    rules = UrnRules()
    emitted = of_type(ours, "urn:li:dataset:")
    # what the same rules produce for every table of the schema, whichever file holds it
    known = {rules.dataset(r.database, t.name) for r in results for t in r.snapshot.tables}
    assert known == emitted
    seen = 0
    for urn, aspects in ours.items():
        lineage = aspects.get("upstreamLineage")
        if lineage is None:
            continue
        for up in lineage.upstreams:
            assert up.dataset in emitted, (urn, up.dataset)
            seen += 1
        for fine in lineage.fineGrainedLineages or []:
            assert {SchemaFieldUrn.from_string(f).parent for f in fine.upstreams} <= emitted, urn
            assert {SchemaFieldUrn.from_string(f).parent for f in fine.downstreams} == {urn}
    assert seen == 2 + 2 + 2 + 1  # paid_orders, open_invoices, v-1 $view, x-db view (cross-database)
    xdb = rules.dataset(schema.db(AWKWARD_DB), "x-db view")
    assert upstream_datasets(ours, xdb) == {rules.dataset(schema.db("shop"), "orders")}


def test_mariadb_sequences_and_system_versioned_tables(schema, tmp_path):
    """System-versioned tables conform. Intended difference: a MariaDB SEQUENCE is a dataset of ours (table_type
    SEQUENCE, its columns as the server lists them); the built-in source skips sequences altogether."""
    db = schema.create(
        "kinds",
        "CREATE SEQUENCE `seq-1`",
        "CREATE TABLE sv (id INT PRIMARY KEY, x INT COMMENT 'versioned') WITH SYSTEM VERSIONING",
        "CREATE TABLE plain (id INT)",
    )
    schema.grant()
    builtin = load_aspects([run_builtin(schema, tmp_path)])
    store, _ = run_ours(schema, tmp_path)
    ours = load_aspects(our_files(store))
    rules = UrnRules()
    sv, plain, seq = (rules.dataset(db, t) for t in ("sv", "plain", "seq-1"))
    assert of_type(builtin, "urn:li:dataset:") == {sv, plain}
    assert of_type(ours, "urn:li:dataset:") == {sv, plain, seq}
    for urn in (sv, plain):
        assert fields(builtin, urn) == fields(ours, urn)
        assert builtin[urn]["subTypes"] == ours[urn]["subTypes"]
    assert ours[sv]["datasetProperties"].customProperties["table_type"] == "SYSTEM VERSIONED"
    assert ours[seq]["datasetProperties"].customProperties["table_type"] == "SEQUENCE"
    assert fields(ours, seq)[0][0] == "next_not_cached_value"


def test_procedures_domains_and_profiles_as_builtin(schema, tmp_path):
    """Stored procedures (DataFlow + DataJobs), domains and table-level profiles against the built-in with its
    `include_stored_procedures`, `domain` and `profiling.profile_table_level_only`. Ours reads as the least-privilege
    account plus the optional routine grant (SELECT ON mysql.proc: routine definitions only).

    Intended differences, asserted: ours also emits functions (subtype Function; the built-in lists procedures only)
    and a routine's comment and properties; its procedure lineage names `db.table` (the built-in passes the database
    as sqlglot's default_db and gets `db.db.table`, which no dataset has); sizeInBytes is data plus index length
    (the built-in's is data_length alone)."""
    from metadata_assets.source_config import Pattern

    db = schema.create(
        "proc",
        "CREATE TABLE orders (id INT PRIMARY KEY, total INT, note VARCHAR(20), KEY by_total (total))",
        "CREATE TABLE audit (order_id INT, at_total INT)",
        "INSERT INTO orders VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c')",
        "ANALYZE TABLE orders",
        "CREATE PROCEDURE archive(IN n INT) BEGIN INSERT INTO audit SELECT id, total FROM orders WHERE id = n; END",
        "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
        "CREATE VIEW big AS SELECT id FROM orders WHERE total > 15",
    )
    schema.grant()
    schema.server.execute(f"GRANT SELECT ON mysql.proc TO '{schema.user}'@'%'")
    domain = {"urn:li:domain:ops": {"allow": [".*"]}, "urn:li:domain:sales": {"allow": [rf"{re.escape(db)}\.orders$"]}}
    builtin = load_aspects(
        [
            run_builtin(
                schema,
                tmp_path,
                include_stored_procedures=True,
                domain=domain,
                profiling={"enabled": True, "profile_table_level_only": True},
            )
        ],
        repeats_equal=True,
    )
    store, _ = run_ours(schema, tmp_path, domain={k: Pattern(**v) for k, v in domain.items()})
    ours = load_aspects(our_files(store))

    rules = UrnRules()
    orders, audit, big = (rules.dataset(db, t) for t in ("orders", "audit", "big"))
    container = rules.container(db)
    # domains: the same on every dataset and the database container (the last allowing domain wins, as built in)
    for urn in (orders, audit, big, container):
        assert ours[urn]["domains"] == builtin[urn]["domains"], urn
    assert ours[orders]["domains"].domains == ["urn:li:domain:sales"]
    assert ours[audit]["domains"].domains == ["urn:li:domain:ops"]

    # profiles: row count and column count as the built-in gives them; views have none
    for urn in (orders, audit):
        o, b = ours[urn]["datasetProfile"], builtin[urn]["datasetProfile"]
        assert (o.rowCount, o.columnCount) == (b.rowCount, b.columnCount), urn
        assert o.sizeInBytes >= b.sizeInBytes
    assert ours[orders]["datasetProfile"].rowCount == 3
    assert "datasetProfile" not in ours[big] and "datasetProfile" not in builtin[big]
    snapshot = json.loads(store.read_bytes(snapshot_key("src", db)))
    (t,) = [t for t in snapshot["tables"] if t["name"] == "orders"]
    assert ours[orders]["datasetProfile"].sizeInBytes == t["data_length"] + t["index_length"]
    assert builtin[orders]["datasetProfile"].sizeInBytes == t["data_length"]
    assert ours[orders]["datasetProperties"].customProperties["indexes"] == "by_total BTREE (total)"

    # procedures: the same flow and the same job, aspect for aspect
    flows = of_type(builtin, "urn:li:dataFlow:")
    assert flows == of_type(ours, "urn:li:dataFlow:") == {f"urn:li:dataFlow:(mysql,{db}.stored_procedures,PROD)"}
    (flow,) = flows
    # status and browsePathsV2 too (the built-in's workunit processors add them): browsable under the database
    for aspect in ("dataFlowInfo", "subTypes", "container", "status", "browsePathsV2"):
        assert ours[flow][aspect] == builtin[flow][aspect], aspect
    archive = f"urn:li:dataJob:({flow},archive)"
    twice = f"urn:li:dataJob:({flow},twice)"
    assert of_type(builtin, "urn:li:dataJob:") == {archive}
    assert of_type(ours, "urn:li:dataJob:") == {archive, twice}
    for aspect in ("subTypes", "container", "dataTransformLogic", "status", "browsePathsV2"):
        assert ours[archive][aspect] == builtin[archive][aspect], aspect
    assert ours[twice]["browsePathsV2"] == ours[archive]["browsePathsV2"] and ours[twice]["status"].removed is False
    o_info, b_info = ours[archive]["dataJobInfo"], builtin[archive]["dataJobInfo"]
    assert (o_info.name, o_info.type) == (b_info.name, b_info.type)
    assert b_info.customProperties.items() <= o_info.customProperties.items()
    assert ours[twice]["subTypes"].typeNames == ["Function"]
    io_o, io_b = ours[archive]["dataJobInputOutput"], builtin[archive]["dataJobInputOutput"]
    assert io_o.inputDatasets == [orders] and io_o.outputDatasets == [audit]  # datasets we emit
    two_tier = lambda urns: [u.replace(f",{db}.{db}.", f",{db}.") for u in urns]
    assert (two_tier(io_b.inputDatasets), two_tier(io_b.outputDatasets)) == ([orders], [audit])
