"""At most N extraction runs against one MySQL host at a time, N from the sources config.

A real DagsterInstance configured like deploy/values.yaml's run queue (QueuedRunCoordinator, pools at run
granularity, the default pool limit), the real mysql_pool_limits sensor writing limits into it, and the real
QueuedRunCoordinatorDaemon deciding which queued runs to launch. Only the run launcher is a stand-in
(Dagster's MockedRunLauncher records launches instead of creating Kubernetes Jobs).
"""

from pathlib import Path

import pytest
import yaml
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    build_sensor_context,
    define_asset_job,
)
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from metadata_assets.config import ProjectConfig
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.keys import mce_asset_key, partitions_def, source_pool
from metadata_assets.defs.pools import apply_pool_limits, build_pool_limits_sensor, pool_limits
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.sources.mysql.config import MySQLSource

VALUES = yaml.safe_load((Path(__file__).parents[1] / "deploy" / "values.yaml").read_text())


def source(name: str, host: str, max_runs: int) -> MySQLSource:
    return MySQLSource(
        name=name,
        type="mysql",
        host=host,
        user="catalog_reader",
        password_env="UNUSED_PW",
        max_concurrent_runs=max_runs,
    )


def project(tmp_path, *sources) -> ProjectConfig:
    return ProjectConfig(sources=list(sources), storage={"uri": str(tmp_path / "store")})


def instance_overrides() -> dict:
    """dagster.yaml as the chart renders it from values.yaml (run queue + pools), with a recording launcher."""
    pools = VALUES["concurrency"]["pools"]
    runs = VALUES["concurrency"]["runs"]
    qrc = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    return {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": qrc["dequeueIntervalSeconds"]},
        },
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
        "concurrency": {
            "pools": {"granularity": pools["granularity"], "default_limit": pools["defaultLimit"]},
            "runs": {"max_concurrent_runs": runs["maxConcurrentRuns"]},
        },
    }


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home), overrides=instance_overrides()) as inst:
        yield inst


class Queue:
    """Queued extraction runs and the daemon that dequeues them."""

    def __init__(self, instance: DagsterInstance, cfg: ProjectConfig):
        self.instance = instance
        self.cfg = cfg
        assets = [build_mce_asset(SourceSetup.of(cfg, s)) for s in cfg.sources]
        jobs = [define_asset_job(f"{s.name}_extract", selection=[mce_asset_key(s)]) for s in cfg.sources]
        self.defs = Definitions(assets=assets, jobs=jobs, sensors=[build_pool_limits_sensor(cfg)])
        self.host_of: dict[str, str] = {}
        self.daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

    def submit(self, src: MySQLSource, database: str) -> str:
        self.instance.add_dynamic_partitions(partitions_def(src).name, [database])
        job_name = f"{src.name}_extract"
        code_server = GrpcServerCodeLocationOrigin(host="metadata-assets", port=3030, location_name="metadata_assets")
        run = self.instance.create_run_for_job(
            self.defs.resolve_job_def(job_name),
            status=DagsterRunStatus.QUEUED,
            tags={"dagster/partition": database},
            remote_job_origin=RemoteJobOrigin(RemoteRepositoryOrigin(code_server, "__repository__"), job_name),
        )
        self.host_of[run.run_id] = source_pool(src)
        return run.run_id

    def dequeue(self) -> None:
        with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), self.instance) as workspace:
            list(self.daemon.run_iteration(workspace))

    def started(self) -> dict[str, list[str]]:
        """Pool -> run ids the daemon launched and that have not finished."""
        out: dict[str, list[str]] = {}
        for run_id, pool in self.host_of.items():
            if self.instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTING:
                out.setdefault(pool, []).append(run_id)
        return out

    def finish(self, run_id: str) -> None:
        run = self.instance.get_run_by_id(run_id)
        self.instance.report_dagster_event(
            DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name), run_id
        )
        assert self.instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS


def mysql_only(limits: dict) -> dict:
    """The MySQL host pools of a limits dict (push pools, one per source, are tested on their own)."""
    return {k: v for k, v in limits.items() if k.startswith("mysql_")}


def test_pool_per_host_with_the_smallest_limit_of_its_sources(tmp_path):
    cfg = project(tmp_path, source("a", "db1.example", 3), source("b", "db1.example", 2), source("c", "db2.example", 1))
    assert mysql_only(pool_limits(cfg)) == {source_pool(cfg.sources[0]): 2, source_pool(cfg.sources[2]): 1}
    assert source_pool(cfg.sources[0]) == source_pool(cfg.sources[1]) != source_pool(cfg.sources[2])


