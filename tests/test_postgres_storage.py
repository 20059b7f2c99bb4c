"""Dagster's storage on a real PostgreSQL server (as Cloud SQL is on GKE): the server is Debian's postgresql, started
by the test in its own directory and port (metadata_assets/local_postgres.py)."""

import pytest
from dagster import DagsterInstance, build_sensor_context, materialize

from metadata_assets import local_postgres
from metadata_assets.defs.extraction import build_mce_asset, partitions_def
from metadata_assets.defs.push import build_push_sensor


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = local_postgres.start(tmp_path_factory.mktemp("postgres"))
    local_postgres.create_database(server, "dagster")
    yield server
    server.stop()
    assert server.process.returncode == 0  # a clean shutdown
    server.destroy()


def test_extraction_materializes_into_postgres_storage_and_the_push_sensor_reads_it(postgres, schema, tmp_path):
    db = schema.create("pg", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path)
    source = cfg.sources[0]
    storage = {"postgres": {"postgres_db": {"hostname": postgres.host, "port": postgres.port,
                                            "username": postgres.user, "password": "", "db_name": "dagster"}}}
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home), overrides={"storage": storage}) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions(partitions_def(source).name, [db])
        assert materialize([build_mce_asset(cfg, source)], instance=instance, partition_key=db).success
        # the run held one connection for its events (defs/storage_connections.py), with a statement timeout
        engine = instance.event_log_storage._engine
        assert type(engine.pool).__name__ == "QueuePool" and engine.pool.size() == 1
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "2min"
        assert instance.get_materialized_partitions(build_mce_asset(cfg, source).key) == {db}
        result = build_push_sensor(cfg, source)(build_sensor_context(instance=instance))
        assert len(result.run_requests) == 1  # a new version DataHub does not have yet

    (tmp_path / "other_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "other_home"), overrides={"storage": storage}) as again:
        assert again.get_materialized_partitions(build_mce_asset(cfg, source).key) == {db}  # it is in the server
