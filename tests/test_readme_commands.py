"""The operator commands the README gives, run as a user would type them (subprocesses, real servers): every shell
block of the README is either run here after a demo-shaped setup or says why it cannot run here."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from metadata_assets.config import LiteTarget
from metadata_assets.datahub.push import push
from metadata_assets.datahub.sinks import LiteSink
from metadata_assets.extract import extract, rules_for
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore

BIN = Path(sys.executable).parent


def write_config(schema, tmp_path) -> Path:
    cfg = {
        "sources": [
            {
                "name": "src",
                "type": "mysql",
                "host": schema.server.host,
                "port": schema.server.port,
                "user": schema.user,
                "password_env": schema.password_env,
                "database_pattern": {"allow": [f"{schema.prefix}.*"]},
            }
        ],
        "storage": {"uri": str(tmp_path / "store")},
        "datahub": {"lite": {"path": str(tmp_path / "lite.sqlite")}},
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(args, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args],
        env={**os.environ, "DATAHUB_TELEMETRY_ENABLED": "false", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    run(
        [
            BIN / "dagster",
            "asset",
            "materialize",
            "-m",
            "metadata_assets.definitions",
            "--select",
            "src/mce_files",
            "--partition",
            db,
        ],
        **env,
    )
    data = LocalStore(tmp_path / "store").read_bytes(mce_key("src", db))
    assert b'"description": "the id"' in data


def test_datahub_lite_cli_reads_what_was_pushed(schema, tmp_path):
    db = schema.create("l", "CREATE TABLE customers (id INT PRIMARY KEY) COMMENT 'Registered customers'")
    schema.grant()
    source = schema.source()
    store = LocalStore(tmp_path / "store")
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
        f"lite:\n  type: sqlite\n  config:\n    file: {tmp_path / 'lite.sqlite'}\n"
    )
    listing = run(
        [BIN / "datahub", "lite", "ls", f"/databases/mysql/instances/default/databases/{db}/tables"], HOME=str(home)
    ).stdout
    assert "customers" in listing
    urn = f"urn:li:dataset:(urn:li:dataPlatform:mysql,{db}.customers,PROD)"
    got = run([BIN / "datahub", "lite", "get", "--urn", urn, "--aspect", "datasetProperties"], HOME=str(home)).stdout
    assert "Registered customers" in got


ROOT = Path(__file__).parents[1]
AFTER_DEMO = "<!-- commands-after-demo -->"
NOT_RUN = re.compile(r"<!-- commands-not-run-here: (\S.*\S) -->")
SHELL_LANGUAGES = {"sh", "bash", "shell", "console", "zsh"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def shell_blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(marker line before the fence, language, command lines) of every fenced shell block, in README order."""
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) not in SHELL_LANGUAGES:
            continue
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        lines = [line for line in m.group(2).splitlines() if line.strip() and not line.startswith("#")]
        out.append((before, m.group(1), lines))
    return out


def after_demo_blocks() -> list[list[str]]:
    """Every block marked to run after the demo (the Quickstart's, Least privilege's, Materialize by hand's,
    Troubleshooting's, and any a section adds), each exactly as written."""
    return [lines for marker, _, lines in shell_blocks(readme()) if marker == AFTER_DEMO]


def _block_after(marker: str) -> list[str]:
    """The command lines of the first README block marked `marker`, exactly as written there."""
    return next(lines for m, _, lines in shell_blocks(readme()) if m == marker)


def test_every_shell_block_says_where_it_runs():
    """Each shell block of the README is either run by this file after the demo (and then starts with activating the
    virtualenv, needing only the demo's export line before it), or says why it cannot run here and what it needs.
    Output shown in the README is a ```text block, not a shell one."""
    blocks = shell_blocks(readme())
    assert len(blocks) >= 10
    for marker, language, lines in blocks:
        assert marker == AFTER_DEMO or NOT_RUN.fullmatch(marker), (
            f"a ```{language} block without a commands-after-demo or commands-not-run-here marker: {lines[:2]}"
        )
        if marker == AFTER_DEMO:
            assert lines[0] == ". .venv/bin/activate", lines
    assert len(after_demo_blocks()) >= 4  # Quickstart, Least privilege, Materialize by hand, Troubleshooting


