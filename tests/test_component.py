"""The catalog as a Dagster component, used from a separate minimal dg project (as a team that already runs
Dagster would): `dg scaffold defs` writes its defs.yaml, `dg check defs` and `dg list defs` load it, and its
definitions materialize a real MariaDB database. And this project itself is a dg project."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metadata_assets.components import DataHubCatalog
from metadata_assets.config import ConfigError

ROOT = Path(__file__).parents[1]
DG = Path(sys.executable).parent / "dg"

PYPROJECT = """\
[project]
name = "estate"
version = "0.0.1"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "estate"
"""

DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs():
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def dg(*args, cwd, env=None, check=True):
    full_env = {**os.environ, "PYTHONPATH": str(cwd / "src"), "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    r = subprocess.run([str(DG), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture
def estate(tmp_path):
    project = tmp_path / "estate"
    (project / "src" / "estate" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "src" / "estate" / "__init__.py").write_text("")
    (project / "src" / "estate" / "defs" / "__init__.py").write_text("")
    (project / "src" / "estate" / "definitions.py").write_text(DEFINITIONS)
    return project


def test_a_separate_dg_project_adds_an_estate_with_a_defs_yaml(estate, schema, tmp_path):
    db = schema.create("comp", "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'the id')")
    schema.grant()
    dg("scaffold", "defs", "metadata_assets.components.DataHubCatalog", "catalog", cwd=estate)
    defs_yaml = estate / "src" / "estate" / "defs" / "catalog" / "defs.yaml"
    scaffolded = yaml.safe_load(defs_yaml.read_text())
    assert scaffolded["type"] == "metadata_assets.components.DataHubCatalog"
    assert scaffolded["attributes"]["sources"][0]["type"] == "mysql"

    source = {
        "name": "orders",
        "type": "mysql",
        "host": "{{ env.ORDERS_HOST }}",
        "port": schema.server.port,
        "user": schema.user,
        "password_env": schema.password_env,
        "database_pattern": {"allow": [f"{schema.prefix}.*"]},
        "owners": ["team:data-platform"],
    }
    defs_yaml.write_text(
        yaml.safe_dump(
            {
                "type": "metadata_assets.components.DataHubCatalog",
                "attributes": {
                    "sources": [source],
                    "storage": {"uri": str(tmp_path / "mce")},
                    "datahub": {"lite": {"path": str(tmp_path / "lite.sqlite")}},
                },
            }
        )
    )
    env = {"ORDERS_HOST": schema.server.host}
    assert "All definitions loaded successfully" in dg("check", "defs", cwd=estate, env=env).stdout
    listed = json.loads(dg("list", "defs", "--json", cwd=estate, env=env).stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert set(assets) == {"orders/mce_files", "orders/datahub_push"}
    assert (
        assets["orders/mce_files"]["owners"] == assets["orders/datahub_push"]["owners"] == [{"team": "data-platform"}]
    )
    assert {s["name"] for s in listed["sensors"]} >= {"orders_schema_sensor", "orders_datahub_push_sensor"}
    assert {s["name"] for s in listed["schedules"]} == {"orders_daily_schedule"}

    # the component's definitions, loaded as dg loads them, materialize a real database
    import dagster as dagster_mod
    from dagster import DagsterInstance

    sys.path.insert(0, str(estate / "src"))
    try:
        os.environ["ORDERS_HOST"] = schema.server.host
        from estate.definitions import defs as load_defs  # noqa: E402

        defs = load_defs()
    finally:
        sys.path.remove(str(estate / "src"))
        os.environ.pop("ORDERS_HOST", None)
        sys.modules.pop("estate.definitions", None)
        sys.modules.pop("estate", None)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("orders_databases", [db])
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key=db, asset_selection=[dagster_mod.AssetKey(["orders", "mce_files"])]
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("orders__mce_files")
    assert mat.partition == db and mat.metadata["tables"].value == 1
    assert (tmp_path / "mce" / "orders" / "mce").is_dir()


def test_attributes_are_checked_as_sources_yaml_is():
    with pytest.raises(ConfigError, match=r"DataHubCatalog attributes: source 'x', field pasword_env: unknown key"):
        DataHubCatalog(
            sources=[
                {"name": "x", "type": "mysql", "host": "h", "user": "u", "password_env": "P", "pasword_env": "typo"}
            ]
        ).project_config()
    cfg = DataHubCatalog(
        sources=[{"name": "x", "type": "mysql", "host": "h", "user": "u", "password_env": "P"}]
    ).project_config()
    assert cfg.sources[0].port == 3306 and cfg.datahub.target == "lite"


def test_this_project_is_a_dg_project(monkeypatch):
    """`dg check defs` and `dg list defs` on this repository: one code location name everywhere."""
    env = {"DEMO_MYSQL_PASSWORD": "unused"}
    r = subprocess.run(
        [str(DG), "check", "defs"],
        cwd=ROOT,
        env={**os.environ, **env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "All definitions loaded successfully" in r.stdout, r.stdout + r.stderr
    listed = json.loads(
        subprocess.run(
            [str(DG), "list", "defs", "--json"],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
    )
    assert "demo_mysql/mce_files" in {a["asset_key"] for a in listed["assets"]}
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    names = {
        pyproject["tool"]["dagster"]["code_location_name"],
        pyproject["tool"]["dg"]["project"]["code_location_name"],
        workspace["location_name"],
    }
    assert names == {"metadata_assets"}
