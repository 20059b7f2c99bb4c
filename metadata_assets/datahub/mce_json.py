"""MCE JSON: proposals to and from the JSON of an MCE file (the format of DataHub's file sink, simplified aspects),
deterministic and written a proposal at a time. The per-aspect encoder it uses is aspect_json.py.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator

import pydantic_core
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.serialization_helper import pre_json_transform

from metadata_assets.datahub import aspect_json


def proposal_obj(m: MetadataChangeProposalWrapper) -> dict:
    """`m.to_obj(simplified_structure=True)` without its round trip through a JSON string, the aspect converted by
    aspect_json instead of avrogen's own walk (both faster: bench/NOTES.md).

    Same dict, same key order: tests/test_serialization.py compares the two on every proposal of a real schema.
    """
    if m.systemMetadata is not None or rare_shape(m):
        return m.to_obj(simplified_structure=True)  # shapes our files never hold: the library's own path
    return simplified_obj(m)


def rare_shape(m: MetadataChangeProposalWrapper) -> bool:
    """A proposal with parts simplified_obj does not convert (none of ours has them)."""
    return m.auditHeader is not None or m.headers is not None or m.entityKeyAspect is not None or m.aspect is None


def simplified_obj(m: MetadataChangeProposalWrapper, with_system_metadata: bool = False) -> dict:
    """proposal_obj's dict, built directly (not for a rare_shape); `systemMetadata` added when asked and set, as
    the library's to_obj places it (after the aspect)."""
    obj = {
        "entityType": m.entityType,
        "entityUrn": m.entityUrn,
        "changeType": m.changeType,
        "aspectName": m.aspectName,
        "aspect": {"json": pre_json_transform(aspect_json.to_obj(m.aspect))},
    }
    if with_system_metadata and m.systemMetadata is not None:
        obj["systemMetadata"] = aspect_json.to_obj(m.systemMetadata)
    return obj


def serialize_mcps(mcps: Iterable[MetadataChangeProposalWrapper]) -> bytes:
    """The file format of DataHub's file sink (simplified aspects); fixed key order and indent, so deterministic."""
    return b"".join(serialize_mcps_chunks(mcps))


def serialize_mcps_chunks(mcps: Iterable[MetadataChangeProposalWrapper]) -> Iterator[bytes]:
    """serialize_mcps one proposal at a time: the same bytes as `json.dumps(list, indent=2)`, in pieces, so a
    database of 10,000 tables never has all its proposals (or their JSON) in memory at once. Each element of an
    indented list is the element's own indented JSON shifted by one level (JSON strings hold no raw newline)."""
    first = True
    for m in mcps:
        yield (b"[\n  " if first else b",\n  ") + _indented_json(m).replace(b"\n", b"\n  ")
        first = False
    yield b"[]\n" if first else b"\n]\n"


def _indented_json(m: MetadataChangeProposalWrapper) -> bytes:
    """`json.dumps(proposal_obj(m), indent=2, ensure_ascii=False)` in UTF-8. Python's encoder has no C path with an
    indent; pydantic_core's (Rust) writes the same bytes, much faster (bench/NOTES.md), for the values
    aspect_json.to_file_obj lets through. Anything else takes Python's encoder."""
    if (
        m.systemMetadata is None
        and not rare_shape(m)
        and type(m.entityType) is str
        and type(m.entityUrn) is str
        and type(m.changeType) is str
        and type(m.aspectName) is str
    ):
        aspect = aspect_json.to_file_obj(m.aspect)
        if aspect is not None:
            obj = {
                "entityType": m.entityType,
                "entityUrn": m.entityUrn,
                "changeType": m.changeType,
                "aspectName": m.aspectName,
                "aspect": {"json": aspect},
            }
            try:
                return pydantic_core.to_json(obj, indent=2)
            except pydantic_core.PydanticSerializationError:
                pass  # a lone surrogate: Python's encoder below raises the UnicodeEncodeError it always did
    return json.dumps(proposal_obj(m), indent=2, ensure_ascii=False).encode("utf-8")


_PLAIN_KEYS = frozenset({"entityType", "entityUrn", "changeType", "aspectName", "aspect"})


def plain_proposal(obj: dict) -> bool:
    """A proposal of the shape extraction writes: an UPSERT of one known aspect as simplified JSON."""
    from datahub.emitter.aspect import ASPECT_MAP

    aspect = obj.get("aspect")
    return (
        obj.keys() <= _PLAIN_KEYS
        and obj.get("changeType") == "UPSERT"
        and obj.get("aspectName") in ASPECT_MAP
        and type(aspect) is dict
        and aspect.keys() == {"json"}
    )


def read_mcps(data: bytes) -> list[MetadataChangeProposalWrapper]:
    """The proposals of an MCE file: what MetadataChangeProposalWrapper.from_obj gives for each, the aspects of the
    shapes our files hold decoded by aspect_json (faster: bench/NOTES.md; tests/test_serialization.py compares)."""
    from datahub.emitter.aspect import ASPECT_MAP

    out = []
    for obj in json.loads(data):
        aspect = obj.get("aspect")
        if plain_proposal(obj):
            cls = ASPECT_MAP[obj["aspectName"]]
            out.append(
                MetadataChangeProposalWrapper(
                    entityType=obj["entityType"],
                    entityUrn=obj["entityUrn"],
                    changeType=obj["changeType"],
                    aspectName=obj["aspectName"],
                    aspect=aspect_json.from_file_obj(cls, aspect["json"]),
                )
            )
            continue
        if aspect and "json" in aspect:  # simplified structure: re-nest as DataHub's serialized form
            obj = {**obj, "aspect": {"value": json.dumps(aspect["json"]), "contentType": "application/json"}}
        out.append(MetadataChangeProposalWrapper.from_obj(obj))
    return out
