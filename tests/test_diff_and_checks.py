"""The diff between two snapshots, its metadata on each materialization, and the per-partition asset checks."""

import copy

import pytest
from dagster import AssetCheckKey, AssetCheckSeverity, DagsterInstance

from metadata_assets.catalog import Column, Database, Table
from metadata_assets.defs.checks import BREAKING, COVERAGE, schema_change_metadata
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import mce_asset_key
from metadata_assets.defs.outcome import materialization
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.diff import diff, type_change_breaks
from metadata_assets.extract import extract
from metadata_assets.storage.store import LocalStore


def col(name, ordinal, column_type="int(11)", nullable=True, default=None, comment=""):
    return Column(
        name=name,
        ordinal=ordinal,
        column_type=column_type,
        data_type=column_type.split("(")[0],
        nullable=nullable,
        default=default,
        comment=comment,
    )


def sample() -> Database:
    return Database(
        name="db",
        tables=[
            Table(
                name="orders",
                table_type="BASE TABLE",
                comment="orders",
                columns=[
                    col("id", 1, nullable=False),
                    col("note", 2, "varchar(64)", default="'x'", comment="free text"),
                    col("amount", 3, "decimal(10,2)"),
                ],
            ),
            Table(name="gone", table_type="BASE TABLE", columns=[col("id", 1)]),
            Table(name="v_old", table_type="VIEW", columns=[col("id", 1)]),
        ],
    )


def test_no_previous_snapshot_is_a_baseline_and_identical_snapshots_diff_empty():
    d = diff(None, sample())
    assert d.baseline and d.breaking == [] and set(d.counts().values()) == {0}
    same = diff(sample(), sample())
    assert same.empty and same.markdown() == "No schema change since the previous materialization."


def test_diff_lists_every_kind_of_change():
    old, new = sample(), copy.deepcopy(sample())
    orders = new.tables[0]
    orders.columns = [
        col("id", 1, nullable=False),
        col("note", 2, "varchar(32)", nullable=False, default="'y'", comment="short text"),
        col("created", 3, "datetime"),
    ]
    orders.comment = "all orders"
    new.tables = [
        orders,
        new.tables[2],
        Table(name="fresh", table_type="BASE TABLE", columns=[col("id", 1)]),
        Table(name="v_new", table_type="VIEW", columns=[col("id", 1)]),
    ]
    new.tables = [t for t in new.tables if t.name != "v_old"]
    d = diff(old, new)
    assert (d.tables_added, d.tables_removed, d.views_added, d.views_removed) == (
        ["fresh"],
        ["gone"],
        ["v_new"],
        ["v_old"],
    )
    kinds = {(c.column, c.kind) for c in d.columns}
    assert kinds == {
        ("amount", "removed"),
        ("created", "added"),
        ("note", "retyped"),
        ("note", "nullability"),
        ("note", "default"),
        ("note", "comment"),
    }
    assert d.counts() == {
        "tables_added": 1,
        "tables_removed": 1,
        "views_added": 1,
        "views_removed": 1,
        "columns_added": 1,
        "columns_removed": 1,
        "columns_changed": 1,
        "breaking_changes": 5,
    }
    assert d.breaking == [
        "table `gone` dropped",
        "view `v_old` dropped",
        "column `orders`.`amount` removed (was decimal(10,2))",
        "column `orders`.`note` type changed: `varchar(64)` → `varchar(32)` (narrowed type)",
        "column `orders`.`note` became NOT NULL",
    ]
    md = d.markdown()
    for text in (
        "**Tables added:** `fresh`",
        "**Views removed:** `v_old`",
        "`orders` comment changed",
        "column `orders`.`note` default changed: `'x'` → `'y'`",
        "**Breaking changes:**",
    ):
        assert text in md


@pytest.mark.parametrize(
    "before,after,breaks",
    [
        ("int(11)", "bigint(20)", None),
        ("bigint(20)", "int(11)", "narrowed type"),
        ("int(10) unsigned", "int(11)", "narrowed type"),
        ("int(10) unsigned", "bigint(20)", None),
        ("int(11)", "int(10)", None),  # display width only
        ("varchar(64)", "varchar(128)", None),
        ("varchar(64)", "varchar(32)", "narrowed type"),
        ("varchar(64)", "text", None),
        ("text", "varchar(255)", "narrowed type"),
        ("decimal(10,2)", "decimal(12,2)", None),
        ("decimal(10,2)", "decimal(10,1)", "narrowed type"),
        ("decimal(10,2)", "decimal(10,4)", "narrowed type"),
        ("double", "float", "narrowed type"),
        ("enum('a','b')", "enum('a','b','c')", None),
        ("enum('a','b')", "enum('a')", "narrowed type"),
        ("datetime(6)", "datetime", "narrowed type"),
        ("int(11)", "varchar(20)", "incompatible type"),
        ("date", "datetime", "incompatible type"),
    ],
)
def test_type_narrowing(before, after, breaks):
    assert type_change_breaks(before, after) == breaks


