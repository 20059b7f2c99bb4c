"""The demo: seed a throwaway MariaDB, refresh every partition through Dagster, push, summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from metadata_assets import local_mariadb
from metadata_assets.config import ProjectConfig

SAMPLE_SQL = Path(__file__).parent / "demo" / "sample.sql"
DEMO_DATABASES = ["shop", "billing", "analytics", "scratch_tmp"]


def seed_demo(server: local_mariadb.LocalMariaDB, password: str) -> None:
    server.execute(*local_mariadb.split_sql(SAMPLE_SQL.read_text(encoding="utf-8")))
    server.execute("DROP USER IF EXISTS 'catalog_reader'@'%'")
    local_mariadb.grant_reader(server, "catalog_reader", password, DEMO_DATABASES)
    # the optional routine grant (routine definitions, never table data): the demo shows procedures too
    server.execute("GRANT SELECT ON mysql.proc TO 'catalog_reader'@'%'")


def run_everything(cfg: ProjectConfig, print_fn: Callable[[str], None] = print) -> str:
    """Materialize every partition of every source, push, and return a short summary."""
    import json

    from dagster import DagsterInstance

    from metadata_assets.definitions import build_definitions
    from metadata_assets.defs.in_process import push_source, refresh_source
    from metadata_assets.storage.layout import list_mce_databases, mce_key
    from metadata_assets.storage.store import open_store

    defs = build_definitions(cfg)
    instance = DagsterInstance.get()
    ok = True
    for source in cfg.sources:
        ok &= refresh_source(cfg, defs, instance, source, print_fn)
        ok &= push_source(defs, instance, source, print_fn)
    store = open_store(cfg.storage.uri)
    lines = ["", "Summary", "-------"]
    for source in cfg.sources:
        dbs = list_mce_databases(store, source.name)
        n_tables = n_props = 0
        for db in dbs:
            mcps = json.loads(store.read_bytes(mce_key(source.name, db)))
            n_props += len(mcps)
            n_tables += sum(1 for m in mcps if m["aspectName"] == "subTypes" and m["entityType"] == "dataset")
        lines.append(
            f"source {source.name}: {len(dbs)} databases ({', '.join(dbs)}), {n_tables} tables and views, "
            f"{n_props} proposals in MCE files under {store.uri(source.name)}"
        )
    if cfg.datahub.target == "lite" and Path(cfg.datahub.lite.path).exists():
        lines += lite_listing(cfg.datahub.lite.path)
    lines.append("all runs succeeded" if ok else "SOME RUNS FAILED: see Dagit")
    if not ok:
        raise SystemExit("\n".join(lines))
    return "\n".join(lines)


def lite_listing(path: str) -> list[str]:
    """What `metadata-assets catalog ls` shows, folder by folder (soft-deleted entities left out)."""
    from metadata_assets.datahub.lite_browse import listing

    return listing(path)
