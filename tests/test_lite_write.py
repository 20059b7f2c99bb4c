"""DataHub Lite written from the MCE files' dicts (datahub/lite_write.py) holds what Lite's own write() of the
decoded proposals holds: the same aspect rows (every version, system metadata included) and the same edges, after a
first push, a changed push, a duplicate and a soft delete. Real files from real extraction on MariaDB."""

import json

from metadata_assets.config import LiteTarget
from metadata_assets.datahub.lite_write import plain, write_objs
from metadata_assets.datahub.mce_json import proposal_obj, read_mcps
from metadata_assets.datahub.sinks import LiteSink
from metadata_assets.extract import extract
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import open_store

SYSTEM = {"lastObserved": 1_700_000_000_000, "runId": "run-1"}


def tables(sink: LiteSink) -> tuple[list, list]:
    lite = sink.lite
    return (
        sorted(lite._execute("SELECT * FROM metadata_aspect_v2")),
        sorted(map(tuple, lite._execute("SELECT * FROM metadata_edge_v2"))),
    )


def library_write(sink: LiteSink, objs: list[dict], system: dict) -> None:
    from datahub.metadata.schema_classes import SystemMetadataClass

    mcps = read_mcps(json.dumps(objs).encode())
    for m in mcps:
        m.systemMetadata = SystemMetadataClass.from_obj(dict(system))
    sink.emit(mcps)


def ours_write(sink: LiteSink, objs: list[dict], system: dict) -> None:
    from datahub.metadata.schema_classes import SystemMetadataClass

    # as datahub/push.py gives it: the system metadata's own to_obj()
    sink.emit_objs(json.loads(json.dumps(objs)), SystemMetadataClass.from_obj(dict(system)).to_obj())


def test_the_same_rows_and_edges_as_lites_own_write(schema, tmp_path):
    dbs = schema.load_sample()
    schema.grant()
    cfg = schema.project(tmp_path)
    src = cfg.sources[0]
    store = open_store(cfg.storage.uri)
    assert all(r.ok for r in extract(src, dbs, store))
    per_db = {db: json.loads(store.read_bytes(mce_key(src.name, db))) for db in dbs}
    assert sum(map(len, per_db.values())) > 50 and all(plain(o) for objs in per_db.values() for o in objs)

    theirs, ours = (
        LiteSink(LiteTarget(path=str(tmp_path / "a.sqlite"))),
        LiteSink(LiteTarget(path=str(tmp_path / "b.sqlite"))),
    )
    try:
        steps = [(objs, SYSTEM) for objs in per_db.values()]  # a first push
        steps.append((per_db[dbs[0]], {**SYSTEM, "lastObserved": SYSTEM["lastObserved"] + 1}))  # a duplicate
        changed_mcps = read_mcps(json.dumps(per_db[dbs[1]]).encode())  # as extraction would write it
        for m in changed_mcps:
            if m.aspectName == "datasetProperties":
                m.aspect.description = "changed <b>&'\"\n"
        changed = [proposal_obj(m) for m in changed_mcps]
        steps.append((changed, {**SYSTEM, "lastObserved": SYSTEM["lastObserved"] + 2, "runId": "run-2"}))
        gone = next(o["entityUrn"] for o in per_db[dbs[2]] if o["entityType"] == "dataset")
        steps.append(
            (
                [
                    {
                        "entityType": "dataset",
                        "entityUrn": gone,
                        "changeType": "UPSERT",
                        "aspectName": "status",
                        "aspect": {"json": {"removed": True}},
                    }
                ],
                {**SYSTEM, "lastObserved": SYSTEM["lastObserved"] + 3},
            )
        )
        for objs, system in steps:
            library_write(theirs, objs, system)
            ours_write(ours, objs, system)
            (oa, oe), (ta, te) = tables(ours), tables(theirs)
            assert len(oa) == len(ta) and _diff(oa, ta) is None, _diff(oa, ta)
            assert oe == te, _diff(oe, te)
        aspects, edges = tables(ours)
        assert any(r[2] == 2 for r in aspects) and edges  # a second version was written, and edges were made
    finally:
        theirs.close()
        ours.close()


def test_nothing_of_a_failed_call_is_committed(schema, tmp_path):
    db = schema.create("one", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(tmp_path)
    store = open_store(cfg.storage.uri)
    assert all(r.ok for r in extract(cfg.sources[0], [db], store))
    objs = json.loads(store.read_bytes(mce_key("src", db)))
    sink = LiteSink(LiteTarget(path=str(tmp_path / "lite.sqlite")))
    try:
        broken = objs + [
            {
                "entityType": "dataset",
                "changeType": "UPSERT",
                "aspectName": "status",
                "aspect": {"json": {"removed": False}},
            }
        ]  # no entityUrn: fails after the file's rows
        try:
            write_objs(sink.lite, broken, SYSTEM)
        except Exception:
            pass
        else:
            raise AssertionError("a malformed proposal was accepted")
        assert sink.lite._execute("SELECT count(*) FROM metadata_aspect_v2") == [(0,)]
    finally:
        sink.close()


def _diff(a, b):
    for x, y in zip(a, b):
        if x != y:
            return x, y
