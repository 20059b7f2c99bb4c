"""A database that fails carries a typed failure (sources.base.DatabaseFailure): what failed, and the message its
result reports as `.error`."""

from metadata_assets.extract import extract
from metadata_assets.sources.base import (
    ConnectionLost,
    DatabaseFailure,
    FailureCause,
    SourceQueryFailed,
    SourceUnavailable,
)
from metadata_assets.sources.mysql import kind as mysql_kind
from metadata_assets.sources.mysql.reader import MySQLReader
from metadata_assets.storage.store import LocalStore


def test_each_failure_says_what_failed(schema, tmp_path, monkeypatch):
    dbs = [schema.create(f"tf{i}", "CREATE TABLE t (id INT PRIMARY KEY)") for i in range(2)]
    schema.grant()
    source, store = schema.source(batch_size=1), LocalStore(tmp_path)
    assert all(r.ok and r.failure is None and r.error is None for r in extract(source, dbs, store))

    real_mcps = mysql_kind.MySQLKind.mcps

    def mcps(self, db, *args):
        if db.name == dbs[0]:
            raise RuntimeError("no proposals")
        return real_mcps(self, db, *args)

    with monkeypatch.context() as patch:  # the proposals of the first database cannot be built
        patch.setattr(mysql_kind.MySQLKind, "mcps", mcps)
        failed, fine = extract(source, dbs, store, rewrite=True)
    assert failed.failure == DatabaseFailure(FailureCause.WRITE, "RuntimeError: no proposals")
    assert failed.error == "RuntimeError: no proposals" and not failed.ok and fine.ok

    with monkeypatch.context() as patch:  # the server refuses the bulk read of a batch

        def read(self, batch, source):
            raise SourceQueryFailed(f"refused: {batch}")

        patch.setattr(MySQLReader, "read", read)
        results = list(extract(source, dbs, store, privilege_check=False))
    assert [(r.failure.cause, r.error) for r in results] == [(FailureCause.BATCH, f"refused: {[d]}") for d in dbs]

    with monkeypatch.context() as patch:  # the connection breaks, and the server cannot be reached again

        def lost(self, batch, source):
            raise ConnectionLost("connection lost")

        def unreachable(*args, **kwargs):
            raise SourceUnavailable("down")

        patch.setattr(MySQLReader, "read", lost)
        session = mysql_kind.KIND.session(source)
        patch.setattr(mysql_kind, "connect", unreachable)
        try:
            first, second = session.read_batch([dbs[0]]), session.read_batch([dbs[1]])
        finally:
            session.close()
    assert first == (
        {},
        DatabaseFailure(
            FailureCause.SOURCE,
            "connection lost; nothing of this batch was written, its "
            "previous files are kept; then cannot reconnect: down",
        ),
    )
    assert second == ({}, DatabaseFailure(FailureCause.SOURCE, "cannot reconnect: down"))
    assert str(second[1]) == "cannot reconnect: down"
