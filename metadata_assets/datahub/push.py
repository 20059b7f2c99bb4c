"""Push a source's MCE files to DataHub: only what changed since the last confirmed push, soft-deleting what went.

Granularity: the whole database file. Per source, `<source>/push_state.json` records for each database the data
version last confirmed by DataHub (storage.database_files.data_version of its file: schema hash + file format + URN
rules + the table statistics the file holds, which extraction rewrites only when they moved past the source's profile
thresholds, so a day of ordinary inserts sends nothing) and the dataset URNs and container URN that push sent.
A push:
  1. plans: a database whose version differs from the state is pending; one in the state whose MCE file is gone
     (dropped, or no longer allowed: see forget_database) is removed;
  2. checks the fail-safe: soft-deleting more than `max_removal_share` of the source's pushed datasets is refused
     (before anything is sent) unless `allow_mass_removal`;
  3. per pending database sends every proposal of its file, then Status(removed=true) for its datasets that are no
     longer in the file; per removed database, Status(removed=true) for all its datasets and its container;
  4. records a database in the state only after the sink confirmed all of that database's proposals, with the
     version of the file it actually sent (an extraction may rewrite a file while a push runs). The state is
     saved (atomically, through the store) every few databases and whatever happens at the end, so a failure or a
     crash leaves unconfirmed databases pending for the next push; re-sending a confirmed one is harmless (upserts).
A push holds the source's push lock (`<source>/.push.lock` in the store: flock locally, a lock object on GCS) from
reading the state to its last save, so two pushes of one source never overwrite each other's state, whoever
started them. It stops at its deadline (what it did not send stays pending) and at once when DataHub refuses
the credentials (retrying cannot help).
No Dagster here.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Optional

from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.metadata.schema_classes import StatusClass, SystemMetadataClass

from metadata_assets.datahub.mce_json import proposal_obj, read_mcps
from metadata_assets.datahub.sinks import DataHubRefused, DataHubUnavailable, Sink
from metadata_assets.storage.database_files import DatabaseFiles
from metadata_assets.storage.layout import list_mce_databases
from metadata_assets.storage.store import Store

log = logging.getLogger(__name__)

STATE_FORMAT = 1
SAVE_EVERY = 50  # databases between two state saves during a push
MAX_CONSECUTIVE_FAILURES = 3  # then DataHub is taken as down and the push stops
LOCK_WAIT_S = 30.0  # a second push of the same source waits this long for the first, then fails
LOCK_LEASE_MARGIN_S = 300.0  # a GCS lock outlives its push's deadline by this much before another may take it


def state_key(source: str) -> str:
    return f"{source}/push_state.json"


def lock_key(source: str) -> str:
    return f"{source}/.push.lock"


@dataclass
class PushedDatabase:
    data_version: str
    datasets: list[str]
    container: Optional[str]
    pushed_at: str

    def to_dict(self) -> dict:
        return {
            "data_version": self.data_version,
            "datasets": self.datasets,
            "container": self.container,
            "pushed_at": self.pushed_at,
        }


def load_state(store: Store, source: str) -> dict[str, PushedDatabase]:
    raw = store.read_bytes(state_key(source))
    if raw is None:
        return {}
    doc = json.loads(raw)
    if doc.get("format") != STATE_FORMAT:
        raise ValueError(f"{store.uri(state_key(source))}: unknown push state format {doc.get('format')!r}")
    return {db: PushedDatabase(**d) for db, d in doc["databases"].items()}


def save_state(store: Store, source: str, state: dict[str, PushedDatabase]) -> None:
    doc = {"format": STATE_FORMAT, "databases": {db: state[db].to_dict() for db in sorted(state)}}
    store.write_bytes(state_key(source), json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode())


def forget_database(store: Store, source: str, database: str) -> None:
    """A database was dropped or is no longer allowed: delete its files (MCE file, version record, snapshot).

    Its push state stays, so the next push soft-deletes its datasets and container in DataHub.
    """
    DatabaseFiles(store, source, database).forget()


@dataclass
class PushPlan:
    pending: dict[str, str]  # database -> its current data version
    pending_files: dict[str, Optional[str]]  # database -> sha256 of the file that version describes
    unchanged: list[str]
    gone: list[str]  # in the state, no MCE file any more
    removals: dict[str, list[str]]  # database -> dataset URNs to soft-delete (known for gone databases only)
    pushed_datasets: int  # datasets in the state before this push

    @property
    def nothing_to_do(self) -> bool:
        return not self.pending and not self.gone


def plan(store: Store, source: str, rules, state: Optional[dict[str, PushedDatabase]] = None) -> PushPlan:
    state = load_state(store, source) if state is None else state
    present = list_mce_databases(store, source)
    pending, pending_files, unchanged = {}, {}, []
    for db in present:
        version, file_sha = DatabaseFiles(store, source, db).version(rules)
        if db in state and state[db].data_version == version:
            unchanged.append(db)
        else:
            pending[db], pending_files[db] = version, file_sha
    gone = sorted(set(state) - set(present))
    return PushPlan(
        pending=pending,
        pending_files=pending_files,
        unchanged=unchanged,
        gone=gone,
        removals={db: list(state[db].datasets) for db in gone},
        pushed_datasets=sum(len(p.datasets) for p in state.values()),
    )


class MassRemovalRefused(RuntimeError):
    """The fail-safe: a push would soft-delete too large a share of a source's datasets."""