def test_extraction_asset_declares_its_host_pool(tmp_path):
    src = source("a", "db1.example", 2)
    asset = build_mce_asset(SourceSetup.of(project(tmp_path, src), src))
    assert asset.op.pool == source_pool(src)


def test_queued_runs_never_exceed_each_hosts_limit(instance, tmp_path):
    a, b, c = source("a", "db1.example", 3), source("b", "db1.example", 2), source("c", "db2.example", 1)
    queue = Queue(instance, project(tmp_path, a, b, c))
    h1, h2 = source_pool(a), source_pool(c)

    # the sensor puts the config's limits into the instance; a second tick changes nothing
    sensor = queue.defs.resolve_sensor_def("mysql_pool_limits")
    first = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=queue.defs))
    assert "set" in first.skip_message
    limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
    assert mysql_only(limits) == {h1: 2, h2: 1}
    again = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=queue.defs))
    assert "already match" in again.skip_message

    h1_runs = [queue.submit(a, "d1"), queue.submit(b, "d2"), queue.submit(a, "d3"), queue.submit(b, "d4")]
    h2_runs = [queue.submit(c, "e1"), queue.submit(c, "e2")]
    queue.dequeue()
    assert queue.started() == {h1: h1_runs[:2], h2: h2_runs[:1]}  # FIFO within each host's limit
    queue.dequeue()
    assert queue.started() == {h1: h1_runs[:2], h2: h2_runs[:1]}  # nothing frees up: nothing more starts

    queue.finish(h1_runs[0])
    queue.dequeue()
    assert queue.started() == {h1: h1_runs[1:3], h2: h2_runs[:1]}
    queue.finish(h2_runs[0])
    queue.finish(h1_runs[1])
    queue.dequeue()
    assert queue.started() == {h1: h1_runs[2:4], h2: h2_runs[1:2]}
    assert instance.get_run_by_id(h1_runs[0]).status == DagsterRunStatus.SUCCESS


def test_default_limit_guards_a_host_until_the_sensor_has_run(instance, tmp_path):
    """Before the sensor's first tick a pool has only concurrency.pools.defaultLimit. Dagster 1.13 creates that
    default slot count the first time its daemon sees a run of the pool, and enforces it from the next
    iteration on: the first dequeue of a never-seen pool is not limited (one reason the sensor exists)."""
    a = source("a", "db1.example", 3)
    queue = Queue(instance, project(tmp_path, a))
    pool = source_pool(a)
    runs = [queue.submit(a, "d0")]
    queue.dequeue()
    assert queue.started() == {pool: runs}
    default = VALUES["concurrency"]["pools"]["defaultLimit"]
    assert {p.name: (p.limit, p.from_default) for p in instance.event_log_storage.get_pool_limits()} == {
        pool: (default, True)
    }
    runs += [queue.submit(a, f"d{i}") for i in range(1, 5)]
    queue.dequeue()
    assert queue.started() == {pool: runs[:default]}
    # the sensor's limits replace the default: the configured 3 run at once
    assert mysql_only(apply_pool_limits(instance, pool_limits(queue.cfg))) == {pool: 3}
    queue.dequeue()
    assert queue.started() == {pool: runs[:3]}


def test_a_changed_config_changes_the_instance_limit(instance, tmp_path):
    src = source("a", "db1.example", 2)
    assert mysql_only(apply_pool_limits(instance, pool_limits(project(tmp_path, src)))) == {source_pool(src): 2}
    assert apply_pool_limits(instance, pool_limits(project(tmp_path, src))) == {}
    lowered = src.model_copy(update={"max_concurrent_runs": 1})
    assert mysql_only(apply_pool_limits(instance, pool_limits(project(tmp_path, lowered)))) == {source_pool(src): 1}
    assert mysql_only({p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}) == {source_pool(src): 1}


def test_each_source_pushes_alone(monkeypatch):
    from metadata_assets.config import ProjectConfig
    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.keys import push_asset_key
    from metadata_assets.defs.pools import pool_limits

    monkeypatch.setenv("PW", "x")
    cfg = ProjectConfig(sources=[{"name": "a", "type": "mysql", "host": "h", "user": "u", "password_env": "PW"}])
    assert pool_limits(cfg)["datahub_push_a"] == 1
    push = build_definitions(cfg).resolve_assets_def(push_asset_key(cfg.sources[0]))
    assert push.op.pool == "datahub_push_a"
