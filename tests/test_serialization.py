"""The MCE file serializer's fast path writes exactly what acryl-datahub's own to_obj writes."""

import json

import pytest
from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.metadata.schema_classes import StatusClass, SystemMetadataClass

from metadata_assets.datahub.mce_json import read_mcps, serialize_mcps
from metadata_assets.extract import rules_for
from metadata_assets.sources.mysql import MySQLReader, connect
from metadata_assets.sources.sql_emitter import LineageResolver, database_mcps
from metadata_assets.storage.store import sha256


def real_mcps(schema, odd_table: str) -> list[MetadataChangeProposalWrapper]:
    """Every proposal of the demo sample plus one database holding `odd_table`, read from the real server."""
    schema.load_sample()
    schema.create("odd names", odd_table)
    schema.grant()
    source = schema.source(platform_instance="eu-1")
    conn = connect(source)
    dbs = list(MySQLReader(conn).read(schema.databases, source))
    conn.close()
    rules = rules_for(source)
    lineage = LineageResolver(rules)
    for db in dbs:
        lineage.register(db)
    return [m for db in dbs for m in database_mcps(db, rules, lineage)]


def test_fast_serializer_equals_library_serializer(schema):
    mcps = real_mcps(schema, "CREATE TABLE `we$ird-ü` (`select` INT PRIMARY KEY COMMENT 'ключ') COMMENT='표'")
    aspects = {m.aspectName for m in mcps}
    assert {"schemaMetadata", "upstreamLineage", "viewProperties", "dataPlatformInstance"} <= aspects
    library = (
        json.dumps([m.to_obj(simplified_structure=True) for m in mcps], indent=2, ensure_ascii=False) + "\n"
    ).encode()
    assert serialize_mcps(mcps) == library


def test_rare_shapes_take_the_library_path():
    m = MetadataChangeProposalWrapper(
        entityUrn="urn:li:corpuser:x",
        aspect=StatusClass(removed=True),
        systemMetadata=SystemMetadataClass(runId="r", lastObserved=1),
    )
    assert json.loads(serialize_mcps([m])) == [m.to_obj(simplified_structure=True)]


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
        # written and hashed a table at a time: the bytes of the whole dict's json.dumps
        extra = {"data_version": "v", "figures": {"t": [1, None]}, "file_warnings": ["w"], "proposals": 3}
        assert (
            b"".join(db.json_chunks(extra))
            == json.dumps({**db.to_dict(), **extra}, sort_keys=True, ensure_ascii=False).encode()
        )
        canon = db.to_dict()
        for k in ("warnings", "read_at_ms", "statistics_note"):
            canon.pop(k)
        for k in ("properties", "routines"):
            if not canon[k]:
                canon.pop(k)
        for t in canon["tables"]:
            for k in ("create_time", "update_time", "row_estimate", "data_length", "index_length"):
                t.pop(k)
            for k in ("properties", "indexes", "checks", "triggers", "view_upstreams"):
                if not t[k]:
                    t.pop(k)
        assert db.schema_hash() == sha256(
            json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        )
    empty = Database(name="e")
    assert b"".join(empty.json_chunks()) == json.dumps(empty.to_dict(), sort_keys=True).encode()


def test_compiled_aspect_converter_equals_avrogen_on_every_aspect_we_write(schema):
    """aspect_json converts every aspect of real files itself (no fallback) into exactly avrogen's to_obj()."""
    from metadata_assets.datahub import aspect_json

    aspects = [
        m.aspect
        for m in real_mcps(
            schema,
            "CREATE TABLE `we$ird-ü` (`select` INT PRIMARY KEY COMMENT 'ключ', b BIT(1), y YEAR, "
            "j JSON, e ENUM('a','b'), d DECIMAL(10,2) NOT NULL DEFAULT 0) COMMENT='표'",
        )
    ]
    assert len({type(a) for a in aspects}) >= 9
    for a in aspects:
        assert aspect_json._converter(type(a).RECORD_SCHEMA)(a) == a.to_obj(), type(a).__name__


