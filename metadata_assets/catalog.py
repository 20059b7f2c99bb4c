"""The catalog snapshot: what a database's schema looks like, as plain data.

No Dagster, no DataHub, no SQL here. A snapshot is built by a source (sources/mysql.py), turned into DataHub
proposals (datahub/mcps.py) and compared with the previous one (diff.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional

# Table statistics that change with the data, not the schema: kept in the file, left out of the schema hash.
VOLATILE_TABLE_FIELDS = ("create_time", "update_time", "row_estimate", "data_length")


@dataclass(frozen=True)
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
    columns: list[Column] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    view_definition: Optional[str] = None  # the CREATE VIEW statement, views only
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


def _table_dict(t: Table) -> dict:
    d = dict(t.__dict__)
    d["columns"] = [dict(c.__dict__) for c in t.columns]
    d["foreign_keys"] = [dict(fk.__dict__) for fk in t.foreign_keys]
    d["properties"] = dict(t.properties)
    return d


@dataclass
class Database:
    name: str
    charset: Optional[str] = None
    collation: Optional[str] = None
    comment: str = ""
    tables: list[Table] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)  # source-specific (BigQuery: location, labels)

    def to_dict(self) -> dict:
        """What dataclasses.asdict gives, without its recursive deep copy (these classes hold flat values only)."""
        d = dict(self.__dict__)
        d["tables"] = [_table_dict(t) for t in self.tables]
        d["warnings"] = list(self.warnings)
        d["properties"] = dict(self.properties)
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
            tables.append(Table(**t))
        return cls(**{**d, "tables": tables})

    def schema_hash(self) -> str:
        """Hash of everything that describes the schema; row counts, sizes and times left out."""
        d = self.to_dict()
        d.pop("warnings")
        if not d["properties"]:
            d.pop("properties")  # absent when empty: MySQL hashes stay what they were before the field existed
        for t in d["tables"]:
            for k in VOLATILE_TABLE_FIELDS:
                t.pop(k)
            if not t["properties"]:
                t.pop("properties")
        canon = json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()

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

    def coverage(self) -> tuple[float, float]:
        """Share of tables/views and of columns that carry a comment (1.0 when there are none)."""
        docs_t = sum(bool(t.comment) for t in self.tables)
        docs_c = sum(bool(c.comment) for t in self.tables for c in t.columns)
        return (docs_t / len(self.tables) if self.tables else 1.0,
                docs_c / self.n_columns if self.n_columns else 1.0)
