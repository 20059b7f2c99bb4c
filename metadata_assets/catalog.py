"""The catalog snapshot: what a database's schema looks like, as plain data.

No Dagster, no DataHub, no SQL here. A snapshot is built by a kind's reader (sources/<type>/reader.py), turned
into DataHub proposals by its emitter (sources/<type>/emitter.py) and compared with the previous one (diff.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

# Table statistics that change with the data, not the schema: kept in the file, left out of the schema hash.
VOLATILE_TABLE_FIELDS = ("create_time", "update_time", "row_estimate", "data_length", "index_length")
# Parts of the schema that older snapshots lack: left out of the hash while empty, so adding the field did not move
# the hash of a schema that has none of them.
_OPTIONAL_TABLE_PARTS = ("properties", "indexes", "checks", "triggers", "view_upstreams")
_OPTIONAL_ROUTINE_PARTS = ("schema", "arguments")


@dataclass(frozen=True, slots=True)  # slots: 100,000 columns at 10,000 tables, each without a __dict__
class Column:
    name: str
    ordinal: int
    column_type: str  # full type as the server prints it, e.g. "varchar(64)", "int(10) unsigned"
    data_type: str  # bare type name, e.g. "varchar"
    nullable: bool
    default: Optional[str] = None  # as information_schema shows it (quoted literal, NULL or an expression)
    key: str = ""  # PRI, UNI, MUL or ""
    extra: str = ""  # auto_increment, on update ..., VIRTUAL GENERATED, ...
    generation_expression: Optional[str] = None
    comment: str = ""
    charset: Optional[str] = None
    collation: Optional[str] = None


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_database: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_update: Optional[str] = None
    on_delete: Optional[str] = None


@dataclass(frozen=True)
class Index:
    """A secondary or unique index (the PRIMARY key is Table.primary_key)."""

    name: str
    columns: tuple[str, ...]  # key parts in order; an expression part as its expression
    unique: bool = False
    index_type: Optional[str] = None  # BTREE, HASH, FULLTEXT, SPATIAL, gin, ...
    comment: str = ""


@dataclass(frozen=True)
class CheckConstraint:
    name: str
    clause: str


@dataclass(frozen=True)
class Trigger:
    name: str
    timing: str  # BEFORE, AFTER
    event: str  # INSERT, UPDATE, DELETE
    statement: Optional[str] = None


@dataclass(frozen=True)
class Routine:
    """A stored procedure or function of a database."""

    name: str
    routine_type: str  # PROCEDURE or FUNCTION
    definition: Optional[str] = None  # the body; None when the account may not see it
    comment: str = ""
    returns: Optional[str] = None  # a function's return type
    language: str = "SQL"
    deterministic: Optional[bool] = None
    data_access: Optional[str] = None  # CONTAINS SQL, READS SQL DATA, MODIFIES SQL DATA, NO SQL
    security_type: Optional[str] = None  # DEFINER or INVOKER
    # PostgreSQL: the routine's schema and its arguments as pg_get_function_arguments() gives them (overloads share a
    # name); None for MySQL, whose routines are the database's and cannot be overloaded
    schema: Optional[str] = None
    arguments: Optional[str] = None

    @property
    def label(self) -> str:
        """How people name it: `name` (MySQL), `schema.name(arguments)` (PostgreSQL)."""
        if self.schema is None:
            return self.name
        return f"{self.schema}.{self.name}" + (f"({self.arguments})" if self.arguments is not None else "")


@dataclass
class Table:
    name: str
    table_type: str  # BASE TABLE, VIEW, SYSTEM VERSIONED, SEQUENCE
    engine: Optional[str] = None
    comment: str = ""
    collation: Optional[str] = None
    create_time: Optional[str] = None
    update_time: Optional[str] = None
    row_estimate: Optional[int] = None
    data_length: Optional[int] = None
    index_length: Optional[int] = None
    columns: list[Column] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    view_definition: Optional[str] = None  # the CREATE VIEW statement, views only
    indexes: list[Index] = field(default_factory=list)
    checks: list[CheckConstraint] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    # the (database, table)s a view reads, when the server lists them but not the view's SQL (MySQL 8 without
    # SELECT on the view: information_schema.VIEW_TABLE_USAGE); empty otherwise
    view_upstreams: tuple[tuple[str, str], ...] = ()
    # source-specific facts with no field above (BigQuery: partitioning, clustering, labels); empty for MySQL
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def is_view(self) -> bool:
        return self.table_type == "VIEW"

    # `primary_key` and `foreign_keys` are kept as the server lists them (they are part of the snapshot and its
    # hash). Key columns can be invisible in `columns`: MariaDB lists the hidden `row_end` column of a
    # system-versioned table in its PRIMARY key, but not in information_schema.COLUMNS. What is shown as a schema
    # (DataHub's schemaMetadata) may only name columns that are fields: these views of the keys do that.
    @property
    def visible_primary_key(self) -> tuple[str, ...]:
        """The primary key's visible columns, in key order (hidden ones such as MariaDB's `row_end` left out)."""
        names = {c.name for c in self.columns}
        return tuple(c for c in self.primary_key if c in names)

    @property
    def visible_foreign_keys(self) -> list[ForeignKey]:
        """Foreign keys whose own columns are all visible; one naming a hidden column cannot be shown as fields."""
        names = {c.name for c in self.columns}
        return [fk for fk in self.foreign_keys if all(c in names for c in fk.columns)]


def table_size(t: Table) -> Optional[int]:
    """Data plus index length, as the server estimates them (None when it gives neither)."""
    if t.data_length is None and t.index_length is None:
        return None
    return (t.data_length or 0) + (t.index_length or 0)


def figures_moved(before: Optional[dict], now: dict, share: float, floors: tuple[int, int] = (0, 0)) -> bool:
    """Whether any table's row estimate or size moved by more than `share` of what it was and by more than its floor
    (`floors`: rows, bytes; so an empty table that gets its first few rows is not a change worth a push). Tables
    that came or went, and a figure that appeared or vanished, count as moved. `before` None: never recorded."""
    if before is None or before.keys() != now.keys():
        return True
    for name, figures in now.items():
        for old, new, floor in zip(before[name], figures, floors):
            if (old is None) != (new is None):
                return True
            if old is not None and abs(new - old) > max(share * old, floor):
                return True
    return False


_COLUMN_FIELDS = tuple(Column.__dataclass_fields__)  # in declaration order, as __dict__ and asdict give them


def _table_dict(t: Table) -> dict:
    d = dict(t.__dict__)
    d["columns"] = [{f: getattr(c, f) for f in _COLUMN_FIELDS} for c in t.columns]
    d["foreign_keys"] = [dict(fk.__dict__) for fk in t.foreign_keys]
    d["properties"] = dict(t.properties)
    d["indexes"] = [dict(i.__dict__) for i in t.indexes]
    d["checks"] = [dict(c.__dict__) for c in t.checks]
    d["triggers"] = [dict(x.__dict__) for x in t.triggers]
    return d


def json_chunks(
    d: dict,
    list_key: str,
    items: Iterable,
    separators: tuple[str, str] = (", ", ": "),
) -> Iterator[bytes]:
    """`json.dumps({**d, list_key: list(items)}, sort_keys=True, ensure_ascii=False, separators=separators)` in
    UTF-8, in pieces: one per item of `items` and one per other key (the same bytes: tests/test_serialization.py)."""
    item_sep, key_sep = separators

    def dumps(v) -> bytes:
        return json.dumps(v, sort_keys=True, ensure_ascii=False, separators=separators).encode()

    out = [b"{"]
    for i, k in enumerate(sorted([*d.keys(), list_key] if list_key not in d else d.keys())):
        out.append((item_sep if i else "").encode() + dumps(k) + key_sep.encode())
        if k != list_key:
            out.append(dumps(d[k]))
            continue
        out.append(b"[")
        yield b"".join(out)
        out = []
        for j, item in enumerate(items):
            yield (item_sep.encode() if j else b"") + dumps(item)
        out.append(b"]")
    out.append(b"}")
    yield b"".join(out)


@dataclass
class Database:
    name: str
    charset: Optional[str] = None
    collation: Optional[str] = None
    comment: str = ""
    tables: list[Table] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)  # source-specific (BigQuery: location, labels)
    routines: list[Routine] = field(default_factory=list)
    read_at_ms: Optional[int] = None  # when the server was read (epoch ms): the time of the table statistics
    statistics_note: str = ""  # how far the server's table statistics can be trusted (shown with the profile)

    def to_dict(self, tables: bool = True) -> dict:
        """What dataclasses.asdict gives, without its recursive deep copy (these classes hold flat values only);
        `tables=False`: without the "tables" key."""
        d = dict(self.__dict__)
        if tables:
            d["tables"] = [_table_dict(t) for t in self.tables]
        else:
            del d["tables"]
        d["warnings"] = list(self.warnings)
        d["properties"] = dict(self.properties)
        d["routines"] = [dict(r.__dict__) for r in self.routines]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Database":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}  # snapshot files add data_version
        tables = []
        for t in d.get("tables", []):
            t = dict(t)
            t["columns"] = [Column(**c) for c in t.get("columns", [])]
            t["foreign_keys"] = [
                ForeignKey(**{**fk, "columns": tuple(fk["columns"]), "ref_columns": tuple(fk["ref_columns"])})
                for fk in t.get("foreign_keys", [])
            ]
            t["primary_key"] = tuple(t.get("primary_key", ()))
            t["indexes"] = [Index(**{**i, "columns": tuple(i["columns"])}) for i in t.get("indexes", [])]
            t["checks"] = [CheckConstraint(**c) for c in t.get("checks", [])]
            t["triggers"] = [Trigger(**x) for x in t.get("triggers", [])]
            t["view_upstreams"] = tuple(tuple(u) for u in t.get("view_upstreams", ()))
            tables.append(Table(**t))
        routines = [Routine(**r) for r in d.get("routines", [])]
        return cls(**{**d, "tables": tables, "routines": routines})

    def schema_hash(self) -> str:
        """Hash of everything that describes the schema; row counts, sizes and times left out.

        The sha256 of `json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))` of the schema's
        dict, fed one table at a time (json_chunks), so a database of 10,000 tables never holds its whole dict or
        its string at once."""
        d = self.to_dict(tables=False)
        d.pop("warnings")
        d.pop("read_at_ms")
        d.pop("statistics_note")
        for k in ("properties", "routines"):
            if not d[k]:
                d.pop(k)  # absent when empty: hashes stay what they were before the field existed
        for r in d.get("routines", []):
            for k in _OPTIONAL_ROUTINE_PARTS:
                if r[k] is None:
                    r.pop(k)

        def tables():
            for table in self.tables:
                t = _table_dict(table)
                for k in VOLATILE_TABLE_FIELDS:
                    t.pop(k)
                for k in _OPTIONAL_TABLE_PARTS:
                    if not t[k]:
                        t.pop(k)
                yield t

        digest = hashlib.sha256()
        for chunk in json_chunks(d, "tables", tables(), separators=(",", ":")):
            digest.update(chunk)
        return digest.hexdigest()

    def json_chunks(self, extra: Optional[dict] = None) -> Iterator[bytes]:
        """`json.dumps({**self.to_dict(), **extra}, sort_keys=True, ensure_ascii=False)` in UTF-8, one table at a
        time (the snapshot file)."""
        d = {**self.to_dict(tables=False), **(extra or {})}
        return json_chunks(d, "tables", (_table_dict(t) for t in self.tables))

    # --- counts shown in Dagit ---
    @property
    def n_tables(self) -> int:
        return sum(not t.is_view for t in self.tables)

    @property
    def n_views(self) -> int:
        return sum(t.is_view for t in self.tables)

    @property
    def n_columns(self) -> int:
        return sum(len(t.columns) for t in self.tables)

    def profile_figures(self) -> dict[str, list]:
        """{table: [row estimate, size in bytes]} of its tables (views have none): what datasetProfile carries."""
        return {
            t.name: [t.row_estimate, table_size(t)]
            for t in self.tables
            if not t.is_view and (t.row_estimate is not None or table_size(t) is not None)
        }

    def coverage(self) -> tuple[float, float]:
        """Share of tables/views and of columns that carry a comment (1.0 when there are none)."""
        docs_t = sum(bool(t.comment) for t in self.tables)
        docs_c = sum(bool(c.comment) for t in self.tables for c in t.columns)
        return (docs_t / len(self.tables) if self.tables else 1.0, docs_c / self.n_columns if self.n_columns else 1.0)
