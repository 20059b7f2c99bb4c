"""Change-to-DataHub latency on the demo, as `./dev.sh demo` runs it (Dagit webserver + daemon, one process per run).

Starts `metadata-assets demo` in a throwaway home, waits until the schema sensor ticks, then per repetition makes
three schema changes as root on the demo's MariaDB, each at a random moment of the sensor's cycle, and polls
DataHub Lite every 0.25 s until the change is there:
- a column added (`shop.customers`: the field is in schemaMetadata),
- a table comment changed (`shop.orders`: datasetProperties.description),
- a table dropped (`analytics.lat_drop_<i>`, created first and waited for: its status is removed).
Each latency is split using the run the change caused (created, started, ended) from the Dagster instance.

    .venv/bin/python bench/latency.py --reps 3        # writes bench/latency.json and bench/LATENCY.md

Not a test (nothing here runs in pytest); `bench/run.py --render` puts LATENCY.md into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = Path(sys.executable).parent
POLL_S = 0.25
TIMEOUT_S = 300  # a change not in DataHub after this long is reported as a miss, not waited for


def _urn(table: str) -> str:
    from datahub.emitter.mce_builder import make_dataset_urn

    return make_dataset_urn("mysql", table, "PROD")


class Demo:
    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1", "DATAHUB_TELEMETRY_ENABLED": "false"}
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "metadata-assets"), "demo", "--home", str(home), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self.mysql_port: int | None = None
        self.started = time.monotonic()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            m = re.search(r"MariaDB on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.mysql_port = int(m.group(1))

    def wait_ui(self, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("demo exited:\n" + "\n".join(self.lines[-40:]))
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/server_info", timeout=2).read()
                return time.monotonic() - self.started
            except OSError:
                time.sleep(0.5)
        raise SystemExit("Dagit did not come up:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def instance(home: Path):
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    from dagster import DagsterInstance

    return DagsterInstance.get()


def sensor_ticks(inst, name: str) -> list:
    for state in inst.all_instigator_state():
        if state.name == name:
            return inst.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)
    return []


def lite_aspect(lite_path: Path, urn: str, aspect: str):
    from datahub.lite.lite_util import get_datahub_lite

    try:
        lite = get_datahub_lite(
            {"type": "sqlite", "config": {"file": str(lite_path), "read_only": True}}, read_only=True
        )
    except Exception:  # the file is being created or written: look again at the next poll
        return None
    try:
        return (lite.get(urn, aspects=[aspect], typed=True) or {}).get(aspect)
    except Exception:
        return None
    finally:
        lite.close()


def wait_until(predicate, timeout: float = TIMEOUT_S) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(POLL_S)
    return None


def run_split(inst, since: float) -> dict:
    """The extraction and push runs created after `since` (epoch s): when each was created, started, ended."""
    from dagster import RunsFilter

    out = {}
    records = inst.get_run_records(RunsFilter(created_after=datetime.fromtimestamp(since, tz=timezone.utc)))
    for r in sorted(records, key=lambda r: r.create_timestamp.timestamp()):
        kind = "push_run" if "metadata_assets/push_source" in r.dagster_run.tags else "extraction_run"
        if kind in out:
            continue
        out[kind] = {
            "id": r.dagster_run.run_id[:8],
            "created_s": round(r.create_timestamp.timestamp() - since, 2),
            "started_s": round(r.start_time - since, 2) if r.start_time else None,
            "ended_s": round(r.end_time - since, 2) if r.end_time else None,
            "pushed_in_run": bool(r.dagster_run.tags.get("metadata_assets/push_after")),
        }
    return out


def measure(args) -> dict:
    import pymysql

    rng = random.Random(args.seed)
    home = Path(tempfile.mkdtemp(prefix="latency-", dir=args.work))
    demo = Demo(home, args.port)
    results: list[dict] = []
    try:
        ui_s = demo.wait_ui()
        inst = instance(home)
        waited = wait_until(lambda: len(sensor_ticks(inst, "demo_mysql_schema_sensor")) >= 2, timeout=300)
        if waited is None:
            raise SystemExit("the schema sensor never ticked twice:\n" + "\n".join(demo.lines[-40:]))
        print(f"[latency] Dagit up after {ui_s:.1f}s; schema sensor ticking; home {home}", flush=True)
        lite_path = home / "datahub-lite.sqlite"
        conn = pymysql.connect(host="127.0.0.1", port=demo.mysql_port, user="root", autocommit=True)

        def change(kind: str, sql: str, visible) -> None:
            time.sleep(rng.uniform(0, args.max_offset))
            t_wall = time.time()
            with conn.cursor() as cur:
                cur.execute(sql)
            latency = wait_until(visible)
            time.sleep(1)  # let the run's end be recorded
            row = {
                "change": kind,
                "latency_s": None if latency is None else round(latency, 2),
                **run_split(inst, t_wall),
            }
            results.append(row)
            print(f"[latency] {kind}: {row['latency_s']} s  {row}", flush=True)

        for i in range(args.reps):
            col = f"lat_col_{i}"
            change(
                "column added",
                f"ALTER TABLE shop.customers ADD COLUMN {col} INT COMMENT 'latency bench'",
                lambda: any(
                    f.fieldPath == col
                    for f in getattr(lite_aspect(lite_path, _urn("shop.customers"), "schemaMetadata"), "fields", [])
                ),
            )
            text = f"latency bench {i}"
            change(
                "comment changed",
                f"ALTER TABLE shop.orders COMMENT = '{text}'",
                lambda: (
                    getattr(lite_aspect(lite_path, _urn("shop.orders"), "datasetProperties"), "description", None)
                    == text
                ),
            )
            table = f"lat_drop_{i}"
            with conn.cursor() as cur:
                cur.execute(f"CREATE TABLE analytics.{table} (id INT PRIMARY KEY)")
            if wait_until(lambda: lite_aspect(lite_path, _urn(f"analytics.{table}"), "schemaMetadata")) is None:
                raise SystemExit(f"analytics.{table} never reached DataHub Lite")
            change(
                "table dropped",
                f"DROP TABLE analytics.{table}",
                lambda: getattr(lite_aspect(lite_path, _urn(f"analytics.{table}"), "status"), "removed", False),
            )
        conn.close()
    finally:
        demo.stop()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    return {
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "reps": args.reps,
        "max_offset_s": args.max_offset,
        "command": " ".join(["bench/latency.py", *sys.argv[1:]]),
        "results": results,
    }


def render(data: dict) -> str:
    lines = [
        "## Change to DataHub: latency on the demo (bench/latency.py)",
        "",
        f"Measured {data['measured']}: `./dev.sh demo` as a user runs it (webserver + daemon, sqlite storage, "
        f"default run launcher: one process per run), {data['reps']} repetitions, each change made at a random "
        f"moment (0-{data['max_offset_s']:.0f} s after the previous one was visible) and DataHub Lite polled "
        f"every {POLL_S} s. Command: `{data['command']}`.",
        "",
        "| change | median s | worst s | samples s |",
        "|---|---:|---:|---|",
    ]
    by_kind: dict[str, list] = {}
    for r in data["results"]:
        by_kind.setdefault(r["change"], []).append(r["latency_s"])
    for kind, vals in by_kind.items():
        ok = [v for v in vals if v is not None]
        miss = len(vals) - len(ok)
        lines.append(
            f"| {kind} | {statistics.median(ok):.1f} | {max(ok):.1f} | "
            f"{', '.join(f'{v:.1f}' for v in ok)}{f' ({miss} not seen in {TIMEOUT_S} s)' if miss else ''} |"
            if ok
            else f"| {kind} | — | — | none seen in {TIMEOUT_S} s |"
        )
    lines += [
        "",
        "Where the time went (median over all changes, seconds after the change; from the runs' records):",
        "",
    ]
    parts = {
        "sensor tick -> run created": ("extraction_run", "created_s"),
        "run started (queue + process start)": ("extraction_run", "started_s"),
        "run ended (extraction + push in the run)": ("extraction_run", "ended_s"),
    }
    for label, (run, field) in parts.items():
        vals = [r[run][field] for r in data["results"] if r.get(run) and r[run].get(field) is not None]
        if vals:
            lines.append(f"- {label}: {statistics.median(vals):.1f}")
    pushes = sum(1 for r in data["results"] if r.get("push_run"))
    lines += [f"- separate push runs started by the push sensor: {pushes} of {len(data['results'])} changes", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--port", type=int, default=3317, help="Dagit port")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--max-offset", type=float, default=15.0, help="random wait before each change, s")
    p.add_argument("--work", default=str(BENCH / "work"))
    p.add_argument("--render", action="store_true", help="only re-render LATENCY.md from latency.json")
    p.add_argument("--keep", action="store_true", help="keep the demo's home (Dagster instance, store, Lite)")
    args = p.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    out = BENCH / "latency.json"
    data = json.loads(out.read_text()) if args.render else measure(args)
    out.write_text(json.dumps(data, indent=1) + "\n")
    (BENCH / "LATENCY.md").write_text(render(data) + "\n")
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
