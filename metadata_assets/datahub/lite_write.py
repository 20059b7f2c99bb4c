"""DataHub Lite's write(), from the MCE file's own dicts, one commit per call.

`SqlBackedLite.write` takes typed proposals: a push decoded each file into avrogen objects only for Lite to turn
them back into the same dicts (`to_obj(simplified_structure=True)`), then committed once per proposal. Pushing the
L files into an empty Lite was 8 s, two thirds of it decoding and re-encoding (bench/NOTES.md). An MCE file already
holds that dict (`mce_json.proposal_obj`: the simplified aspect JSON Lite stores), so `write_objs` stores it as Lite's
write() would: the same rows in metadata_aspect_v2 (version 0 and the new version, sysVersion in the system
metadata, a duplicate only refreshing lastObserved), the same post_update_hook edges (its typed aspect decoded only
for the aspects the hook reads), in one transaction. tests/test_lite_write.py compares both tables with the
library's writes. Uses Lite's SQL tables (acryl-datahub pinned in the locks). No Dagster here.
"""

from __future__ import annotations

import copy
import json
from typing import Iterable

from datahub.emitter.aspect import ASPECT_MAP
from datahub.emitter.mcp import MetadataChangeProposalWrapper

from metadata_assets.datahub import aspect_json, mce_json

# the aspects SqlBackedLite.post_update_hook reads (it ignores every other)
HOOKED = frozenset(
    {"datasetProperties", "containerProperties", "dataPlatformInstance", "chartInfo", "dashboardInfo", "tagProperties"}
)
plain = mce_json.plain_proposal  # the shape read_mcps decodes itself; others go through Lite's own write()


def write_objs(lite, objs: Iterable[dict], system_metadata: dict) -> list[str]:
    """Write each proposal dict (an MCE file's element) as `lite.write` writes the proposal it describes, with
    `system_metadata` (SystemMetadataClass.to_obj(): lastObserved, runId) as its system metadata; returns the
    entity URNs written. Proposals of another shape go through `lite.write` itself. Committed once, at the end; on
    an error nothing of the call is committed."""
    urns: list[str] = []
    lite._begin()  # SQLite opens a transaction itself on the first write; DuckDB Lite must be told
    commit = lite._commit
    lite._commit = lambda: None  # on this instance only: the hooks' edges and the fallback writes join this commit
    try:
        for obj in objs:
            urns.append(obj["entityUrn"])
            if plain(obj):
                _write_plain(lite, obj, system_metadata)
            else:
                (m,) = mce_json.read_mcps(json.dumps([obj]).encode())
                lite.write(_with_system_metadata(m, system_metadata))
    except BaseException:
        lite._rollback()
        raise
    finally:
        del lite._commit  # the class's own again
    commit()
    return urns


def _with_system_metadata(m: MetadataChangeProposalWrapper, system_metadata: dict) -> MetadataChangeProposalWrapper:
    from datahub.metadata.schema_classes import SystemMetadataClass

    m.systemMetadata = SystemMetadataClass.from_obj(copy.deepcopy(system_metadata))
    return m


def _write_plain(lite, obj: dict, system_metadata: dict) -> None:
    urn, name, metadata = obj["entityUrn"], obj["aspectName"], obj["aspect"]["json"]
    created_on = system_metadata["lastObserved"]
    max_row = lite._execute_one(
        "SELECT metadata, system_metadata FROM metadata_aspect_v2 WHERE urn = ? AND aspect_name = ? AND version = 0",
        [urn, name],
    )
    if max_row is None:
        new_version, needs_write = 1, True
    else:
        stored_system = json.loads(max_row[1])
        real_version = stored_system.get("properties", {}).get("sysVersion")
        if real_version is None:
            real_version = lite._execute_one(
                "SELECT max(version) FROM metadata_aspect_v2 WHERE urn = ? AND aspect_name = ?", [urn, name]
            )[0]
        real_version = int(real_version)
        needs_write = metadata != json.loads(max_row[0])
        new_version = real_version + 1 if needs_write else real_version
    if not needs_write:  # a duplicate: only lastObserved moves
        stored_system = stored_system or {"lastObserved": created_on}
        stored_system["lastObserved"] = created_on
        lite._execute(
            "UPDATE metadata_aspect_v2 SET system_metadata = ? WHERE urn = ? AND aspect_name = ? AND version = 0",
            [json.dumps(stored_system), urn, name],
        )
        return
    system = {
        **system_metadata,
        "properties": {**system_metadata.get("properties", {}), "sysVersion": str(new_version)},
    }
    metadata_text, system_text = json.dumps(metadata), json.dumps(system)
    lite._execute(
        "INSERT INTO metadata_aspect_v2 VALUES (?, ?, ?, ?, ?, ?)",
        [urn, name, new_version, metadata_text, system_text, created_on],
    )
    if max_row is None:
        lite._execute(
            "INSERT INTO metadata_aspect_v2 VALUES (?, ?, ?, ?, ?, ?)",
            [urn, name, 0, metadata_text, system_text, created_on],
        )
    else:
        lite._execute(
            "UPDATE metadata_aspect_v2 SET metadata = ?, system_metadata = ? WHERE urn = ? AND "
            "aspect_name = ? AND version = 0",
            [metadata_text, system_text, urn, name],
        )
    if name in HOOKED:
        lite.post_update_hook(urn, name, aspect_json.from_file_obj(ASPECT_MAP[name], copy.deepcopy(metadata)))
