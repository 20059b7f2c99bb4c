"""What one extracted database comes to in Dagster, computed once: its diff, what its checks read, their
evaluations, and what the run does with it (materialize, observe, fail, or nothing for a database gone).

`DatabaseOutcome.of` decides per database; `ExtractionEvents` turns a run's outcomes into its events, in the order
and batches the extraction asset yields them (defs/extraction.py): a materialization per changed database, its
check evaluations after every CHECK_EVERY materializations (one query finds their targets), and the unchanged
databases' observations in batches (defs/event_batches.py) at the end.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Iterator, Optional
from urllib.parse import quote

from dagster import AssetCheckEvaluation, AssetExecutionContext, AssetKey, AssetMaterialization, MetadataValue
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SENSOR_NAME_TAG
from dagster_shared.record import copy

from metadata_assets.catalog import Database
from metadata_assets.defs.checks import (
    WARNING_CODES,
    checks_summary,
    evaluate,
    materialization_targets,
    result_metadata,
    target_of,
)
from metadata_assets.defs.event_batches import ObservationBatch
from metadata_assets.defs.failed_partitions import mark_failed, planned_as_subset
from metadata_assets.defs.keys import DATA_VERSION_TAG
from metadata_assets.defs.unchanged import (
    CHECK_INPUTS,
    check_inputs,
    confirmed_unchanged,
    latest_materializations,
    observation,
    planned_alone_since,
)
from metadata_assets.diagram import database_svg, markdown_image
from metadata_assets.diff import SchemaDiff, diff
from metadata_assets.extract import DatabaseResult, rules_for
from metadata_assets.markdown import cell, in_table, text, warnings_markdown
from metadata_assets.source_config import SourceConfig

CHECK_EVERY = 25  # databases materialized before their check evaluations follow (one query finds their targets)
MAX_LISTED_TABLES = 100  # rows of a partition's table of tables; more are summarised in one line


class Action(Enum):
    MATERIALIZE = "materialize"  # new or changed: a materialization, then its check evaluations
    OBSERVE = "observe"  # as its latest materialization recorded it (defs/unchanged.py)
    FAIL = "fail"  # its extraction failed: the run fails, naming it
    MISSING = "missing"  # the database no longer exists: nothing to report (the schema sensor removes it)


@dataclass
class DatabaseOutcome:
    key: AssetKey
    result: DatabaseResult
    action: Action
    coverage_threshold: float
    diff: Optional[SchemaDiff] = None  # kept for the materialization's picture (None once observed)
    check_metadata: Optional[dict] = None  # what the checks read (checks.result_metadata)
    inputs: str = ""  # digest of what the checks read beyond the schema (unchanged.check_inputs)

    @classmethod
    def of(cls, key: AssetKey, r: DatabaseResult, source: SourceConfig, latest=None) -> "DatabaseOutcome":
        """The outcome of one extracted database; `latest`: its partition's latest materialization record, when
        an unchanged database is to be observed rather than materialized."""
        threshold = source.coverage_threshold
        if not r.ok:
            return cls(key, r, Action.FAIL, threshold)
        if r.missing:
            return cls(key, r, Action.MISSING, threshold)
        # once: for the checks, the diff table and the picture (classified by the source's risk rules)
        d = r.schema_diff or diff(r.previous, r.snapshot, source.risk.rules)
        md = result_metadata(r, d)
        inputs = check_inputs(md, threshold)
        if confirmed_unchanged(r, inputs, latest):
            r.snapshot = r.previous = None  # a batch's snapshots are not all kept until its end
            return cls(key, r, Action.OBSERVE, threshold, None, md, inputs)
        return cls(key, r, Action.MATERIALIZE, threshold, d, md, inputs)

    @property
    def database(self) -> str:
        return self.result.database

    @cached_property
    def evaluations(self) -> list[AssetCheckEvaluation]:
        """The three checks from what this extraction found, without a target: evaluated once, for the
        materialization's `checks` summary and for the evaluations that follow it."""
        return evaluate(self.key, self.database, self.check_metadata, self.coverage_threshold)

    def check_evaluations(self, target) -> list[AssetCheckEvaluation]:
        """The evaluations pointing at the materialization that recorded them (`target`: checks.target_of)."""
        return [copy(e, target_materialization_data=target) for e in self.evaluations]

    def materialization(self, source: SourceConfig, rules, ui_url: Optional[str] = None) -> AssetMaterialization:
        """The database's materialization: its file, what it holds, what changed, and how its checks came out."""
        r, md = self.result, self.check_metadata
        # in the order Dagit lists them: what a person looks for first
        metadata = {
            "path": MetadataValue.path(r.uri),
            "checks": MetadataValue.text(checks_summary(self.evaluations)),
            "tables": r.tables,
            "views": r.views,
            "columns": r.columns,
            "documented_tables_pct": md["documented_tables_pct"],
            "documented_columns_pct": md["documented_columns_pct"],
            "schema_changed": md["schema_changed"],
            "schema_diff": md["schema_diff"],
            "schema_risk": md["schema_risk"],
        }
        if r.history_version is not None:  # the same diff, with the versions before it: metadata-assets history
            metadata["schema_history"] = MetadataValue.text(
                f"version {r.history_version}: metadata-assets history --source {source.name} -d {r.database!r}"
            )
        if r.snapshot is not None:
            metadata["tables_and_views"] = _tables_table(r.snapshot, rules, ui_url)
            svg = database_svg(r.snapshot, self.diff)
            if svg is not None:  # tables, keys, view lineage and what changed, drawn
                metadata["picture"] = MetadataValue.md(markdown_image(svg, f"{r.database}: tables, views, lineage"))
        metadata.update(
            {
                "warnings": MetadataValue.md(warnings_markdown(r.warnings)),
                "warning_count": len(r.warnings),
                WARNING_CODES: md[WARNING_CODES],
                "proposals": r.proposals,
                "rewritten": r.rewritten,
                "content_hash": MetadataValue.text(r.data_version or ""),
                "file_sha256": MetadataValue.text(r.file_sha256 or ""),
                CHECK_INPUTS: MetadataValue.text(self.inputs),
            }
        )
        return AssetMaterialization(
            asset_key=self.key, partition=r.database, metadata=metadata, tags={DATA_VERSION_TAG: r.data_version}
        )


