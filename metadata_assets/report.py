"""What one extraction found and cost: typed warnings (`Finding`) and the run's `ExtractionReport`.

No Dagster and no SQL here: extract.py fills a report as it goes; defs/extraction.py renders it in Dagit (as the
push's PushReport is rendered); the CLI and the benchmark print `summary()`.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

# Finding codes
OVER_PRIVILEGED = "over_privileged"  # the account can read data (it should not)
VIEW_BROKEN = "view_broken"  # the server says the view references tables or columns that do not exist
VIEW_UNREADABLE = "view_unreadable"  # no SQL or no columns visible for a view (a grant missing, or a broken view)
VIEW_LINEAGE = "view_lineage"  # the view's SQL was read but its lineage could not be resolved in full
DATABASE_MISSING = "database_missing"  # asked for, but it does not exist or is not visible
ROUTINES_HIDDEN = "routines_hidden"  # routines asked for, but the account holds no grant that shows them
ROUTINE_LINEAGE = "routine_lineage"  # a routine's SQL could not be parsed for the tables it reads and writes
OTHER = "other"  # recorded before findings had codes
CODES = (
    OVER_PRIVILEGED,
    VIEW_BROKEN,
    VIEW_UNREADABLE,
    VIEW_LINEAGE,
    DATABASE_MISSING,
    ROUTINES_HIDDEN,
    ROUTINE_LINEAGE,
    OTHER,
)


class Finding(str):
    """A warning with its kind. It is its text wherever a string goes (logs, files, Dagit, tests comparing texts),
    and carries `code` (one of CODES) and `subject` (the view or relation it is about, when one) so that reports
    count and group warnings, and code finds the warning of one view, without reading the text."""

    code: str
    subject: Optional[str]

    def __new__(cls, text: str, code: str, subject: Optional[str] = None) -> "Finding":
        if code not in CODES:
            raise ValueError(f"unknown finding code {code!r}")
        self = super().__new__(cls, text)
        self.code, self.subject = code, subject
        return self

    def __reduce__(self):
        return Finding, (str(self), self.code, self.subject)

    def with_text(self, text: str) -> "Finding":
        return Finding(text, self.code, self.subject)


def code_of(warning: str) -> str:
    return getattr(warning, "code", OTHER)


def subject_of(warning: str) -> Optional[str]:
    return getattr(warning, "subject", None)


def codes_record(warnings: Iterable[str]) -> list[list]:
    """[[code, subject], ...] beside a list of warning texts, for files that store the texts (version records)."""
    return [[code_of(w), subject_of(w)] for w in warnings]


def from_record(texts: Iterable[str], codes: Optional[list] = None) -> list[str]:
    """The warnings of a record: Findings again where their codes were stored beside the texts."""
    texts = list(texts)
    if not codes or len(codes) != len(texts):
        return [Finding(t, OTHER) for t in texts]
    return [Finding(t, c if c in CODES else OTHER, s) for t, (c, s) in zip(texts, codes)]


PHASES = ("connect", "privilege_check", "read", "write")


@dataclass
class ExtractionReport:
    """One extraction run of one source: which databases came out how, what was read and left out, where the time
    went, and every warning with its database. Filled by extract.extract(report=...)."""

    source: str
    kind: str  # the source's type
    requested: int = 0
    written: list[str] = field(default_factory=list)  # files rebuilt: new or changed schema
    unchanged: list[str] = field(default_factory=list)  # schema unchanged: files kept as they were
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # database -> error
    tables: int = 0  # tables catalogued (views not included)
    views: int = 0
    columns: int = 0
    tables_filtered: int = 0  # tables and views the source's table patterns or include_views left out
    statements: int = 0  # SQL statements sent (BigQuery: query jobs)
    api_calls: int = 0  # other API requests (BigQuery: datasets.list / datasets.get)
    proposals_written: int = 0  # proposals in the files rebuilt
    phases_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (database, warning) in the order found
    duration_s: float = 0.0

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases_s[phase] = self.phases_s.get(phase, 0.0) + time.perf_counter() - t0

    def add(self, r) -> None:
        """Count one database's result (extract.DatabaseResult)."""
        if not r.ok:
            self.failed[r.database] = r.error or "failed"
        elif r.missing:
            self.missing.append(r.database)
        else:
            (self.written if r.rewritten else self.unchanged).append(r.database)
            self.tables += r.tables
            self.views += r.views
            self.columns += r.columns
            if r.rewritten:
                self.proposals_written += r.proposals
        self.warnings.extend((r.database, w) for w in r.warnings)

    @property
    def ok(self) -> int:
        return len(self.written) + len(self.unchanged)

    def warning_counts(self) -> dict[str, int]:
        """{code: number of warnings}, most frequent first."""
        return dict(Counter(code_of(w) for _, w in self.warnings).most_common())

    def summary(self) -> str:
        """One line for a log or a terminal."""
        counts = ", ".join(f"{n} {code}" for code, n in self.warning_counts().items())
        phases = ", ".join(f"{p} {s:.1f}s" for p, s in self.phases_s.items() if s >= 0.05)
        return (
            f"{self.source}: {self.requested} databases: {len(self.written)} written, {len(self.unchanged)} "
            f"unchanged, {len(self.missing)} missing, {len(self.failed)} failed; {self.tables} tables, "
            f"{self.views} views ({self.tables_filtered} left out by patterns); {self.statements} statements"
            + (f", {self.api_calls} API calls" if self.api_calls else "")
            + f"; {self.duration_s:.1f}s ({phases or 'no phase over 0.05s'})"
            + (f"; warnings: {counts}" if counts else "")
        )