def test_values_that_do_not_conform_get_the_library_error():
    from avro.errors import AvroTypeException
    from datahub.metadata.schema_classes import (
        SchemaFieldClass,
        SchemaFieldDataTypeClass,
        StringTypeClass,
        UpstreamClass,
        UpstreamLineageClass,
    )

    from metadata_assets.datahub import aspect_json

    field = SchemaFieldClass(
        fieldPath="x", type=SchemaFieldDataTypeClass(type=StringTypeClass()), nativeDataType="varchar(3)"
    )
    assert aspect_json.to_obj(field) == field.to_obj()
    field._inner_dict["nullable"] = "yes"  # not a boolean
    with pytest.raises(AvroTypeException):
        aspect_json.to_obj(field)
    lineage = UpstreamLineageClass(upstreams=[UpstreamClass(dataset="urn:li:dataset:x", type="VIEW")])
    assert aspect_json.to_obj(lineage) == lineage.to_obj()
    lineage.upstreams[0]._inner_dict["type"] = "NOT_A_TYPE"  # not one of the enum's symbols
    with pytest.raises(AvroTypeException):
        aspect_json.to_obj(lineage)


def test_a_schema_the_converter_does_not_compile_always_goes_to_the_library():
    """A record holding a `fixed` (KafkaAuditHeader) is handed to avrogen, every time, not only the first."""
    from datahub.metadata.schema_classes import KafkaAuditHeaderClass

    from metadata_assets.datahub import aspect_json

    header = KafkaAuditHeaderClass(time=1, server="s", appName="a", messageId=b"0" * 16)
    assert aspect_json.to_obj(header) == header.to_obj()
    assert aspect_json.to_obj(header) == header.to_obj()


def test_reading_files_and_lite_writes_take_compiled_paths_with_the_library_results(schema):
    """read_mcps decodes each aspect with aspect_json.from_file_obj, and the Lite sink's proposals serialize
    with the compiled converter, systemMetadata included: the same objects and dicts as the library's own."""
    from datahub.emitter.aspect import ASPECT_MAP
    from datahub.emitter.serialization_helper import post_json_transform

    from metadata_assets.datahub import aspect_json
    from metadata_assets.datahub.sinks import CompiledToObj

    mcps = real_mcps(
        schema,
        "CREATE TABLE `we$ird-ü` (`select` INT PRIMARY KEY COMMENT 'ключ', b BIT(1), "
        "j JSON, d DECIMAL(10,2) NOT NULL DEFAULT 0) COMMENT='표'",
    )
    data = serialize_mcps(mcps)
    library = []
    for obj in json.loads(data):
        obj = {**obj, "aspect": {"value": json.dumps(obj["aspect"]["json"]), "contentType": "application/json"}}
        library.append(MetadataChangeProposalWrapper.from_obj(obj))
    fast = read_mcps(data)
    assert fast == library and [repr(m) for m in fast] == [repr(m) for m in library]
    assert [type(m.aspect) for m in fast] == [type(m.aspect) for m in library]
    for obj in json.loads(data):  # no aspect of ours falls back to the library
        cls = ASPECT_MAP[obj["aspectName"]]
        assert aspect_json._from_converter(cls.RECORD_SCHEMA)(obj["aspect"]["json"]) == cls.from_obj(
            post_json_transform(obj["aspect"]["json"])
        ), obj["aspectName"]

    for m in fast:
        m.systemMetadata = SystemMetadataClass(
            runId="push-1", lastObserved=1700000000000, properties={"sysVersion": "3"}
        )
        assert CompiledToObj.of(m).to_obj(simplified_structure=True) == m.to_obj(simplified_structure=True)
        assert CompiledToObj.of(m).to_obj() == m.to_obj()