class PushFailed(RuntimeError):
    """Some databases were not pushed (they stay pending). `retryable` is False when trying again at once cannot
    help: DataHub refused the credentials, or the push ran out of its deadline (DataHub hung or far too slow)."""

    def __init__(self, message: str, report: "PushReport", retryable: bool = True):
        super().__init__(message)
        self.report = report
        self.retryable = retryable


@dataclass
class PushReport:
    source: str
    target: str
    databases_pushed: list[str] = field(default_factory=list)
    databases_skipped: int = 0
    databases_removed: list[str] = field(default_factory=list)
    proposals_sent: int = 0
    soft_deleted: list[str] = field(default_factory=list)  # dataset and container URNs
    failures: dict[str, str] = field(default_factory=dict)  # database -> error
    not_attempted: list[str] = field(default_factory=list)
    stopped: Optional[str] = None  # why the push stopped before the end: "deadline", "refused", "datahub down"
    duration_s: float = 0.0


def _entities(entities: Iterable[tuple[str, str]]) -> tuple[list[str], Optional[str]]:
    """(dataset URNs, the database container's URN) of an MCE file's proposals, given as (entityType, entityUrn)."""
    datasets: dict[str, None] = {}
    container = None
    for entity_type, urn in entities:
        if entity_type == "dataset":
            datasets[urn] = None
        elif entity_type == "container":
            container = urn
    return list(datasets), container


def _file_datasets(data: bytes) -> list[str]:
    return list(dict.fromkeys(o["entityUrn"] for o in json.loads(data) if o.get("entityType") == "dataset"))


def _removed(urns: list[str]) -> list[MetadataChangeProposalWrapper]:
    return [MetadataChangeProposalWrapper(entityUrn=u, aspect=StatusClass(removed=True)) for u in urns]


def push(
    store: Store,
    source: str,
    rules,
    sink: Sink,
    *,
    max_removal_share: float,
    allow_mass_removal: bool = False,
    run_id: Optional[str] = None,
    progress: Optional[Callable[[str], None]] = None,
    deadline_s: Optional[float] = None,
    lock_wait_s: float = LOCK_WAIT_S,
) -> PushReport:
    """Push what changed; returns the report or raises PushFailed (report attached) / MassRemovalRefused /
    locks.LockBusy (another push of this source holds the lock)."""
    t0 = time.monotonic()
    lease = (deadline_s or 86400.0) + LOCK_LEASE_MARGIN_S
    with store.lock(lock_key(source), wait_s=lock_wait_s, lease_s=lease):
        return _push_locked(
            store,
            source,
            rules,
            sink,
            max_removal_share=max_removal_share,
            allow_mass_removal=allow_mass_removal,
            run_id=run_id,
            say=progress or log.info,
            t0=t0,
            deadline=None if deadline_s is None else t0 + deadline_s,
        )


