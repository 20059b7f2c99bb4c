"""The benchmark's floor (bench/run.py) runs exactly the statements the reader runs, and nothing else.

The floor is what the core path is measured against: the information_schema statements alone, rows written to
JSON. It once ran the reader's first 4 statements while the reader had grown to 9: this test fails on any drift.
"""

import json
import sys
from pathlib import Path

from metadata_assets.sources.mysql import MySQLReader, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import run as bench_run  # noqa: E402  (bench/run.py)


def _recording(monkeypatch) -> list:
    seen: list = []
    original = MySQLReader.query

    def query(self, sql, args=()):
        seen.append((sql, tuple(args)))
        return original(self, sql, args)

    monkeypatch.setattr(MySQLReader, "query", query)
    return seen


def test_floor_runs_the_readers_statements(schema, tmp_path, monkeypatch):
    schema.load_sample()  # tables, views, foreign keys, indexes, a generated column
    schema.create(
        "more",
        "CREATE TABLE t (id INT PRIMARY KEY, n INT, CONSTRAINT n_pos CHECK (n > 0), KEY k (n))",
        "CREATE TABLE gone (id INT)",
        "CREATE VIEW v AS SELECT id, n FROM t",
        "CREATE VIEW broken AS SELECT id FROM gone",
        "DROP TABLE gone",
    )
    schema.grant()
    source = schema.source(batch_size=2)  # several batches
    seen = _recording(monkeypatch)

    conn = connect(source)
    reader = MySQLReader(conn)
    dbs = reader.list_databases(source)
    snapshots = [db for i in range(0, len(dbs), 2) for db in reader.read(dbs[i : i + 2], source)]
    conn.close()
    read_statements = list(seen)
    seen.clear()
    result = bench_run.floor_dump(source, tmp_path / "floor.json")
    floor_statements = list(seen)

    assert len(snapshots) == len(dbs) == result["databases"] == 5
    views = sum(t.is_view for db in snapshots for t in db.tables)
    assert views >= 3
    kinds = {sql.split(" FROM ")[1].split()[0] for sql, _ in read_statements if " FROM information_schema." in sql}
    assert {
        "information_schema.TABLES",
        "information_schema.COLUMNS",
        "information_schema.KEY_COLUMN_USAGE",
        "information_schema.REFERENTIAL_CONSTRAINTS",
        "information_schema.STATISTICS",
        "information_schema.CHECK_CONSTRAINTS",
        "information_schema.TRIGGERS",
    } <= kinds
    assert sum(sql.startswith("SHOW CREATE TABLE") for sql, _ in read_statements) == views
    assert floor_statements == read_statements  # the same statements, with the same arguments, in the same order
    assert result["reader_statements"] == len(read_statements)
    with open(tmp_path / "floor.json", encoding="utf-8") as f:
        text = f.read()
    assert text.count('{"schemata"') == 3  # a JSON document per batch
    first = json.JSONDecoder().raw_decode(text)[0]
    assert first["columns"] and first["views"] is not None
