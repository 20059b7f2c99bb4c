"""Extraction of many databases into MCE files: bulk reads per batch, one file per database.

The core path that Dagster's asset, the CLI and the benchmark all call. No Dagster here.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

from metadata_assets import history
from metadata_assets.catalog import Database, figures_moved
from metadata_assets.datahub.mce_json import serialize_mcps_chunks
from metadata_assets.report import DATABASE_MISSING, ExtractionReport, Finding, from_record
from metadata_assets.source_config import SourceConfig
from metadata_assets.sources.base import DatabaseFailure, FailureCause
from metadata_assets.sources.registry import kind_of
from metadata_assets.storage.database_files import DatabaseFiles, VersionRecord, data_version
from metadata_assets.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class DatabaseResult:
    database: str
    ok: bool
    uri: Optional[str] = None
    tables: int = 0
    views: int = 0
    columns: int = 0
    table_doc_coverage: float = 0.0
    column_doc_coverage: float = 0.0
    proposals: int = 0
    schema_hash: Optional[str] = None
    data_version: Optional[str] = None  # what Dagster shows as the data version; the push compares it
    file_sha256: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    failure: Optional[DatabaseFailure] = None  # why it failed (ok False)
    missing: bool = False  # the database no longer exists (or is no longer visible)
    snapshot: Optional[Database] = None
    previous: Optional[Database] = None
    rewritten: bool = True  # False: the schema was unchanged and the existing file was kept
    history_version: Optional[int] = None  # the schema-history version this extraction recorded (history.py)
    schema_diff: Optional[object] = None  # diff.SchemaDiff(previous, snapshot) when the history computed it

    @property
    def error(self) -> Optional[str]:
        """The failure's message, for people; None when it did not fail."""
        return self.failure.message if self.failure is not None else None


def rules_for(source: SourceConfig):
    """The source's URN rules (its kind's)."""
    return kind_of(source).urn_rules(source)


def database_mcps(kind, db: Database, rules, lineage, warnings: list[str]):
    """The proposals of one database's MCE file: its kind's. The one seam where every kind's proposals pass."""
    return kind.mcps(db, rules, lineage, warnings)


def write_database(
    store: Store,
    source_name: str,
    db: Database,
    rules,
    lineage,
    build,
    rewrite: bool = False,
    profile_change: tuple[float, tuple[int, int]] = (0.1, (0, 0)),
    recorder=None,
) -> DatabaseResult:
    """Write the database's MCE file and snapshot; keep both when its schema is unchanged (unless `rewrite`).
    `build(db, rules, lineage, warnings)` yields its proposals (the source kind's `mcps`).

    An unchanged schema (same schema version as the stored version record, file intact) whose table statistics
    (row estimates, sizes: the datasetProfile) moved by no more than `profile_change` (share, (row, byte floors);
    source_config.Profile) from what the file holds
    rebuilds nothing: no proposals, no view-SQL parsing, no snapshot parsing, no writes (and `recorder`, the
    source's history.Recorder, is not called). The files then keep the
    statistics and times of their last write, which is also what DataHub holds, since a push sends only changed
    versions; so a day of ordinary inserts pushes nothing.
    """
    schema_hash = db.schema_hash()
    figures = db.profile_figures() if getattr(rules, "profile", False) else {}
    schema_version = data_version(db, rules, schema_hash)
    version = data_version(db, rules, schema_hash, figures)
    stored = DatabaseFiles(store, source_name, db.name)
    t_cov, c_cov = db.coverage()
    result = DatabaseResult(
        database=db.name,
        ok=True,
        uri=stored.uri,
        tables=db.n_tables,
        views=db.n_views,
        columns=db.n_columns,
        table_doc_coverage=t_cov,
        column_doc_coverage=c_cov,
        schema_hash=schema_hash,
        data_version=version,
        snapshot=db,
    )
    recorded = stored.recorded()
    if (
        not rewrite
        and recorded is not None
        and recorded.get("schema_version") == schema_version
        and recorded.get("file_sha256")
        and not figures_moved(recorded.get("figures") or {}, figures, *profile_change)
        and stored.intact()
    ):
        result.rewritten = False
        result.data_version = recorded["data_version"]  # the statistics the file holds, not today's
        result.previous = db  # the same schema: nothing changed, and the snapshot need not be parsed
        result.proposals = recorded.get("proposals", 0)
        result.file_sha256 = recorded["file_sha256"]
        result.warnings = (
            from_record(recorded["file_warnings"], recorded.get("file_warning_codes"))
            if "file_warnings" in recorded
            else list(db.warnings)
        )
        stored.keep(result.warnings)
        return result
    result.previous = stored.previous()
    if recorder is not None:  # the schema history: before the files, so a crash between them loses no version
        ref = recorder.record(db, result.previous, schema_hash, schema_version, (recorded or {}).get("schema_version"))
        result.history_version, result.schema_diff = (ref.seq if ref is not None else None), recorder.last_diff

    record = VersionRecord(
        data_version=version, schema_version=schema_version, figures=figures, file_warnings=list(db.warnings)
    )

    def counted(mcps):
        for m in mcps:
            record.proposals += 1
            yield m

    def drop_parse_caches() -> None:
        if db.n_views and hasattr(lineage, "drop_parse_caches"):
            lineage.drop_parse_caches()  # before the snapshot is written: its views' parse trees go

    # proposals are built, serialized and written one at a time (a database of 10,000 tables would otherwise hold
    # all its proposal objects, their dicts and the whole file's string at once); a failure while building them
    # leaves the old file and snapshot as they were
    stored.write(
        serialize_mcps_chunks(counted(build(db, rules, lineage, record.file_warnings))),
        db,
        record,
        before_snapshot=drop_parse_caches,
    )
    result.proposals, result.file_sha256, result.warnings = record.proposals, record.file_sha256, record.file_warnings
    return result


