"""DataHub Lite's browse index kept per pushed entity (datahub/lite_index.py) equals Lite's own full reindex(), after
real pushes that add, change, move (view -> table) and drop tables and databases; `ls` sees each push at once."""

import shutil
import sqlite3

from datahub.lite.lite_util import get_datahub_lite

from metadata_assets.datahub.push import forget_database, push
from metadata_assets.datahub.sinks import LiteSink, lite_reader
from metadata_assets.extract import extract, rules_for
from metadata_assets.storage.store import open_store


def edges(path) -> set[tuple]:
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT src_id, relnship, dst_id, dst_label FROM metadata_edge_v2"))
    finally:
        conn.close()


def fully_reindexed(path, tmp_path) -> set[tuple]:
    """The oracle: the same Lite file, copied, with acryl-datahub's own reindex() of every entity."""
    copy = tmp_path / "oracle.sqlite"
    shutil.copy(path, copy)
    lite = get_datahub_lite({"type": "sqlite", "config": {"file": str(copy)}})
    lite.reindex()
    lite.close()  # reindexes once more: the same
    return edges(copy)


def test_per_entity_index_equals_a_full_reindex_after_each_push(schema, tmp_path):
    shop, billing, analytics, _ = schema.load_sample()
    schema.grant()
    cfg = schema.project(tmp_path)
    source, store = cfg.sources[0], open_store(cfg.storage.uri)
    lite_path = cfg.datahub.lite.path

    def refresh_and_push(databases):
        assert all(r.ok for r in extract(source, databases, store))
        sink = LiteSink(cfg.datahub.lite)
        try:
            report = push(store, "src", rules_for(source), sink, max_removal_share=1.0)
        finally:
            sink.close()
        assert report.databases_pushed or report.databases_removed
        assert edges(lite_path) == fully_reindexed(lite_path, tmp_path)
        return report

    refresh_and_push([shop, billing, analytics])
    lite = lite_reader(lite_path)
    root = {b.name for b in lite.ls("/databases/mysql/instances/default/databases/")}
    lite.close()
    assert {shop, billing, analytics} <= root

    # a table added, one dropped, a view replaced by a table of the same name (it moves from views to tables,
    # and the views folder of billing is left empty: gone, as in a full reindex)
    schema.server.execute(
        f"CREATE TABLE `{shop}`.refunds (id INT PRIMARY KEY)",
        f"DROP TABLE `{analytics}`.daily_sales",
        f"DROP VIEW `{billing}`.open_invoices",
        f"CREATE TABLE `{billing}`.open_invoices (id INT PRIMARY KEY)",
    )
    refresh_and_push([shop, billing, analytics])
    lite = lite_reader(lite_path)
    try:
        base = f"/databases/mysql/instances/default/databases/{billing}"
        assert {b.name for b in lite.ls(f"{base}/")} == {"tables"}
        assert "open_invoices" in {b.name for b in lite.ls(f"{base}/tables/")}
        assert "refunds" in {b.name for b in lite.ls(f"/databases/mysql/instances/default/databases/{shop}/tables/")}
    finally:
        lite.close()

    # a database dropped: its entities are soft-deleted
    forget_database(store, "src", analytics)
    refresh_and_push([shop, billing])
