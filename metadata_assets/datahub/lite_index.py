"""DataHub Lite's browse index, kept current for the entities a push wrote instead of rebuilt whole at close.

acryl-datahub's SqlBackedLite.close() calls reindex(): it deletes every edge and rebuilds them from every entity it
holds, each aspect deserialized (6 s at 3,300 datasets), so each push paid for the whole
catalog, even one that changed a single table. Lite's write() already keeps an entity's own edges (names, platform
instances) through post_update_hook; what only reindex() adds is where the entity sits in the browse tree
(global_post_update_hook: its container or platform instance, then a folder per subtype). `reindex_entities` does
exactly that for the given entities: it forgets where each one sat, places it again from its current container,
subTypes and dataPlatformInstance aspects, and removes a subtype folder left empty. The result equals a full
reindex() (tests/test_lite_index.py compares the two edge tables after real pushes).

Uses Lite's own hooks and its SQL tables (acryl-datahub pinned in the locks). No Dagster here.
"""

from __future__ import annotations

import json
from typing import Iterable

from datahub.emitter.serialization_helper import post_json_transform
from datahub.metadata.schema_classes import ASPECT_CLASSES

# the aspects global_post_update_hook reads (by their class, through ASPECT_MAP)
_PLACEMENT = ("container", "subTypes", "dataPlatformInstance")
DST_INDEX = "metadata_assets_edge_dst_idx"  # ours, beside Lite's own edge_idx; Lite's readers ignore it
_CLASSES = {cls.ASPECT_NAME: cls for cls in ASPECT_CLASSES if cls.ASPECT_NAME in _PLACEMENT}


def reindex_entities(lite, urns: Iterable[str]) -> int:
    """Place these entities in Lite's browse tree as a full reindex() would; returns how many. One commit at the
    end (Lite's add_edge commits each edge, 5 commits an entity); on an error nothing of it is committed."""
    # Lite indexes edges by source only; finding where an entity sits (edges to it) would scan the whole table
    lite._execute(f"CREATE INDEX IF NOT EXISTS {DST_INDEX} ON metadata_edge_v2 (dst_id, relnship)")
    commit = lite._commit
    lite._commit = lambda: None  # on this instance only, for the hooks' add_edge calls below
    try:
        n = _place(lite, urns)
    finally:
        del lite._commit  # the class's own again
    commit()
    return n


def _place(lite, urns: Iterable[str]) -> int:
    n = 0
    for urn in sorted(set(urns)):
        before = [
            r[0]
            for r in lite._execute("SELECT src_id FROM metadata_edge_v2 WHERE relnship = 'child' AND dst_id = ?", [urn])
        ]
        rows = lite._execute(
            "SELECT aspect_name, metadata FROM metadata_aspect_v2 WHERE urn = ? AND version = 0 "
            f"AND aspect_name IN ({', '.join('?' * len(_PLACEMENT))})",
            [urn, *_PLACEMENT],
        )
        if not rows and not lite._execute_one("SELECT 1 FROM metadata_aspect_v2 WHERE urn = ? AND version = 0", [urn]):
            continue  # nothing of it is stored: reindex() would not place it either
        aspects = {name: _CLASSES[name].from_obj(post_json_transform(json.loads(metadata))) for name, metadata in rows}
        lite._execute("DELETE FROM metadata_edge_v2 WHERE relnship = 'child' AND dst_id = ?", [urn])
        lite.global_post_update_hook(urn, aspects)
        for folder in before:  # a subtype folder the entity left, now empty, as reindex() would not make it
            if folder.startswith("urn:li:systemNode:") and not lite._execute_one(
                "SELECT 1 FROM metadata_edge_v2 WHERE src_id = ? AND relnship = 'child'", [folder]
            ):
                lite._execute("DELETE FROM metadata_edge_v2 WHERE src_id = ? OR dst_id = ?", [folder, folder])
        n += 1
    return n


def close_without_reindex(lite) -> None:
    """Close a Lite whose browse index reindex_entities kept current (close() would rebuild it whole)."""
    lite._close_connection()