def test_materialization_records_the_exact_change_against_real_mariadb(schema, tmp_path):
    db = schema.create(
        "m",
        "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'id', email VARCHAR(100) COMMENT 'mail')",
        "CREATE TABLE keep (id INT)",
    )
    schema.grant()
    source, store = schema.source(), LocalStore(tmp_path)
    key = mce_asset_key(source)
    (first,) = extract(source, [db], store)
    meta = materialization(key, first, source).metadata
    rows = lambda m: [r.data for r in m["schema_diff"].value.records]
    assert meta["schema_changed"].value is False
    assert rows(meta) == [
        {"change": "first snapshot", "object": db, "detail": "nothing to compare with", "breaking": ""}
    ]
    assert (meta["documented_tables_pct"].value, meta["documented_columns_pct"].value) == (0.0, 66.7)
    assert meta["tables_and_views"].value.splitlines() == [
        "| name | kind | columns | comment | row estimate | DataHub |",
        "|---|---|---|---|---|---|",
        "| `keep` | base table | 1 |  | ~0 |  |",
        "| `t` | base table | 2 |  | ~0 |  |",
    ]
    assert meta["checks"].value.splitlines() == [
        "breaking_schema_changes: passed",
        "documentation_coverage: WARN (documentation below 50%: tables 0%)",
        "least_privilege: passed",
    ]
    assert not any(k.startswith("diff_") for k in meta) and "breaking_changes" not in meta

    schema.server.execute(
        f"ALTER TABLE `{db}`.t DROP COLUMN email, ADD COLUMN phone VARCHAR(20) NOT NULL",
        f"ALTER TABLE `{db}`.keep COMMENT 'kept', ADD COLUMN t_id INT, "
        f"ADD CONSTRAINT fk_t FOREIGN KEY (t_id) REFERENCES t (id) ON DELETE CASCADE",
    )
    (second,) = extract(source, [db], store)
    meta = materialization(key, second, source, ui_url="https://datahub.example/").metadata
    assert meta["schema_changed"].value is True
    assert rows(meta) == [
        {"change": "table comment", "object": "keep", "detail": "'' → kept", "breaking": ""},
        {
            "change": "foreign key fk_t",
            "object": "keep",
            "detail": f"none → (t_id) → {db}.t(id) ON DELETE CASCADE ON UPDATE RESTRICT",
            "breaking": "",
        },
        {"change": "index fk_t", "object": "keep", "detail": "none → (t_id)", "breaking": ""},
        {"change": "column added", "object": "keep.t_id", "detail": "int(11)", "breaking": ""},
        {"change": "column removed", "object": "t.email", "detail": "varchar(100)", "breaking": "column dropped"},
        {"change": "column added", "object": "t.phone", "detail": "varchar(20)", "breaking": ""},
    ]
    assert meta["tables_and_views"].value.splitlines()[2] == (
        "| `keep` | base table | 2 | kept | ~0 | [open](https://datahub.example/dataset/"
        f"urn%3Ali%3Adataset%3A%28urn%3Ali%3AdataPlatform%3Amysql%2C{db}.keep%2CPROD%29) |"
    )
    assert meta["checks"].value.splitlines()[0] == (
        "breaking_schema_changes: WARN (1 breaking change(s) since the previous snapshot)"
    )

    (third,) = extract(source, [db], store)
    meta = materialization(key, third, source).metadata
    assert meta["schema_changed"].value is False and rows(meta) == []


def _evaluations(result, check_name):
    """The run's evaluations of one check, by partition."""
    return {e.partition: e for e in result.get_asset_check_evaluations() if e.check_name == check_name}


