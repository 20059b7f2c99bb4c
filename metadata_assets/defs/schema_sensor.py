"""The schema-change sensor of one source: fingerprints per tick, runs only for databases that changed.

Each tick reads the fingerprints (defs/source_reads.read_fingerprints: tables and columns of every database, keys
for a rotating slice) and compares them with the cursor, a JSON object {database: digest of its fingerprint}:
- an allowed database that is not a partition yet is added as a partition and requested;
- a partition whose database disappeared (dropped, grant revoked, no longer matches the patterns) is removed, and its
  MCE file, snapshot and version record are deleted (`datahub.push.forget_database`) so the next push soft-deletes its datasets;
- a database whose fingerprint differs from the cursor is requested;
- a database the cursor has never seen (first tick, or a database that reappears) is requested only if its partition
  has never been materialized: the daily schedule refreshes everything else, so turning the sensor on does not
  start a full re-read of a 3,000-database estate.
Requested partitions are cut into runs of consecutive partition keys (Dagster's partition order), each up to the
source's run size long (SourceConfig.run_size): a run over a partition range when it holds more than one, a
single-partition run otherwise.
An unreachable source makes the tick skip with the reason; the cursor is kept, so nothing is lost.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Optional

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from metadata_assets.config import ConfigError
from metadata_assets.datahub.push import forget_database
from metadata_assets.defs.keys import (
    PUSH_AFTER_TAG,
    REASON_TAG,
    mce_asset_key,
    partitions_def,
    range_tags,
    run_tags,
)
from metadata_assets.defs.source_reads import read_fingerprints, unavailable_errors
from metadata_assets.defs.source_setup import SourceSetup
from metadata_assets.sources.base import UNREAD, SourceQueryFailed, SourceUnavailable


@dataclass
class Plan:
    """What one tick decided, in partition order."""

    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    never_materialized: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # partition keys after the adds and removes

    @property
    def requested(self) -> list[str]:
        wanted = set(self.add) | set(self.changed) | set(self.never_materialized)
        return [k for k in self.order if k in wanted]


def plan(
    fingerprints: dict[str, str], cursor: dict[str, str], partitions: list[str], materialized: Optional[set[str]] = None
) -> Plan:
    """Compare this tick's fingerprints with the cursor and the partitions. `materialized` (partition keys that have
    been materialized at least once) is needed only when some database is missing from the cursor."""
    have = set(partitions)
    p = Plan()
    p.add = sorted(db for db in fingerprints if db not in have)
    p.remove = [k for k in partitions if k not in fingerprints]
    p.order = [k for k in partitions if k in fingerprints] + p.add
    for db in p.order:
        if db in p.add or fingerprints[db] == UNREAD:  # not read this tick (its deadline): nothing to compare
            continue
        if cursor.get(db, UNREAD) != UNREAD:
            if cursor[db] != fingerprints[db]:
                p.changed.append(db)
        elif materialized is not None and db not in materialized:
            p.never_materialized.append(db)
    return p


def _names(names: list[str], most: int = 10) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def what_it_did(p: Plan) -> str:
    """A tick in words: "added marketing; removed nonexistent_db; 2 databases changed: shop, billing"."""
    out = []
    if p.add:
        out.append(f"added {_names(p.add)}")
    if p.remove:
        out.append(f"removed {_names(p.remove)}")
    if p.changed:
        out.append(f"{len(p.changed)} database{'s' if len(p.changed) > 1 else ''} changed: {_names(p.changed)}")
    if p.never_materialized:
        out.append(f"{len(p.never_materialized)} never materialized: {_names(p.never_materialized)}")
    return "; ".join(out)


def self_pushed(p: Plan, cursor: dict[str, str], batch_size: int) -> set[str]:
    """The databases whose extraction run should push them itself (PUSH_AFTER_TAG): new and changed ones, when they
    are few (at most batch_size). Not on the first fill (empty cursor) nor on a larger wave: there the last of the
    wave's runs pushes once, after the others (defs/extraction.py, pushes_itself)."""
    changes = set(p.add) | set(p.changed)
    return changes if cursor and len(changes) <= batch_size else set()


def contiguous_runs(order: list[str], requested: list[str], max_len: int) -> list[list[str]]:
    """Requested keys grouped into runs of keys that are adjacent in `order`, each at most max_len long."""
    index = {k: i for i, k in enumerate(order)}
    groups: list[list[str]] = []
    for k in sorted(requested, key=index.__getitem__):
        if groups and index[k] == index[groups[-1][-1]] + 1 and len(groups[-1]) < max_len:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def run_request(keys: list[str], reason: str, tags: Optional[dict] = None) -> RunRequest:
    tags = {**(tags or {}), REASON_TAG: reason}
    if len(keys) == 1:
        return RunRequest(partition_key=keys[0], tags=tags)
    return RunRequest(tags={**tags, **range_tags(keys)})


def _forget(setup: SourceSetup, databases: list[str]) -> None:
    store = setup.store.open()
    for db in databases:
        forget_database(store, setup.source.name, db)


