"""The daily refresh as the deployment runs it, timed from outside: a Dagster daemon with the run queue and the
default run launcher (every run its own process, as under `dagster dev` and as pods are on GKE), the instance
configured as deploy/values.yaml configures it (queue, pools, run limits), Dagster's storage on a private
PostgreSQL server (Cloud SQL for PostgreSQL on GKE) or on sqlite. Not a test: nothing here runs in pytest.

    .venv/bin/python bench/deployed.py --size L                      # both storages, then the built-in source
    .venv/bin/python bench/deployed.py --size L --storage postgres --skip-builtin

Per storage, on a fresh Dagster home, store and DataHub Lite:
1. first fill: the daemon starts; the schema sensor's first tick adds every database as a partition and requests
   range runs of `batch_size`; the push sensor pushes once they are done. Timed from the first sensor tick to the
   push that leaves every database pushed (the daemon's own start, ~5 s, is reported apart).
2. a normal day: the schema sensor is stopped (so that only the daily path runs), 1% of the databases get a
   column (ALTER TABLE ... ADD COLUMN, dropped again at the end), and the daemon is restarted with a daily schedule
   that fires once, at the next minute: timed from its tick to the push that leaves the changed databases pushed.
A warm-up scan (not measured) reads every table definition first, so the first storage measured does not pay for a
cold server.
The built-in source (`datahub ingest`, `file` sink and `datahub-lite` sink) runs against the same server in the same
invocation, so the ratios compare like with like. Writes bench/deployed.json (per size) and bench/DEPLOYED.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import generate  # noqa: E402
import run  # noqa: E402

VALUES = yaml.safe_load((BENCH.parent / "deploy" / "values.yaml").read_text())
# How often the end of a phase is checked (each check reads every database's version record): it adds half of it on
# average to each figure; main() lengthens it for thousands of databases, where a check costs more.
POLL_S = 0.2


def instance_yaml(storage: str, pg=None) -> dict:
    """dagster.yaml as the chart renders it from deploy/values.yaml (run queue, pools, run retries, the schedule and
    sensor daemons' threads)."""
    qrc = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    pools, runs = VALUES["concurrency"]["pools"], VALUES["concurrency"]["runs"]
    doc = {
        "telemetry": {"enabled": False},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": qrc["dequeueIntervalSeconds"]},
        },
        "concurrency": {
            "pools": {"granularity": pools["granularity"], "default_limit": pools["defaultLimit"]},
            "runs": {"max_concurrent_runs": runs["maxConcurrentRuns"]},
        },
        "run_retries": {"enabled": True, "max_retries": VALUES["dagsterDaemon"]["runRetries"]["maxRetries"]},
        **{
            kind: {
                "use_threads": v["useThreads"],
                "num_workers": v["numWorkers"],
                "num_submit_workers": v["numSubmitWorkers"],
            }
            for kind in ("schedules", "sensors")
            if (v := VALUES["dagsterDaemon"].get(kind))
        },
    }
    if storage == "postgres":
        doc["storage"] = {
            "postgres": {
                "postgres_db": {
                    "hostname": pg.host,
                    "port": pg.port,
                    "username": pg.user,
                    "password": "",
                    "db_name": "dagster",
                }
            }
        }
    return doc


