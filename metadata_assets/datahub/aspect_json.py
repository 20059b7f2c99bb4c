"""`aspect.to_obj()` for acryl-datahub's generated aspect classes, from a converter compiled once per Avro schema.

avrogen's `to_obj()` walks the schema generically for every object: it validates the whole tree first, re-parses
every field's default from JSON, and picks union branches by validating each candidate. At 10,000 tables that is
8.5 s of a 24 s extraction. The converter here does the same walk with those decisions made once per schema:
the same dict for the data our files hold (tests/test_serialization.py compares both on every proposal of real
schemas). Anything it is not sure of (a value of an unexpected type, a union it would have to guess, a missing
field, a schema feature our aspects do not use) makes it hand the whole aspect to the library's own `to_obj()`,
which also raises the library's error for data that does not conform.

Semantics copied from avrogen.avrojson.AvroJsonConverter with use_logical_types=False and fastavro=False (what
acryl-datahub registers): bytes are decoded to str; a record field that is None with a None default is left out; a
union value is written bare when the union has at most one non-null branch (or is an enum with null) and it is not
directly inside an array, else as {branch name: value}.
"""

from __future__ import annotations

from typing import Any, Callable

from avro import schema as avro_schema
from avrogen.dict_wrapper import DictWrapper

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1


class _Unsure(Exception):
    """The compiled converter cannot vouch for this value: the library converts the aspect."""


Converter = Callable[[Any], Any]
_compiled: dict[int, Converter] = {}
_in_array_unions: dict[int, Converter] = {}


def to_obj(aspect: DictWrapper) -> dict:
    """The same dict as `aspect.to_obj()`."""
    try:
        return _converter(type(aspect).RECORD_SCHEMA)(aspect)
    except _Unsure:
        return aspect.to_obj()


def _name(s: avro_schema.Schema) -> str:
    return s.fullname.lstrip(".") if isinstance(s, avro_schema.NamedSchema) else s.type


def _converter(s: avro_schema.Schema, within_array: bool = False) -> Converter:
    cache = _in_array_unions if within_array and s.type == "union" else _compiled
    conv = cache.get(id(s))
    if conv is None:
        # a placeholder first: recursive schemas (a record that contains itself) resolve to it
        cache[id(s)] = lambda d: cache[id(s)](d)
        try:
            conv = _compile(s, within_array)
        except _Unsure:  # a schema feature not compiled (fixed, ...): values of it go to the library, always
            conv = _always_unsure
        cache[id(s)] = conv
    return conv


def _always_unsure(d):
    raise _Unsure


def _compile(s: avro_schema.Schema, within_array: bool) -> Converter:
    t = s.type
    if t == "null":

        def null(d):
            if d is not None:
                raise _Unsure
            return None

        return null
    if t == "string":

        def string(d):
            if not isinstance(d, str):  # str enums (DatasetSubTypes.TABLE) pass as they are, as in avrojson
                raise _Unsure
            return d

        return string
    if t == "boolean":

        def boolean(d):
            if type(d) is not bool:
                raise _Unsure
            return d

        return boolean
    if t in ("int", "long"):
        lo, hi = (_INT_MIN, _INT_MAX) if t == "int" else (_LONG_MIN, _LONG_MAX)

        def integer(d):
            if type(d) is not int or not lo <= d <= hi:
                raise _Unsure
            return d

        return integer
    if t in ("float", "double"):

        def number(d):
            if type(d) is not float and type(d) is not int:
                raise _Unsure
            return d

        return number
    if t == "bytes":

        def raw(d):
            if type(d) is bytes:
                return d.decode()
            if not isinstance(d, str):
                raise _Unsure
            return d

        return raw
    if t == "enum":
        symbols = tuple(s.symbols)  # a tuple, not a set: str enums hash by name but compare by value

        def enum(d):
            if not isinstance(d, str) or d not in symbols:
                raise _Unsure
            return d

        return enum
    if t == "array":
        item = _converter(s.items, within_array=True)

        def array(d):
            if type(d) is not list:
                raise _Unsure
            return [item(x) for x in d]

        return array
    if t == "map":
        value = _converter(s.values)

        def mapping(d):
            if type(d) is not dict:
                raise _Unsure
            out = {}
            for k, v in d.items():
                if type(k) is not str:
                    raise _Unsure
                out[k] = value(v)
            return out

        return mapping
    if t == "record":
        return _compile_record(s)
    if t == "union":
        return _compile_union(s, within_array)
    raise _Unsure  # fixed, error, request: not in the aspects we write


