"""What changed between two snapshots of one database: structured data, counts and markdown for Dagit.

No Dagster, no SQL. `diff(previous, current)` compares two `catalog.Database` snapshots of the same database;
every change has a rule (`rule_of`) whose class, safe / warning / breaking, comes from risk.py (the source's
overrides applied); `SchemaDiff.changes()` lists them classified and `SchemaDiff.breaking` those classed breaking
(by default: dropped table/view/column, narrowed or incompatible type, NOT NULL added, primary key changed, view
broken). Dagit's diff table (`rows`), the breaking-change check, `metadata-assets history` and the notifications
all read these, so they never disagree.

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
from metadata_assets.risk import BREAKING, DEFAULT_RULES, effective, highest

FOREIGN_KEY = "foreign key "  # TableChange.kind of a foreign key: this prefix, then the constraint's name
# TableChange.kinds of other named parts of a table, and of a routine (its TableChange.table is the routine's name)
INDEX, CHECK, TRIGGER, ROUTINE = "index ", "check constraint ", "trigger ", "routine"
_NAMED = (FOREIGN_KEY, INDEX, CHECK, TRIGGER)

# kinds of column change
ADDED, REMOVED, RETYPED, NULLABILITY, DEFAULT, COMMENT = (
    "added",
    "removed",
    "retyped",
    "nullability",
    "default",
    "comment",
)
KEY = "key"  # the column's key flag (PRI, UNI, MUL, '') changed
VIEW_BROKEN = "view_broken"  # TableChange.kind: a view that had columns has none (what it reads is gone)


@dataclass(frozen=True)
class ColumnChange:
    table: str
    column: str
    kind: str  # added, removed, retyped, nullability, default, comment, key
    before: Optional[str] = None
    after: Optional[str] = None
    breaking: Optional[str] = None  # why this change can break a reader, None when it cannot
    required: bool = False  # an added column that is NOT NULL without a default (nor auto_increment, generated)

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
        if self.kind == VIEW_BROKEN:
            return "view broken"
        if self.kind == ROUTINE:
            return "routine " + ("added" if self.before is None else "removed" if self.after is None else "changed")
        return {"primary_key": "primary key", "comment": "table comment"}.get(self.kind, self.kind.strip())

    def detail(self) -> str:
        if self.kind in ("view_definition", ROUTINE, VIEW_BROKEN):
            return ""
        return f"{_plain(self.before)} → {_plain(self.after)}"

    def describe(self) -> str:
        if self.kind == "view_definition":
            return f"view {code(self.table)} definition changed"
        if self.kind == VIEW_BROKEN:
            return f"view {code(self.table)} broken: it lists no columns any more"
        if self.kind == ROUTINE:
            what = "added" if self.before is None else "removed" if self.after is None else "changed"
            return f"routine {code(self.table)} {what}"
        prefix = next((p for p in _NAMED if self.kind.startswith(p)), None)
        if prefix is not None:
            label = prefix + literal(self.kind.removeprefix(prefix))  # the constraint's name, raw
        else:
            label = "primary key" if self.kind == "primary_key" else literal(self.kind)
        return f"{code(self.table)} {label} changed: {_show(self.before)} → {_show(self.after)}"


@dataclass(frozen=True)
class Change:
    """One change, classified: `rule` (risk.RULES), `risk` (safe, warning, breaking), the object it concerns, the
    change and its detail in plain text (Dagit's diff table), `markdown` (names as code spans) and `reason` (why it
    can break a reader, "" unless its class is breaking)."""

    rule: str
    risk: str
    object: str
    change: str
    detail: str
    markdown: str
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "risk": self.risk,
            "object": self.object,
            "change": self.change,
            "detail": self.detail,
            "reason": self.reason,
        }


# the reason a breaking change gives in Dagit's diff table ("breaking" column): the wording the check always used
_REASONS = {
    "table_dropped": "table dropped",
    "view_dropped": "view dropped",
    "column_dropped": "column dropped",
    "column_type_narrowed": "narrowed type",
    "column_type_incompatible": "incompatible type",
    "column_not_null_added": "NOT NULL added",
}


def _reason(rule: str) -> str:
    return _REASONS.get(rule, rule.replace("_", " "))


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
    # best guesses: (old name, new name) of a dropped and an added table (view) with the same columns; both also
    # stay listed as dropped and added
    renamed: list[tuple[str, str]] = field(default_factory=list)
    rules: dict = field(default_factory=lambda: dict(DEFAULT_RULES))  # rule -> class (risk.effective)

    @property
    def empty(self) -> bool:
        return not (
            self.tables_added
            or self.tables_removed
            or self.views_added
            or self.views_removed
            or self.columns
            or self.tables
        )

    def _columns(self, kind: str) -> list[ColumnChange]:
        return [c for c in self.columns if c.kind == kind]

    def _make(self, rule: str, obj: str, change: str, detail: str, md: str) -> Change:
        cls = self.rules[rule]
        return Change(rule, cls, obj, change, detail, md, _reason(rule) if cls == BREAKING else "")

    def _object_changes(self) -> list[Change]:
        out = []
        for change, names, rule, noun in (
            ("table added", self.tables_added, "table_added", "table"),
            ("table removed", self.tables_removed, "table_dropped", "table"),
            ("view added", self.views_added, "view_added", "view"),
            ("view removed", self.views_removed, "view_dropped", "view"),
        ):
            verb = "added" if rule.endswith("added") else "dropped"
            out += [self._make(rule, n, change, "", f"{noun} {code(n)} {verb}") for n in names]
        return out

    def _rename_changes(self) -> list[Change]:
        views = set(self.views_added) | set(self.views_removed)
        out = []
        for old, new in self.renamed:
            noun = "view" if old in views else "table"
            out.append(
                self._make(
                    f"{noun}_renamed",
                    old,
                    f"{noun} renamed?",
                    f"{old} → {new}",
                    f"{noun} {code(old)} renamed to {code(new)}? (best guess: same columns)",
                )
            )
        return out

    def _table_changes(self) -> list[Change]:
        return [self._make(rule_of(t), t.table, t.label(), t.detail(), t.describe()) for t in self.tables]

    def _column_changes(self) -> list[Change]:
        out = []
        for c in self.columns:
            label = "type" if c.kind == RETYPED else c.kind
            detail = (
                c.after or ""
                if c.kind == ADDED
                else c.before or ""
                if c.kind == REMOVED
                else f"{_plain(c.before)} → {_plain(c.after)}"
            )
            md = (
                f"{c.describe()} ({c.breaking})"
                if c.breaking and c.kind not in (REMOVED, NULLABILITY)
                else c.describe()
            )
            out.append(self._make(rule_of(c), f"{c.table}.{c.column}", f"column {label}", detail, md))
        return out

    def changes(self) -> list[Change]:
        """Every change, classified, in the order of Dagit's diff table: tables and views added and removed, best
        guesses of renames, changes of tables (keys, indexes, view SQL, ...) and routines, then columns."""
        if self.baseline:
            return []
        return self._object_changes() + self._rename_changes() + self._table_changes() + self._column_changes()

    @property
    def risk(self) -> Optional[str]:
        """The worst class of its changes; None when nothing changed (or a baseline)."""
        return highest(c.risk for c in self.changes())

    @property
    def breaking(self) -> list[str]:
        """The changes classed breaking, as markdown: dropped tables and views first, then the rest."""
        out = (
            self._object_changes() + self._rename_changes() + self._table_changes() + self._column_changes()
            if not self.baseline
            else []
        )
        return [c.markdown for c in out if c.risk == BREAKING]

    def counts(self) -> dict[str, int]:
        changed_columns = {(c.table, c.column) for c in self.columns if c.kind not in (ADDED, REMOVED)}
        return {
            "tables_added": len(self.tables_added),
            "tables_removed": len(self.tables_removed),
            "views_added": len(self.views_added),
            "views_removed": len(self.views_removed),
            "columns_added": len(self._columns(ADDED)),
            "columns_removed": len(self._columns(REMOVED)),
            "columns_changed": len(changed_columns),
            "breaking_changes": len(self.breaking),
        }

    def risk_counts(self) -> dict[str, int]:
        """{class: number of changes} of the classes that occur."""
        out: dict[str, int] = {}
        for c in self.changes():
            out[c.risk] = out.get(c.risk, 0) + 1
        return out

    def rows(self) -> list[dict]:
        """One plain-text row per change (change, object, detail, breaking), for a table in Dagit; breaking is the
        reason a reader can break (the change is classed breaking), "" when it cannot."""
        return [
            {"change": c.change, "object": c.object, "detail": c.detail, "breaking": c.reason} for c in self.changes()
        ]

    def markdown(self) -> str:
        if self.baseline:
            return "First snapshot of this database: nothing to compare with."
        if self.empty:
            return "No schema change since the previous materialization."
        lines: list[str] = []
        for title, names in (
            ("Tables added", self.tables_added),
            ("Tables removed", self.tables_removed),
            ("Views added", self.views_added),
            ("Views removed", self.views_removed),
        ):
            if names:
                lines.append(f"**{title}:** " + ", ".join(code(n) for n in names))
        if self.renamed:
            lines.append(
                "**Possibly renamed (same columns):** " + ", ".join(f"{code(a)} → {code(b)}" for a, b in self.renamed)
            )
        if self.columns or self.tables:
            lines += ["", "| table | change |", "|---|---|"]
            for t in self.tables:
                lines.append(f"| {cell(t.table)} | {in_table(t.describe())} |")
            for c in self.columns:
                flag = " ⚠️" if self.rules[rule_of(c)] == BREAKING else ""
                lines.append(f"| {cell(c.table)} | {in_table(c.describe())}{flag} |")
        if self.breaking:
            lines += ["", "**Breaking changes:**", bullets(self.breaking)]
        return "\n".join(lines).strip()


def rule_of(change) -> str:
    """The risk rule (risk.RULES) of a ColumnChange or TableChange."""
    if isinstance(change, ColumnChange):
        if change.kind == ADDED:
            return "column_added_not_null" if change.required else "column_added"
        if change.kind == REMOVED:
            return "column_dropped"
        if change.kind == RETYPED:
            return {"narrowed type": "column_type_narrowed", "incompatible type": "column_type_incompatible"}.get(
                change.breaking or "", "column_type_widened"
            )
        if change.kind == NULLABILITY:
            return "column_not_null_added" if change.after == "NOT NULL" else "column_nullable"
        return {DEFAULT: "column_default_changed", COMMENT: "column_comment", KEY: "column_key_changed"}[change.kind]
    kind = change.kind
    if kind == "comment":
        return "table_comment"
    if kind == "primary_key":
        return "primary_key_changed"
    if kind == "view_definition":
        return "view_sql_changed"
    if kind == VIEW_BROKEN:
        return "view_broken"
    if kind == ROUTINE:
        return (
            "routine_added"
            if change.before is None
            else "routine_dropped"
            if change.after is None
            else "routine_changed"
        )
    if kind.startswith(FOREIGN_KEY):
        return "foreign_key_changed"
    if kind.startswith(INDEX):
        if change.before is None:
            return "unique_index_added" if (change.after or "").startswith("UNIQUE ") else "index_added"
        return "index_dropped" if change.after is None else "index_changed"
    if kind.startswith(CHECK):
        return "check_changed"
    if kind.startswith(TRIGGER):
        return "trigger_changed"
    return "table_comment"  # a kind this module does not make: the mildest class


def _plain(v: Optional[str]) -> str:
    return "none" if v is None else v if v else "''"


def _show(v: Optional[str]) -> str:
    """A before/after value as markdown: a code span, `none` or `''`."""
    return "none" if v is None else code(v) if v else "''"


def _prose(v: Optional[str]) -> str:
    """A column type in running text: as it is (`added (varchar(20))`), or a code span if markdown would alter it."""
    return "none" if v is None else literal(v)


def diff(previous: Optional[Database], current: Database, rules=None) -> SchemaDiff:
    """Changes from `previous` to `current` (two snapshots of the same database); baseline when no previous.
    `rules`: a source's risk overrides ({rule: class}, source_config.Risk), applied over risk.DEFAULT_RULES."""
    out = SchemaDiff(database=current.name, rules=effective(rules))
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
            out.tables.append(
                TableChange(key[1], ROUTINE, key[0] if key in old_r else None, key[0] if key in new_r else None)
            )
    out.renamed = _renames(out.tables_removed, out.tables_added, old, new) + _renames(
        out.views_removed, out.views_added, old, new
    )
    return out


