"""Secrets are read when a run or a tick needs them, not when the definitions load: a code location, `dg check defs`
and `dg list defs` load without the sources' passwords, and the first run or tick that needs a missing one says
which source and variable. Real MariaDB, real Dagster instances, the real dg CLI."""

import os
import subprocess
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context, materialize

from metadata_assets.definitions import build_definitions
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import partitions_def
from metadata_assets.defs.schema_sensor import build_schema_sensor
from metadata_assets.defs.source_setup import SourceSetup

ROOT = Path(__file__).parents[1]
DG = Path(os.sys.executable).parent / "dg"


def test_dg_check_defs_loads_this_project_without_any_password():
    env = {k: v for k, v in os.environ.items() if k != "DEMO_MYSQL_PASSWORD"}
    r = subprocess.run(
        [str(DG), "check", "defs"], cwd=ROOT, env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and "All definitions loaded successfully" in r.stdout, r.stdout + r.stderr


def test_a_missing_password_is_named_by_the_tick_and_the_run_that_need_it(schema, tmp_path, monkeypatch):
    db = schema.create("s", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path)
    source = cfg.sources[0]
    monkeypatch.delenv(schema.password_env)
    defs = build_definitions(cfg)  # loads: no secret read here
    assert defs.resolve_asset_graph().get_all_asset_keys()
    expected = f"source 'src': environment variable {schema.password_env} (password_env) is not set"

    instance = DagsterInstance.ephemeral()
    tick = build_schema_sensor(SourceSetup.of(cfg, source))(build_sensor_context(instance=instance))
    assert expected in tick.skip_message

    instance.add_dynamic_partitions(partitions_def(source).name, [db])
    result = materialize(
        [build_mce_asset(SourceSetup.of(cfg, source))], instance=instance, partition_key=db, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert expected in failure.step_failure_data.user_failure_data.description

    monkeypatch.setenv(schema.password_env, schema.password)  # set: the same definitions now read it
    assert materialize([build_mce_asset(SourceSetup.of(cfg, source))], instance=instance, partition_key=db).success
