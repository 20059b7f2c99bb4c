"""What `metadata-assets check-access` found: can the catalog account see each database, and is it refused data?

A plain model, filled by a kind's probes (`sources.base.AccessProbes.check_access`, sources/<type>/access.py) and
printed by the CLI: an aligned table, a one-line verdict, or JSON. No Dagster and no SQL here.

The proof that data is not readable is a probe that must FAIL: a `SELECT 1 FROM <one real table> LIMIT 0` (no row
is ever read, even when it succeeds). `data_readable` is True when a probe succeeded, False when the server refused
it, None when no probe could run (no table in the database, or the database is not visible).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Optional


@dataclass
class DatabaseAccess:
    database: str
    visible: bool  # the account sees the database (MySQL: in information_schema.SCHEMATA; PostgreSQL: CONNECT)
    data_readable: Optional[bool] = None  # True: a SELECT probe succeeded; False: refused; None: no probe ran
    probed: Optional[str] = None  # the table or view the SELECT probe ran on; None: nothing to probe
    probe: str = ""  # the probe and its outcome, for people
    views_have_sql: Optional[bool] = None  # one view's SQL was readable (True) or not (False); None: no view
    routines_visible: Optional[int] = None  # routines the account sees in the database; None: not checked
    routine_text_visible: Optional[bool] = None  # their definitions are readable; None: no routine visible
    notes: list[str] = field(default_factory=list)

    @property
    def data_cell(self) -> str:
        if not self.visible:
            return "-"
        return {True: "READABLE", False: "SELECT refused", None: "no probe"}[self.data_readable]

    @property
    def view_cell(self) -> str:
        if not self.visible:
            return "-"
        return {True: "SQL shown", False: "NO SQL", None: "no view"}[self.views_have_sql]

    @property
    def routine_cell(self) -> str:
        if self.routines_visible is None:
            return "-"
        if not self.routines_visible:
            return "none visible"
        text = {True: "text shown", False: "no text", None: "?"}[self.routine_text_visible]
        return f"{self.routines_visible} ({text})"


@dataclass
class AccessReport:
    source: str
    kind: str  # the source's type
    account: str  # user@host:port
    server_version: str = ""
    databases: list[DatabaseAccess] = field(default_factory=list)
    account_notes: list[str] = field(default_factory=list)  # about the account as a whole (grants, role attributes)
    routine_grant_hint: Optional[str] = None  # the optional grant that would show routine definitions, if any
    tls: str = ""  # the check's own connection: encrypted or not (protocol, cipher) and what the source's TLS checks

    @property
    def readable(self) -> list[str]:
        """Databases where a SELECT probe succeeded: the account can read data there."""
        return [d.database for d in self.databases if d.data_readable]

    @property
    def can_read_data(self) -> bool:
        return bool(self.readable)

    def exit_code(self) -> int:
        return 1 if self.can_read_data else 0

    def verdict(self) -> str:
        n = len(self.databases)
        if self.readable:
            shown = ", ".join(self.readable[:10]) + (
                f" and {len(self.readable) - 10} more" if len(self.readable) > 10 else ""
            )
            return (
                f"OVER-PRIVILEGED: the account can read data in {len(self.readable)} of {n} database"
                f"{'s' if n != 1 else ''}: {shown}"
            )
        if not n:
            return "OK: no database to check (none allowed and visible)"
        refused = sum(d.data_readable is False for d in self.databases)
        unprobed = sum(d.visible and d.probed is None for d in self.databases)
        inconclusive = sum(d.probed is not None and d.data_readable is None for d in self.databases)
        hidden = sum(not d.visible for d in self.databases)
        parts = [f"SELECT refused in {refused}"]
        if unprobed:
            parts.append(f"no table to probe in {unprobed}")
        if inconclusive:
            parts.append(f"probe inconclusive in {inconclusive}, see notes")
        if hidden:
            parts.append(f"not visible: {hidden}")
        where = "its 1 database" if n == 1 else f"any of {n} databases"
        claim = "no SELECT probe succeeded" if inconclusive else "the account cannot read data"
        return f"OK: {claim} in {where} ({', '.join(parts)})"

    def table(self) -> str:
        """One aligned row per database."""
        header = ("database", "visible", "data", "view SQL", "routines", "notes")
        rows = [
            (
                d.database,
                "yes" if d.visible else "NO",
                d.data_cell,
                d.view_cell,
                d.routine_cell,
                "; ".join(d.notes + ([d.probe] if d.probed and d.data_readable is not False else [])),
            )
            for d in self.databases
        ]
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header) - 1)]
        lines = []
        for r in (header, *rows):
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
        return "\n".join(line.rstrip() for line in lines)

    def text(self) -> str:
        """What the CLI prints: where, the table, account notes, the routine hint, the verdict (last line)."""
        out = [
            f"check-access: source {self.source!r} ({self.kind}, {self.account}"
            + (f", {self.server_version}" if self.server_version else "")
            + ")",
            self.table(),
        ]
        if self.tls:
            out.append(f"connection: {self.tls}")
        out += [f"account: {n}" for n in self.account_notes]
        if self.routine_grant_hint:
            out.append(f"routine text (optional): {self.routine_grant_hint}")
        out.append(self.verdict())
        return "\n".join(out)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(can_read_data=self.can_read_data, readable_databases=self.readable, verdict=self.verdict())
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
