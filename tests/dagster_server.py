"""A real Dagster deployment for end-to-end tests: `dagster dev` (webserver + daemon + code server) in a subprocess.

The process runs in its own session on free ports with its own DAGSTER_HOME; readiness is `GET /server_info` plus
the code location reporting LOADED over GraphQL; teardown signals the whole process group (SIGINT, then SIGKILL).

Loaded as a pytest plugin (`pytest_plugins = ["dagster_server"]` in the test modules that need it), so the
session-scoped `dagit` fixture is one deployment shared by the GraphQL end-to-end test and the browser test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from metadata_assets.local_mariadb import free_port

REPO = Path(__file__).parents[1]
MODULE = "metadata_assets.definitions"
SOURCE = "e2e_mysql"  # the source name of the shared deployment: asset key [SOURCE, "mce_files"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (Linux /proc)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = p.joinpath("stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(p.name))
    return pids


@dataclass
class DagsterDev:
    """`dagster dev -m MODULE` on a free port, in its own session and DAGSTER_HOME."""

    home: Path
    env: dict[str, str]
    module: str = MODULE
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "dagster-dev.log"

    def start(self, timeout: float = 180) -> "DagsterDev":
        dagster_home = self.home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {
            **os.environ,
            **self.env,
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "DATAHUB_TELEMETRY_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", self.module, "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=self.home,
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/server_info", timeout=5) as r:
                    if r.status == 200 and self.location_status() == "LOADED":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dagster dev not ready within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.5)

    def location_status(self) -> str | None:
        data = self.graphql("""{ workspaceOrError { ... on Workspace { locationEntries {
            name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
        entries = data["workspaceOrError"]["locationEntries"]
        for e in entries:
            if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError":
                raise RuntimeError(f"code location {e['name']} failed to load: {e['locationOrLoadError']['message']}")
        return entries[0]["loadStatus"] if entries else None

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        req = urllib.request.Request(
            self.url + "/graphql",
            method="POST",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            body = json.loads(r.read())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def client(self):
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        """SIGINT the whole group (dagster dev shuts its children down), SIGKILL whatever is left."""
        if self.process is None:
            return
        pgid = self.process.pid
        try:
            os.killpg(pgid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)
        self.process.wait()


PARTITION_KEYS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  __typename ... on AssetNode { partitionKeys } } }"""
ACTIVE_RUNS = """{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
  ... on Runs { results { runId } } } }"""
RUN_LOGS = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
  ... on MessageEvent { level message } ... on ExecutionStepFailureEvent { error { message stack } } } } } }"""


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    """Poll until predicate() is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Deployment:
    """The shared e2e setup: a least-privilege sample on the test MariaDB and `dagster dev` configured for it."""

    dagster: DagsterDev
    schema: object  # tests/conftest.py Schema
    config_path: Path
    databases: list[str]  # allowed by the pattern (the sample minus scratch_tmp)
    store_dir: Path
    lite_path: Path
    source: str = SOURCE

    @property
    def mce_asset(self) -> list[str]:
        return [self.source, "mce_files"]

    def partition_keys(self) -> list[str]:
        data = self.dagster.graphql(PARTITION_KEYS, {"key": {"path": self.mce_asset}})
        return data["assetNodeOrError"]["partitionKeys"]

    def active_runs(self) -> list[str]:
        return [r["runId"] for r in self.dagster.graphql(ACTIVE_RUNS)["runsOrError"]["results"]]

    def run_errors(self, run_id: str) -> str:
        events = self.dagster.graphql(RUN_LOGS, {"runId": run_id})["logsForRun"]["events"]
        return "\n".join(
            e.get("message", "") + "".join((e.get("error") or {}).get("stack") or [])
            for e in events
            if e.get("level") == "ERROR" or e.get("error")
        )

    def materialize(self, asset_path: list[str], partition: str | None, timeout: float = 180) -> str:
        """What Dagit's Materialize button sends: launchRun of the implicit asset job with an asset selection
        (and the partition tag); returns the run id once the run succeeded."""
        from dagster import DagsterRunStatus

        client = self.dagster.client()
        run_id = client.submit_job_execution(
            "__ASSET_JOB", asset_selection=[asset_path], tags={"dagster/partition": partition} if partition else None
        )
        finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
        status = wait_for(lambda: (s := client.get_run_status(run_id)) in finished and s, timeout, f"run {run_id}")
        assert status == DagsterRunStatus.SUCCESS, f"run {run_id} ended {status}:\n{self.run_errors(run_id)}"
        return run_id


def write_config(path: Path, schema, store_dir: Path, lite_path: Path, source: str = SOURCE) -> None:
    cfg = {
        "sources": [
            {
                "name": source,
                "type": "mysql",
                "host": schema.server.host,
                "port": schema.server.port,
                "user": schema.user,
                "password_env": schema.password_env,
                "database_pattern": {"allow": [f"{schema.prefix}.*"], "deny": [f"{schema.prefix}scratch_.*"]},
                "table_pattern": {"deny": [".*\\.tmp_.*"]},
                "batch_size": 50,
            }
        ],
        "storage": {"uri": str(store_dir)},
        "datahub": {"target": "lite", "lite": {"path": str(lite_path)}},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="session")
def dagit(mariadb, tmp_path_factory):
    """One `dagster dev` for the session, loaded with a config for a private copy of the demo sample."""
    from conftest import Schema  # tests/conftest.py (on sys.path as pytest's rootdir-relative conftest)

    home = tmp_path_factory.mktemp("dagit")
    with pytest.MonkeyPatch.context() as mp:
        schema = Schema(mariadb, mp)
        schema.load_sample()
        schema.grant()  # scratch_tmp too: the deny pattern, not the GRANTs, keeps it out
        store_dir, lite_path, config_path = home / "mce", home / "datahub-lite.sqlite", home / "sources.yaml"
        write_config(config_path, schema, store_dir, lite_path)
        server = DagsterDev(
            home,
            env={
                "METADATA_ASSETS_CONFIG": str(config_path),
                "METADATA_ASSETS_HOME": str(home),
                schema.password_env: schema.password,
            },
        )
        server.start()
        try:
            yield Deployment(
                dagster=server,
                schema=schema,
                config_path=config_path,
                databases=sorted(d for d in schema.databases if "scratch_" not in d),
                store_dir=store_dir,
                lite_path=lite_path,
            )
        finally:
            server.stop()
            leftovers = group_members(server.process.pid)
            assert not leftovers, f"dagster dev left processes running: {leftovers}"


@pytest.fixture(scope="session")
def dagit_ready(dagit):
    """What a user finds on opening Dagit: the daemon's schema sensor (default RUNNING) has added the allowed
    databases as partitions and run their first extraction. Waits for those runs, so tests see only their own."""
    wait_for(
        lambda: sorted(dagit.partition_keys()) == dagit.databases,
        120,
        f"the schema sensor to add {dagit.databases} as partitions",
    )
    wait_for(lambda: not dagit.active_runs(), 240, "the sensor's runs to finish")
    return dagit