def test_checks_warn_per_partition_on_drop_column_and_low_coverage(schema, tmp_path):
    from dagster import Definitions

    documented = schema.create(
        "doc", "CREATE TABLE t (id INT COMMENT 'id', name VARCHAR(9) COMMENT 'n') COMMENT 'documented'"
    )
    bare = schema.create("bare", "CREATE TABLE t (id INT, name VARCHAR(9))")
    schema.grant()
    cfg = schema.project(tmp_path, coverage_threshold=0.5)
    source = cfg.sources[0]
    key = mce_asset_key(source)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(f"{source.name}_databases", [documented, bare])
    job = Definitions(assets=[build_mce_asset(SourceSetup.of(cfg, source))]).resolve_implicit_global_asset_job_def()

    def run_range():
        result = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": documented, "dagster/asset_partition_range_end": bare},
        )
        assert result.success
        return result

    result = run_range()
    coverage = _evaluations(result, COVERAGE)
    assert coverage[documented].passed and not coverage[bare].passed
    assert coverage[bare].severity == AssetCheckSeverity.WARN
    assert "tables 0%" in coverage[bare].description and "columns 0%" in coverage[bare].description
    assert [e.passed for e in _evaluations(result, BREAKING).values()] == [True, True]

    schema.server.execute(f"ALTER TABLE `{bare}`.t DROP COLUMN name")
    breaking = _evaluations(run_range(), BREAKING)
    assert breaking[documented].passed
    assert not breaking[bare].passed and breaking[bare].severity == AssetCheckSeverity.WARN
    assert breaking[bare].metadata["breaking_changes"].value == "- column removed `t.name`: column dropped"
    latest = instance.fetch_materializations(key, limit=10).records
    assert breaking[bare].target_materialization_data.storage_id in {r.storage_id for r in latest}
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([AssetCheckKey(key, BREAKING)])
    assert check  # Dagster's check storage knows the execution (what Dagit's Checks tab reads)
    info = {
        i.partition_key: i
        for i in instance.event_log_storage.get_asset_check_partition_info([AssetCheckKey(key, BREAKING)])
    }
    assert info[bare].is_current and info[documented].is_current  # Dagit shows them against the latest files

    # on demand (Dagit's "Execute" on the check): re-evaluated from the latest materialization's metadata
    checks_only = job.get_subset(
        asset_selection=set(), asset_check_selection={AssetCheckKey(key, BREAKING), AssetCheckKey(key, COVERAGE)}
    )
    again = checks_only.execute_in_process(instance=instance, partition_key=bare)
    on_demand = _evaluations(again, BREAKING)
    assert list(on_demand) == [bare] and not on_demand[bare].passed
    assert on_demand[bare].metadata["breaking_changes"].value == "- column removed `t.name`: column dropped"
    assert on_demand[bare].target_materialization_data == breaking[bare].target_materialization_data


def test_diff_with_hostile_names_renders_safely():
    """Names are the database's: HTML, backticks, `|` or newlines in them render literally in Dagit's markdown."""
    from dagster import AssetKey
    from markdown_it import MarkdownIt

    from metadata_assets.catalog import ForeignKey
    from metadata_assets.defs.checks import evaluate
    from metadata_assets.markdown import bullets

    evil, tick, pipe, img = "<svg onload=alert(1)>", "a`b", "x|y", "<img src=x onerror=alert(1)>"
    old = Database(
        name="db",
        tables=[
            Table(
                name=evil,
                table_type="BASE TABLE",
                comment="<b>c</b>",
                columns=[col(tick, 1), col(pipe, 2, "varchar(64)"), col("ends`", 3)],
            ),
            Table(name="gone`", table_type="BASE TABLE", columns=[col("id", 1)]),
            Table(name="v|<i>", table_type="VIEW", columns=[col("id", 1)]),
        ],
    )
    new = copy.deepcopy(old)
    t = new.tables[0]
    t.comment = "line\n# heading"
    t.columns = [col(pipe, 2, "varchar(8)", default="'<script>'"), col("ends`", 3), col(img, 4, "enum('<b>','|')")]
    t.foreign_keys = [
        ForeignKey(name="fk_<svg>|`", columns=(pipe,), ref_database="db", ref_table=evil, ref_columns=(tick,))
    ]
    new.tables = [t, Table(name="new\n| x | y |", table_type="BASE TABLE", columns=[col("id", 1)])]
    d = diff(old, new)

    assert d.breaking == [
        "table `` gone` `` dropped",
        "view `v|<i>` dropped",
        "column `<svg onload=alert(1)>`.``a`b`` removed (was int(11))",
        "column `<svg onload=alert(1)>`.`x|y` type changed: `varchar(64)` → `varchar(8)` (narrowed type)",
    ]
    parser = MarkdownIt("commonmark").enable("table")  # the commonmark preset lets raw HTML through

    def tokens_of(src):
        out, stack = [], list(parser.parse(src))
        while stack:
            tok = stack.pop(0)
            out.append(tok)
            stack[:0] = tok.children or []
        return out

    md = d.markdown()
    tokens = tokens_of(md)
    assert not {t.type for t in tokens} & {"html_inline", "html_block", "heading_open"}
    spans = [t.content for t in tokens if t.type == "code_inline"]
    for name in (
        evil,
        tick,
        pipe,
        img,
        "gone`",
        "v|<i>",
        "new | x | y |",
        "'<script>'",
        "enum('<b>','|')",
        "fk_<svg>|`",
        "line # heading",
        "<b>c</b>",
    ):
        assert name in spans, name
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 1 + len(d.tables) + len(d.columns)
    assert sum(t.type == "td_open" for t in tokens) == 2 * (len(rows) - 1)  # no `|` split a row
    breaking_items = md.split("**Breaking changes:**\n", 1)[1]
    assert breaking_items == bullets(d.breaking)

    # the check lists them from the diff table a materialization records (names as code spans, never HTML)
    (check, _, _) = evaluate(AssetKey("x"), "db", schema_change_metadata(d), 0.5)  # + coverage, least_privilege
    listed = check.metadata["breaking_changes"].value
    tokens = tokens_of(listed)
    assert not {t.type for t in tokens} & {"html_inline", "html_block"}
    assert sum(t.type == "list_item_open" for t in tokens) == len(d.breaking)
    assert [t.content for t in tokens if t.type == "code_inline"][:3] == ["gone`", "v|<i>", "<svg onload=alert(1)>.a`b"]
    # an old materialization's breaking_changes list (markdown already) is listed as it is, not escaped twice
    (old, _, _) = evaluate(AssetKey("x"), "db", {"breaking_changes": d.breaking}, 0.5)
    assert old.metadata["breaking_changes"].value == "\n".join(f"- {b}" for b in d.breaking)