class Deployment:
    """A Dagster home with its daemon and the bench's sources.yaml (its schedule stopped until the normal day)."""

    def __init__(self, home: Path, server, storage: str, batch_size: int, pg=None):
        self.home, self.storage = home, storage
        (home / "dagster").mkdir(parents=True)
        (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(storage, pg)))
        cfg = {
            "sources": [
                {
                    "name": run.SOURCE_NAME,
                    "type": "mysql",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "user": run.READER_USER,
                    "password_env": run.PASSWORD_ENV,
                    "database_pattern": {"allow": [f"{generate.DB_PREFIX}.*"]},
                    "batch_size": batch_size,
                    "schedule": {"cron": "* * * * *"},
                }
            ],
            "storage": {"uri": str(home / "store")},
            "datahub": {"target": "lite", "lite": {"path": str(home / "lite.sqlite")}},
        }
        (home / "sources.yaml").write_text(yaml.safe_dump(cfg))
        # the environment the chart gives the daemon and the run pods (here the daemon's runs inherit the daemon's)
        chart_env = {
            e["name"]: e["value"]
            for e in [
                *VALUES["dagsterDaemon"].get("env", []),
                *VALUES["dagster-user-deployments"]["deployments"][0]["env"],
            ]
            if e["name"].startswith("DAGSTER_")
        }
        self.env = {
            **os.environ,
            **chart_env,
            "DAGSTER_HOME": str(home / "dagster"),
            "METADATA_ASSETS_CONFIG": str(home / "sources.yaml"),
            run.PASSWORD_ENV: run.READER_PASSWORD,
            "DATAHUB_TELEMETRY_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
        self.daemon = None
        self.source = None

    def set_cron(self, cron: str) -> None:
        cfg = yaml.safe_load((self.home / "sources.yaml").read_text())
        cfg["sources"][0]["schedule"] = {"cron": cron}
        (self.home / "sources.yaml").write_text(yaml.safe_dump(cfg))

    def cli(self, *args: str) -> None:
        subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), *args, "-m", "metadata_assets.definitions"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start_daemon(self) -> float:
        log = open(self.home / "daemon.log", "ab")
        self.daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", "metadata_assets.definitions"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return time.time()

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            os.killpg(self.daemon.pid, 2)
            try:
                self.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.daemon.pid, 9)

    def instance(self):
        os.environ.update({k: self.env[k] for k in ("DAGSTER_HOME", "METADATA_ASSETS_CONFIG", run.PASSWORD_ENV)})
        from dagster import DagsterInstance

        return DagsterInstance.get()


def ticks(inst, name: str) -> list:
    for state in inst.all_instigator_state():
        if state.instigator_name == name:
            return sorted(
                inst.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000), key=lambda t: t.timestamp
            )
    return []


def runs_since(inst, since: float) -> list:
    from dagster import RunsFilter

    return [r for r in inst.get_run_records(RunsFilter(), limit=1000) if r.create_timestamp.timestamp() >= since]


def pushed_everything(home: Path, databases: list[str]) -> bool:
    """Every database recorded as pushed at the version of its current files."""
    from metadata_assets.datahub.push import load_state
    from metadata_assets.storage.database_files import read_version
    from metadata_assets.storage.store import LocalStore

    store = LocalStore(home / "store")
    state = load_state(store, run.SOURCE_NAME)
    for db in databases:
        record = read_version(store, run.SOURCE_NAME, db)
        if record is None or db not in state or state[db].data_version != record["data_version"]:
            return False
    return True


def wait(predicate, timeout: float, what: str, daemon) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited ({daemon.returncode}) while waiting for {what}")
        if predicate():
            return time.time()
        time.sleep(POLL_S)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def split(records: list, t0: float) -> dict:
    """Run timings relative to t0: extraction runs (first start .. last end) and push runs."""
    out = {"extraction_runs": 0, "push_runs": 0}
    ext = [r for r in records if r.dagster_run.tags.get("metadata_assets/push_source") is None]
    push = [r for r in records if r.dagster_run.tags.get("metadata_assets/push_source") is not None]
    for label, rs in (("extraction", ext), ("push", push)):
        done = [r for r in rs if r.start_time and r.end_time]
        out[f"{label}_runs"] = len(rs)
        if done:
            out[f"{label}_first_start_s"] = round(min(r.start_time for r in done) - t0, 2)
            out[f"{label}_last_end_s"] = round(max(r.end_time for r in done) - t0, 2)
            out[f"{label}_run_s"] = [round(r.end_time - r.start_time, 2) for r in done]
    return out


class RunMemory:
    """The largest RSS of any run process (what the default run launcher starts: the code server's spawned child;
    a pod on GKE), sampled every second while a phase runs."""

    def __init__(self):
        import threading

        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            for proc in psutil.process_iter(["cmdline", "memory_info"]):
                try:
                    cmd = " ".join(proc.info.get("cmdline") or [])
                    if "spawn_main" in cmd and "grpc" in " ".join(proc.parent().cmdline()):
                        self.peak_mib = max(self.peak_mib, proc.info["memory_info"].rss / 2**20)
                except (psutil.Error, AttributeError):  # gone meanwhile, or no parent
                    continue

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=5)
        return round(self.peak_mib, 1)