COMMAND_SPAN = re.compile(r"`((?:metadata-assets|datahub lite|dagster asset materialize) [^`]*)`")
PLACEHOLDER = re.compile(r"<[^>]+>|\[|\b[A-Z][A-Z_]{2,}\b|\|")


def test_inline_commands_are_synopses_or_run_after_the_demo():
    """A command written inline in the prose either shows placeholders (a synopsis, e.g. `--source NAME`), names a
    command without arguments, or is run as written in a block after the demo."""
    ran = {line for block in after_demo_blocks() for line in block}
    ran_text = "\n".join(ran)
    text = FENCE.sub("", readme()).replace("\n", " ")
    for span in COMMAND_SPAN.findall(text):
        words = span.split()
        bare = len(words) <= (3 if span.startswith("datahub lite") else 2) or span.endswith("--partition-range")
        assert bare or PLACEHOLDER.search(span) or span in ran_text, (
            f"inline command neither a synopsis nor run: {span}"
        )


def test_readme_commands_after_the_demo_run_as_written(tmp_path, monkeypatch):
    """The demo (its own MariaDB, its account, its Dagster home and Lite), then each README block marked
    commands-after-demo, pasted into a fresh shell (its own HOME, no virtualenv, no config variable) after the
    export line the demo prints: each command must succeed."""
    from metadata_assets import config as config_mod
    from metadata_assets import local_mariadb
    from metadata_assets.cli import DEMO_INSTANCE_YAML, _demo_env, demo_shell_hint
    from metadata_assets.demo_run import run_everything, seed_demo

    blocks = after_demo_blocks()
    assert blocks[0][0] == ". .venv/bin/activate" and len(blocks[0]) >= 5
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text(DEMO_INSTANCE_YAML)
    user_home = tmp_path / "user-home"  # the shell's ~: nothing may need a file there first
    user_home.mkdir()
    server = local_mariadb.start(tmp_path / "demo-mariadb")
    try:
        seed_demo(server, "demo-pw-1")
        env = _demo_env(home, server.port, "demo-pw-1")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv(config_mod.CONFIG_ENV, raising=False)
        run_everything(config_mod.load(), print_fn=lambda m: None)
        (export,) = [line.strip() for line in demo_shell_hint(env).splitlines() if line.strip().startswith("export ")]
        shell_env = {
            k: v
            for k, v in os.environ.items()
            if k not in env and k not in (config_mod.CONFIG_ENV, "VIRTUAL_ENV", "PYTHONHOME")
        }
        shell_env["PATH"] = os.pathsep.join(
            p for p in shell_env.get("PATH", "").split(os.pathsep) if Path(p).resolve() != BIN.resolve()
        )  # the venv is not on PATH
        out = ""
        for commands in blocks:
            script = "set -e\n" + "\n".join([export, *(f"echo {shlex.quote('+ ' + c)}; {c}" for c in commands)])
            proc = subprocess.run(
                ["bash", "-c", script],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
                env={**shell_env, "HOME": str(user_home), "DATAHUB_TELEMETRY_ENABLED": "false"},
            )
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            out += proc.stdout
        assert "customers" in out and "orders" in out  # catalog ls of shop's tables
        assert '"datasetProfile"' in out and "GRANT REFERENCES, SHOW VIEW ON `shop`.*" in out
        assert "cannot read data" in out or "SELECT refused" in out  # check-access
        assert "demo_mysql: 2/2 databases extracted" in out and "pushed to DataHub Lite" in out  # refresh --push
        assert "GRANT REFERENCES, SHOW VIEW ON `analytics`.*" in out  # grants -d
        assert "Registered customers" in out  # datahub lite get, through the datahubenv the block wrote
        assert not (user_home / ".datahubenv").exists()  # the user's own ~/.datahubenv is left alone
        history = out.split("+ metadata-assets history", 1)[1].split("\n+ ", 1)[0]
        assert "version 1  " in history and "first version kept" in history  # shop's first schema version
    finally:
        server.stop()
