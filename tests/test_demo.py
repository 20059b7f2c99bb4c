"""The README's first command, run the way a new user runs it: `metadata-assets demo` in a fresh directory.

--no-ui: a throwaway MariaDB is seeded, every partition materialized and pushed to DataHub Lite, a summary printed
(counts and a `datahub lite ls` listing), exit 0, nothing left running.
Interactive: Dagit comes up on the given port; Ctrl-C (SIGINT to the foreground process group, as a terminal sends
it) stops Dagster and MariaDB, leaving no process behind.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from datahub.emitter.mce_builder import make_dataset_urn
from datahub.lite.lite_util import get_datahub_lite

from metadata_assets.local_mariadb import free_port
from metadata_assets.storage.layout import list_mce_databases, mce_key
from metadata_assets.storage.store import open_store

REPO = Path(__file__).parents[1]
SOURCE = "demo_mysql"
# the sample's tables and views that the demo config allows (scratch_tmp and tmp_* are denied by its patterns)
EXPECTED_DATASETS = {
    "shop": {"customers", "orders", "order_items", "paid_orders"},
    "billing": {"invoices", "payments", "open_invoices"},
    "analytics": {"daily_sales"},
}


def demo_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("METADATA_ASSETS_CONFIG", "METADATA_ASSETS_HOME", "DAGSTER_HOME")
    }
    env.update(
        DATAHUB_TELEMETRY_ENABLED="false",
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return env


def demo_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "metadata_assets.cli", "demo", "--home", str(home), *args]


def processes_of(home: Path) -> list[str]:
    """Live processes started for this demo home: mariadbd by its datadir, Dagster's by their environment."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if p.joinpath("stat").read_text().rsplit(") ", 1)[1][0] == "Z":
                continue
            cmdline = p.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = p.joinpath("environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--datadir={home}/" in cmdline or f"DAGSTER_HOME={home}/dagster".encode() in environ:
            found.append(f"{p.name}: {cmdline[:200]}")
    return found


def test_demo_no_ui_materializes_everything_and_stops_mariadb(tmp_path):
    home = tmp_path / "demo-home"
    # exactly the README's first command, non-interactive: ./dev.sh demo --no-ui (setup is a no-op once installed)
    proc = subprocess.run(
        [str(REPO / "dev.sh"), "demo", "--no-ui", "--home", str(home)],
        cwd=tmp_path,
        env=demo_env(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout

    store = open_store(str(home / "mce"))
    assert sorted(list_mce_databases(store, SOURCE)) == sorted(EXPECTED_DATASETS)
    n_datasets = n_proposals = 0
    for db, tables in EXPECTED_DATASETS.items():
        mcps = json.loads(store.read_bytes(mce_key(SOURCE, db)))
        urns = {m["entityUrn"] for m in mcps if m["entityType"] == "dataset"}
        assert urns == {make_dataset_urn("mysql", f"{db}.{t}", "PROD") for t in tables}, db
        n_datasets += len(urns)
        n_proposals += len(mcps)

    # the summary names the databases and counts what the files hold
    line = next(ln for ln in out.splitlines() if ln.startswith(f"source {SOURCE}:"))
    m = re.search(r": (\d+) databases \(([^)]*)\), (\d+) tables and views, (\d+) proposals", line)
    assert m, line
    assert int(m[1]) == 3 and m[2].split(", ") == sorted(EXPECTED_DATASETS)
    assert (int(m[3]), int(m[4])) == (n_datasets, n_proposals)
    assert "scratch_tmp" not in out

    # pushed to DataHub Lite, and the summary lists what Lite holds, database by database
    assert re.search(rf"\[demo\] {SOURCE}: pushed to DataHub Lite at .*: 3 databases, {n_proposals} proposals", out)
    listed: dict[str, set[str]] = {}
    for ln in out.splitlines():
        if m := re.fullmatch(r"  /databases/mysql/instances/default/databases/(\w+)/(?:tables|views): (.*)", ln):
            listed.setdefault(m[1], set()).update(m[2].split(", "))
    assert listed == EXPECTED_DATASETS, out
    lite = get_datahub_lite(
        {"type": "sqlite", "config": {"file": str(home / "datahub-lite.sqlite"), "read_only": True}}, read_only=True
    )
    try:
        for db, tables in EXPECTED_DATASETS.items():
            for t in tables:
                got = lite.get(make_dataset_urn("mysql", f"{db}.{t}", "PROD"), aspects=["schemaMetadata"], typed=True)
                assert got and got["schemaMetadata"].schemaName == f"{db}.{t}"
    finally:
        lite.close()
    assert "3/3 databases" in out  # progress
    assert "all runs succeeded" in out
    assert out.rstrip().endswith("[demo] MariaDB stopped")

    # nothing left running, the server's pid file removed by its clean shutdown
    assert not processes_of(home)
    assert not (home / "demo-mariadb" / "mariadb.pid").exists()


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"demo exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"{url} not up within {timeout}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


@pytest.mark.slow
def test_demo_ctrl_c_stops_dagster_and_mariadb(tmp_path):
    home, port, log = tmp_path / "demo-home", free_port(), tmp_path / "demo.log"
    proc = subprocess.Popen(
        demo_command(home, "--port", str(port)),
        cwd=tmp_path,
        env=demo_env(home),
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # its own process group, like a shell job in a terminal
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", proc, log, timeout=300)
        assert f"[demo] starting Dagit: http://127.0.0.1:{port}" in log.read_text()
        running = processes_of(home)
        assert any("mariadbd" in p for p in running) and any("dagster" in p for p in running), running

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = log.read_text()
    assert "[demo] MariaDB stopped" in out
    deadline = time.monotonic() + 10  # children reaped by their own parents just after the demo exits
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_of(home), out[-3000:]