def _push_locked(
    store: Store,
    source: str,
    rules,
    sink: Sink,
    *,
    max_removal_share: float,
    allow_mass_removal: bool,
    run_id: Optional[str],
    say: Callable[[str], None],
    t0: float,
    deadline: Optional[float],
) -> PushReport:
    report = PushReport(source=source, target=sink.describe())
    state = load_state(store, source)
    p = plan(store, source, rules, state)
    report.databases_skipped = len(p.unchanged)

    # What a pending database would remove needs its new file: look at all of them first, so the fail-safe sees
    # the whole push (only URNs are kept; proposals are read again when sent, to bound memory).
    removals = dict(p.removals)
    for db in p.pending:
        if db in state:
            new = set(_file_datasets(DatabaseFiles(store, source, db).read_file() or b"[]"))
            dropped = [u for u in state[db].datasets if u not in new]
            if dropped:
                removals[db] = dropped
    n_remove = sum(len(v) for v in removals.values())
    if p.pushed_datasets and n_remove / p.pushed_datasets > max_removal_share and not allow_mass_removal:
        where = ", ".join(f"{db} ({len(u)})" for db, u in sorted(removals.items())[:10])
        raise MassRemovalRefused(
            f"source {source!r}: this push would soft-delete {n_remove} of {p.pushed_datasets} datasets in DataHub "
            f"({n_remove / p.pushed_datasets:.0%}, more than datahub.max_removal_share = {max_removal_share:.0%}); "
            f"from: {where}{' ...' if len(removals) > 10 else ''}. Nothing was sent. If these databases/tables "
            f"really are gone, run the push once with allow_mass_removal: true; otherwise fix the source or its "
            f"patterns."
        )

    if p.nothing_to_do:
        report.duration_s = time.monotonic() - t0
        return report

    work = [(db, False) for db in p.pending] + [(db, True) for db in p.gone]
    try:
        sink.check()
    except DataHubRefused as e:
        report.stopped, report.not_attempted = "refused", [d for d, _ in work]
        raise PushFailed(
            f"source {source!r}: {e}; nothing was sent (every changed file stays pending). Fix the "
            f"token or the account's privileges in DataHub: retrying cannot help.",
            report,
            retryable=False,
        ) from None
    system_metadata = dict(runId=run_id or f"metadata-assets-{source}", lastObserved=int(time.time() * 1000))
    emit_objs = getattr(sink, "emit_objs", None)
    system_obj = SystemMetadataClass(**system_metadata).to_obj()
    consecutive, changed = 0, 0
    try:
        for i, (db, is_gone) in enumerate(work):
            if consecutive >= MAX_CONSECUTIVE_FAILURES:
                report.stopped, report.not_attempted = "datahub down", [d for d, _ in work[i:]]
                break
            if deadline is not None and time.monotonic() >= deadline:
                report.stopped, report.not_attempted = "deadline", [d for d, _ in work[i:]]
                break
            # the file as read now (it may have been rewritten since the fail-safe looked at it): for DataHub Lite its
            # own dicts, written without decoding (datahub/lite_write.py); for GMS acryl-datahub's proposals
            file_objs: list = []
            entities: list[tuple[str, str]] = []
            if is_gone:
                prev = state[db]
                urns = list(prev.datasets) + ([prev.container] if prev.container else [])
            else:
                stored = DatabaseFiles(store, source, db)
                data = stored.read_file() or b"[]"
                if emit_objs is not None:
                    file_objs = json.loads(data)
                    entities = [(o.get("entityType"), o.get("entityUrn")) for o in file_objs]
                else:
                    file_objs = read_mcps(data)
                    entities = [(m.entityType, m.entityUrn) for m in file_objs]
                kept = set(_entities(entities)[0])
                urns = [u for u in state[db].datasets if u not in kept] if db in state else []
            n_sent = len(file_objs) + len(urns)
            try:
                if emit_objs is not None:
                    emit_objs(file_objs + [proposal_obj(m) for m in _removed(urns)], system_obj, deadline=deadline)
                else:
                    mcps = file_objs + _removed(urns)
                    for m in mcps:
                        m.systemMetadata = SystemMetadataClass(**system_metadata)
                    sink.emit(mcps, deadline=deadline)
            except DataHubRefused as e:
                report.failures[db] = str(e)
                report.stopped, report.not_attempted = "refused", [d for d, _ in work[i + 1 :]]
                break
            except Exception as e:
                consecutive += 1
                report.failures[db] = str(e) if isinstance(e, DataHubUnavailable) else f"{type(e).__name__}: {e}"
                say(f"{db}: not pushed: {report.failures[db]}")
                continue
            consecutive = 0
            report.proposals_sent += n_sent
            report.soft_deleted += urns
            if is_gone:
                del state[db]
                report.databases_removed.append(db)
            else:
                datasets, container = _entities(entities)
                version = stored.sent_version(rules, data, (p.pending[db], p.pending_files[db]))
                state[db] = PushedDatabase(
                    data_version=version,
                    datasets=datasets,
                    container=container,
                    pushed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                )
                report.databases_pushed.append(db)
            changed += 1
            if changed % SAVE_EVERY == 0:
                save_state(store, source, state)
                say(f"{i + 1}/{len(work)} databases pushed")
    finally:
        if changed:
            save_state(store, source, state)
        report.duration_s = time.monotonic() - t0
    if report.failures or report.not_attempted:
        left = len(report.failures) + len(report.not_attempted)
        why = {
            "deadline": f"the push reached its deadline (datahub.push_deadline_s) after {report.duration_s:.0f}s",
            "refused": "DataHub refused the credentials: fix the token or the account's privileges; "
            "retrying cannot help",
            "datahub down": f"{MAX_CONSECUTIVE_FAILURES} databases failed in a row: DataHub taken as down",
        }
        reason = why.get(report.stopped or "", "")
        first = next(iter(report.failures.items()), None)
        raise PushFailed(
            f"source {source!r}: {left} of {len(work)} databases not pushed to {sink.describe()} "
            f"(they stay pending for the next push)"
            + (f"; {reason}" if reason else "")
            + (f"; first error, {first[0]}: {first[1]}" if first else ""),
            report,
            retryable=report.stopped not in ("deadline", "refused"),
        )
    return report
