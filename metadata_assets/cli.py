"""Small operator commands: `metadata-assets grants`, `check-access`, `catalog`, `demo`.

metadata-assets grants [--config FILE] [--source NAME] [-d DATABASE ...]   print a source's least-privilege GRANTs
metadata-assets check-access --source NAME [--config FILE] [-d DATABASE ...] [--json]
                             prove the catalog account cannot read data: exit 0 yes, 1 it can somewhere, 2 error
metadata-assets catalog ls [PATH] [--all]                what the pushes put in DataHub Lite, by browse path
metadata-assets catalog show URN [--aspect NAME ...]     one entity's aspects in DataHub Lite, as JSON
metadata-assets refresh --source NAME [-d DATABASE ...] [--push]   materialize databases now (range runs)
metadata-assets history --source NAME -d DATABASE [--table T] [--since DATE] [--at DATE] [--json]
                             a database's schema versions and what changed in each, classified by risk
metadata-assets demo [--no-ui]                           throwaway MariaDB + DataHub Lite + Dagster, see README
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from metadata_assets import config as config_mod


def cmd_grants(args) -> int:
    from metadata_assets.sources.base import SourceUnavailable
    from metadata_assets.sources.registry import kind_of

    cfg = config_mod.load(args.config, check_datahub=False)  # talks to the sources only
    sources = [cfg.source(args.source)] if args.source else cfg.sources
    for source in sources:
        try:
            # without --database the account must exist already: it lists the databases
            print("\n".join(kind_of(source).grant_text(source, args.database)))
        except (SourceUnavailable, config_mod.ConfigError) as e:
            print(f"-- cannot list databases of {source.name!r} ({e}); pass them with --database", file=sys.stderr)
            return 2
    return 0


def cmd_check_access(args) -> int:
    """Per database: visible, SELECT refused (a probe that must fail), view SQL, routines; then a verdict.
    Exit 0: the account cannot read data anywhere; 1: it can in at least one database; 2: bad input or unreachable."""
    from metadata_assets.sources.base import AccessProbes, SourceUnavailable
    from metadata_assets.sources.registry import kind_of

    cfg = config_mod.load(args.config, check_datahub=False)  # talks to the source only
    source = cfg.source(args.source)
    kind = kind_of(source)
    if not isinstance(kind, AccessProbes):
        print(f"error: {kind.no_access_probes(source)}", file=sys.stderr)
        return 2
    try:
        report = kind.check_access(source, args.database or None)
    except SourceUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.text())
    return report.exit_code()


def _lite_path(args) -> str:
    cfg = config_mod.load(args.config)
    if cfg.datahub.target != "lite":
        raise config_mod.ConfigError(
            f"{cfg.path}: datahub.target is {cfg.datahub.target!r}: `catalog` reads DataHub "
            "Lite only (look in DataHub's UI)"
        )
    return cfg.datahub.lite.path


def cmd_catalog_ls(args) -> int:
    from datahub.lite.lite_local import PathNotFoundException

    from metadata_assets.datahub.lite_browse import ls, open_lite

    path = _lite_path(args)
    try:
        with open_lite(path) as lite:
            entries = ls(lite, args.path, include_removed=args.all)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except PathNotFoundException:
        entries = []
    if not entries:
        print(f"nothing at {args.path} in {path} (try: metadata-assets catalog ls /)", file=sys.stderr)
        return 1
    width = max(len(e.name) for e in entries) + (1 if any(e.folder for e in entries) else 0)
    for e in entries:
        name = e.name + ("/" if e.folder else "")
        print(f"{name:<{width}}  {e.id}{'  (soft-deleted)' if e.removed else ''}")
    return 0


def cmd_catalog_show(args) -> int:
    import json

    from metadata_assets.datahub.lite_browse import open_lite, show

    path = _lite_path(args)
    try:
        with open_lite(path) as lite:
            got = show(lite, args.urn, args.aspect)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if got is None:
        print(
            f"{args.urn}: not in {path}" + (f" (or without aspect {', '.join(args.aspect)})" if args.aspect else ""),
            file=sys.stderr,
        )
        return 1
    if (got.get("status") or {}).get("removed"):
        print(f"# {args.urn} is soft-deleted (status removed=true): DataHub shows it as gone", file=sys.stderr)
    print(json.dumps(got, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def cmd_refresh(args) -> int:
    from dagster import DagsterInstance

    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.in_process import push_source, refresh_source

    if not os.environ.get("DAGSTER_HOME"):
        print(
            "error: DAGSTER_HOME is not set: the runs are recorded in that Dagster instance (the demo prints "
            "the export line to use)",
            file=sys.stderr,
        )
        return 2
    cfg = config_mod.load(args.config)
    source = cfg.source(args.source)
    defs = build_definitions(cfg)
    with DagsterInstance.get() as instance:
        try:
            ok = refresh_source(cfg, defs, instance, source, print, databases=args.database)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if ok and args.push:
            ok = push_source(defs, instance, source, print_fn=print)
    return 0 if ok else 1


def _schema_doc(db, table=None) -> dict:
    tables = [t for t in db.tables if table is None or t.name == table]
    return {
        "database": db.name,
        "tables": [
            {
                "name": t.name,
                "type": t.table_type,
                "comment": t.comment,
                "primary_key": list(t.primary_key),
                "columns": [
                    {
                        "name": c.name,
                        "type": c.column_type,
                        "nullable": c.nullable,
                        "default": c.default,
                        "key": c.key,
                        "comment": c.comment,
                    }
                    for c in t.columns
                ],
                **({"view_definition": t.view_definition} if t.is_view else {}),
                "indexes": [{"name": i.name, "columns": list(i.columns), "unique": i.unique} for i in t.indexes],
            }
            for t in tables
        ],
        "routines": [{"name": r.name, "type": r.routine_type} for r in db.routines] if table is None else [],
    }


def _one_line(s) -> str:
    """A name or value on one terminal line: control characters (newlines, escape sequences) shown as \\xNN."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(s))


