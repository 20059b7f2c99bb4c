"""What changed between two snapshots of one database: structured data, counts and markdown for Dagit.

No Dagster, no SQL. `diff(previous, current)` compares two `catalog.Database` snapshots of the same database;
`SchemaDiff.breaking` lists the changes that can break a reader (dropped table/view/column, narrowed or
incompatible type, NOT NULL added).

Names and values come from the database and may hold anything (`<svg onload=...>`, backticks, `|`, newlines): the
markdown shows each one through `markdown.code` / `markdown.cell` (a code span) or `markdown.literal` (as it is
when markdown cannot misread it, else a code span), so `describe()`, `breaking` and `markdown()` render them
literally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from metadata_assets.catalog import Column, Database, Table
from metadata_assets.markdown import bullets, cell, code, in_table, literal

FOREIGN_KEY = "foreign key "  # TableChange.kind of a foreign key: this prefix, then the constraint's name
# TableChange.kinds of other named parts of a table, and of a routine (its TableChange.table is the routine's name)
INDEX, CHECK, TRIGGER, ROUTINE = "index ", "check constraint ", "trigger ", "routine"
_NAMED = (FOREIGN_KEY, INDEX, CHECK, TRIGGER)

# kinds of column change
ADDED, REMOVED, RETYPED, NULLABILITY, DEFAULT, COMMENT = "added", "removed", "retyped", "nullability", "default", "comment"


@dataclass(frozen=True)
class ColumnChange:
    table: str
    column: str
    kind: str  # added, removed, retyped, nullability, default, comment
    before: Optional[str] = None
    after: Optional[str] = None
    breaking: Optional[str] = None  # why this change can break a reader, None when it cannot

    def describe(self) -> str:
        where = f"{code(self.table)}.{code(self.column)}"
        if self.kind == ADDED:
            return f"column {where} added ({_prose(self.after)})"
        if self.kind == REMOVED:
            return f"column {where} removed (was {_prose(self.before)})"
        if self.kind == NULLABILITY:
            return f"column {where} {'became NOT NULL' if self.after == 'NOT NULL' else 'became nullable'}"
        label = "type" if self.kind == RETYPED else self.kind
        return f"column {where} {label} changed: {_show(self.before)} → {_show(self.after)}"


@dataclass(frozen=True)
class TableChange:
    table: str
    kind: str  # comment, primary_key, view_definition, "foreign key <name>", "index <name>", ..., routine
    before: Optional[str] = None
    after: Optional[str] = None

    def label(self) -> str:
        """The kind of change in plain words: "comment", "primary key", "index by_total", "routine added"."""
        if self.kind == "view_definition":
            return "view definition"
        if self.kind == ROUTINE:
            return "routine " + ("added" if self.before is None else "removed" if self.after is None else "changed")
        return {"primary_key": "primary key", "comment": "table comment"}.get(self.kind, self.kind.strip())

    def detail(self) -> str:
        if self.kind in ("view_definition", ROUTINE):
            return ""
        return f"{_plain(self.before)} → {_plain(self.after)}"

    def describe(self) -> str:
        if self.kind == "view_definition":
            return f"view {code(self.table)} definition changed"
        if self.kind == ROUTINE:
            what = "added" if self.before is None else "removed" if self.after is None else "changed"
            return f"routine {code(self.table)} {what}"
        prefix = next((p for p in _NAMED if self.kind.startswith(p)), None)
        if prefix is not None:
            label = prefix + literal(self.kind.removeprefix(prefix))  # the constraint's name, raw
        else:
            label = "primary key" if self.kind == "primary_key" else literal(self.kind)
        return f"{code(self.table)} {label} changed: {_show(self.before)} → {_show(self.after)}"


@dataclass
class SchemaDiff:
    database: str
    baseline: bool = False  # no previous snapshot: nothing to compare with
    tables_added: list[str] = field(default_factory=list)
    tables_removed: list[str] = field(default_factory=list)
    views_added: list[str] = field(default_factory=list)
    views_removed: list[str] = field(default_factory=list)
    columns: list[ColumnChange] = field(default_factory=list)
    tables: list[TableChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.tables_added or self.tables_removed or self.views_added or self.views_removed
                    or self.columns or self.tables)

    def _columns(self, kind: str) -> list[ColumnChange]:
        return [c for c in self.columns if c.kind == kind]

    @property
    def breaking(self) -> list[str]:
        out = [f"table {code(t)} dropped" for t in self.tables_removed]
        out += [f"view {code(v)} dropped" for v in self.views_removed]
        out += [f"{c.describe()} ({c.breaking})" if c.kind not in (REMOVED, NULLABILITY) else c.describe()
                for c in self.columns if c.breaking]
        return out

    def counts(self) -> dict[str, int]:
        changed_columns = {(c.table, c.column) for c in self.columns if c.kind not in (ADDED, REMOVED)}
        return {
            "tables_added": len(self.tables_added), "tables_removed": len(self.tables_removed),
            "views_added": len(self.views_added), "views_removed": len(self.views_removed),
            "columns_added": len(self._columns(ADDED)), "columns_removed": len(self._columns(REMOVED)),
            "columns_changed": len(changed_columns), "breaking_changes": len(self.breaking),
        }

    def rows(self) -> list[dict]:
        """One plain-text row per change (change, object, detail, breaking), for a table in Dagit; breaking is the
        reason a reader can break, "" when it cannot."""
        out = []
        for change, names in (("table added", self.tables_added), ("table removed", self.tables_removed),
                              ("view added", self.views_added), ("view removed", self.views_removed)):
            dropped = "table dropped" if change == "table removed" else "view dropped" if change == "view removed" else ""
            out += [{"change": change, "object": n, "detail": "", "breaking": dropped} for n in names]
        for t in self.tables:
            out.append({"change": t.label(), "object": t.table, "detail": t.detail(), "breaking": ""})
        for c in self.columns:
            label = "type" if c.kind == RETYPED else c.kind
            detail = (c.after or "" if c.kind == ADDED else c.before or "" if c.kind == REMOVED
                      else f"{_plain(c.before)} → {_plain(c.after)}")
            out.append({"change": f"column {label}", "object": f"{c.table}.{c.column}", "detail": detail,
                        "breaking": c.breaking or ""})
        return out

    def markdown(self) -> str:
        if self.baseline:
            return "First snapshot of this database: nothing to compare with."
        if self.empty:
            return "No schema change since the previous materialization."
        lines: list[str] = []
        for title, names in (("Tables added", self.tables_added), ("Tables removed", self.tables_removed),
                             ("Views added", self.views_added), ("Views removed", self.views_removed)):
            if names:
                lines.append(f"**{title}:** " + ", ".join(code(n) for n in names))
        if self.columns or self.tables:
            lines += ["", "| table | change |", "|---|---|"]
            for t in self.tables:
                lines.append(f"| {cell(t.table)} | {in_table(t.describe())} |")
            for c in self.columns:
                lines.append(f"| {cell(c.table)} | {in_table(c.describe())}{' ⚠️' if c.breaking else ''} |")
        if self.breaking:
            lines += ["", "**Breaking changes:**", bullets(self.breaking)]
        return "\n".join(lines).strip()


def _plain(v: Optional[str]) -> str:
    return "none" if v is None else v if v else "''"


def _show(v: Optional[str]) -> str:
    """A before/after value as markdown: a code span, `none` or `''`."""
    return "none" if v is None else code(v) if v else "''"


def _prose(v: Optional[str]) -> str:
    """A column type in running text: as it is (`added (varchar(20))`), or a code span if markdown would alter it."""
    return "none" if v is None else literal(v)


def diff(previous: Optional[Database], current: Database) -> SchemaDiff:
    """Changes from `previous` to `current` (two snapshots of the same database); baseline when no previous."""
    out = SchemaDiff(database=current.name)
    if previous is None:
        out.baseline = True
        return out
    if previous is current:  # an unchanged schema (extract.write_database keeps the snapshot it read as both)
        return out
    old = {t.name: t for t in previous.tables}
    new = {t.name: t for t in current.tables}
    for name in sorted(old.keys() - new.keys()):
        (out.views_removed if old[name].is_view else out.tables_removed).append(name)
    for name in sorted(new.keys() - old.keys()):
        (out.views_added if new[name].is_view else out.tables_added).append(name)
    for name in sorted(old.keys() & new.keys()):
        a, b = old[name], new[name]
        if a.is_view != b.is_view:  # a table replaced by a view of the same name, or the reverse
            (out.views_removed if a.is_view else out.tables_removed).append(name)
            (out.views_added if b.is_view else out.tables_added).append(name)
            continue
        out.tables += _table_changes(a, b)
        out.columns += _column_changes(a, b)
    old_r = {(r.routine_type, r.label): r for r in previous.routines}  # PostgreSQL: schema.name(arguments)
    new_r = {(r.routine_type, r.label): r for r in current.routines}
    for key in sorted(old_r.keys() | new_r.keys()):
        if old_r.get(key) != new_r.get(key):
            out.tables.append(TableChange(key[1], ROUTINE, key[0] if key in old_r else None,
                                          key[0] if key in new_r else None))
    return out


def _table_changes(a: Table, b: Table) -> list[TableChange]:
    out = []
    if a.comment != b.comment:
        out.append(TableChange(a.name, "comment", a.comment, b.comment))
    if tuple(a.primary_key) != tuple(b.primary_key):
        out.append(TableChange(a.name, "primary_key", ", ".join(a.primary_key), ", ".join(b.primary_key)))
    if a.is_view and a.view_definition != b.view_definition:
        out.append(TableChange(a.name, "view_definition"))
    for prefix, shown in ((FOREIGN_KEY, lambda t: {fk.name: _fk(fk) for fk in t.foreign_keys}),
                          (INDEX, lambda t: {i.name: f"{'UNIQUE ' if i.unique else ''}({', '.join(i.columns)})"
                                             for i in t.indexes}),
                          (CHECK, lambda t: {c.name: c.clause for c in t.checks}),
                          (TRIGGER, lambda t: {x.name: f"{x.timing} {x.event}: {x.statement or ''}"
                                               for x in t.triggers})):
        old, new = shown(a), shown(b)
        for name in sorted(old.keys() | new.keys()):
            if old.get(name) != new.get(name):
                out.append(TableChange(a.name, prefix + name, old.get(name), new.get(name)))
    return out


def _fk(fk) -> str:
    target = f"{fk.ref_database}.{fk.ref_table}({', '.join(fk.ref_columns)})"
    rules = "".join(f" ON {k} {v}" for k, v in (("DELETE", fk.on_delete), ("UPDATE", fk.on_update)) if v)
    return f"({', '.join(fk.columns)}) → {target}{rules}"


def _column_changes(a: Table, b: Table) -> list[ColumnChange]:
    old = {c.name: c for c in a.columns}
    new = {c.name: c for c in b.columns}
    out = [ColumnChange(a.name, n, REMOVED, before=old[n].column_type, breaking="column dropped")
           for n in sorted(old.keys() - new.keys(), key=lambda n: old[n].ordinal)]
    out += [ColumnChange(a.name, n, ADDED, after=new[n].column_type)
            for n in sorted(new.keys() - old.keys(), key=lambda n: new[n].ordinal)]
    for n in sorted(old.keys() & new.keys(), key=lambda n: new[n].ordinal):
        x, y = old[n], new[n]
        if x.column_type != y.column_type:
            out.append(ColumnChange(a.name, n, RETYPED, x.column_type, y.column_type,
                                    breaking=type_change_breaks(x.column_type, y.column_type)))
        if x.nullable != y.nullable:
            out.append(ColumnChange(a.name, n, NULLABILITY, _null(x), _null(y),
                                    breaking="NOT NULL added" if x.nullable else None))
        if x.default != y.default:
            out.append(ColumnChange(a.name, n, DEFAULT, x.default, y.default))
        if x.comment != y.comment:
            out.append(ColumnChange(a.name, n, COMMENT, x.comment, y.comment))
    return out


def _null(c: Column) -> str:
    return "NULL" if c.nullable else "NOT NULL"


# --- type narrowing ---------------------------------------------------------------------------------------------

_INT_BYTES = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
_TEXT_LEN = {"tinytext": 255, "text": 65535, "mediumtext": 16777215, "longtext": 4294967295}
_BLOB_LEN = {"tinyblob": 255, "blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_FLOAT_RANK = {"float": 1, "real": 2, "double": 2, "double precision": 2}
_TEMPORAL = {"date", "time", "datetime", "timestamp", "year"}
_TYPE = re.compile(r"^\s*([a-z ]+?)\s*(?:\((.*)\))?\s*((?:unsigned|signed|zerofill|\s)*)$", re.I)


def _parse(column_type: str) -> tuple[str, str, bool]:
    m = _TYPE.match(column_type.lower())
    if not m:
        return column_type.lower(), "", False
    return m.group(1).strip(), (m.group(2) or "").strip(), "unsigned" in (m.group(3) or "")


def _family(base: str) -> Optional[str]:
    if base in _INT_BYTES or base in ("bool", "boolean"):
        return "int"
    if base in ("char", "varchar") or base in _TEXT_LEN:
        return "text"
    if base in ("binary", "varbinary") or base in _BLOB_LEN:
        return "binary"
    if base in ("decimal", "numeric", "dec", "fixed"):
        return "decimal"
    if base in _FLOAT_RANK:
        return "float"
    if base in ("enum", "set"):
        return base
    if base in _TEMPORAL:
        return base
    return None


def _int_range(base: str, unsigned: bool) -> tuple[int, int]:
    bits = 8 * _INT_BYTES.get(base, 1)
    return (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _length(base: str, args: str) -> int:
    if base in _TEXT_LEN:
        return _TEXT_LEN[base]
    if base in _BLOB_LEN:
        return _BLOB_LEN[base]
    return int(args) if args.isdigit() else 1  # char / binary without a length hold one


def _precision(args: str) -> tuple[int, int]:
    parts = [p.strip() for p in args.split(",")] if args else []
    p = int(parts[0]) if parts and parts[0].isdigit() else 10
    s = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return p, s


def _enum_values(args: str) -> set[str]:
    return set(re.findall(r"'((?:[^']|'')*)'", args))


def type_change_breaks(before: str, after: str) -> Optional[str]:
    """Why changing a column from type `before` to `after` can break readers or lose values; None if it cannot.

    A type change within one family that keeps every old value representable (wider int, longer varchar, more
    decimal digits, enum values added, display width only) is safe; a smaller one is "narrowed"; a change across
    families (int -> varchar, date -> int) is "incompatible".
    """
    b0, a0, u0 = _parse(before)
    b1, a1, u1 = _parse(after)
    f0, f1 = _family(b0), _family(b1)
    if f0 is None or f0 != f1:
        return None if before.lower() == after.lower() else "incompatible type"
    if f0 == "int":
        lo0, hi0 = _int_range(b0, u0)
        lo1, hi1 = _int_range(b1, u1)
        return "narrowed type" if lo1 > lo0 or hi1 < hi0 else None
    if f0 in ("text", "binary"):
        return "narrowed type" if _length(b1, a1) < _length(b0, a0) else None
    if f0 == "decimal":
        (p0, s0), (p1, s1) = _precision(a0), _precision(a1)
        return "narrowed type" if (p1 - s1) < (p0 - s0) or s1 < s0 or (u1 and not u0) else None
    if f0 == "float":
        return "narrowed type" if _FLOAT_RANK[b1] < _FLOAT_RANK[b0] or (u1 and not u0) else None
    if f0 in ("enum", "set"):
        return "narrowed type" if not _enum_values(a0) <= _enum_values(a1) else None
    # temporal: fractional-second precision
    fsp0 = int(a0) if a0.isdigit() else 0
    fsp1 = int(a1) if a1.isdigit() else 0
    return "narrowed type" if fsp1 < fsp0 else None