def test_diff_names_indexes_checks_triggers_and_routines():
    from metadata_assets.catalog import CheckConstraint, Database, Index, Routine, Table, Trigger
    from metadata_assets.diff import diff

    def db(index_cols, check, trigger, routines):
        t = Table(
            name="t",
            table_type="BASE TABLE",
            indexes=[Index("ix", index_cols)],
            checks=[CheckConstraint("ck", check)] if check else [],
            triggers=[Trigger("tr", "AFTER", "INSERT", "SET @x = 1")] if trigger else [],
        )
        return Database(name="d", tables=[t], routines=routines)

    before = db(("a",), "`a` > 0", False, [Routine("p", "PROCEDURE", "BEGIN END"), Routine("f", "FUNCTION", "1")])
    after = db(("a", "b"), None, True, [Routine("p", "PROCEDURE", "BEGIN SELECT 1; END"), Routine("g", "FUNCTION")])
    d = diff(before, after)
    assert not d.empty and before.schema_hash() != after.schema_hash()
    text = [c.describe() for c in d.tables]
    assert text == [
        "`t` index ix changed: `(a)` → `(a, b)`",
        "`t` check constraint ck changed: `` `a` > 0 `` → none",
        "`t` trigger tr changed: none → `AFTER INSERT: SET @x = 1`",
        "routine `f` removed",
        "routine `g` added",
        "routine `p` changed",
    ]
    assert d.breaking == []  # none of these breaks a reader of the data


def test_the_picture_draws_tables_views_keys_lineage_and_changes():
    from metadata_assets.catalog import Database, ForeignKey, Table
    from metadata_assets.diagram import MAX_DRAWN, database_svg
    from metadata_assets.diff import diff

    view = Table(
        "paid",
        "VIEW",
        view_definition="CREATE VIEW `shop`.`paid` AS select 1 from `shop`.`orders` o "
        "join `shop`.`customers` c join `other`.`x`",
    )
    fk = ForeignKey("fk", ("c",), "shop", "customers", ("id",))
    before = Database(
        "shop",
        tables=[
            Table("customers", "BASE TABLE"),
            Table("old", "BASE TABLE"),
            Table("orders", "BASE TABLE", foreign_keys=[fk]),
            view,
        ],
    )
    after = Database(
        "shop",
        tables=[
            Table("customers", "BASE TABLE", comment="now documented"),
            Table("new <t>", "BASE TABLE"),
            Table("orders", "BASE TABLE", foreign_keys=[fk]),
            view,
        ],
    )
    svg = database_svg(after, diff(before, after))
    assert svg.count("<rect") == 5 and svg.count("marker-end") == 3  # 4 objects + the dropped one; 1 key, 2 reads
    assert "new &lt;t&gt; (added)" in svg and "customers (changed)" in svg and "old (removed)" in svg
    assert "orders</text>" in svg  # unchanged: no mark
    assert database_svg(Database("big", tables=[Table(f"t{i}", "BASE TABLE") for i in range(MAX_DRAWN + 1)])) is None
    assert database_svg(Database("empty")) is None