def _compile_record(s: avro_schema.RecordSchema) -> Converter:
    # (name, converter, leave out when None): a field with a default of None is left out when None (avrojson)
    fields = [(f.name, _converter(f.type), f.has_default and f.default is None) for f in s.fields]

    def record(d):
        if not isinstance(d, DictWrapper):
            raise _Unsure
        inner = d._inner_dict
        out = {}
        for name, conv, skip_none in fields:
            if name not in inner:
                raise _Unsure  # the library would use the field's default here
            v = inner[name]
            if v is None and skip_none:
                continue
            out[name] = conv(v)
        return out

    return record


def _compile_union(s: avro_schema.UnionSchema, within_array: bool) -> Converter:
    branches = list(s.schemas)
    if any(b.type == "enum" for b in branches):
        bare = len(branches) == 2 and any(b.type == "null" for b in branches)
    else:
        bare = sum(b.type != "null" for b in branches) <= 1
    bare = bare and not within_array
    records = {b.fullname: (i, _converter(b)) for i, b in enumerate(branches) if b.type == "record"}
    has_null = any(b.type == "null" for b in branches)
    # a non-record value: the library takes the *last* branch that validates (the first boolean one); only unions
    # with one branch that can hold such a value are compiled, so that no guess is needed
    plain = [(i, b) for i, b in enumerate(branches) if b.type not in ("null", "record")]
    single = (plain[0][0], _converter(plain[0][1])) if len(plain) == 1 else None
    names = [_name(b) for b in branches]

    def union(d):
        if d is None:
            if not has_null:
                raise _Unsure
            return None
        if isinstance(d, DictWrapper):
            hit = records.get(type(d).RECORD_SCHEMA.fullname)
            if hit is None:
                raise _Unsure
            i, conv = hit
        elif single is not None and not (records and type(d) is dict):  # a dict might validate as a record
            i, conv = single
        else:
            raise _Unsure
        out = conv(d)
        return out if bare else {names[i]: out}

    return union


# --- for the MCE files: `pre_json_transform(aspect.to_obj())` in one walk, with values pydantic_core encodes alike ----
# What serialization_helper.pre_json_transform does to to_obj's dict, folded into the compiled walk: every None
# value of a dict is left out; a union written as {branch: value} names its branch `com.linkedin.X` where the class
# says `com.linkedin.pegasus2avro.X`; bytes are decoded. A map whose keys the transform would read as a union (one
# key that starts with that prefix, or a `fieldDiscriminator` key) and a record with a `fieldDiscriminator` field
# are left to the library's walk. The result also holds only values whose JSON Python's `json` and pydantic_core's
# encoder write byte for byte alike (tests/test_serialization.py): plain str (a str enum becomes its str), int,
# bool, None, and floats whose repr has no exponent and is finite (`1e-07`: Python, `1e-7`: pydantic_core). Anything
# else returns None, and the file takes the library's walk and Python's encoder for that proposal.

_compiled_file: dict[int, Converter] = {}
_in_array_file: dict[int, Converter] = {}
_PRE_FROM, _PRE_TO = "com.linkedin.pegasus2avro.", "com.linkedin."


def to_file_obj(aspect: DictWrapper):
    """`pre_json_transform(aspect.to_obj())`, or None when this walk cannot vouch for it (see above)."""
    try:
        return _file_converter(type(aspect).RECORD_SCHEMA)(aspect)
    except _Unsure:
        return None


def _file_converter(s: avro_schema.Schema, within_array: bool = False) -> Converter:
    cache = _in_array_file if within_array and s.type == "union" else _compiled_file
    conv = cache.get(id(s))
    if conv is None:
        cache[id(s)] = lambda d: cache[id(s)](d)  # recursive schemas resolve to the final converter
        try:
            conv = _compile_file(s, within_array)
        except _Unsure:
            conv = _always_unsure
        cache[id(s)] = conv
    return conv


def _plain_str(d):
    if type(d) is str:
        return d
    if not isinstance(d, str):
        raise _Unsure
    return str.__str__(d)  # a str enum (DatasetSubTypes.TABLE): its text, as Python's json writes it


