"""How bad a schema change is: safe, warning or breaking, by rules a person can read and override.

No Dagster, no SQL. Every change `diff.diff` finds has a rule name (`diff.rule_of`); `DEFAULT_RULES` gives each
rule its class, and a source's `risk:` block in the config overrides any of them (source_config.Risk). The
breaking-change asset check (defs/checks.py), the history command and the notifications all read the class from
here, so they can never disagree.
"""

from __future__ import annotations

from typing import Mapping, Optional

SAFE, WARNING, BREAKING = "safe", "warning", "breaking"
CLASSES = (SAFE, WARNING, BREAKING)  # in rising order
_RANK = {c: i for i, c in enumerate(CLASSES)}

# rule -> (default class, what it means). The README lists the same table.
RULES: dict[str, tuple[str, str]] = {
    "table_added": (SAFE, "a table was created"),
    "table_dropped": (BREAKING, "a table was dropped (or renamed)"),
    "table_renamed": (BREAKING, "best guess: a dropped and an added table have the same columns"),
    "table_comment": (SAFE, "a table's comment changed"),
    "view_added": (SAFE, "a view was created"),
    "view_dropped": (BREAKING, "a view was dropped (or renamed)"),
    "view_renamed": (BREAKING, "best guess: a dropped and an added view have the same columns"),
    "view_sql_changed": (WARNING, "a view's SQL changed"),
    "view_broken": (BREAKING, "a view lost all its columns (it reads something that is gone)"),
    "column_added": (SAFE, "a nullable column, or one with a default, was added"),
    "column_added_not_null": (
        WARNING,
        "a NOT NULL column without a default was added (inserts that do not name it fail)",
    ),
    "column_dropped": (BREAKING, "a column was dropped (or renamed)"),
    "column_type_widened": (SAFE, "a column's type changed and still holds every old value"),
    "column_type_narrowed": (BREAKING, "a column's type got smaller: shorter, fewer digits, fewer enum values"),
    "column_type_incompatible": (BREAKING, "a column's type changed family (int -> varchar, date -> int)"),
    "column_not_null_added": (BREAKING, "a column became NOT NULL"),
    "column_nullable": (WARNING, "a column became nullable (readers may meet NULLs)"),
    "column_default_changed": (WARNING, "a column's default changed"),
    "column_comment": (SAFE, "a column's comment changed"),
    "column_key_changed": (SAFE, "a column's key flag (PRI, UNI, MUL) changed"),
    "primary_key_changed": (BREAKING, "a table's primary key changed"),
    "foreign_key_changed": (WARNING, "a foreign key was added, dropped or changed"),
    "index_added": (SAFE, "a non-unique index was added"),
    "unique_index_added": (WARNING, "a unique index was added (writes of duplicates fail)"),
    "index_dropped": (WARNING, "an index was dropped (queries may slow down)"),
    "index_changed": (WARNING, "an index's columns or uniqueness changed"),
    "check_changed": (WARNING, "a check constraint was added, dropped or changed"),
    "trigger_changed": (WARNING, "a trigger was added, dropped or changed"),
    "routine_added": (SAFE, "a procedure or function was created"),
    "routine_dropped": (WARNING, "a procedure or function was dropped"),
    "routine_changed": (WARNING, "a procedure or function changed"),
}
DEFAULT_RULES: dict[str, str] = {rule: cls for rule, (cls, _) in RULES.items()}


def rank(cls: Optional[str]) -> int:
    """-1 for None (no change), then safe < warning < breaking."""
    return -1 if cls is None else _RANK[cls]


def at_least(cls: Optional[str], floor: str) -> bool:
    return rank(cls) >= rank(floor)


def highest(classes) -> Optional[str]:
    """The worst of some classes; None when there are none."""
    worst = None
    for c in classes:
        if rank(c) > rank(worst):
            worst = c
    return worst


def effective(overrides: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The default rules with a source's overrides applied (validated by source_config.Risk)."""
    return {**DEFAULT_RULES, **dict(overrides or {})}


def check_overrides(overrides: Mapping[str, str]) -> Mapping[str, str]:
    """ValueError naming the unknown rule or class (the config's loader turns it into a ConfigError)."""
    for rule, cls in overrides.items():
        if rule not in RULES:
            raise ValueError(f"unknown risk rule {rule!r} (known: {', '.join(sorted(RULES))})")
        if cls not in CLASSES:
            raise ValueError(f"risk rule {rule!r}: unknown class {cls!r} (want one of {', '.join(CLASSES)})")
    return overrides
