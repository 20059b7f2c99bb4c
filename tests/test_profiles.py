"""Table statistics as DataHub's datasetProfile, and the schema parts DataHub has no aspect for (indexes, check
constraints, triggers), from information_schema alone (real MariaDB, real DataHub Lite).

The figures move with the data, so they stay out of the schema hash; a database's file is rewritten, and pushed,
only when a table's row estimate or size moved by more than the source's `profile.change_share` and its floor.
"""

from metadata_assets.catalog import figures_moved
from metadata_assets.config import LiteTarget
from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.datahub.push import push
from metadata_assets.datahub.sinks import LiteSink, lite_reader
from metadata_assets.diff import diff
from metadata_assets.extract import extract, rules_for
from metadata_assets.source_config import Profile
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore


def _profile(lite_path, urn):
    lite = lite_reader(str(lite_path))
    try:
        return lite.get(urn, aspects=None, typed=True).get("datasetProfile")
    finally:
        lite.close()


def _push(store, source, lite_path):
    sink = LiteSink(LiteTarget(path=str(lite_path)))
    try:
        return push(store, "src", rules_for(source), sink, max_removal_share=1.0)
    finally:
        sink.close()


def test_a_profile_is_pushed_when_the_statistics_moved_and_not_for_small_moves(schema, tmp_path):
    db = schema.create(
        "prof", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", "CREATE VIEW w AS SELECT id FROM t"
    )
    schema.grant()
    source = schema.source()
    store, lite = LocalStore(tmp_path / "store"), tmp_path / "lite.sqlite"
    urn = rules_for(source).dataset(db, "t")

    (first,) = extract(source, [db], store)
    assert _push(store, source, lite).databases_pushed == [db]
    assert (_profile(lite, urn).rowCount, _profile(lite, urn).columnCount) == (0, 2)
    assert _profile(lite, rules_for(source).dataset(db, "w")) is None  # a view has no statistics

    # 5,000 rows: more than 10% and more than 1,000 rows: the file is rewritten with them, its schema the same
    schema.server.execute(
        f"INSERT INTO `{db}`.t SELECT seq, REPEAT('x', 40) FROM `{db}`.seq_1_to_5000", f"ANALYZE TABLE `{db}`.t"
    )
    (grown,) = extract(source, [db], store)
    assert grown.rewritten and grown.schema_hash == first.schema_hash and grown.data_version != first.data_version
    assert diff(grown.previous, grown.snapshot).empty  # what Dagit shows as changed: nothing of the schema
    rows = grown.snapshot.tables[0].row_estimate
    assert 4000 <= rows <= 6000  # InnoDB's estimate
    report = _push(store, source, lite)
    assert report.databases_pushed == [db]
    profile = _profile(lite, urn)
    assert profile.rowCount == rows and profile.sizeInBytes > 16384
    assert profile.timestampMillis == grown.snapshot.read_at_ms

    # 100 more rows: under both the share and the floor: nothing rewritten, nothing pushed
    schema.server.execute(
        f"INSERT INTO `{db}`.t SELECT seq, 'y' FROM `{db}`.seq_5001_to_5100", f"ANALYZE TABLE `{db}`.t"
    )
    (same,) = extract(source, [db], store)
    assert not same.rewritten and same.data_version == grown.data_version
    assert _push(store, source, lite).databases_pushed == []
    assert _profile(lite, urn).rowCount == rows


def test_what_counts_as_moved():
    floors = Profile().floors  # 1,000 rows, 1 MiB
    assert not figures_moved({"t": [10_000, 1 << 30]}, {"t": [10_999, 1 << 30]}, 0.1, floors)  # 9.99%
    assert figures_moved({"t": [10_000, 1 << 30]}, {"t": [11_001, 1 << 30]}, 0.1, floors)
    assert not figures_moved({"t": [0, 16384]}, {"t": [900, 16384]}, 0.1, floors)  # under the row floor
    assert figures_moved({"t": [0, 16384]}, {"t": [900, 16384]}, 0, (0, 0))  # no floor: any move
    assert not figures_moved({"t": [5, 16384]}, {"t": [5, 16384]}, 0, (0, 0))
    assert figures_moved({"t": [5, 16384]}, {"t": [5, 16384], "u": [0, 16384]}, 0.1, floors)  # a new table
    assert figures_moved({"t": [None, 16384]}, {"t": [5, 16384]}, 0.1, floors)  # a figure appeared
    assert figures_moved(None, {}, 0.1, floors)  # never recorded


def test_profiles_off_emit_none_and_keep_statistics_out_of_the_version(schema, tmp_path):
    db = schema.create("noprof", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    source = schema.source(profile=Profile(enabled=False))
    store = LocalStore(tmp_path)
    (first,) = extract(source, [db], store)
    assert b'"datasetProfile"' not in store.read_bytes(mce_key("src", db))
    schema.server.execute(f"INSERT INTO `{db}`.t SELECT seq FROM `{db}`.seq_1_to_5000", f"ANALYZE TABLE `{db}`.t")
    (second,) = extract(source, [db], store)
    assert not second.rewritten and second.data_version == first.data_version
    assert rules_for(source).version_parts() != rules_for(schema.source()).version_parts()


def test_indexes_checks_and_triggers_as_properties_triggers_only_with_the_trigger_privilege(schema, tmp_path):
    db = schema.create(
        "parts",
        "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10), UNIQUE KEY ua (a), KEY kb (b(3), a), "
        "CONSTRAINT positive CHECK (a > 0))",
        "CREATE TABLE log (x INT)",
        "CREATE TRIGGER t_log AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id)",
    )
    schema.grant()
    (r,) = extract(schema.source(), [db], LocalStore(tmp_path / "a"))
    (t,) = [t for t in r.snapshot.tables if t.name == "t"]
    assert [(i.name, i.columns, i.unique) for i in t.indexes] == [("kb", ("b(3)", "a"), False), ("ua", ("a",), True)]
    assert [(c.name, c.clause) for c in t.checks] == [("positive", "`a` > 0")]
    assert t.triggers == []  # TRIGGERS lists nothing without the TRIGGER privilege (which could create them)
    schema.server.execute(f"GRANT TRIGGER ON `{db}`.* TO '{schema.user}'@'%'")
    (r,) = extract(schema.source(), [db], LocalStore(tmp_path / "b"))
    (t,) = [t for t in r.snapshot.tables if t.name == "t"]
    assert [(x.name, x.timing, x.event) for x in t.triggers] == [("t_log", "AFTER", "INSERT")]
    mcps = read_mcps(LocalStore(tmp_path / "b").read_bytes(mce_key("src", db)))
    props = next(
        m.aspect.customProperties
        for m in mcps
        if m.aspectName == "datasetProperties" and m.entityUrn == rules_for(schema.source()).dataset(db, "t")
    )
    assert props["indexes"] == "kb BTREE (b(3), a); ua UNIQUE BTREE (a)"
    assert props["check_constraints"] == "positive: `a` > 0" and props["triggers"] == "t_log: AFTER INSERT"
