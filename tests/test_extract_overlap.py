"""extract() reads the next batch while it writes the current one, over the one session, never two reads at once,
and leaves no reading thread behind when its caller stops early."""

import threading

from metadata_assets import extract as ex
from metadata_assets.sources.mysql import kind as mysql_kind
from metadata_assets.storage.store import LocalStore


def test_next_batch_is_read_while_this_one_is_written(schema, tmp_path, monkeypatch):
    dbs = [schema.create(f"d{i}", "CREATE TABLE t (id INT PRIMARY KEY)") for i in range(3)]
    schema.grant()
    source = schema.source(batch_size=1)
    reads_started: list[list[str]] = []
    second_read = threading.Event()
    active = []
    original_read = mysql_kind.MySQLSession.read_batch

    def read_batch(self, batch):
        active.append(1)
        assert len(active) == 1, "two reads at once on one session"
        reads_started.append(batch)
        if len(reads_started) == 2:
            second_read.set()
        try:
            return original_read(self, batch)
        finally:
            active.pop()

    monkeypatch.setattr(mysql_kind.MySQLSession, "read_batch", read_batch)
    original_write = ex.write_database
    seen_during_first_write = []

    def write_database(store, source_name, db, *a, **k):
        if db.name == dbs[0]:  # the first batch's write waits (bounded) until the second batch's read has begun
            seen_during_first_write.append(second_read.wait(60))
        return original_write(store, source_name, db, *a, **k)

    monkeypatch.setattr(ex, "write_database", write_database)

    results = list(ex.extract(source, dbs, LocalStore(tmp_path)))
    assert [r.database for r in results] == dbs and all(r.ok for r in results)
    assert seen_during_first_write == [True]
    assert reads_started == [[d] for d in dbs]


def test_a_caller_that_stops_early_leaves_no_reading_thread(schema, tmp_path):
    dbs = [schema.create(f"d{i}", "CREATE TABLE t (id INT PRIMARY KEY)") for i in range(3)]
    schema.grant()
    gen = ex.extract(schema.source(batch_size=1), dbs, LocalStore(tmp_path))
    first = next(gen)
    assert first.ok and any(t.name.startswith("read-src") for t in threading.enumerate())
    gen.close()
    assert not any(t.name.startswith("read-src") for t in threading.enumerate())