def test_file_aspects_the_compiled_reader_cannot_vouch_for_go_to_the_library():
    from datahub.metadata.schema_classes import DatasetPropertiesClass

    from metadata_assets.datahub import aspect_json

    # a map holding a single key in the union form: post_json_transform would rename it, so the library decides
    odd = {"customProperties": {"com.linkedin.x": "1"}, "tags": []}
    assert repr(aspect_json.from_file_obj(DatasetPropertiesClass, odd)) == repr(
        DatasetPropertiesClass.from_obj({"customProperties": {"com.linkedin.pegasus2avro.x": "1"}, "tags": []})
    )
    from avro.errors import AvroTypeException

    with pytest.raises(AvroTypeException, match="Datum 5 cannot be parsed"):  # a wrong type: the library's error
        aspect_json.from_file_obj(DatasetPropertiesClass, {"customProperties": {}, "name": 5})


def _python_json(m: MetadataChangeProposalWrapper) -> bytes:
    """What the library's own path writes for one proposal of a file (before this project's fast encoder)."""
    return (json.dumps([m.to_obj(simplified_structure=True)], indent=2, ensure_ascii=False) + "\n").encode()


def test_file_encoder_writes_pythons_bytes_for_odd_values_and_falls_back_where_it_must():
    """The file path (aspect_json.to_file_obj + pydantic_core's encoder) writes the bytes of to_obj + Python's json
    for strings of every control and non-ASCII character, str enums, empty and None-holding maps, unions in arrays
    and floats; floats that the two encoders write differently (exponents, inf, nan), maps the transform would read
    as unions and lone surrogates take Python's encoder and the library's walk."""
    from datahub.ingestion.source.common.subtypes import DatasetSubTypes
    from datahub.metadata.schema_classes import (
        DatasetFieldProfileClass,
        DatasetProfileClass,
        DatasetPropertiesClass,
        SubTypesClass,
    )

    from metadata_assets.datahub import aspect_json

    urn = "urn:li:dataset:(urn:li:dataPlatform:mysql,d.t,PROD)"
    text = "".join(chr(i) for i in range(0x250)) + '\u2028\u2029\ufeff\U0001f600\U0010ffff\x7f"\\/'
    fast = [
        DatasetPropertiesClass(name=text, description="", customProperties={text: text, "": "", "b": "x"}),
        DatasetPropertiesClass(customProperties={}),
        SubTypesClass(typeNames=[DatasetSubTypes.TABLE, DatasetSubTypes.VIEW]),
        DatasetProfileClass(
            timestampMillis=2**62,
            rowCount=-(2**63),
            columnCount=0,
            sizeInBytes=None,
            fieldProfiles=[
                DatasetFieldProfileClass(fieldPath="a", nullProportion=0.1, uniqueProportion=123456789.125, nullCount=0)
            ],
        ),
        DatasetProfileClass(
            timestampMillis=1,
            fieldProfiles=[DatasetFieldProfileClass(fieldPath="a", nullProportion=0.0, uniqueProportion=-0.0, min="1")],
        ),
    ]
    slow = [
        DatasetProfileClass(
            timestampMillis=1, fieldProfiles=[DatasetFieldProfileClass(fieldPath="a", nullProportion=1e-07)]
        ),
        DatasetProfileClass(
            timestampMillis=1, fieldProfiles=[DatasetFieldProfileClass(fieldPath="a", uniqueProportion=1e22)]
        ),
        DatasetProfileClass(
            timestampMillis=1, fieldProfiles=[DatasetFieldProfileClass(fieldPath="a", nullProportion=float("inf"))]
        ),
        DatasetPropertiesClass(customProperties={"com.linkedin.pegasus2avro.x": "1"}),
        DatasetPropertiesClass(customProperties={"fieldDiscriminator": "x", "x": "y"}),
    ]
    for aspect in fast + slow:
        m = MetadataChangeProposalWrapper(entityUrn=urn, aspect=aspect)
        assert serialize_mcps([m]) == _python_json(m), aspect
        from datahub.emitter.serialization_helper import pre_json_transform

        assert (aspect_json.to_file_obj(aspect) is None) == (aspect in slow), aspect
        if aspect in fast:
            assert aspect_json.to_file_obj(aspect) == pre_json_transform(aspect.to_obj())
    lone = MetadataChangeProposalWrapper(entityUrn=urn, aspect=DatasetPropertiesClass(name="\ud800"))
    with pytest.raises(UnicodeEncodeError):  # as with Python's encoder alone
        serialize_mcps([lone])
