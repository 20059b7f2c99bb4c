"""Benchmark harness: this project's extraction vs DataHub's built-in mysql source vs the raw-query floor.

    .venv/bin/python bench/run.py --sizes S,L          # then: --sizes XL
    .venv/bin/python bench/run.py --sizes S --runs 1 --skip builtin

For each size it starts a private MariaDB server (data dir under bench/work/<size>/, generated once and reused),
grants a least-privilege account (REFERENCES, SHOW VIEW per database) and measures, in the same run, each contender
in its own subprocess: wall time (whole process, imports included), the work time the child reports, peak RSS
(GNU time %M: wait4 rusage of that child) and statements/connections the server counted (SHOW GLOBAL STATUS deltas).
Contenders of one repetition run back to back (round robin), so noise from a busy machine hits all of them alike.
Results are merged into bench/results.json and rendered to bench/RESULTS.md. Not a test: nothing here runs in pytest.

The same script is the child: `run.py --child <contender> --spec spec.json` (handy under py-spy / pyinstrument).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
RESULTS_JSON = BENCH / "results.json"
RESULTS_MD = BENCH / "RESULTS.md"
sys.path[:0] = [str(ROOT), str(BENCH)]

READER_USER = "bench_reader"
READER_PASSWORD = "bench-reader-pw"
PASSWORD_ENV = "BENCH_READER_PASSWORD"
SOURCE_NAME = "bench"
SERVER_ARGS = ("--innodb-flush-log-at-trx-commit=0", "--max-connections=500")  # durability off: faster generation
WARM_MODULES = (
    "dagster",
    "pymysql",
    "yaml",
    "sqlglot",
    "datahub.entrypoints",
    "datahub.cli.ingest_cli",
    "datahub.ingestion.run.pipeline",
    "datahub.ingestion.source.sql.mysql",
    "datahub.ingestion.sink.file",
    "datahub.sql_parsing.sqlglot_lineage",
    "datahub.lite.sqlite_lite",
    "metadata_assets.definitions",
    "metadata_assets.extract",
    "metadata_assets.datahub.push",
    "metadata_assets.datahub.sinks",
)
WARM_IMPORTS = (
    "import importlib\nfor m in %r:\n    try:\n        importlib.import_module(m)\n    except Exception:\n"
    "        pass\n" % (WARM_MODULES,)
)
CONTENDERS = ("floor", "floor_union", "core", "proto", "sensor", "sensor_tick", "builtin", "dagster")
LABELS = {
    "floor": "floor: the reader's statements (MySQLReader.fetch_batch) -> JSON",
    "core": "ours: extract() -> MCE files (core path)",
    "floor_union": "floor, reader patched by bench/proto.py install_union_reads",
    "proto": "core, then day 2 with the skip-unchanged prototype (bench/proto.py)",
    "dagster": "ours: daily refresh through Dagster, in process",
    "builtin": "DataHub built-in mysql source (datahub ingest)",
    "sensor": "fingerprints of every part, whole server (MySQLReader.fingerprints; the sensor's first tick)",
    "sensor_tick": "sensor tick, steady state (defs/source_reads.read_fingerprints with a cursor)",
}


# ----------------------------------------------------------------------------------------------------------- children
def _source(spec: dict):
    from metadata_assets.source_config import Pattern
    from metadata_assets.sources.mysql.config import MySQLSource

    return MySQLSource(
        name=SOURCE_NAME,
        type="mysql",
        host="127.0.0.1",
        port=spec["port"],
        user=READER_USER,
        password_env=PASSWORD_ENV,
        database_pattern=Pattern(allow=[spec["pattern"]]),
        batch_size=spec["batch_size"],
    )


def floor_dump(source, path: Path) -> dict:
    """The floor: every statement MySQLReader.read() runs (MySQLReader.fetch_batch, the same code), each batch's
    rows written to JSON; no snapshot, no MCPs (tests/test_floor.py: the same statements as read())."""
    from metadata_assets.sources.mysql import MySQLReader, connect

    conn = connect(source)
    try:
        reader = MySQLReader(conn)
        dbs = reader.list_databases(source)
        n_rows = 0
        with open(path, "w", encoding="utf-8") as f:
            for i in range(0, len(dbs), source.batch_size):
                rows = reader.fetch_batch(dbs[i : i + source.batch_size], source)
                views = rows.pop("views")
                rows["views"] = [[list(k), v if isinstance(v, list) else repr(v)] for k, v in views.items()]
                json.dump(rows, f, default=str, ensure_ascii=False)
                n_rows += sum(len(v) for v in rows.values() if isinstance(v, list))
    finally:
        conn.close()
    return {"databases": len(dbs), "rows": n_rows, "reader_statements": reader.stats.statements}


def child_floor(spec: dict, out: Path) -> dict:
    """Exactly the statements MySQLReader.read() runs, written to JSON: no snapshot, no MCPs."""
    t0 = time.monotonic()
    result = floor_dump(_source(spec), out / "floor.json")
    return {"inner_s": time.monotonic() - t0, **result}


def child_floor_union(spec: dict, out: Path) -> dict:
    import proto

    proto.install_union_reads()
    return child_floor(spec, out)


def child_core(spec: dict, out: Path) -> dict:
    from metadata_assets.extract import extract
    from metadata_assets.sources.mysql import list_databases
    from metadata_assets.storage.store import LocalStore

    source = _source(spec)
    t0 = time.monotonic()
    dbs = list_databases(source)
    n = proposals = failed = 0
    for r in extract(source, dbs, LocalStore(out / "store")):
        n += 1
        proposals += r.proposals
        failed += not r.ok
    return {"inner_s": time.monotonic() - t0, "databases": n, "proposals": proposals, "failed": failed}


def child_proto(spec: dict, out: Path) -> dict:
    """Day 1: the core path, fresh store. Day 2: same store, no schema change, with the skip-unchanged prototype of
    bench/proto.py (the other prototypes there were adopted by the core)."""
    import proto

    from metadata_assets.extract import extract
    from metadata_assets.sources.mysql import list_databases
    from metadata_assets.storage.store import LocalStore

    source = _source(spec)
    t0 = time.monotonic()
    dbs = list_databases(source)
    proposals = sum(r.proposals for r in extract(source, dbs, LocalStore(out / "store")))
    t1 = time.monotonic()
    proto.install_skip_unchanged()
    second = list(extract(source, dbs, LocalStore(out / "store")))
    t2 = time.monotonic()
    return {
        "inner_s": t1 - t0,
        "second_day_s": round(t2 - t1, 3),
        "proposals": proposals,
        "second_day_proposals": sum(r.proposals for r in second),
        "databases": len(dbs),
    }


def _project_yaml(spec: dict, out: Path) -> Path:
    import yaml

    cfg = {
        "sources": [
            {
                "name": SOURCE_NAME,
                "type": "mysql",
                "host": "127.0.0.1",
                "port": spec["port"],
                "user": READER_USER,
                "password_env": PASSWORD_ENV,
                "database_pattern": {"allow": [spec["pattern"]]},
                "batch_size": spec["batch_size"],
            }
        ],
        "storage": {"uri": str(out / "store")},
        "datahub": {"target": "lite", "lite": {"path": str(out / "lite.sqlite")}},
    }
    path = out / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run_requests(defs, instance, source):
    """The daily schedule's run requests when defs/schedule.py exists; else partition-range batches ourselves."""
    from dagster import RunRequest, build_schedule_context
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from metadata_assets.defs.keys import mce_asset_key, partitions_def

    schedules = list(defs.schedules or [])
    if schedules:
        reqs = []
        for s in schedules:
            sched = defs.resolve_schedule_def(s.name)
            data = sched.evaluate_tick(
                build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(timezone.utc))
            )
            reqs += [(sched, r) for r in (data.run_requests or [])]
        return "schedule", reqs
    keys = partitions_def(source).get_partition_keys(dynamic_partitions_store=instance)
    reqs = []
    for i in range(0, len(keys), source.batch_size):
        batch = keys[i : i + source.batch_size]
        reqs.append(
            (
                None,
                RunRequest(
                    asset_selection=[mce_asset_key(source)],
                    tags={ASSET_PARTITION_RANGE_START_TAG: batch[0], ASSET_PARTITION_RANGE_END_TAG: batch[-1]},
                ),
            )
        )
    return "partition ranges (no defs/schedule.py yet)", reqs


