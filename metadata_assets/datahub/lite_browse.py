"""Reading what a push wrote into DataHub Lite: browse folders and entities, one entity's aspects.

What `metadata-assets catalog ls|show` print and the demo's summary lists. acryl-datahub's own `datahub lite` CLI
reads only `~/.datahubenv` and insists on a `gms:` block there; this reads the Lite file the config names. Soft-deleted
entities (status removed=true: what a push sends for a dropped table or database) are shown as gone: Lite keeps
them, and their browse paths, but DataHub does not list them. No Dagster here.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional


@dataclass(frozen=True)
class Entry:
    name: str
    id: str  # a URN, or a browse folder's id
    folder: bool
    removed: bool = False  # a soft-deleted entity


@contextmanager
def open_lite(path: str) -> Iterator:
    from datahub.lite.lite_util import get_datahub_lite

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no DataHub Lite file (push first: ./dev.sh demo, or the push asset)")
    lite = get_datahub_lite(
        {"type": "sqlite", "config": {"file": str(Path(path).absolute()), "read_only": True}}, read_only=True
    )
    try:
        yield lite
    finally:
        lite.close()


def _removed(lite, urn: str) -> bool:
    status = (lite.get(urn, aspects=["status"], typed=True) or {}).get("status")
    return bool(status is not None and status.removed)


def ls(lite, folder: str, include_removed: bool = False) -> list[Entry]:
    """The entries of a browse folder ("/", "/databases/mysql/..."), folders first; soft-deleted entities left out
    unless `include_removed`."""
    out = []
    for b in lite.ls(folder):
        if b.auto_complete is not None:
            continue
        # folders: browse nodes, platforms, instances, database and schema containers; the rest are entities
        is_folder = not b.id.startswith("urn:li:") or b.id.startswith(
            ("urn:li:systemNode:", "urn:li:dataPlatform:", "urn:li:dataPlatformInstance:", "urn:li:container:")
        )
        entity = b.id.startswith("urn:li:") and not b.id.startswith(("urn:li:systemNode:", "urn:li:dataPlatform"))
        removed = entity and _removed(lite, b.id)
        if removed and not include_removed:
            continue
        out.append(Entry(name=b.name, id=b.id, folder=is_folder, removed=removed))
    return sorted(out, key=lambda e: (not e.folder, e.name))


def show(lite, urn: str, aspects: Optional[list[str]] = None) -> Optional[dict]:
    """{aspect name: aspect as JSON} of one entity, or None when Lite has nothing of it."""
    got = lite.get(urn, aspects=aspects or None, typed=False)
    if not got:
        return None
    got = {k: v for k, v in got.items() if k != "urn"}
    return json.loads(json.dumps(got, default=str)) if got else None


def listing(path: str) -> list[str]:
    """Every folder that holds datasets, with their names: the demo's summary."""
    lines = [f"DataHub Lite {path} (metadata-assets catalog ls):"]
    from datahub.lite.lite_local import PathNotFoundException

    with open_lite(path) as lite:

        def walk(folder: str) -> None:
            try:
                entries = ls(lite, folder)
            except PathNotFoundException:  # a name Lite's path parser cannot take back (dots, slashes)
                return
            datasets = [e.name for e in entries if e.id.startswith("urn:li:dataset:")]
            if datasets:
                lines.append(f"  {folder}: {', '.join(sorted(datasets))}")
            for e in entries:
                if e.folder and not e.id.startswith("urn:li:dataset:"):
                    walk(f"{folder.rstrip('/')}/{e.name}")

        walk("/")
    return lines