def extract(
    source: SourceConfig,
    databases: Sequence[str],
    store: Store,
    progress: Optional[Callable[[int, int, DatabaseResult], None]] = None,
    privilege_check: bool = True,
    rewrite: bool = False,
    client=None,
    report: Optional[ExtractionReport] = None,
) -> Iterator[DatabaseResult]:
    """Write the MCE file of each database (BigQuery: dataset); yields one result per database, failures included.

    One bad database never hides the others: its error is reported in its result and the rest go on.
    A database whose schema is unchanged keeps its files (see write_database) unless `rewrite` is set.
    A batch is read whole before anything of it is written (the next batch is read meanwhile, by one other
    thread over the same session: never two statements at once), so a fault while reading (a lost connection, a query
    past its timeout) never writes a degraded file: the batch is read again over a new connection once, then its
    databases fail, and the files they had stay as they were. A server that cannot be reached again fails every
    database not read yet, at once.
    Sources whose kind reads through a client (BigQuery: a google.cloud.bigquery.Client, from dagster-gcp's
    BigQueryResource in defs/) get it as `client`.
    `report`, when given, is filled as the run goes (report.ExtractionReport): every result, what the session's
    reads cost and left out, and the time of each phase; it is complete when the generator is exhausted.
    """
    kind = kind_of(source)
    rules = kind.urn_rules(source)
    report = report if report is not None else ExtractionReport(source=source.name, kind=source.type)
    report.requested += len(databases)
    started = time.perf_counter()

    def build(*args):
        return database_mcps(kind, *args)  # looked up per database, so a test can wrap it

    profile = getattr(source, "profile", None)
    profile_change = (profile.change_share, profile.floors) if profile is not None else (0.0, (0, 0))
    total, done = len(databases), 0
    recorder = history.recorder_for(source, store)
    with report.timed("connect"):
        session = kind.session(source, client)
    store.remove_stale_temp(source.name)  # what a writer killed mid-write left behind
    reader, pending = None, None
    try:
        with report.timed("privilege_check"):
            priv_warnings = session.privilege_warnings(databases) if privilege_check else []
            # what concerns the source as a whole (routines not visible): once in the report, not per database
            for w in session.source_warnings(databases):
                log.warning("%s: %s", source.name, w)
                report.warnings.append(("", w))
        batches = [list(databases[i : i + source.batch_size]) for i in range(0, total, source.batch_size)]
        # the next batch is read (over the same session, by one thread, never two reads at once) while this one
        # is built and written: the server's time on it, most of a normal day's, then overlaps ours
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"read-{source.name}")
        pending = reader.submit(session.read_batch, batches[0]) if batches else None
        for n, batch in enumerate(batches):
            t0 = time.monotonic()
            with report.timed("read"):  # the wait for this batch's read
                snapshots, batch_failure = pending.result()
            pending = reader.submit(session.read_batch, batches[n + 1]) if n + 1 < len(batches) else None
            lineage = kind.lineage(rules, source) if batch_failure is None else None
            try:
                for db in snapshots.values():
                    if isinstance(db, Database):
                        lineage.register(db)
                for name in batch:
                    db = snapshots.get(name)
                    if batch_failure is not None:
                        result = DatabaseResult(database=name, ok=False, failure=batch_failure)
                    elif isinstance(db, DatabaseFailure):  # this database alone could not be read
                        result = DatabaseResult(database=name, ok=False, failure=db)
                    elif db is None:
                        result = DatabaseResult(
                            database=name,
                            ok=True,
                            missing=True,
                            warnings=[
                                Finding(f"database {name!r} does not exist or is not visible", DATABASE_MISSING, name)
                            ],
                        )
                    else:
                        try:
                            with report.timed("write"):
                                result = write_database(
                                    store, source.name, db, rules, lineage, build, rewrite, profile_change, recorder
                                )
                        except Exception as e:  # one bad database must not hide the others
                            log.exception("database %s failed", name)
                            result = DatabaseResult(
                                database=name,
                                ok=False,
                                failure=DatabaseFailure(FailureCause.WRITE, f"{type(e).__name__}: {e}"),
                            )
                    if result.ok:
                        result.warnings[:0] = priv_warnings + session.access_warnings(name)
                    report.add(result)
                    done += 1
                    if progress:
                        progress(done, total, result)
                    yield result
            finally:
                if lineage is not None:
                    lineage.close()  # its SchemaResolver holds a temp SQLite directory
            log.info("batch of %d databases read and written in %.2fs", len(batch), time.monotonic() - t0)
    finally:
        if pending is not None:  # a read still going (the caller stopped early, or a write raised): let it end
            pending.cancel()
            wait([pending])  # bounded: every statement has its timeout
        if reader is not None:
            reader.shutdown(wait=True)
        stats = session.stats
        report.statements += stats.statements
        report.api_calls += stats.api_calls
        report.tables_filtered += stats.tables_filtered
        session.close()
        report.duration_s += time.perf_counter() - started
