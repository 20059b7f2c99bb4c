"""Push a source's MCE files to DataHub: only what changed since the last confirmed push, soft-deleting what went.

Granularity: the whole database file. Per source, `<source>/push_state.json` records for each database the data
version last confirmed by DataHub (extract.data_version of its snapshot: schema hash + file format + URN rules; row
counts, sizes and times are left out on purpose, so a day without schema change sends nothing) and the dataset URNs
and container URN that push sent. A push:
  1. plans: a database whose version differs from the state is pending; one in the state whose MCE file is gone
     (dropped, or no longer allowed: see forget_database) is removed;
  2. checks the fail-safe: soft-deleting more than `max_removal_share` of the source's pushed datasets is refused
     (before anything is sent) unless `allow_mass_removal`;
  3. per pending database sends every proposal of its file, then Status(removed=true) for its datasets that are no
     longer in the file; per removed database, Status(removed=true) for all its datasets and its container;
  4. records a database in the state only after the sink confirmed all of that database's proposals. The state is
     saved (atomically, through the store) every few databases and whatever happens at the end, so a failure or a
     crash leaves unconfirmed databases pending for the next push; re-sending a confirmed one is harmless (upserts).
No Dagster here.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.metadata.schema_classes import StatusClass, SystemMetadataClass

from metadata_assets.catalog import Database
from metadata_assets.datahub import files
from metadata_assets.datahub.mcps import UrnRules
from metadata_assets.datahub.sinks import DataHubUnavailable, Sink

log = logging.getLogger(__name__)

STATE_FORMAT = 1
SAVE_EVERY = 50  # databases between two state saves during a push
MAX_CONSECUTIVE_FAILURES = 3  # then DataHub is taken as down and the push stops


def state_key(source: str) -> str:
    return f"{source}/push_state.json"


@dataclass
class PushedDatabase:
    data_version: str
    datasets: list[str]
    container: Optional[str]
    pushed_at: str

    def to_dict(self) -> dict:
        return {"data_version": self.data_version, "datasets": self.datasets, "container": self.container,
                "pushed_at": self.pushed_at}


def load_state(store: files.Store, source: str) -> dict[str, PushedDatabase]:
    raw = store.read_bytes(state_key(source))
    if raw is None:
        return {}
    doc = json.loads(raw)
    if doc.get("format") != STATE_FORMAT:
        raise ValueError(f"{store.uri(state_key(source))}: unknown push state format {doc.get('format')!r}")
    return {db: PushedDatabase(**d) for db, d in doc["databases"].items()}


def save_state(store: files.Store, source: str, state: dict[str, PushedDatabase]) -> None:
    doc = {"format": STATE_FORMAT, "databases": {db: state[db].to_dict() for db in sorted(state)}}
    store.write_bytes(state_key(source), json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode())


def forget_database(store: files.Store, source: str, database: str) -> None:
    """A database was dropped or is no longer allowed: delete its MCE file and snapshot.

    Its push state stays, so the next push soft-deletes its datasets and container in DataHub.
    """
    store.delete(files.mce_key(source, database))
    store.delete(files.snapshot_key(source, database))


def current_version(store: files.Store, source: str, database: str, rules: UrnRules,
                    mce_bytes: Optional[bytes] = None) -> str:
    """The data version of the database's current files: the same value extraction tags its materialization with."""
    from metadata_assets.extract import data_version  # extract imports the MySQL reader; keep it lazy

    raw = store.read_bytes(files.snapshot_key(source, database))
    if raw is not None:
        doc = json.loads(raw)
        # written by extraction with the version of the file it wrote beside it; older snapshots lack it
        return doc.get("data_version") or data_version(Database.from_dict(doc), rules)
    # no snapshot (written by something else than extract): fall back to the file's bytes
    data = mce_bytes if mce_bytes is not None else store.read_bytes(files.mce_key(source, database)) or b""
    return "file:" + files.sha256(data)


@dataclass
class PushPlan:
    pending: dict[str, str]  # database -> its current data version
    unchanged: list[str]
    gone: list[str]  # in the state, no MCE file any more
    removals: dict[str, list[str]]  # database -> dataset URNs to soft-delete (known for gone databases only)
    pushed_datasets: int  # datasets in the state before this push

    @property
    def nothing_to_do(self) -> bool:
        return not self.pending and not self.gone


def plan(store: files.Store, source: str, rules: UrnRules,
         state: Optional[dict[str, PushedDatabase]] = None) -> PushPlan:
    state = load_state(store, source) if state is None else state
    present = files.list_mce_databases(store, source)
    pending, unchanged = {}, []
    for db in present:
        version = current_version(store, source, db, rules)
        if db in state and state[db].data_version == version:
            unchanged.append(db)
        else:
            pending[db] = version
    gone = sorted(set(state) - set(present))
    return PushPlan(pending=pending, unchanged=unchanged, gone=gone,
                    removals={db: list(state[db].datasets) for db in gone},
                    pushed_datasets=sum(len(p.datasets) for p in state.values()))