COST_FACTOR = 10  # a tick's query costs at most a tenth of the time between two queries
# more new databases than this are added by the sensor itself, in one statement, rather than as a request the daemon
# checks key by key (SensorDaemon._handle_dynamic_partitions_requests: one has_dynamic_partition query per key)
ADD_DIRECTLY_OVER = 100


class QueryCost:
    """When a sensor's last fingerprint query ran and what it cost: one per built sensor, kept in the process that
    evaluates it (the code server; lost when it restarts, which only means one tick at the configured interval)."""

    def __init__(self):
        self.started: Optional[float] = None
        self.cost_s = 0.0

    def record(self, started: float, cost_s: float) -> None:
        self.started, self.cost_s = started, cost_s

    def wait_left(self, now: float) -> float:
        """Seconds until the next query may run: COST_FACTOR times the last one's cost after it started."""
        if self.started is None:
            return 0.0
        return COST_FACTOR * self.cost_s - (now - self.started)


def build_schema_sensor(
    setup: SourceSetup, minimum_interval_seconds: Optional[int] = None, cost: Optional[QueryCost] = None
):
    source, kind = setup.source, setup.kind
    parts = partitions_def(source)
    key = mce_asset_key(source)
    interval = minimum_interval_seconds or source.sensor_interval_s
    cost = cost or QueryCost()

    @sensor(
        name=f"{source.name}_schema_sensor",
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=AssetSelection.assets(key).without_checks(),  # evaluated by the asset itself
        description=(
            f"Fingerprints `{source.name}` from {kind.catalog_read} each tick: adds new allowed databases as "
            "partitions, removes dropped ones, and materializes only the databases whose schema changed."
        ),
    )
    def schema_sensor(context: SensorEvaluationContext):
        started = time.monotonic()
        if (left := cost.wait_left(started)) > 1:
            return SkipReason(
                f"the last fingerprint query took {cost.cost_s:.1f}s: the next one runs {left:.0f}s "
                f"from now ({COST_FACTOR}x its cost, sensor_interval_s is {interval})"
            )
        cursor: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        try:
            try:
                fingerprints = read_fingerprints(source, cursor)
            finally:  # a query that failed or timed out cost its time too
                cost.record(started, time.monotonic() - started)
        except ConfigError as e:  # a secret the definitions no longer read at load: its name, at the tick needing it
            return SkipReason(f"cannot connect: {e}")
        except SourceUnavailable as e:  # ConnectionLost included: a query past its timeout
            return SkipReason(f"source unreachable: {e}")
        except SourceQueryFailed as e:
            return SkipReason(f"fingerprint query failed: {e}")
        except unavailable_errors(source) as e:  # the client library's own errors (pymysql, google-api-core)
            return SkipReason(f"fingerprint query failed on source {source.name!r}: {kind.error_text(e)}")
        query_s = cost.cost_s
        partitions = list(parts.get_partition_keys(dynamic_partitions_store=context.instance))
        if not fingerprints and partitions:
            # an account that suddenly sees nothing is far likelier a broken grant than a dropped estate
            return SkipReason(
                f"source {source.name!r} shows no allowed database while {len(partitions)} "
                "partitions exist: refusing to remove them all (check the account's grants)"
            )
        materialized = None
        if any(cursor.get(db, UNREAD) == UNREAD for db in partitions if db in fingerprints):
            materialized = set(context.instance.get_materialized_partitions(key))
        p = plan(fingerprints, cursor, partitions, materialized)

        requests = []
        if len(p.add) > ADD_DIRECTLY_OVER:
            # one upsert: the daemon checks each key of an add request with a query of its own (a new PostgreSQL
            # connection each; bench/NOTES.md); added before the runs are requested, so they resolve
            context.instance.add_dynamic_partitions(parts.name, p.add)
        elif p.add:
            requests.append(parts.build_add_request(p.add))
        if p.remove:
            requests.append(parts.build_delete_request(p.remove))
            _forget(setup, p.remove)
        reasons = {
            **{k: "new database" for k in p.add},
            **{k: "schema changed" for k in p.changed},
            **{k: "never materialized" for k in p.never_materialized},
        }
        self_push = self_pushed(p, cursor, source.batch_size)
        runs = [
            run_request(
                g,
                ", ".join(sorted({reasons[k] for k in g})),
                {**run_tags(source), **({PUSH_AFTER_TAG: "1"} if self_push & set(g) else {})},
            )
            for g in contiguous_runs(p.order, p.requested, source.run_size(len(p.requested)))
        ]
        summary = (
            f"{len(fingerprints)} databases fingerprinted in {query_s:.2f}s: {len(p.add)} new, "
            f"{len(p.remove)} removed, {len(p.changed)} changed, {len(p.never_materialized)} never "
            f"materialized -> {len(runs)} runs"
        )
        did = what_it_did(p)
        context.log.info(f"{did}; {summary}" if did else summary)
        new_cursor = json.dumps(fingerprints, sort_keys=True, separators=(",", ":"))
        return SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=requests,
            cursor=new_cursor,
            # the tick's message in Dagit when it starts no run (else Dagit says "returned an empty result")
            skip_reason=None
            if runs
            else SkipReason(f"{did} (no run needed)" if did else f"no schema change; {summary}"),
        )

    return schema_sensor