def _compile_file(s: avro_schema.Schema, within_array: bool) -> Converter:
    t = s.type
    if t in ("null", "boolean", "int", "long", "bytes"):
        return _compile(s, within_array)  # bytes are decoded to str there, as the transform does
    if t == "string":
        return _plain_str
    if t == "enum":
        symbols = tuple(s.symbols)

        def enum(d):
            if not isinstance(d, str) or d not in symbols:
                raise _Unsure
            return _plain_str(d)

        return enum
    if t in ("float", "double"):

        def number(d):
            if type(d) is int:
                return d
            if type(d) is not float:
                raise _Unsure
            r = float.__repr__(d)
            if "e" in r or "n" in r:  # an exponent, inf or nan: the two encoders differ
                raise _Unsure
            return d

        return number
    if t == "array":
        item = _file_converter(s.items, within_array=True)

        def array(d):
            if type(d) is not list:
                raise _Unsure
            return [item(x) for x in d]

        return array
    if t == "map":
        value = _file_converter(s.values)

        def mapping(d):
            if type(d) is not dict or "fieldDiscriminator" in d or len(d) == 1 and next(iter(d)).startswith(_PRE_FROM):
                raise _Unsure
            out = {}
            for k, v in d.items():
                if type(k) is not str:
                    raise _Unsure
                v = value(v)
                if v is not None:
                    out[k] = v
            return out

        return mapping
    if t == "record":
        if "fieldDiscriminator" in s.fields_dict:
            raise _Unsure
        fields = [(f.name, _file_converter(f.type), f.has_default and f.default is None) for f in s.fields]

        def record(d):
            if not isinstance(d, DictWrapper):
                raise _Unsure
            inner = d._inner_dict
            out = {}
            for name, conv, skip_none in fields:
                if name not in inner:
                    raise _Unsure
                v = inner[name]
                if v is None:
                    if not skip_none:
                        conv(None)  # a field that may not be None raises here, as in to_obj
                    continue  # to_obj leaves it out or writes None; the transform drops the None
                out[name] = conv(v)
            return out

        return record
    if t == "union":
        return _compile_file_union(s, within_array)
    raise _Unsure


def _compile_file_union(s: avro_schema.UnionSchema, within_array: bool) -> Converter:
    branches = list(s.schemas)
    if any(b.type == "enum" for b in branches):
        bare = len(branches) == 2 and any(b.type == "null" for b in branches)
    else:
        bare = sum(b.type != "null" for b in branches) <= 1
    bare = bare and not within_array
    records = {b.fullname: (i, _file_converter(b)) for i, b in enumerate(branches) if b.type == "record"}
    has_null = any(b.type == "null" for b in branches)
    plain = [(i, b) for i, b in enumerate(branches) if b.type not in ("null", "record")]
    single = (plain[0][0], _file_converter(plain[0][1])) if len(plain) == 1 else None
    names = [_name(b) for b in branches]
    names = [_PRE_TO + n[len(_PRE_FROM) :] if n.startswith(_PRE_FROM) else n for n in names]

    def union(d):
        if d is None:
            if not has_null:
                raise _Unsure
            return None
        if isinstance(d, DictWrapper):
            hit = records.get(type(d).RECORD_SCHEMA.fullname)
            if hit is None:
                raise _Unsure
            i, conv = hit
        elif single is not None and not (records and type(d) is dict):
            i, conv = single
        else:
            raise _Unsure
        out = conv(d)
        return out if bare else {names[i]: out}

    return union


# --- the other way: what `cls.from_obj(post_json_transform(obj))` gives for an aspect as our MCE files hold it ----
# Semantics copied from serialization_helper.post_json_transform and AvroJsonConverter.from_json_object
# (use_logical_types=False, fastavro=False), in one walk: a key or value that is None counts as absent; an absent
# record field takes its default (converted anew each time, so no two objects share a default list), or None when
# the field is nullable; a union value is {branch: value}, the branch named as in the file (`com.linkedin.X` for
# `com.linkedin.pegasus2avro.X`), or bare, and a bare value goes to the one non-null branch (the library validates
# each branch in turn; a union with two is not compiled); bytes from a str are encoded; records are built with the
# class's own `_construct`, as the library builds them. Anything else (a value of the wrong type, a missing
# required field, a shape the transform would rewrite) hands the whole aspect to the library, which also raises
# its own error for data that does not conform.

