"""The Source interface: what the rest of the project asks of a kind of database, and nothing else.

A kind (`mysql`, `bigquery`, `postgres`, ...) lives whole in its own package, `metadata_assets/sources/<type>/`:
- `config.py`: its configuration model, a `source_config.SourceConfig` with `type: Literal["<type>"]`;
- `reader.py`: what turns the server's catalog into snapshots (`catalog.Database`), SQL and API calls included;
- `emitter.py`: its DataHub proposals (for a SQL server, a `sql_emitter.UrnRules` subclass: the hooks of the
  shared emitter; else an emitter of its own, with the shared helpers of sources/sql_emitter.py);
- `access.py` (optional): its check-access probes;
- `kind.py`: a `SourceKind` that ties them together, registered in `sources/registry.py` by `type`.
A kind imports this module, sources/sql_emitter.py and the project's core modules, never another kind's package.

Extraction (extract.py), the Dagster wiring (defs/) and the CLI only talk to a `SourceKind` and its `Session`: no
`isinstance` on source kinds outside a kind's own package (an optional capability, `AccessProbes`, aside). No
Dagster here; a kind may hand out a client that a Dagster resource builds (BigQuery: dagster-gcp), but it never
imports Dagster at module level.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Iterator, Optional, Sequence

from metadata_assets.access import AccessReport
from metadata_assets.catalog import Database
from metadata_assets.source_config import SourceConfig

# Dagster gives up on a sensor evaluation after 60 s (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS): a tick's connect and
# fingerprint statements (or BigQuery queries and API calls) end within this, together, so the tick skips with its
# reason instead of a gRPC timeout, with time left for the sensor's own calls to the Dagster instance.
SENSOR_TICK_DEADLINE_S = 45.0
# The fingerprint of a database a tick could not reach before its deadline: the schema sensor adds such a database
# when it is new (its run reads it) and compares nothing for it; the next tick reads it first.
UNREAD = "unread"


def digest(text: str) -> str:
    """A fingerprint's short digest (16 hex digits of its SHA-256), as the schema sensor's cursor keeps it."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SourceUnavailable(RuntimeError):
    """The server (or API) cannot be reached, or refuses the login: nothing of the source can be read now."""


class ConnectionLost(SourceUnavailable):
    """The connection broke (server gone, killed, restarted) or a query ran past `query_timeout_s`.

    Never a per-object problem: what was read over the connection so far is incomplete, so the whole batch is read
    again over a new connection, or fails; nothing read before the loss is written."""


class SourceQueryFailed(RuntimeError):
    """A catalog query was refused or failed on the server (not a lost connection)."""


class FailureCause(Enum):
    """What one database's failure was."""

    DATABASE = "database"  # this database alone could not be read; the others of its batch were
    BATCH = "batch"  # its batch could not be read (refused, or the connection lost again after the retry)
    SOURCE = "source"  # the source could not be reached again: every database not read yet fails with it
    WRITE = "write"  # read, but its files could not be built or written


@dataclass(frozen=True)
class DatabaseFailure:
    """Why one database of a run has no new files; those it had stay as they were."""

    cause: FailureCause
    message: str  # for people: what the run reports as the database's error

    def __str__(self) -> str:
        return self.message


@dataclass
class ReadStats:
    """What a session's reads cost and left out, for the run's report (report.ExtractionReport)."""

    statements: int = 0  # SQL statements sent (BigQuery: query jobs)
    api_calls: int = 0  # other API requests
    tables_filtered: int = 0  # tables and views read but left out by table patterns or include_views


class Session(ABC):
    """What one extraction run reads through (a connection, a client), opened once per run."""

    stats: ReadStats  # counted over the whole run

    @abstractmethod
    def privilege_warnings(self, databases: Sequence[str]) -> list[str]:
        """Warnings when the account can read data (it should not; report.Finding with code OVER_PRIVILEGED);
        [] when the kind cannot tell."""

    def source_warnings(self, databases: Sequence[str]) -> list[str]:
        """Warnings about the whole source (MySQL: routines not visible), reported once per run
        (report.ExtractionReport), not on each database. Optional: a kind without any keeps this default, []."""
        return []

    @abstractmethod
    def read_batch(self, batch: list[str]) -> tuple[dict[str, Database | DatabaseFailure], Optional[DatabaseFailure]]:
        """({name: snapshot}, None) with the batch read whole (a database that does not exist is left out), or
        ({}, failure) when it could not be: then no database of the batch is written and their files stay. A kind
        that reads each database on its own (PostgreSQL: a connection per database) may give one database's
        failure (FailureCause.DATABASE) in place of its snapshot: that database fails, the others are written."""

    @abstractmethod
    def access_warnings(self, database: str) -> list[str]:
        """Warnings, found while reading it, that the account can read data of this database ([]: none seen)."""

    @abstractmethod
    def close(self) -> None: ...


