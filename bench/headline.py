"""The README's performance headline, rendered from the committed raw results (bench/deployed.json,
bench/results.json, bench/latency.json), so that no figure there is typed by hand:

    .venv/bin/python bench/headline.py            # print the block
    .venv/bin/python bench/headline.py --write    # replace it in README.md, between the bench:headline markers

tests/test_bench_figures.py fails when README.md's block differs from what this renders.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
README = BENCH.parent / "README.md"
BEGIN, END = "<!-- bench:headline -->", "<!-- /bench:headline -->"


def _load(name: str) -> dict:
    path = BENCH / name
    return json.loads(path.read_text()) if path.exists() else {}


def _runs(data: dict, storage: str) -> list[dict]:
    return [r for r in data.get("storages", []) if r["storage"] == storage]


def _figures(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values) + " s"


def deployed_lines(deployed: dict) -> list[str]:
    lines = []
    xl = deployed.get("XL")
    if xl and (runs := _runs(xl, "postgres")):
        ff = [r["first_fill"]["s"] for r in runs]
        nd = [r["normal_day"]["s"] for r in runs]
        rss = [r["peak_run_rss_mib"] for r in runs if r.get("peak_run_rss_mib")]
        n_runs = {r["first_fill"]["extraction_runs"] for r in runs}
        lines.append(
            f"- **XL, 3,000 databases, through Dagster as deployed** (daemon, run queue, a process per run, "
            f"PostgreSQL storage; `{xl['command']}`, {xl['measured']}, {len(runs)} run(s)): first fill "
            f"**{_figures(ff)}** from the sensor's first tick to every database in DataHub Lite; a normal day "
            f"({runs[0]['changed_databases']} databases changed) **{_figures(nd)}** from the schedule's tick to "
            f"pushed. {'/'.join(str(n) for n in sorted(n_runs))} extraction runs a refresh"
            + (f"; a run process peaked at {max(rss):.0f} MiB" if rss else "")
            + "."
        )
    big = deployed.get("L")
    if big and big.get("builtin"):
        lite = big["builtin"]["datahub-lite"]["wall_s"]
        for storage in ("sqlite", "postgres"):
            runs = _runs(big, storage)
            if not runs:
                continue
            nd = [r["normal_day"]["s"] for r in runs]
            ff = [r["first_fill"]["s"] for r in runs]
            lines.append(
                f"- **L, 100 databases, {storage} storage** (`{big['command']}`, {big['measured']}): a normal day "
                f"{_figures(nd)}, **{' / '.join(f'{lite / v:.1f}x' for v in nd)}** the built-in source's daily "
                f"run into DataHub Lite in the same invocation ({lite:.1f} s); first fill {_figures(ff)} "
                f"({' / '.join(f'{lite / v:.1f}x' for v in ff)})."
            )
    return lines


def _origin(result: dict, contender: str) -> dict:
    """The run a contender's samples come from (bench/run.py: sample_origins, or the older kept_from)."""
    if result.get("sample_origins"):
        return result["sample_origins"].get(contender) or {}
    kept = result.get("kept_from") or []
    for k in [kept] if isinstance(kept, dict) else kept:
        if contender in k.get("contenders", []):
            return k
    return {"measured_at": result.get("measured_at"), "command": result.get("command")}


def core_lines(results: dict) -> list[str]:
    lines = []
    for size in ("XL", "W", "L"):
        r = results.get(size)
        if not r:
            continue
        samples = r.get("samples", {})
        core, floor = samples.get("core") or [], samples.get("floor") or []
        walls = [s["wall_s"] for s in core if "wall_s" in s]
        if not walls:
            continue
        rss = max((s.get("peak_rss_mib") or 0) for s in core)
        text = (
            f"- **Core path, {size}** (`bench/run.py`, {r.get('measured_at', '?')}): "
            f"{statistics.median(walls):.1f} s, {rss:.0f} MiB peak"
        )
        fwalls = [s["wall_s"] for s in floor if "wall_s" in s]
        if fwalls:
            text += (
                f"; {statistics.median(walls) / statistics.median(fwalls):.1f}x the floor (the same statements "
                f"decoded to JSON, {statistics.median(fwalls):.1f} s)"
            )
        for c in ("core", "floor"):  # samples kept from an earlier run say when they were measured
            origin = _origin(r, c)
            if origin and origin.get("measured_at") != r.get("measured_at"):
                text += f" ({c} samples kept from {origin.get('measured_at')}, `{origin.get('command')}`)"
        lines.append(text + ".")
    return lines


def latency_lines(latency: dict) -> list[str]:
    if not latency.get("results"):
        return []
    by: dict[str, list[float]] = {}
    for r in latency["results"]:
        by.setdefault(r["change"], []).append(r["latency_s"])
    worst = max(v for vs in by.values() for v in vs)
    medians = ", ".join(f"{k} {statistics.median(v):.1f} s" for k, v in by.items())
    return [
        f"- **A schema change reaches DataHub Lite** on the demo (`{latency['command']}`, {latency['measured']}): "
        f"medians {medians}; worst {worst:.1f} s."
    ]


def render() -> str:
    lines = [
        *deployed_lines(_load("deployed.json")),
        *core_lines(_load("results.json")),
        *latency_lines(_load("latency.json")),
    ]
    return "\n".join([BEGIN, *lines, END])


def readme_block(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def main() -> int:
    block = render()
    if "--write" in sys.argv:
        text = README.read_text()
        README.write_text(text.replace(readme_block(text), block))
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