def materialization(key: AssetKey, r: DatabaseResult, source: SourceConfig, ui_url=None) -> AssetMaterialization:
    """The materialization of a database just extracted, on its own (no latest record: never observed)."""
    return DatabaseOutcome.of(key, r, source).materialization(source, rules_for(source), ui_url)


def _tables_table(db: Database, rules, ui_url) -> MetadataValue:
    """The database's tables and views as one markdown table (one string: a Dagster table of records costs several
    times more to store and read back per materialization, and a changed database is materialized each time)."""
    lines = ["| name | kind | columns | comment | row estimate | DataHub |", "|---|---|---|---|---|---|"]
    for t in db.tables[:MAX_LISTED_TABLES]:
        link = (
            f"[open]({ui_url.rstrip('/')}/dataset/{quote(rules.dataset(db.name, t.name), safe='')})" if ui_url else ""
        )
        estimate = "" if t.is_view or t.row_estimate is None else f"~{t.row_estimate:,}"
        lines.append(
            f"| {cell(t.name)} | {t.table_type.lower()} | {len(t.columns)} | "
            f"{in_table(text(t.comment)) if t.comment else ''} | {estimate} | {link} |"
        )
    if len(db.tables) > MAX_LISTED_TABLES:
        lines.append(f"\n... and {len(db.tables) - MAX_LISTED_TABLES} more (the MCE file lists all)")
    return MetadataValue.md("\n".join(lines))


