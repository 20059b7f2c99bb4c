"""One held connection to Dagster's PostgreSQL storage per run worker, instead of one new connection per write.

dagster-postgres builds its engines with NullPool: every event a run stores opens a new connection (a TCP connect,
authentication and a server process forked for it; Cloud SQL over its private IP on GKE), often two per event (the
event, then its asset index). An extraction run stores an event per database and per check evaluation: a large
share of a run's time in process (bench/NOTES.md).
The webserver avoids it with the storages' own `optimize_for_webserver` (a pool of one held connection, and a
statement timeout); a run worker is a short-lived process of one run, so it can do the same: the connection lives
as long as the run. The statement timeout also bounds every storage query of the run.
Other storages (sqlite, Dagster+) are left as they are.
"""

from __future__ import annotations

STATEMENT_TIMEOUT_MS = 120_000  # a storage query of a run that takes longer fails instead of hanging
POOL_RECYCLE_S = 3_600
MAX_OVERFLOW = 4  # the run's other threads (log capture, heartbeats) may write at the same time

_POOLED = "_metadata_assets_pooled"


def hold_storage_connections(instance) -> list[str]:
    """Pool the instance's PostgreSQL run and event log storages (once per process); the names of those pooled."""
    pooled = []
    for storage in (instance.event_log_storage, instance.run_storage):
        if getattr(storage, _POOLED, False) or not type(storage).__module__.startswith("dagster_postgres"):
            continue
        storage.optimize_for_webserver(
            statement_timeout=STATEMENT_TIMEOUT_MS, pool_recycle=POOL_RECYCLE_S, max_overflow=MAX_OVERFLOW
        )
        setattr(storage, _POOLED, True)
        pooled.append(type(storage).__name__)
    return pooled