_compiled_from: dict[int, Converter] = {}
_FILE_PREFIX, _CLASS_PREFIX = "com.linkedin.", "com.linkedin.pegasus2avro."


def from_file_obj(cls: type, obj: dict):
    """The same object as `cls.from_obj(post_json_transform(obj))` (cls: a generated aspect class)."""
    try:
        return _from_converter(cls.RECORD_SCHEMA)(obj)
    except _Unsure:
        from datahub.emitter.serialization_helper import post_json_transform

        return cls.from_obj(post_json_transform(obj))


def _from_converter(s: avro_schema.Schema) -> Converter:
    conv = _compiled_from.get(id(s))
    if conv is None:
        _compiled_from[id(s)] = lambda d: _compiled_from[id(s)](d)  # recursive schemas resolve to the final one
        try:
            conv = _compile_from(s)
        except _Unsure:
            conv = _always_unsure
        _compiled_from[id(s)] = conv
    return conv


def _schema_types() -> dict:
    from avrogen.avrojson import get_global_json_converter

    return get_global_json_converter(False).schema_types


def _rewritten_by_transform(d: dict) -> bool:
    """A dict post_json_transform would rewrite beyond dropping None values: a single key in the file's union
    form, or the one union with aliases of the model (cost/costType)."""
    if len(d) == 1 and next(iter(d)).startswith(_FILE_PREFIX):
        return True
    return set(d) == {"cost", "costType"}


def _compile_from(s: avro_schema.Schema) -> Converter:
    t = s.type
    if t in ("null", "string", "boolean", "int", "long", "float", "double", "enum"):
        return _compile(s, within_array=False)  # the same type check; the value passes unchanged
    if t == "bytes":

        def raw(d):
            if not isinstance(d, str):
                raise _Unsure
            return d.encode()

        return raw
    if t == "array":
        item = _from_converter(s.items)

        def array(d):
            if type(d) is not list:
                raise _Unsure
            return [item(x) for x in d]

        return array
    if t == "map":
        value = _from_converter(s.values)

        def mapping(d):
            if type(d) is not dict or _rewritten_by_transform(d):
                raise _Unsure
            return {k: value(v) for k, v in d.items() if v is not None}

        return mapping
    if t == "record":
        return _compile_record_from(s)
    if t == "union":
        return _compile_union_from(s)
    raise _Unsure


def _compile_record_from(s: avro_schema.RecordSchema) -> Converter:
    types = _schema_types()
    cls = types.get(s.fullname.lstrip(".")) or types.get(s.name)
    if cls is None or not issubclass(cls, DictWrapper) or "fieldDiscriminator" in s.fields_dict:
        raise _Unsure
    fields = []
    for f in s.fields:
        nullable = f.type.type == "null" or (f.type.type == "union" and any(b.type == "null" for b in f.type.schemas))
        fields.append((f.name, _from_converter(f.type), f.has_default, f.default, nullable))

    def record(d):
        if type(d) is not dict or _rewritten_by_transform(d):
            raise _Unsure
        out = {}
        for name, conv, has_default, default, nullable in fields:
            v = d.get(name)
            if v is not None:
                out[name] = conv(v)
            elif has_default:
                out[name] = conv(default) if default is not None else None  # a fresh object each time
            elif nullable:
                out[name] = None
            else:
                raise _Unsure  # the library raises for a missing required field
        return cls._construct(out)

    return record


def _file_name(branch: avro_schema.Schema) -> str:
    name = _name(branch)
    return _FILE_PREFIX + name[len(_CLASS_PREFIX) :] if name.startswith(_CLASS_PREFIX) else name


def _compile_union_from(s: avro_schema.UnionSchema) -> Converter:
    branches = list(s.schemas)
    by_name = {_file_name(b): _from_converter(b) for b in branches}
    has_null = any(b.type == "null" for b in branches)
    others = [b for b in branches if b.type != "null"]
    bare = _from_converter(others[0]) if len(others) == 1 else None

    def union(d):
        if d is None:
            if not has_null:
                raise _Unsure
            return None
        if type(d) is dict and len(d) == 1:
            key = next(iter(d))
            conv = by_name.get(key)
            if conv is not None:
                return conv(d[key])
        if bare is None:
            raise _Unsure  # the library would validate each branch in turn
        return bare(d)

    return union
