"""The MCE file serializer's fast path writes exactly what acryl-datahub's own to_obj writes."""

import json

from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.metadata.schema_classes import StatusClass, SystemMetadataClass

from metadata_assets.datahub import files
from metadata_assets.datahub.mcps import LineageResolver, database_mcps
from metadata_assets.extract import rules_for
from metadata_assets.sources.mysql import MySQLReader, connect


def test_fast_serializer_equals_library_serializer(schema):
    schema.load_sample()
    schema.create("odd names", "CREATE TABLE `we$ird-ü` (`select` INT PRIMARY KEY COMMENT 'ключ') COMMENT='표'")
    schema.grant()
    source = schema.source(platform_instance="eu-1")
    conn = connect(source)
    dbs = list(MySQLReader(conn).read(schema.databases, source))
    conn.close()
    rules = rules_for(source)
    lineage = LineageResolver(rules)
    for db in dbs:
        lineage.register(db)
    mcps = [m for db in dbs for m in database_mcps(db, rules, lineage)]
    aspects = {m.aspectName for m in mcps}
    assert {"schemaMetadata", "upstreamLineage", "viewProperties", "dataPlatformInstance"} <= aspects
    library = (json.dumps([m.to_obj(simplified_structure=True) for m in mcps], indent=2, ensure_ascii=False)
               + "\n").encode()
    assert files.serialize_mcps(mcps) == library


def test_rare_shapes_take_the_library_path():
    m = MetadataChangeProposalWrapper(entityUrn="urn:li:corpuser:x", aspect=StatusClass(removed=True),
                                      systemMetadata=SystemMetadataClass(runId="r", lastObserved=1))
    assert json.loads(files.serialize_mcps([m])) == [m.to_obj(simplified_structure=True)]


def test_flat_to_dict_equals_asdict_and_round_trips(schema):
    from dataclasses import asdict

    from metadata_assets.catalog import Database

    schema.load_sample()
    schema.grant()
    source = schema.source()
    conn = connect(source)
    dbs = list(MySQLReader(conn).read(schema.databases, source))
    conn.close()
    for db in dbs:
        assert db.to_dict() == asdict(db)
        doc = json.loads(json.dumps({**db.to_dict(), "data_version": "x"}))  # as the snapshot file holds it
        back = Database.from_dict(doc)
        assert back == db and back.schema_hash() == db.schema_hash()