def _signature(t: Table) -> tuple:
    return tuple((c.name, c.column_type, c.nullable) for c in sorted(t.columns, key=lambda c: c.ordinal))


def _renames(removed: list[str], added: list[str], old: dict, new: dict) -> list[tuple[str, str]]:
    """Pairs of a removed and an added object with the same columns (names, types, nullability, in order), when
    the pairing is unambiguous and they have two columns or more (one `id` column says little): a best guess at a
    rename (information_schema keeps no history)."""
    gone, came = {}, {}
    for n in removed:
        if len(old[n].columns) > 1:
            gone.setdefault(_signature(old[n]), []).append(n)
    for n in added:
        if len(new[n].columns) > 1:
            came.setdefault(_signature(new[n]), []).append(n)
    return sorted((a[0], b[0]) for sig, a in gone.items() if len(a) == 1 and len(b := came.get(sig, [])) == 1)


def _table_changes(a: Table, b: Table) -> list[TableChange]:
    out = []
    if a.comment != b.comment:
        out.append(TableChange(a.name, "comment", a.comment, b.comment))
    if tuple(a.primary_key) != tuple(b.primary_key):
        out.append(TableChange(a.name, "primary_key", ", ".join(a.primary_key), ", ".join(b.primary_key)))
    if a.is_view and a.view_definition != b.view_definition:
        out.append(TableChange(a.name, "view_definition"))
    if a.is_view and a.columns and not b.columns:
        out.append(TableChange(a.name, VIEW_BROKEN))
    for prefix, shown in (
        (FOREIGN_KEY, lambda t: {fk.name: _fk(fk) for fk in t.foreign_keys}),
        (INDEX, lambda t: {i.name: f"{'UNIQUE ' if i.unique else ''}({', '.join(i.columns)})" for i in t.indexes}),
        (CHECK, lambda t: {c.name: c.clause for c in t.checks}),
        (TRIGGER, lambda t: {x.name: f"{x.timing} {x.event}: {x.statement or ''}" for x in t.triggers}),
    ):
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
    out = [
        ColumnChange(a.name, n, REMOVED, before=old[n].column_type, breaking="column dropped")
        for n in sorted(old.keys() - new.keys(), key=lambda n: old[n].ordinal)
    ]
    out += [
        ColumnChange(a.name, n, ADDED, after=new[n].column_type, required=_required(new[n]))
        for n in sorted(new.keys() - old.keys(), key=lambda n: new[n].ordinal)
    ]
    for n in sorted(old.keys() & new.keys(), key=lambda n: new[n].ordinal):
        x, y = old[n], new[n]
        if x.column_type != y.column_type:
            out.append(
                ColumnChange(
                    a.name,
                    n,
                    RETYPED,
                    x.column_type,
                    y.column_type,
                    breaking=type_change_breaks(x.column_type, y.column_type),
                )
            )
        if x.nullable != y.nullable:
            out.append(
                ColumnChange(
                    a.name, n, NULLABILITY, _null(x), _null(y), breaking="NOT NULL added" if x.nullable else None
                )
            )
        if x.default != y.default:
            out.append(ColumnChange(a.name, n, DEFAULT, x.default, y.default))
        if x.comment != y.comment:
            out.append(ColumnChange(a.name, n, COMMENT, x.comment, y.comment))
        if x.key != y.key:
            out.append(ColumnChange(a.name, n, KEY, x.key, y.key))
    return out


def _required(c: Column) -> bool:
    """A NOT NULL column an INSERT must name: no default, not auto_increment, not generated."""
    return (
        not c.nullable
        and c.default in (None, "NULL")
        and "auto_increment" not in (c.extra or "").lower()
        and not c.generation_expression
        and "generated" not in (c.extra or "").lower()
    )


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
    return (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


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