def _materializations(result) -> list:
    return [
        ev.step_materialization_data.materialization
        for ev in result.all_events
        if ev.event_type_value == "ASSET_MATERIALIZATION"
    ]


def child_dagster(spec: dict, out: Path) -> dict:
    """The whole daily refresh: partitions synced, the schedule's runs executed in process, then the push
    (what the push sensor requests after extraction), then a second push with no schema change."""
    os.environ["METADATA_ASSETS_CONFIG"] = str(_project_yaml(spec, out))
    os.environ["DAGSTER_HOME"] = str(out / "dagster_home")
    (out / "dagster_home").mkdir(exist_ok=True)
    (out / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    t_import = time.monotonic()
    from dagster import AssetKey, DagsterInstance

    from metadata_assets.config import load
    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.keys import partitions_def
    from metadata_assets.sources.mysql import list_databases

    cfg = load()
    source = cfg.sources[0]
    defs = build_definitions(cfg)
    t_instance = time.monotonic()
    instance = DagsterInstance.get()  # a fresh sqlite instance: schema creation, a one-time cost, not counted
    t0 = time.monotonic()
    instance.add_dynamic_partitions(partitions_def(source).name, list_databases(source))
    how, reqs = _run_requests(defs, instance, source)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    ok = 0
    per_run = []
    materialized = events = 0
    for sched, rr in reqs:
        job = (
            defs.resolve_job_def(sched.job_name)
            if sched is not None and sched.job_name
            else defs.resolve_implicit_global_asset_job_def()
        )
        tr = time.monotonic()
        res = job.execute_in_process(
            instance=instance,
            run_config=rr.run_config or quiet,
            tags=rr.tags,
            asset_selection=rr.asset_selection,
            partition_key=rr.partition_key,
            raise_on_error=False,
        )
        per_run.append(round(time.monotonic() - tr, 2))
        print(
            f"run {len(per_run)}/{len(reqs)} {'ok' if res.success else 'FAILED'} in {per_run[-1]}s "
            f"({time.monotonic() - t0:.0f}s so far)",
            file=sys.stderr,
            flush=True,
        )
        ok += res.success
        materialized += len(_materializations(res))
        events += len(res.all_events)
    t_extracted = time.monotonic()
    detail = {
        "import_and_defs_s": round(t_instance - t_import, 2),
        "new_instance_s": round(t0 - t_instance, 2),
        "runs": len(reqs),
        "runs_ok": ok,
        "partitions_materialized": materialized,
        "events_logged": events,
        "run_requests_from": how,
        "per_run_s": per_run,
        "extraction_s": round(t_extracted - t0, 2),
        # ru_maxrss only grows: this is the peak of the extraction runs, before any push
        "extraction_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    push_key = AssetKey([source.name, "datahub_push"])
    job = defs.resolve_implicit_global_asset_job_def()
    if push_key in set(job.asset_layer.executable_asset_keys):
        t_pushed = None
        for label in ("push_first", "push_unchanged"):
            tp = time.monotonic()
            res = job.execute_in_process(
                instance=instance, run_config=quiet, asset_selection=[push_key], raise_on_error=False
            )
            mats = _materializations(res)
            md = mats[0].metadata if mats else {}
            detail[label + "_s"] = round(time.monotonic() - tp, 2)
            detail[label] = {
                "ok": res.success,
                **{
                    k: getattr(md[k], "value", md[k])
                    for k in ("proposals_sent", "databases_pushed", "databases_skipped")
                    if k in md
                },
            }
            t_pushed = t_pushed or time.monotonic()
        detail["inner_s"] = t_pushed - t0  # the daily refresh: extraction runs + the first push
    else:
        detail["push"] = "no datahub_push asset in the definitions: push not measured"
        detail["inner_s"] = t_extracted - t0
    return detail


def child_builtin(spec: dict, out: Path) -> dict:  # pragma: no cover - the parent runs the CLI directly
    raise SystemExit("builtin runs `datahub ingest` directly")


def child_sensor(spec: dict, out: Path) -> dict:
    from metadata_assets.sources.mysql import MySQLReader, connect

    source = _source(spec)
    t0 = time.monotonic()
    conn = connect(source)
    t1 = time.monotonic()
    fps = MySQLReader(conn).fingerprints(source)
    t2 = time.monotonic()
    conn.close()
    return {"inner_s": t2 - t0, "query_s": round(t2 - t1, 3), "databases": len(fps)}


def child_sensor_tick(spec: dict, out: Path) -> dict:
    """What the schema-change sensor runs per tick: a first tick (no cursor: every part), then a tick with that
    cursor (cheap parts for all databases, key parts for a rotating slice). Work time = the second tick."""
    from metadata_assets.defs.source_reads import read_fingerprints

    source = _source(spec)
    t0 = time.monotonic()
    first = read_fingerprints(source)
    t1 = time.monotonic()
    second = read_fingerprints(source, cursor=first)
    t2 = time.monotonic()
    return {
        "inner_s": t2 - t1,
        "first_tick_s": round(t1 - t0, 3),
        "databases": len(second),
        "changed": sum(first[d] != second.get(d) for d in first),
    }


CHILDREN = {
    "sensor_tick": child_sensor_tick,
    "floor": child_floor,
    "floor_union": child_floor_union,
    "core": child_core,
    "proto": child_proto,
    "dagster": child_dagster,
    "sensor": child_sensor,
}


def child_main(name: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    os.environ[PASSWORD_ENV] = READER_PASSWORD
    os.environ.setdefault("DATAHUB_TELEMETRY_ENABLED", "false")
    result = CHILDREN[name](spec, out)
    print("BENCH-RESULT " + json.dumps(result, default=str), flush=True)


# ------------------------------------------------------------------------------------------------------------ parent
def server_status(server) -> dict[str, int]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Connections')")
            return {k: int(v) for k, v in cur.fetchall()}
    finally:
        conn.close()


def measure(cmd: list[str], env: dict, timeout: float, server, log_path: Path) -> dict:
    """Run cmd; wall time, peak RSS and CPU, statements and connections it caused.

    Peak RSS comes from GNU time (`%M`, its child's wait4 rusage): a child forked straight from this harness would
    inherit the harness's own high-water RSS (Linux keeps it across exec), which would pad small contenders.
    """
    before = server_status(server)
    time_file = log_path.with_suffix(".time")
    cmd = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(time_file), *cmd]
    t0 = time.monotonic()
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=logf, text=True, start_new_session=True)
        import threading

        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
        reader.start()
        timed_out = False
        deadline = t0 + timeout
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                timed_out = True
                os.killpg(proc.pid, 9)
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(timeout=10)
    after = server_status(server)
    stdout = "".join(chunks)
    try:
        kib, user, system = time_file.read_text().split()[-3:]
        peak, cpu = int(kib) / 1024, float(user) + float(system)
    except (OSError, ValueError):  # killed: GNU time wrote nothing
        peak, cpu = rusage.ru_maxrss / 1024, rusage.ru_utime + rusage.ru_stime
    result = {
        "wall_s": wall,
        "peak_rss_mib": peak,
        "cpu_s": cpu,
        "statements": after["Questions"] - before["Questions"] - 1,  # minus our own SHOW STATUS
        "connections": after["Connections"] - before["Connections"] - 1,
        "rc": proc.returncode,
        "timed_out": timed_out,
    }
    for line in stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            result.update(json.loads(line[len("BENCH-RESULT ") :]))
    if proc.returncode != 0 and not timed_out:
        result["error"] = log_path.read_text(errors="replace")[-1500:]
    return result


def builtin_cmd(port: int, pattern: str, out: Path) -> list[str]:
    import yaml

    recipe = {
        "source": {
            "type": "mysql",
            "config": {
                "host_port": f"127.0.0.1:{port}",
                "username": "root",
                "password": "",
                "database_pattern": {"allow": [pattern]},
                "include_tables": True,
                "include_views": True,
                "profiling": {"enabled": False},
            },
        },
        "sink": {"type": "file", "config": {"filename": str(out / "builtin_mces.json")}},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yml").write_text(yaml.safe_dump(recipe))
    return [str(Path(sys.executable).parent / "datahub"), "ingest", "-c", str(out / "recipe.yml")]


def prepare(size, log) -> tuple[object, float | None]:
    import generate

    from metadata_assets import local_mariadb

    base = WORK / size.name
    (base / "tmp").mkdir(parents=True, exist_ok=True)
    server_args = (*SERVER_ARGS, f"--tmpdir={base / 'tmp'}")  # not /tmp: others' cleanups broke a query once
    gen_s = None
    if not generate.is_generated(base, size):
        generate.reset(base)
        server = local_mariadb.start(base, extra_args=server_args)
        log(
            f"[{size.name}] generating {size.databases} dbs x {size.tables} tables x {size.columns} columns "
            f"(+{size.views} views each) ..."
        )
        try:
            gen_s = generate.generate(server, size, base, log=log)
        except BaseException:
            server.stop()
            raise
        log(f"[{size.name}] generated in {gen_s:.1f}s")
    else:
        server = local_mariadb.start(base, extra_args=server_args)
        log(f"[{size.name}] reusing generated server in {base}")
    local_mariadb.grant_reader(server, READER_USER, READER_PASSWORD, size.database_names())
    return server, gen_s


def warm_scan(size_name: str, spec_base: dict, env: dict) -> None:
    """Not measured: the first information_schema scan after a server start reads every table definition from disk;
    without this the first contender would pay for everyone."""
    warm = WORK / size_name / "runs" / "warmup"
    shutil.rmtree(warm, ignore_errors=True)
    warm.mkdir(parents=True)
    (warm / "spec.json").write_text(json.dumps({**spec_base, "out": str(warm)}))
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", "floor_union", "--spec", str(warm / "spec.json")],
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )


def run_size(size, runs: int, skip: set[str], builtin_timeout: float, log, timeout_ours: float = 3600) -> dict:
    import generate

    server, gen_s = prepare(size, log)
    marker = json.loads(generate.marker_path(WORK / size.name).read_text())
    pattern = f"{generate.DB_PREFIX}.*"
    spec_base = {"port": server.port, "pattern": pattern, "batch_size": 200}
    env = {
        **os.environ,
        "DATAHUB_TELEMETRY_ENABLED": "false",
        PASSWORD_ENV: READER_PASSWORD,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPYCACHEPREFIX": str(WORK / "pycache"),
    }
    # This machine sets PYTHONDONTWRITEBYTECODE and the venv ships no .pyc: every process would compile dagster
    # and datahub from source (~7 s). Real deployments run compiled code, so children get a bytecode cache
    # under bench/work/pycache (the venv is left untouched) and a warm-up below fills it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    samples: dict[str, list[dict]] = {c: [] for c in CONTENDERS if c not in skip}
    builtin_skipped = None
    try:
        t_warm = time.monotonic()
        warm_scan(size.name, spec_base, env)
        subprocess.run(
            [sys.executable, "-c", WARM_IMPORTS],
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log(f"[{size.name}] warm-up scan and bytecode cache {time.monotonic() - t_warm:.1f}s (not measured)")
        for rep in range(runs):
            for name in samples:
                if name == "builtin" and builtin_skipped:
                    continue
                out = WORK / size.name / "runs" / f"{name}-{rep}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                if name == "builtin":
                    cmd = builtin_cmd(server.port, pattern, out)
                    timeout = builtin_timeout
                else:
                    spec = {**spec_base, "out": str(out)}
                    (out / "spec.json").write_text(json.dumps(spec))
                    cmd = [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--child",
                        name,
                        "--spec",
                        str(out / "spec.json"),
                    ]
                    timeout = timeout_ours
                r = measure(cmd, env, timeout, server, out / "stderr.log")
                if name == "builtin":
                    r.update(_builtin_counts(out / "builtin_mces.json"))
                    if r["timed_out"]:
                        builtin_skipped = f"killed after {builtin_timeout:.0f}s"
                if name in ("core", "dagster", "proto"):
                    r.update(_store_counts(out / "store"))
                samples[name].append(r)
                shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k not in ("error",)}
                log(f"[{size.name}] run {rep + 1}/{runs} {name}: {shown}")
                if "error" in r:
                    log(f"[{size.name}] {name} FAILED:\n{r['error']}")
    finally:
        server.stop()
    return {
        "size": {
            "name": size.name,
            "databases": size.databases,
            "tables": size.tables,
            "columns": size.columns,
            "views": size.views,
        },
        "generation_s": gen_s if gen_s is not None else marker.get("seconds"),
        "generated_now": gen_s is not None,
        "runs": runs,
        "samples": samples,
        "builtin_skipped": builtin_skipped,
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([sys.executable, *sys.argv]),
    }


def _builtin_counts(path: Path) -> dict:
    try:
        objs = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    datasets = {o.get("entityUrn") for o in objs if o.get("entityType") == "dataset"}
    views = {o.get("entityUrn") for o in objs if o.get("aspectName") == "viewProperties"}
    return {"proposals": len(objs), "datasets": len(datasets), "views_emitted": len(views)}


def _store_counts(store: Path) -> dict:
    files = list((store / SOURCE_NAME / "mce").glob("*.json")) if store.exists() else []
    return {"mce_files": len(files), "mce_bytes": sum(f.stat().st_size for f in files)}


# ----------------------------------------------------------------------------------------------------------- report
def _med(samples: list[dict], key: str):
    vals = [s[key] for s in samples if isinstance(s.get(key), (int, float)) and not s.get("timed_out")]
    return statistics.median(vals) if vals else None


def machine() -> dict:
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")),
        "0",
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    from importlib.metadata import version

    try:
        mariadb = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        from metadata_assets.local_mariadb import _find

        mariadb = subprocess.run([_find("mariadbd"), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "mariadb": mariadb.split(" for ")[0],
        "dagster": version("dagster"),
        "acryl-datahub": version("acryl-datahub"),
        "pymysql": version("pymysql"),
        "kernel": platform.release(),
    }


SIZE_ORDER = ("S", "L", "XL", "W")


def _machine_text(m: dict) -> str:
    return (
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}; {m['mariadb']} on the "
        f"same host; Python {m['python']}, dagster {m['dagster']}, acryl-datahub {m['acryl-datahub']}, "
        f"pymysql {m['pymysql']}"
    )


def _f(v, fmt="{:.2f}"):
    return "—" if v is None else fmt.format(v)


def render(all_results: dict, mach: dict) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `bench/run.py` (see bench/README.md). Wall = whole subprocess, imports included; "
        "work = the part the child times itself (after imports); peak RSS = GNU time `%M` (wait4 rusage) of the "
        "contender's process; statements/connections = server `Questions`/`Connections` deltas. "
        "Medians over the runs shown. Ours and the floor log in as the least-privilege account "
        "(`REFERENCES, SHOW VIEW` per database); the built-in source as root (it needs more: see bench/README.md).",
        "",
        f"Machine: {_machine_text(mach)}. "
        "The machine was shared with other engineers' test runs: absolute times are noisy, ratios within one "
        "size (measured back to back) are what count.",
        "",
    ]
    headline = []
    for name in SIZE_ORDER:
        res = all_results.get(name)
        if not res:
            continue
        sz = res["size"]
        s = res["samples"]
        lines += [
            f"## {name}: {sz['databases']} databases × {sz['tables']} tables × {sz['columns']} columns "
            f"(+{sz['views']} views each)",
            "",
        ]
        if res.get("machine") and _machine_text(res["machine"]) != _machine_text(mach):
            lines += [f"Measured on another machine: {_machine_text(res['machine'])}.", ""]
        lines += [
            f"Measured {res['measured_at']}, {res['runs']} run(s) each; schema generation took "
            f"{_f(res.get('generation_s'), '{:.1f}')} s"
            f"{'' if res.get('generated_now') else ' (cached data dir reused this time)'}. "
            f"Command: `{res['command']}`"
            + "".join(
                f"; {', '.join(k['contenders'])} measured {k['measured_at']} by `{k['command']}`" for k in _kept(res)
            ),
            "",
            "| contender | wall s | work s | peak RSS MiB | CPU s | statements | connections | output |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in CONTENDERS:
            if c not in s:
                continue
            smp = s[c]
            if c == "builtin" and res.get("builtin_skipped") and _med(smp, "wall_s") is None:
                lines.append(f"| {LABELS[c]} | skipped: {res['builtin_skipped']} | | | | | | |")
                continue
            outp = ""
            last = smp[-1] if smp else {}
            if c in ("core", "dagster", "proto"):
                outp = f"{last.get('mce_files', '?')} MCE files, {last.get('mce_bytes', 0) / 1e6:.1f} MB"
                if c == "core":
                    outp += f", {last.get('proposals', '?')} proposals"
                if c == "proto":
                    outp += (
                        f"; day 2 (no change, skip-unchanged prototype): {_f(_med(smp, 'second_day_s'))} s, "
                        f"{last.get('second_day_proposals', '?')} proposals built"
                    )
                if c == "dagster":
                    outp += (
                        f"; {last.get('runs', '?')} runs ({last.get('runs_ok', '?')} ok) from "
                        f"{last.get('run_requests_from', '?')}, {last.get('partitions_materialized', '?')} "
                        f"partitions materialized; extraction runs {_f(_med(smp, 'extraction_s'))} s"
                    )
            elif c == "builtin":
                outp = (
                    f"{last.get('proposals', '?')} proposals, {last.get('datasets', '?')} datasets, "
                    f"{last.get('views_emitted', '?')} with viewProperties"
                )
            elif c in ("floor", "floor_union"):
                outp = f"{last.get('rows', '?')} rows"
            elif c == "sensor_tick":
                outp = (
                    f"{last.get('databases', '?')} digests, {last.get('changed', '?')} changed; first tick "
                    f"(no cursor) {_f(_med(smp, 'first_tick_s'), '{:.2f}')} s"
                )
            elif c == "sensor":
                outp = f"{last.get('databases', '?')} fingerprints; query {_f(_med(smp, 'query_s'), '{:.3f}')} s"
            if any(x.get("error") for x in smp):
                outp += " **(failed: see log)**"
            lines.append(
                f"| {LABELS[c]} | {_f(_med(smp, 'wall_s'))} | {_f(_med(smp, 'inner_s'))} | "
                f"{_f(_med(smp, 'peak_rss_mib'), '{:.0f}')} | {_f(_med(smp, 'cpu_s'))} | "
                f"{_f(_med(smp, 'statements'), '{:.0f}')} | {_f(_med(smp, 'connections'), '{:.0f}')} | "
                f"{outp} |"
            )
        ratios = ratio_lines(res)
        lines += ["", *ratios, ""]
        dag = s.get("dagster") or []
        if dag and "push_first" in dag[-1]:
            pf, pu = dag[-1]["push_first"], dag[-1]["push_unchanged"]
            if pf.get("databases_pushed") == 0 and pf.get("proposals_sent") == 0:
                lines += [
                    "The last extraction run pushed into DataHub Lite at its end (`push_from_extraction`): the "
                    "extraction time above includes the first push, and the `datahub_push` asset run after it "
                    "had nothing left to send."
                ]
            lines += [
                f"Push into DataHub Lite (the `datahub_push` asset, run in process after the extraction runs; "
                f"last run): first push {_f(_med(dag, 'push_first_s'))} s (median), "
                f"{pf.get('proposals_sent', '?')} proposals, {pf.get('databases_pushed', '?')} databases; "
                f"push after an unchanged day {_f(_med(dag, 'push_unchanged_s'))} s, "
                f"**{pu.get('proposals_sent', '?')} proposals**, {pu.get('databases_skipped', '?')} "
                f"databases skipped. Dagster work time = extraction runs + first push.",
                "",
            ]
        elif dag:
            lines += [f"Push: {dag[-1].get('push', 'not measured')}", ""]
        headline.append((name, ratios))
    for extra in ("DEPLOYED.md", "LATENCY.md", "NOTES.md"):  # bench/deployed.py, bench/latency.py, by hand
        if (BENCH / extra).exists():
            lines += ["", (BENCH / extra).read_text()]
    return "\n".join(lines) + "\n"


def _kept(res: dict) -> list[dict]:
    k = res.get("kept_from") or []
    return [k] if isinstance(k, dict) else k


def origins(res: dict) -> dict[str, dict]:
    """{contender: {measured_at, command, machine}}: the run each contender's samples come from. Results from
    before `sample_origins` existed say it through `kept_from` (one earlier run) or not at all (all from this one)."""
    if res.get("sample_origins"):
        return res["sample_origins"]
    mine = {"measured_at": res.get("measured_at"), "command": res.get("command"), "machine": res.get("machine")}
    out = {c: mine for c in res.get("samples", {})}
    for k in _kept(res):
        for c in k.get("contenders", []):
            out[c] = {"measured_at": k.get("measured_at"), "command": k.get("command"), "machine": None}
    return out


def kept_groups(origins_: dict[str, dict], measured_at: str) -> list[dict]:
    """The contenders not measured in the run of `measured_at`, grouped by the run they come from."""
    groups: dict[tuple, list[str]] = {}
    for c, o in origins_.items():
        if o.get("measured_at") != measured_at:
            groups.setdefault((o.get("measured_at"), o.get("command")), []).append(c)
    return [
        {"contenders": sorted(cs), "measured_at": at, "command": cmd}
        for (at, cmd), cs in sorted(groups.items(), key=str)
    ]


def ratio_lines(res: dict) -> list[str]:
    s = res["samples"]
    w = {c: _med(s.get(c, []), "wall_s") for c in CONTENDERS}
    wk = {c: _med(s.get(c, []), "inner_s") for c in CONTENDERS}
    m = {c: _med(s.get(c, []), "peak_rss_mib") for c in CONTENDERS}
    out = ["| ratio | wall | work |", "|---|---:|---:|"]

    src = origins(res)

    def r(a, b, ca=None, cb=None):
        if not (a and b):
            return "—"
        text = f"{a / b:.1f}×"
        if ca and cb and src.get(ca, {}).get("measured_at") != src.get(cb, {}).get("measured_at"):
            text += (
                f" (not one run: {ca} {src.get(ca, {}).get('measured_at')}, {cb} {src.get(cb, {}).get('measured_at')})"
            )
        return text

    out.append(
        f"| built-in ÷ ours (core) | {r(w['builtin'], w['core'], 'builtin', 'core')} | {r(w['builtin'], wk['core'])} (built-in wall ÷ our work) |"
    )
    out.append(
        f"| built-in ÷ ours (Dagster refresh) | {r(w['builtin'], w['dagster'], 'builtin', 'dagster')} | {r(w['builtin'], wk['dagster'])} (built-in wall ÷ our work) |"
    )
    out.append(f"| ours (core) ÷ floor | {r(w['core'], w['floor'], 'core', 'floor')} | {r(wk['core'], wk['floor'])} |")
    out.append(
        f"| ours (Dagster refresh) ÷ floor | {r(w['dagster'], w['floor'], 'dagster', 'floor')} | {r(wk['dagster'], wk['floor'])} |"
    )
    out.append(f"| peak RSS: ours (core) ÷ built-in | {r(m['core'], m['builtin'], 'core', 'builtin')} | |")
    out.append(f"| peak RSS: ours (Dagster) ÷ built-in | {r(m['dagster'], m['builtin'], 'dagster', 'builtin')} | |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="S,L", help="comma-separated: S, L, XL")
    p.add_argument("--runs", type=int, default=3, help="runs per contender (median); XL uses --xl-runs")
    p.add_argument("--xl-runs", type=int, default=1)
    p.add_argument("--skip", default="", help=f"comma-separated contenders to skip: {','.join(CONTENDERS)}")
    p.add_argument("--timeout", type=float, default=3600, help="kill any of our contenders after this many s")
    p.add_argument("--proto", action="store_true", help="also measure the bench/proto.py prototypes")
    p.add_argument("--builtin-timeout", type=float, default=900, help="kill the built-in source after this many s")
    p.add_argument("--render", action="store_true", help="only re-render RESULTS.md from results.json")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child_main(a.child, a.spec)
        return 0
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the servers
    import generate

    def log(msg):
        print(msg, flush=True)

    skip = {x for x in a.skip.split(",") if x} | (set() if a.proto else {"proto", "floor_union"})
    all_results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    mach = machine()
    if a.render:  # the header names the machine of the newest measurement, not this one
        newest = max(
            (r for k, r in all_results.items() if r.get("machine")),
            key=lambda r: r["measured_at"],
            default={"machine": mach},
        )
        RESULTS_MD.write_text(render(all_results, newest["machine"]))
        return 0
    for name in [x.strip().upper() for x in a.sizes.split(",") if x.strip()]:
        size = generate.SIZES[name]
        runs = a.xl_runs if name == "XL" else a.runs
        result = run_size(size, runs, skip, a.builtin_timeout, log, a.timeout)
        result["machine"] = mach
        mine = {"measured_at": result["measured_at"], "command": result["command"], "machine": mach}
        result["sample_origins"] = {c: mine for c in result["samples"]}
        # re-read: another run (another size) may have written its results meanwhile
        all_results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        previous = all_results.get(name)
        if previous and skip:  # contenders skipped this time keep their last samples, and the run they come from
            kept = {c: v for c, v in previous["samples"].items() if c not in result["samples"]}
            if kept:
                before = origins(previous)
                result["samples"] = {
                    c: result["samples"].get(c) or kept[c] for c in CONTENDERS if c in result["samples"] or c in kept
                }
                result["sample_origins"].update({c: before[c] for c in kept})
                result["kept_from"] = kept_groups(result["sample_origins"], result["measured_at"])
                result["builtin_skipped"] = result["builtin_skipped"] or previous.get("builtin_skipped")
        all_results[name] = result
        RESULTS_JSON.write_text(json.dumps(all_results, indent=1, default=str))
        RESULTS_MD.write_text(render(all_results, mach))
        print("\n" + "\n".join(ratio_lines(all_results[name])), flush=True)
    print("\n" + render(all_results, mach))
    return 0


if __name__ == "__main__":
    sys.exit(main())