@dataclass
class ExtractionEvents:
    """One extraction run's outcomes, as the events it yields. `latest`: each partition's latest materialization
    record, for the databases that may be observed (empty: every database found materializes); `subset`: the run
    planned its partitions with one event (defs/failed_partitions.py), so it marks its failed databases itself."""

    context: AssetExecutionContext
    key: AssetKey
    source: SourceConfig
    rules: object
    ui_url: Optional[str]
    latest: dict
    subset: bool
    failures: list[DatabaseResult] = field(default_factory=list)
    unchanged: list[DatabaseOutcome] = field(default_factory=list)  # to observe at the end (or materialize)
    done: set[str] = field(default_factory=set)  # databases materialized, observed or found missing
    to_check: list[DatabaseOutcome] = field(default_factory=list)  # materialized, evaluations not yet yielded

    def __post_init__(self):
        self.checks_selected = {k.name for k in self.context.selected_asset_check_keys}
        self.observations = ObservationBatch(self.context)  # one statement per batch (DAGSTER_EVENT_BATCH_SIZE)

    @classmethod
    def of_run(
        cls,
        context: AssetExecutionContext,
        key: AssetKey,
        source: SourceConfig,
        rules,
        ui_url: Optional[str],
        rewrite: bool,
    ) -> "ExtractionEvents":
        databases = list(context.partition_keys)
        # each partition's latest materialization: a database found as it recorded it is observed instead
        # (in runs the schedule and the sensors start; one started by hand materializes what it was asked to)
        automated = SCHEDULE_NAME_TAG in context.run.tags or SENSOR_NAME_TAG in context.run.tags
        latest = latest_materializations(context.instance, key, databases) if automated and not rewrite else {}
        # planned with one event (defs/failed_partitions.py): this step marks its failed databases failed itself,
        # and a database that failed before materializes (clearing its failure in Dagit) rather than being observed
        subset = planned_as_subset(context, key)
        if subset and latest:
            for db in planned_alone_since(context.instance, key, databases, latest):
                latest.pop(db, None)
        return cls(context, key, source, rules, ui_url, latest, subset)

    def add(self, r: DatabaseResult) -> Iterator:
        """The events of one database as the extraction yields it (none for an unchanged one until `end`)."""
        for w in r.warnings:
            self.context.log.warning(f"{r.database}: {w}")
        o = DatabaseOutcome.of(self.key, r, self.source, self.latest.get(r.database))
        if o.action is Action.FAIL:
            self.failures.append(r)
            self.context.log.error(f"{r.database}: {r.error}")
        elif o.action is Action.MISSING:
            self.done.add(r.database)
        elif o.action is Action.OBSERVE:
            self.unchanged.append(o)
        else:
            yield from self._materialize(o)

    def end(self) -> Iterator:
        """After the last database: the unchanged ones, and the evaluations still to follow."""
        if self.failures and not self.subset:
            # A failed run marks each partition it planned and did not materialize as failed in Dagit: only the
            # databases that failed may show so. On such a day the unchanged ones materialize as before (without
            # their table of tables and picture, which their previous materialization shows).
            for o in self.unchanged:
                yield from self._materialize(o)
        else:
            for o in self.unchanged:
                rec = self.latest[o.database]
                self.observations.add(observation(self.key, o.result, rec))
                self.done.add(o.database)
                if self.checks_selected:  # an automated run that selected the checks: evaluated as on demand
                    yield from (
                        e
                        for e in evaluate(
                            self.key,
                            o.database,
                            rec.asset_materialization.metadata,
                            o.coverage_threshold,
                            target_of(rec),
                        )
                        if e.check_name in self.checks_selected
                    )
            self.observations.flush()
        yield from self._evaluations()

    def mark_failed(self, errors: dict[str, str]) -> None:
        """{database: error} shown failed in Dagit, in a run planned with one event (the others' are already)."""
        if self.subset:
            mark_failed(self.context, self.key, errors)

    def mark_not_done_failed(self, e: Exception) -> None:
        """After a fault outside any one database: those not done show failed; those observed keep it."""
        if self.subset:
            with contextlib.suppress(Exception):
                self.observations.flush()  # those confirmed before the fault keep their observation
            mark_failed(
                self.context,
                self.key,
                {
                    db: f"the run failed before this database was done: {type(e).__name__}: {e}"
                    for db in self.context.partition_keys
                    if db not in self.done
                },
            )

    @property
    def observed(self) -> int:
        """How many databases this run confirmed unchanged with an observation."""
        return len(self.unchanged) if self.subset or not self.failures else 0

    def _materialize(self, o: DatabaseOutcome) -> Iterator:
        # a generator with no Output: only these events materialize
        yield o.materialization(self.source, self.rules, self.ui_url)
        self.done.add(o.database)
        self.to_check.append(o)
        if len(self.to_check) >= CHECK_EVERY:
            yield from self._evaluations()  # per partition

    def _evaluations(self) -> list[AssetCheckEvaluation]:
        """The checks of the databases materialized since the last call, pointing at their materializations, which
        the instance has stored by then (Dagit then counts them current)."""
        if not self.to_check:
            return []
        targets = materialization_targets(self.context, self.key, [o.database for o in self.to_check])
        out = [e for o in self.to_check for e in o.check_evaluations(targets.get(o.database))]
        self.to_check = []
        return out