class MassRemovalRefused(RuntimeError):
    """The fail-safe: a push would soft-delete too large a share of a source's datasets."""


class PushFailed(RuntimeError):
    def __init__(self, message: str, report: "PushReport"):
        super().__init__(message)
        self.report = report


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
    duration_s: float = 0.0


def _entities(mcps: list[MetadataChangeProposalWrapper]) -> tuple[list[str], Optional[str]]:
    datasets: dict[str, None] = {}
    container = None
    for m in mcps:
        if m.entityType == "dataset":
            datasets[m.entityUrn] = None
        elif m.entityType == "container":
            container = m.entityUrn
    return list(datasets), container


def _file_datasets(data: bytes) -> list[str]:
    return list(dict.fromkeys(o["entityUrn"] for o in json.loads(data) if o.get("entityType") == "dataset"))


def _removed(urns: list[str]) -> list[MetadataChangeProposalWrapper]:
    return [MetadataChangeProposalWrapper(entityUrn=u, aspect=StatusClass(removed=True)) for u in urns]


def push(store: files.Store, source: str, rules: UrnRules, sink: Sink, *, max_removal_share: float,
         allow_mass_removal: bool = False, run_id: Optional[str] = None,
         progress: Optional[Callable[[str], None]] = None) -> PushReport:
    """Push what changed; returns the report or raises PushFailed (report attached) / MassRemovalRefused."""
    t0 = time.monotonic()
    say = progress or log.info
    report = PushReport(source=source, target=sink.describe())
    state = load_state(store, source)
    p = plan(store, source, rules, state)
    report.databases_skipped = len(p.unchanged)

    # What a pending database would remove needs its new file: look at all of them first, so the fail-safe sees
    # the whole push (only URNs are kept; proposals are read again when sent, to bound memory).
    removals = dict(p.removals)
    for db in p.pending:
        if db in state:
            new = set(_file_datasets(store.read_bytes(files.mce_key(source, db)) or b"[]"))
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
            f"patterns.")

    if p.nothing_to_do:
        report.duration_s = time.monotonic() - t0
        return report

    sink.check()
    system_metadata = dict(runId=run_id or f"metadata-assets-{source}", lastObserved=int(time.time() * 1000))
    work = [(db, False) for db in p.pending] + [(db, True) for db in p.gone]
    consecutive, changed = 0, 0
    try:
        for i, (db, is_gone) in enumerate(work):
            if consecutive >= MAX_CONSECUTIVE_FAILURES:
                report.not_attempted = [d for d, _ in work[i:]]
                break
            file_mcps: list[MetadataChangeProposalWrapper] = []
            if is_gone:
                prev = state[db]
                urns = list(prev.datasets) + ([prev.container] if prev.container else [])
            else:
                file_mcps = files.read_mcps(store.read_bytes(files.mce_key(source, db)) or b"[]")
                # from the file as read now (it may have been rewritten since the fail-safe looked at it)
                kept = set(_entities(file_mcps)[0])
                urns = [u for u in state[db].datasets if u not in kept] if db in state else []
            mcps = file_mcps + _removed(urns)
            for m in mcps:
                m.systemMetadata = SystemMetadataClass(**system_metadata)
            try:
                sink.emit(mcps)
            except Exception as e:
                consecutive += 1
                report.failures[db] = str(e) if isinstance(e, DataHubUnavailable) else f"{type(e).__name__}: {e}"
                say(f"{db}: not pushed: {report.failures[db]}")
                continue
            consecutive = 0
            report.proposals_sent += len(mcps)
            report.soft_deleted += urns
            if is_gone:
                del state[db]
                report.databases_removed.append(db)
            else:
                datasets, container = _entities(file_mcps)
                state[db] = PushedDatabase(data_version=p.pending[db], datasets=datasets, container=container,
                                           pushed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
                report.databases_pushed.append(db)
            changed += 1
            if changed % SAVE_EVERY == 0:
                save_state(store, source, state)
                say(f"{i + 1}/{len(work)} databases pushed")
    finally:
        if changed:
            save_state(store, source, state)
        report.duration_s = time.monotonic() - t0
    if report.failures:
        left = len(report.failures) + len(report.not_attempted)
        first = next(iter(report.failures.items()))
        raise PushFailed(
            f"source {source!r}: {left} of {len(work)} databases not pushed to {sink.describe()} "
            f"(they stay pending for the next push); first error, {first[0]}: {first[1]}", report)
    return report