def measure_storage(storage: str, server, databases: list[str], args, log) -> dict:
    from metadata_assets import local_postgres

    work = run.WORK / args.size / "deployed" / storage
    shutil.rmtree(work, ignore_errors=True)
    pg = None
    if storage == "postgres":
        pg = local_postgres.start(work / "pg")
        local_postgres.create_database(pg, "dagster")
    dep = Deployment(work / "home", server, storage, args.batch_size, pg)
    n_changed = max(1, len(databases) * args.changed_percent // 100)
    changed = {db: first_table(server, db) for db in databases[:: max(1, len(databases) // n_changed)][:n_changed]}
    result: dict = {"storage": storage, "changed_databases": len(changed)}
    memory = RunMemory()
    try:
        dep.cli("schedule", "stop", f"{run.SOURCE_NAME}_daily_schedule")  # the first fill comes from the sensor
        t_daemon = dep.start_daemon()
        inst = dep.instance()
        key_name = f"{run.SOURCE_NAME}_schema_sensor"
        t_tick = None

        def first_fill_done() -> bool:
            nonlocal t_tick
            if t_tick is None:
                t = ticks(inst, key_name)
                t_tick = t[0].timestamp if t else None
            return t_tick is not None and pushed_everything(dep.home, databases) and not _active(inst)

        t_done = wait(first_fill_done, args.timeout, "the first fill", dep.daemon)
        result["first_fill"] = {
            "daemon_start_to_first_tick_s": round(t_tick - t_daemon, 2),
            "s": round(t_done - t_tick, 2),
            **split(runs_since(inst, t_tick - 1), t_tick),
        }
        log(f"[{storage}] first fill: {result['first_fill']}")

        dep.cli("sensor", "stop", key_name)
        # The daily schedule fires once, at a minute chosen now, so one tick makes the day: the daemon is restarted
        # with that cron (a cron of every minute stopped after its first tick went on ticking at XL, where the tick
        # takes most of a minute to submit its runs). Timed from the tick, so the restart is not counted.
        dep.stop()
        fire = datetime.fromtimestamp(time.time() + 40, timezone.utc).replace(second=0, microsecond=0)
        fire = fire + timedelta(minutes=1)
        dep.set_cron(f"{fire.minute} {fire.hour} * * *")
        for db, table in changed.items():
            server.execute(f"ALTER TABLE `{db}`.`{table}` ADD COLUMN bench_normal_day INT COMMENT 'deployed bench'")
        t_changed = time.time()
        dep.start_daemon()
        sched = f"{run.SOURCE_NAME}_daily_schedule"
        dep.cli("schedule", "start", sched)
        t_sched = None

        def day_done() -> bool:
            nonlocal t_sched
            if t_sched is None:
                t = [x for x in ticks(inst, sched) if x.timestamp >= t_changed]
                t_sched = t[0].timestamp if t else None
                return False
            return pushed_everything(dep.home, databases) and not _active(inst)

        t_day = wait(day_done, args.timeout, "the normal day", dep.daemon)
        ticked = [x for x in ticks(inst, sched) if x.timestamp >= t_changed and x.run_ids]
        result["normal_day"] = {
            "s": round(t_day - t_sched, 2),
            "schedule_ticks": len(ticked),
            **split(runs_since(inst, t_sched - 1), t_sched),
        }
        log(f"[{storage}] normal day: {result['normal_day']}")
    finally:
        result["peak_run_rss_mib"] = memory.stop()
        dep.stop()
        for db, table in changed.items():
            try:
                server.execute(f"ALTER TABLE `{db}`.`{table}` DROP COLUMN IF EXISTS bench_normal_day")
            except Exception as e:  # keep the generated server pristine; say so if it is not
                log(f"could not drop bench_normal_day from {db}: {e}")
        if pg is not None:
            pg.stop()
    return result


def first_table(server, db: str) -> str:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                "TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME LIMIT 1",
                (db,),
            )
            return cur.fetchone()[0]
    finally:
        conn.close()


def _active(inst) -> bool:
    from dagster import DagsterRunStatus, RunsFilter

    active = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    ]
    return bool(inst.get_run_records(RunsFilter(statuses=active), limit=1))


def builtin(server, args, log) -> dict:
    env = {**os.environ, "DATAHUB_TELEMETRY_ENABLED": "false"}
    out: dict = {}
    for sink in ("file", "datahub-lite"):
        d = run.WORK / args.size / "deployed" / f"builtin-{sink}"
        shutil.rmtree(d, ignore_errors=True)
        cmd = run.builtin_cmd(server.port, f"{generate.DB_PREFIX}.*", d)
        if sink == "datahub-lite":
            recipe = yaml.safe_load((d / "recipe.yml").read_text())
            recipe["sink"] = {
                "type": "datahub-lite",
                "config": {"type": "sqlite", "config": {"file": str(d / "lite.sqlite")}},
            }
            (d / "recipe.yml").write_text(yaml.safe_dump(recipe))
        r = run.measure(cmd, env, args.builtin_timeout, server, d / "stderr.log")
        out[sink] = {k: r[k] for k in ("wall_s", "peak_rss_mib", "timed_out", "rc") if k in r}
        log(f"[builtin {sink}] {out[sink]}")
    return out


def render_all(by_size: dict) -> str:
    parts = ["## The deployed shape: daemon, run queue, one process per run (bench/deployed.py)", ""]
    return "\n".join(parts) + "\n" + "\n".join(render(by_size[k]) for k in run.SIZE_ORDER if k in by_size)


def render(data: dict) -> str:
    lines = [
        f"### {data['size']}",
        "",
        f"Measured {data['measured']} on {data['size']} ({data['databases']} databases), batch_size "
        f"{data['batch_size']}, instance as deploy/values.yaml configures it (queue every "
        f"{data['dequeue_s']} s, per-host pool, run retries); sensors every 15 s (schema) and 30 s (push). "
        f"Command: `{data['command']}`.",
        "",
        "| | sqlite storage | PostgreSQL storage |",
        "|---|---:|---:|",
    ]
    runs: dict[str, list] = {}
    for r in data["storages"]:  # one entry per storage and run (--runs)
        runs.setdefault(r["storage"], []).append(r)
    by = {storage: rs[-1] for storage, rs in runs.items()}

    def cell(storage, phase, key="s"):
        vs = [v for r in runs.get(storage, []) if (v := r.get(phase, {}).get(key)) is not None]
        return "—" if not vs else " / ".join(f"{v:.1f}" for v in vs) + " s"

    lines.append(
        f"| first fill: sensor tick -> every database in DataHub Lite | {cell('sqlite', 'first_fill')} | "
        f"{cell('postgres', 'first_fill')} |"
    )
    lines.append(
        f"| of which the first run starts (queue, process start) | "
        f"{cell('sqlite', 'first_fill', 'extraction_first_start_s')} | "
        f"{cell('postgres', 'first_fill', 'extraction_first_start_s')} |"
    )
    lines.append(
        f"| normal day ({next(iter(by.values()))['changed_databases']} databases changed): schedule tick -> "
        f"pushed | {cell('sqlite', 'normal_day')} | {cell('postgres', 'normal_day')} |"
    )
    lines.append(
        f"| of which the run starts (queue, process start) | "
        f"{cell('sqlite', 'normal_day', 'extraction_first_start_s')} | "
        f"{cell('postgres', 'normal_day', 'extraction_first_start_s')} |"
    )
    lines.append(
        "| push runs of their own (first fill, normal day) | "
        + " | ".join(
            f"{by.get(st, {}).get('first_fill', {}).get('push_runs', '—')}, "
            f"{by.get(st, {}).get('normal_day', {}).get('push_runs', '—')}"
            for st in ("sqlite", "postgres")
        )
        + " |"
    )
    n_runs = max((len(rs) for rs in runs.values()), default=1)
    if n_runs > 1:
        lines += [
            "",
            f"{n_runs} runs in this invocation, each on a fresh Dagster home, store and DataHub Lite "
            "(figures in run order).",
        ]
    peaks = {storage: [r["peak_run_rss_mib"] for r in rs if r.get("peak_run_rss_mib")] for storage, rs in runs.items()}
    if any(peaks.values()):
        lines += [
            "",
            "Peak memory of one run process (RSS, the largest over the run's processes, sampled every "
            "second): "
            + "; ".join(f"{s}: {' / '.join(f'{v:.0f}' for v in vs)} MiB" for s, vs in peaks.items() if vs)
            + ".",
        ]
    if data.get("note"):
        lines += ["", data["note"]]
    b = data.get("builtin") or {}
    if not b:
        lines += ["", "The built-in source was not run with this size (`--skip-builtin`)."]
    if b:
        lines += [
            "",
            f"Built-in mysql source on the same server in the same invocation: `file` sink "
            f"{b['file']['wall_s']:.1f} s, `datahub-lite` sink {b['datahub-lite']['wall_s']:.1f} s "
            f"(it re-reads everything every day).",
        ]
        for storage in ("sqlite", "postgres"):
            for i, r in enumerate(runs.get(storage, [])):
                ff, nd = r["first_fill"]["s"], r["normal_day"]["s"]
                lite, file = b["datahub-lite"]["wall_s"], b["file"]["wall_s"]
                which = f" (run {i + 1})" if len(runs[storage]) > 1 else ""
                lines.append(
                    f"- {storage}{which}: first fill {lite / ff:.1f}x as fast as the built-in into Lite "
                    f"({ff:.1f} s vs {lite:.1f} s), {file / ff:.1f}x the built-in into a file; normal day "
                    f"{lite / nd:.1f}x the built-in into Lite, {file / nd:.1f}x into a file."
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="L", choices=sorted(generate.SIZES))
    p.add_argument("--storage", default="sqlite,postgres")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--changed-percent", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1800, help="bound on each wait, s")
    p.add_argument("--builtin-timeout", type=float, default=900)
    p.add_argument("--skip-builtin", action="store_true")
    p.add_argument("--runs", type=int, default=1, help="measure each storage this many times (fresh home each)")
    p.add_argument("--render", action="store_true", help="only re-render DEPLOYED.md from deployed.json")
    args = p.parse_args()
    out = BENCH / "deployed.json"
    by_size = json.loads(out.read_text()) if out.exists() else {}
    if "size" in by_size:  # the first format: one size
        by_size = {by_size["size"]: by_size}
    if not args.render:

        def log(msg):
            print(msg, flush=True)

        size = generate.SIZES[args.size]
        server, _ = run.prepare(size, log)
        try:
            t_warm = time.monotonic()  # a cold server's first scan would count against the first storage only
            run.warm_scan(
                args.size,
                {"port": server.port, "pattern": f"{generate.DB_PREFIX}.*", "batch_size": args.batch_size},
                {**os.environ, run.PASSWORD_ENV: run.READER_PASSWORD},
            )
            log(f"[{args.size}] warm-up scan {time.monotonic() - t_warm:.1f}s (not measured)")
            databases = size.database_names()
            global POLL_S
            POLL_S = 0.2 if len(databases) <= 500 else 1.0
            data = {
                "size": args.size,
                "databases": len(databases),
                "batch_size": args.batch_size,
                "dequeue_s": VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"][
                    "dequeueIntervalSeconds"
                ],
                "command": " ".join(["bench/deployed.py", *sys.argv[1:]]),
                "storages": [
                    measure_storage(s, server, databases, args, log)
                    for _ in range(args.runs)
                    for s in args.storage.split(",")
                    if s
                ],
                "builtin": None if args.skip_builtin else builtin(server, args, log),
            }
        finally:
            server.stop()
        data["measured"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        by_size[args.size] = data
    out.write_text(json.dumps(by_size, indent=1) + "\n")
    (BENCH / "DEPLOYED.md").write_text(render_all(by_size))
    print(render_all(by_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
