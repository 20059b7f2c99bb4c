"""The operator commands the README gives, run as a user would type them (subprocesses, real servers)."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from metadata_assets.config import LiteTarget
from metadata_assets.datahub import files
from metadata_assets.datahub.push import push
from metadata_assets.datahub.sinks import LiteSink
from metadata_assets.extract import extract, rules_for

BIN = Path(sys.executable).parent


def write_config(schema, tmp_path) -> Path:
    cfg = {
        "sources": [{"name": "src", "type": "mysql", "host": schema.server.host, "port": schema.server.port,
                     "user": schema.user, "password_env": schema.password_env,
                     "database_pattern": {"allow": [f"{schema.prefix}.*"]}}],
        "storage": {"uri": str(tmp_path / "store")},
        "datahub": {"lite": {"path": str(tmp_path / "lite.sqlite")}},
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(args, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], env={**os.environ, "DATAHUB_TELEMETRY_ENABLED": "false", **env},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_grants_command(schema, tmp_path):
    a = schema.create("a", "CREATE TABLE t (id INT)")
    b = schema.create("b-2", "CREATE TABLE t (id INT)")
    config = write_config(schema, tmp_path)
    out = run([BIN / "metadata-assets", "grants", "--config", config, "-d", a, "-d", b]).stdout
    assert f"GRANT REFERENCES, SHOW VIEW ON `{a}`.* TO '{schema.user}'@'%';" in out
    assert f"GRANT REFERENCES, SHOW VIEW ON `{b}`.* TO '{schema.user}'@'%';" in out
    statements = [line for line in out.splitlines() if not line.startswith("--")]
    assert statements and not any("SELECT" in line for line in statements)
    # the routine grant is only a comment (optional), one per server kind when the server is not asked
    assert f"--   MariaDB before 11.3: GRANT SELECT ON mysql.proc TO '{schema.user}'@'%';" in out
    schema.grant()  # once the account exists it lists the databases itself
    listed = run([BIN / "metadata-assets", "grants", "--config", config]).stdout
    assert listed.count("GRANT REFERENCES, SHOW VIEW") == 2
    assert listed.splitlines()[-1] == f"-- GRANT SELECT ON mysql.proc TO '{schema.user}'@'%';"  # this MariaDB


def test_dagster_asset_materialize_command(schema, tmp_path):
    db = schema.create("m", "CREATE TABLE t (id INT PRIMARY KEY COMMENT 'the id')")
    schema.grant()
    config = write_config(schema, tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {"METADATA_ASSETS_CONFIG": str(config), "DAGSTER_HOME": str(home)}
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("src_databases", [db])
    run([BIN / "dagster", "asset", "materialize", "-m", "metadata_assets.definitions",
         "--select", "src/mce_files", "--partition", db], **env)
    data = files.LocalStore(tmp_path / "store").read_bytes(files.mce_key("src", db))
    assert b'"description": "the id"' in data


def test_datahub_lite_cli_reads_what_was_pushed(schema, tmp_path):
    db = schema.create("l", "CREATE TABLE customers (id INT PRIMARY KEY) COMMENT 'Registered customers'")
    schema.grant()
    source = schema.source()
    store = files.LocalStore(tmp_path / "store")
    assert all(r.ok for r in extract(source, [db], store))
    sink = LiteSink(LiteTarget(path=str(tmp_path / "lite.sqlite")))
    try:
        push(store, "src", rules_for(source), sink, max_removal_share=1.0)
    finally:
        sink.close()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".datahubenv").write_text(
        "gms:\n  server: http://localhost:8080\n"
        f"lite:\n  type: sqlite\n  config:\n    file: {tmp_path / 'lite.sqlite'}\n")
    listing = run([BIN / "datahub", "lite", "ls", f"/databases/mysql/instances/default/databases/{db}/tables"],
                  HOME=str(home)).stdout
    assert "customers" in listing
    urn = f"urn:li:dataset:(urn:li:dataPlatform:mysql,{db}.customers,PROD)"
    got = run([BIN / "datahub", "lite", "get", "--urn", urn, "--aspect", "datasetProperties"], HOME=str(home)).stdout
    assert "Registered customers" in got


def _block_after(marker: str) -> list[str]:
    """The command lines of the README's ```sh block that follows `marker`, exactly as written there."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split(marker, 1)[1]
    body = after.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in body.splitlines() if line.strip() and not line.startswith("#")]


ROOT = Path(__file__).parents[1]


def test_readme_commands_after_the_demo_run_as_written(tmp_path, monkeypatch):
    """The demo (its own MariaDB, its account, its Dagster home and Lite), then the README's block of commands pasted
    into another shell after the export line the demo prints: each must succeed."""
    from metadata_assets import config as config_mod, local_mariadb
    from metadata_assets.cli import DEMO_INSTANCE_YAML, _demo_env, demo_shell_hint
    from metadata_assets.demo_run import run_everything, seed_demo

    commands = _block_after("<!-- commands-after-demo -->")
    assert commands[0] == ". .venv/bin/activate" and len(commands) >= 5
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(DEMO_INSTANCE_YAML)
    server = local_mariadb.start(tmp_path / "demo-mariadb")
    try:
        seed_demo(server, "demo-pw-1")
        env = _demo_env(home, server.port, "demo-pw-1")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv(config_mod.CONFIG_ENV, raising=False)
        run_everything(config_mod.load(), print_fn=lambda m: None)
        (export,) = [line.strip() for line in demo_shell_hint(env).splitlines() if line.strip().startswith("export ")]
        shell_env = {k: v for k, v in os.environ.items() if k not in env and k != config_mod.CONFIG_ENV}
        script = "set -e\n" + "\n".join([export, *(f"echo {shlex.quote('+ ' + c)}; {c}" for c in commands)])
        proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env={**shell_env, "DATAHUB_TELEMETRY_ENABLED": "false"})
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        out = proc.stdout
        assert "customers" in out and "orders" in out  # catalog ls of shop's tables
        assert '"datasetProfile"' in out and "GRANT REFERENCES, SHOW VIEW ON `shop`.*" in out
        assert "cannot read data" in out or "SELECT refused" in out  # check-access
        assert "demo_mysql: 2/2 databases extracted" in out and "pushed to DataHub Lite" in out  # refresh --push
        history = out.split("+ metadata-assets history", 1)[1].split("\n+ ", 1)[0]
        assert "version 1  " in history and "first version kept" in history  # shop's first schema version
    finally:
        server.stop()