def cmd_history(args) -> int:
    import json

    from metadata_assets import history, risk
    from metadata_assets.storage.store import open_store

    cfg = config_mod.load(args.config, check_datahub=False)  # reads the store only
    source = cfg.source(args.source)
    store = open_store(cfg.storage.uri)
    try:
        if args.at:
            found = history.at(store, source.name, args.database, args.at)
            if found is None:
                print(f"{args.source}/{args.database}: no version kept from {args.at} or before", file=sys.stderr)
                return 1
            ref, db = found
            doc = {"version": ref.seq, "recorded_at": ref.recorded_at.isoformat(), **_schema_doc(db, args.table)}
            if args.json:
                print(json.dumps(doc, indent=2, ensure_ascii=False))
                return 0
            print(f"{_one_line(args.database)} as of version {ref.seq} (recorded {ref.when})")
            for t in doc["tables"]:
                print(
                    f"  {t['type'].lower()} {_one_line(t['name'])}"
                    + (f"  -- {_one_line(t['comment'])}" if t["comment"] else "")
                )
                for c in t["columns"]:
                    key = f" {c['key']}" if c["key"] else ""
                    print(
                        f"    {_one_line(c['name'])} {_one_line(c['type'])}"
                        f"{'' if c['nullable'] else ' NOT NULL'}{key}"
                        + (f" DEFAULT {_one_line(c['default'])}" if c["default"] is not None else "")
                    )
            for r in doc["routines"]:
                print(f"  {r['type'].lower()} {_one_line(r['name'])}")
            return 0
        entries = history.timeline(store, source.name, args.database, source.risk.rules, args.since)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def wanted(c) -> bool:
        return args.table is None or c.object == args.table or c.object.startswith(args.table + ".")

    out = []
    for e in entries:
        changes = [c for c in e.diff.changes() if wanted(c)]
        if args.table is not None and not changes and not e.diff.baseline:
            continue
        out.append(
            {
                "version": e.ref.seq,
                "recorded_at": e.ref.recorded_at.isoformat(),
                "schema_hash": e.doc["schema_hash"],
                "first_kept": e.diff.baseline,
                "seeded": bool(e.doc.get("seeded")),
                "risk": risk.highest(c.risk for c in changes),
                "changes": [c.to_dict() for c in changes],
            }
        )
    if args.json:
        print(
            json.dumps(
                {"source": source.name, "database": args.database, "versions": out}, indent=2, ensure_ascii=False
            )
        )
        return 0
    if not out:
        print(
            f"{args.source}/{args.database}: no schema version kept"
            + (f" since {args.since}" if args.since else "")
            + " (versions are recorded when an extraction "
            "finds the schema changed)",
            file=sys.stderr,
        )
        return 1
    for v in out:
        head = f"version {v['version']}  {v['recorded_at'].replace('T', ' ').replace('+00:00', ' UTC')}"
        if v["first_kept"]:
            print(
                f"{head}  first version kept" + (" (the snapshot from before history was kept)" if v["seeded"] else "")
            )
            continue
        print(f"{head}  {v['risk'] or 'no change'}  {len(v['changes'])} change(s)")
        for c in v["changes"]:
            detail = f"  {_one_line(c['detail'])}" if c["detail"] else ""
            print(f"  [{c['risk']:<8}] {c['change']} {_one_line(c['object'])}{detail}")
    return 0


