"""Dagster's storage on a real PostgreSQL server (as Cloud SQL is on GKE): the server is Debian's postgresql, started
by the test in its own directory and port (metadata_assets/local_postgres.py)."""

import pytest
from dagster import DagsterInstance, build_sensor_context, materialize

from metadata_assets import local_postgres
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import partitions_def
from metadata_assets.defs.push import build_push_sensor
from metadata_assets.defs.source_setup import SourceSetup


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
    storage = {
        "postgres": {
            "postgres_db": {
                "hostname": postgres.host,
                "port": postgres.port,
                "username": postgres.user,
                "password": "",
                "db_name": "dagster",
            }
        }
    }
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home), overrides={"storage": storage}) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions(partitions_def(source).name, [db])
        assert materialize([build_mce_asset(SourceSetup.of(cfg, source))], instance=instance, partition_key=db).success
        # the run held one connection for its events (defs/storage_connections.py), with a statement timeout
        engine = instance.event_log_storage._engine
        assert type(engine.pool).__name__ == "QueuePool" and engine.pool.size() == 1
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "2min"
        assert instance.get_materialized_partitions(build_mce_asset(SourceSetup.of(cfg, source)).key) == {db}
        result = build_push_sensor(SourceSetup.of(cfg, source))(build_sensor_context(instance=instance))
        assert len(result.run_requests) == 1  # a new version DataHub does not have yet

    (tmp_path / "other_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "other_home"), overrides={"storage": storage}) as again:
        assert again.get_materialized_partitions(build_mce_asset(SourceSetup.of(cfg, source)).key) == {
            db
        }  # it is in the server


def test_a_refresh_stores_its_observations_in_one_batch(postgres, schema, tmp_path, monkeypatch):
    """defs/event_batches.py: with DAGSTER_EVENT_BATCH_SIZE (deploy/values.yaml) the unchanged databases'
    observations reach PostgreSQL through store_event_batch, one call for the run, and every one is stored."""
    from dagster import AssetSelection
    from dagster._core.storage.tags import SCHEDULE_NAME_TAG

    from metadata_assets.defs.keys import mce_asset_key, range_tags

    dbs = sorted(schema.create(f"o{i}", "CREATE TABLE t (id INT PRIMARY KEY)") for i in range(4))
    schema.grant()
    cfg = schema.project(tmp_path)
    source = cfg.sources[0]
    storage = {
        "postgres": {
            "postgres_db": {
                "hostname": postgres.host,
                "port": postgres.port,
                "username": postgres.user,
                "password": "",
                "db_name": "dagster",
            }
        }
    }
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    with DagsterInstance.local_temp(str(tmp_path / "home"), overrides={"storage": storage}) as instance:
        instance.add_dynamic_partitions(partitions_def(source).name, dbs)
        asset = build_mce_asset(SourceSetup.of(cfg, source))
        selection = AssetSelection.assets(mce_asset_key(source)).without_checks()
        assert materialize([asset], instance=instance, tags=range_tags(dbs)).success  # by hand: materialized
        batches = []
        real = type(instance.event_log_storage).store_event_batch

        def counted(storage, events):
            batches.append([e.dagster_event.event_type_value for e in events])
            return real(storage, events)

        monkeypatch.setattr(type(instance.event_log_storage), "store_event_batch", counted)
        result = materialize(
            [asset],
            instance=instance,
            selection=selection,
            tags={SCHEDULE_NAME_TAG: "src_daily_schedule", **range_tags(dbs)},
        )
        assert result.success
        # (the run's planned events come in a batch of their own when Dagster plans each partition)
        assert [b for b in batches if "ASSET_OBSERVATION" in b] == [["ASSET_OBSERVATION"] * len(dbs)]
        stored = [
            e.dagster_event.event_specific_data.asset_observation.partition
            for e in instance.all_logs(result.run_id)
            if e.dagster_event_type == "ASSET_OBSERVATION"
        ]
        assert sorted(p for p in stored if p) == dbs