class SourceKind(ABC):
    """One kind of source. Stateless: one instance per kind, shared (sources/registry.py)."""

    type: ClassVar[str]  # the `type:` of its sources in the YAML, and the registry key
    platform: ClassVar[str]  # DataHub's platform name (urn:li:dataPlatform:<platform>)
    title: ClassVar[str]  # for people: "MySQL", "BigQuery", "PostgreSQL"
    database_noun: ClassVar[str] = "database"  # what one partition is (BigQuery: dataset)
    catalog_read: ClassVar[str]  # what it reads, for people: "information_schema", "pg_catalog"

    # --- placement ---
    @abstractmethod
    def pool(self, source: SourceConfig) -> str:
        """The Dagster concurrency pool of its extraction runs: shared by every source on the same server."""

    # --- reading ---
    @contextmanager
    def client(self, source: SourceConfig) -> Iterator[Any]:
        """A client the session and the fingerprints read through (BigQuery: a google.cloud.bigquery.Client);
        None for kinds that connect themselves."""
        yield None

    @abstractmethod
    def list_databases(self, source: SourceConfig, client: Any = None) -> list[str]:
        """The allowed databases that exist and are visible to the account, sorted: what the partitions are."""

    @abstractmethod
    def session(self, source: SourceConfig, client: Any = None) -> Session:
        """Open what a run reads through; raises SourceUnavailable when the source cannot be reached at all."""

    @abstractmethod
    def fingerprints(
        self,
        source: SourceConfig,
        client: Any = None,
        cursor: Optional[dict[str, str]] = None,
        tick: Optional[int] = None,
    ) -> dict[str, str]:
        """{database: short digest} of everything that shapes each allowed database's MCE file, from one cheap read;
        the schema sensor compares it with the last tick's (`cursor`). Row counts, sizes and times stay out.
        `tick` (default: the current minute) picks what a kind reads in turns, tick after tick."""

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        """Errors of the kind's own client library that mean "cannot read now": a sensor tick skips on them."""
        return ()

    def error_text(self, e: BaseException) -> str:
        """One of unavailable_errors() in words, for a skipped tick."""
        return str(e)

    # --- least privilege ---
    @abstractmethod
    def grant_text(self, source: SourceConfig, databases: Optional[Sequence[str]]) -> list[str]:
        """The least-privilege grants (SQL or IAM commands) for the catalog account; `databases` None: list them
        (the account must exist already)."""

    def no_access_probes(self, source: SourceConfig) -> str:
        """Why `metadata-assets check-access` cannot probe this source, for a kind that is no AccessProbes."""
        return (
            f"check-access is not available for {self.title} sources: the {self.type!r} kind has no access "
            f"probes (sources/{self.type}/access.py)"
        )

    # --- DataHub ---
    @abstractmethod
    def urn_rules(self, source: SourceConfig):
        """The source's naming rules (URNs, containers), with `version_parts()` for the data version."""

    @abstractmethod
    def lineage(self, rules, source: SourceConfig):
        """A view-lineage resolver for one batch: register(db), then close()."""

    @abstractmethod
    def mcps(self, db: Database, rules, lineage, warnings: list[str]):
        """The proposals of one database's MCE file, in a deterministic order."""


class AccessProbes(ABC):
    """An optional capability of a SourceKind: probes of what its catalog account may do (sources/<type>/access.py,
    `metadata-assets check-access`). A kind without it says why in SourceKind.no_access_probes."""

    @abstractmethod
    def check_access(
        self, source: SourceConfig, databases: Optional[Sequence[str]] = None, client: Any = None
    ) -> AccessReport:
        """Probe what the catalog account may do, per database (`databases` None: every allowed database it sees):
        visible, SELECT on data refused (a harmless probe that must fail), view SQL and routines readable
        (access.AccessReport). Raises SourceUnavailable when the source cannot be reached."""


class SQLServerKind(SourceKind):
    """A kind whose proposals come from the shared SQL emitter (sources/sql_emitter.py) with its UrnRules' hooks:
    MySQL and PostgreSQL. Only the UrnRules class differs (`rules_class`)."""

    @abstractmethod
    def rules_class(self):
        """The kind's UrnRules subclass (sources/<type>/emitter.py)."""

    def urn_rules(self, source):
        """The rules for one source: its naming (env, instance) and what its files carry besides the schema
        (domains, profiles, owners sent as ownership)."""
        return self.rules_class()(
            env=source.env,
            platform_instance=source.platform_instance,
            domain=tuple(source.domain.items()),
            profile=source.profile.enabled,
            owners=tuple(source.owners) if source.datahub_ownership else (),
        )

    def lineage(self, rules, source: Optional[SourceConfig] = None):
        from metadata_assets.sources.sql_emitter import LineageResolver

        return LineageResolver(rules, table_allowed=source.table_allowed if source is not None else None)

    def mcps(self, db: Database, rules, lineage, warnings: list[str]):
        from metadata_assets.sources.sql_emitter import database_mcps

        return database_mcps(db, rules, lineage, warnings)
