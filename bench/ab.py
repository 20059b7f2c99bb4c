"""Same-run A/B: this tree's code against another tree's (a worktree at an older commit), on one server.

    git worktree add /tmp/ab-base <commit> && ln -s $PWD/.venv /tmp/ab-base/.venv
    .venv/bin/python bench/ab.py --base /tmp/ab-base --sizes L --contenders core,dagster --runs 5

For each repetition it runs each contender from the base tree, then from this tree (alternating which goes first),
each in its own subprocess with PYTHONPATH set to its tree, against the same private MariaDB (bench/run.py's
`prepare`: the generated data under bench/work/<size>/ and its least-privilege account). Wall time, CPU and peak RSS
come from bench/run.py's `measure`. Results go to bench/ab.json and bench/AB.md. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import run  # noqa: E402  (bench/run.py: the children, prepare, measure)

AB_JSON = BENCH / "ab.json"
AB_MD = BENCH / "AB.md"


def _commit(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def ab(size_name: str, trees: dict[str, Path], contenders: list[str], runs: int, log) -> dict:
    import generate

    size = generate.SIZES[size_name]
    server, _ = run.prepare(size, log)
    spec_base = {"port": server.port, "pattern": f"{generate.DB_PREFIX}.*", "batch_size": 200}
    env = {
        **os.environ,
        "DATAHUB_TELEMETRY_ENABLED": "false",
        run.PASSWORD_ENV: run.READER_PASSWORD,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    samples = {label: {c: [] for c in contenders} for label in trees}
    try:
        run.warm_scan(size.name, spec_base, env)
        for label, tree in trees.items():  # each tree's bytecode cache, not measured
            subprocess.run(
                [sys.executable, "-c", run.WARM_IMPORTS],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**env, "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": str(run.WORK / f"pycache-{label}")},
            )
        order = list(trees)
        for rep in range(runs):
            for name in contenders:
                for label in order if rep % 2 == 0 else order[::-1]:
                    tree = trees[label]
                    out = run.WORK / size.name / "ab" / f"{label}-{name}-{rep}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir(parents=True)
                    (out / "spec.json").write_text(json.dumps({**spec_base, "out": str(out)}))
                    cmd = [
                        sys.executable,
                        str(tree / "bench" / "run.py"),
                        "--child",
                        name,
                        "--spec",
                        str(out / "spec.json"),
                    ]
                    child_env = {
                        **env,
                        "PYTHONPATH": str(tree),
                        "PYTHONPYCACHEPREFIX": str(run.WORK / f"pycache-{label}"),
                    }
                    r = run.measure(cmd, child_env, 3600, server, out / "stderr.log")
                    samples[label][name].append(r)
                    log(
                        f"[{size.name}] rep {rep + 1}/{runs} {name} {label}: wall {r['wall_s']:.2f}s "
                        f"cpu {r['cpu_s']:.2f}s peak {r['peak_rss_mib']:.0f} MiB rc {r['rc']}"
                    )
                    if "error" in r:
                        raise SystemExit(f"{label} {name} failed:\n{r['error']}")
    finally:
        server.stop()
    return {
        "size": size.name,
        "runs": runs,
        "samples": samples,
        "trees": {label: _commit(tree) for label, tree in trees.items()},
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([sys.executable, *sys.argv]),
    }


def render(results: list[dict]) -> str:
    lines = [
        "# Same-run A/B (bench/ab.py)",
        "",
        "Each contender run alternately from the base tree and this tree, on the same server, in one run.",
        "",
    ]
    for res in results:
        lines += [
            f"## {res['size']}, {res['runs']} runs each, {res['measured_at']}",
            "",
            *(f"- {label}: {commit}" for label, commit in res["trees"].items()),
            "",
            "| contender | tree | wall s (median; each) | CPU s (median) | peak RSS MiB (max) |",
            "|---|---|---|---|---|",
        ]
        for name in next(iter(res["samples"].values())):
            for label, by_name in res["samples"].items():
                s = by_name[name]
                walls = [x["wall_s"] for x in s]
                lines.append(
                    f"| {name} | {label} | {statistics.median(walls):.2f} "
                    f"({', '.join(f'{w:.2f}' for w in walls)}) | "
                    f"{statistics.median(x['cpu_s'] for x in s):.2f} | "
                    f"{max(x['peak_rss_mib'] for x in s):.0f} |"
                )
            base, new = (statistics.median(x["wall_s"] for x in by[name]) for by in res["samples"].values())
            lines.append(f"| {name} | new / base | {new / base:.2f}x | | |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, type=Path, help="the other tree (a git worktree of an older commit)")
    p.add_argument("--sizes", default="L")
    p.add_argument("--contenders", default="core,dagster", help=f"of {','.join(run.CONTENDERS)}")
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args(argv)
    trees = {"base": a.base.resolve(), "new": BENCH.parent}
    if not (trees["base"] / "bench" / "run.py").exists():
        p.error(f"{trees['base']} holds no bench/run.py")
    contenders = [c for c in a.contenders.split(",") if c]
    unknown = set(contenders) - set(run.CONTENDERS)
    if unknown:
        p.error(f"unknown contenders {sorted(unknown)} (known: {', '.join(run.CONTENDERS)})")
    t0 = time.monotonic()
    results = [
        ab(s.strip().upper(), trees, contenders, a.runs, lambda m: print(m, flush=True))
        for s in a.sizes.split(",")
        if s.strip()
    ]
    AB_JSON.write_text(json.dumps(results, indent=1))
    AB_MD.write_text(render(results))
    print(f"written {AB_MD} in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
