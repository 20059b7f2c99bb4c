"""Schema history and notifications on a real PostgreSQL: a sequence of DDL, its timeline, classes and webhooks."""

import json

import pytest

from metadata_assets import history, local_postgres, notify
from metadata_assets.config import ProjectConfig
from metadata_assets.extract import extract
from metadata_assets.sources.postgres.config import PostgresSource
from metadata_assets.sources.postgres.reader import grant_statements
from metadata_assets.storage.store import LocalStore
from tests.test_history import Receiver

DB = "pg_hist"


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    server = local_postgres.start(tmp_path_factory.mktemp("pghist"))
    local_postgres.create_database(server, DB)
    local_postgres.execute(
        server,
        DB,
        "CREATE TABLE public.t (id int PRIMARY KEY, code varchar(64), n int);"
        "CREATE VIEW public.v AS SELECT id, code FROM public.t;",
    )
    source = PostgresSource(
        name="pgsrc",
        type="postgres",
        host=server.host,
        port=server.port,
        user="catalog",
        password_env="PG_HIST_PASSWORD",
        notifications={"webhooks": [{"url_env": "PG_HOOK", "format": "json", "min_risk": "warning"}]},
    )
    for statement in grant_statements(source, [DB]):
        if not statement.startswith("--"):
            local_postgres.execute(server, "postgres", statement.replace("<password from $PG_HIST_PASSWORD>", "pw"))
    yield server, source
    server.destroy()


def test_postgres_ddl_sequence_timeline_and_notifications(pg, tmp_path, monkeypatch):
    server, source = pg
    monkeypatch.setenv("PG_HIST_PASSWORD", "pw")
    receiver = Receiver()
    monkeypatch.setenv("PG_HOOK", receiver.url("/hook"))
    store = LocalStore(tmp_path)

    def run():
        (r,) = extract(source, [DB], store)
        assert r.ok, r.error

    try:
        run()
        local_postgres.execute(server, DB, "ALTER TABLE public.t ADD COLUMN note text")  # safe
        run()
        local_postgres.execute(server, DB, "ALTER TABLE public.t ALTER COLUMN n SET NOT NULL")  # breaking
        run()
        local_postgres.execute(server, DB, "COMMENT ON COLUMN public.t.code IS 'the code'")  # safe
        run()
        local_postgres.execute(server, DB, "ALTER TABLE public.t ALTER COLUMN n SET DEFAULT 0")  # warning
        run()
        run()  # unchanged: no version
        entries = history.timeline(store, "pgsrc", DB)
        assert [e.diff.risk for e in entries] == [None, "safe", "breaking", "safe", "warning"]
        assert [c.rule for c in entries[2].diff.changes()] == ["column_not_null_added"]
        assert {c.rule for c in entries[3].diff.changes()} == {"column_comment"}
        report = notify.deliver(store, source, notify.targets_for(ProjectConfig(), source))
        assert report.ok and report.sent == 2
        assert [json.loads(r["body"])["version"] for r in receiver.requests] == [3, 5]
        run()
        assert notify.deliver(store, source, notify.targets_for(ProjectConfig(), source)).sent == 0
        assert len(receiver.requests) == 2
    finally:
        receiver.close()