def _dagit_command(home: Path, port: int) -> list[str]:
    """`dg dev` in this repository (a dg project); elsewhere (the package installed on its own) `dagster dev` with a
    workspace file, so that Dagit names the code location `metadata_assets` either way."""
    dg = Path(sys.executable).with_name("dg")
    pyproject = Path.cwd() / "pyproject.toml"
    if (
        dg.exists()
        and pyproject.exists()
        and 'name = "metadata-assets"' in pyproject.read_text()
        and "[tool.dg]" in pyproject.read_text()
    ):
        return [str(dg), "dev", "-p", str(port)]
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: metadata_assets.definitions\n"
        "      location_name: metadata_assets\n"
    )
    return [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-p", str(port)]


def demo_shell_hint(env: dict[str, str]) -> str:
    """What another shell needs to run the README's commands against the running demo (its port and password change
    with every start)."""
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    return (
        "\nTo run the README's commands against this demo from another shell, in this directory:\n"
        f"  . .venv/bin/activate\n  export {exports}\n"
        "  metadata-assets catalog ls /databases/mysql/instances/default/databases/shop/tables\n"
        "  metadata-assets check-access --source demo_mysql\n"
        "  dg list defs"
    )


def _demo_env(home: Path, port: int, password: str) -> dict[str, str]:
    return {
        config_mod.HOME_ENV: str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DEMO_MYSQL_HOST": "127.0.0.1",
        "DEMO_MYSQL_PORT": str(port),
        "DEMO_MYSQL_PASSWORD": password,
        "DATAHUB_TELEMETRY_ENABLED": "false",
        # range runs planned with one event, as deployed (deploy/values.yaml; defs/failed_partitions.py)
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "DAGSTER_EVENT_BATCH_SIZE": "500",  # observations stored in batches, as deployed (defs/event_batches.py)
    }


_OLD_DEMO_INSTANCE_YAML = ("telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n  max_retries: 0\n",)
# The run queue is looked at every second (Dagster's default is 5 s): a change waits for the queue once per run.
DEMO_INSTANCE_YAML = _OLD_DEMO_INSTANCE_YAML[0] + "run_queue:\n  dequeue_interval_seconds: 1\n"


def cmd_demo(args) -> int:
    from metadata_assets import local_mariadb
    from metadata_assets.demo_run import run_everything, seed_demo

    home = Path(args.home or config_mod.home()).absolute()
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    dagster_yaml = home / "dagster" / "dagster.yaml"
    if not dagster_yaml.exists() or dagster_yaml.read_text() in _OLD_DEMO_INSTANCE_YAML:
        dagster_yaml.write_text(DEMO_INSTANCE_YAML)
    print(f"[demo] home: {home}")
    print("[demo] starting a throwaway MariaDB ...", flush=True)
    server = local_mariadb.start(home / "demo-mariadb")
    try:
        password = secrets.token_urlsafe(12)
        seed_demo(server, password)
        env = _demo_env(home, server.port, password)
        os.environ.update(env)
        os.environ.pop(config_mod.CONFIG_ENV, None)
        print(
            f"[demo] MariaDB on 127.0.0.1:{server.port}, account catalog_reader has REFERENCES, SHOW VIEW "
            "(and SELECT on mysql.proc: routine definitions)"
        )
        summary = run_everything(config_mod.load(), print_fn=lambda m: print(f"[demo] {m}", flush=True))
        print(summary)
        print(demo_shell_hint(env), flush=True)
        if args.no_ui:
            return 0
        print(f"[demo] starting Dagit: http://127.0.0.1:{args.port}  (Ctrl-C stops Dagster and MariaDB)", flush=True)
        ui = subprocess.Popen(
            _dagit_command(home, args.port),
            env={**os.environ, **env},
            start_new_session=True,
        )
        try:
            return ui.wait()
        except KeyboardInterrupt:
            os.killpg(ui.pid, signal.SIGINT)
            try:
                ui.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(ui.pid, signal.SIGKILL)
            return 0
    finally:
        server.stop()
        print("[demo] MariaDB stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="metadata-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grants", help="print the least-privilege GRANT statements of a source")
    g.add_argument("--config", help=f"config file (default ${config_mod.CONFIG_ENV}, else the demo config)")
    g.add_argument("--source", help="source name (default: all)")
    g.add_argument("--database", "-d", action="append", help="database to grant on (default: list them)")
    g.set_defaults(fn=cmd_grants)
    c = sub.add_parser(
        "check-access",
        help="prove that a source's catalog account sees schemas but cannot read data",
        description="Per database: visible, SELECT on data refused (a probe that must fail), view "
        "SQL readable, routines visible. Exit 0: no data readable anywhere; 1: data "
        "readable in at least one database; 2: bad input or source unreachable.",
    )
    c.add_argument("--config", help=f"config file (default ${config_mod.CONFIG_ENV}, else the demo config)")
    c.add_argument("--source", required=True, help="source name")
    c.add_argument(
        "--database",
        "-d",
        action="append",
        help="database to check (default: every allowed database the account can see)",
    )
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(fn=cmd_check_access)
    c = sub.add_parser("catalog", help="what the pushes put in DataHub Lite (the config's datahub.lite.path)")
    csub = c.add_subparsers(dest="catalog_cmd", required=True)
    cl = csub.add_parser("ls", help="a browse folder's entries (soft-deleted ones only with --all)")
    cl.add_argument("path", nargs="?", default="/", help="browse path, e.g. /databases/mysql (default /)")
    cl.add_argument("--all", action="store_true", help="also list soft-deleted entities, marked as such")
    cl.add_argument("--config", help=f"config file (default ${config_mod.CONFIG_ENV}, else the demo config)")
    cl.set_defaults(fn=cmd_catalog_ls)
    cs = csub.add_parser("show", help="one entity's aspects as JSON")
    cs.add_argument("urn")
    cs.add_argument("--aspect", "-a", action="append", help="only this aspect (repeatable)")
    cs.add_argument("--config", help=f"config file (default ${config_mod.CONFIG_ENV}, else the demo config)")
    cs.set_defaults(fn=cmd_catalog_show)
    r = sub.add_parser(
        "refresh",
        help="materialize a source's databases now, in range runs as the schedule makes them (recorded "
        "in $DAGSTER_HOME's instance, shown in Dagit)",
    )
    r.add_argument("--source", required=True)
    r.add_argument("--database", "-d", action="append", help="only these databases (default: every partition)")
    r.add_argument("--push", action="store_true", help="then push to DataHub, as the push sensor would")
    r.add_argument("--config", help=f"config file (default ${config_mod.CONFIG_ENV}, else the demo config)")
    r.set_defaults(fn=cmd_refresh)
    h = sub.add_parser(
        "history",
        help="a database's schema versions, what changed in each and how risky",
        description="The schema versions kept in the store for one database (one per extraction "
        "that found its schema changed), each with its diff from the one before, every "
        "change classed safe / warning / breaking by the source's risk rules. With "
        "--at: the schema as it was then. Exit 1 when nothing is kept.",
    )
    h.add_argument("--source", required=True)
    h.add_argument("--database", "-d", required=True)
    h.add_argument("--table", "-t", help="only changes of this table or view (with --at: only it)")
    h.add_argument("--since", help="versions recorded on or after this date (YYYY-MM-DD or ISO datetime, UTC)")
    h.add_argument("--at", help="print the schema as it was at this date (a bare date: at its end), UTC")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.add_argument("--config", help=f"config file (default ${config_mod.CONFIG_ENV}, else the demo config)")
    h.set_defaults(fn=cmd_history)
    d = sub.add_parser("demo", help="run the demo on embedded defaults, then open Dagit")
    d.add_argument("--no-ui", action="store_true", help="run the job, print the summary and exit")
    d.add_argument("--home", help=f"data directory (default ${config_mod.HOME_ENV} or ./.metadata_assets)")
    d.add_argument("--port", type=int, default=3000, help="Dagit port")
    d.set_defaults(fn=cmd_demo)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except config_mod.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
