"""Read BigQuery schemas from INFORMATION_SCHEMA only: one dataset becomes one catalog snapshot (catalog.Database).

Two ways to scope the views, chosen by the source's `regions`:
- regions set: region-qualified views (`project`.`region-us`.INFORMATION_SCHEMA.TABLES ...), filtered with
  `table_schema IN UNNEST(@datasets)`: a fixed number of queries per batch of datasets and region (6), and one
  fingerprint query per region. Needs the grant on the project (region-qualified views check project permissions).
- regions unset: datasets listed and described with the API (datasets.list / datasets.get, no query job), then four
  dataset-qualified queries per dataset (`project`.`dataset`.INFORMATION_SCHEMA.*). Works with dataset-level grants.
Every value is a query parameter; names that cannot be parameters (project, region, dataset in a view's path) are
backquoted after validation. Nothing here reads table data: INFORMATION_SCHEMA and dataset metadata only.

Nested STRUCT/ARRAY columns: COLUMNS joined with COLUMN_FIELD_PATHS gives one row per field path ("addr",
"addr.city", ...), each with its own type and description; each becomes a catalog Column named by its field path
(nested ones are nullable as far as the snapshot knows: COLUMN_FIELD_PATHS has no mode). No Dagster here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Optional, Sequence

from metadata_assets.catalog import Column, Database, Table
from metadata_assets.report import VIEW_UNREADABLE, Finding
from metadata_assets.sources.bigquery.config import BigQuerySource

log = logging.getLogger(__name__)

# Table options kept as properties (description becomes the table's comment, labels become label.<key>).
TABLE_OPTIONS = (
    "description",
    "labels",
    "friendly_name",
    "expiration_timestamp",
    "partition_expiration_days",
    "require_partition_filter",
    "max_staleness",
    "enable_refresh",
    "refresh_interval_minutes",
)
DATASET_OPTIONS = (
    "description",
    "labels",
    "friendly_name",
    "default_table_expiration_days",
    "default_partition_expiration_days",
)
_NAME = re.compile(r"[A-Za-z0-9_\-.:$]+")  # project ids, regions, dataset ids as they may appear in a view path


def _quoted(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"unexpected character in BigQuery name {name!r}")
    return f"`{name}`"


@dataclass(frozen=True)
class Scope:
    """Where INFORMATION_SCHEMA is read: one region of the project, or one dataset."""

    project: str
    region: Optional[str] = None
    dataset: Optional[str] = None

    def view(self, name: str) -> str:
        where = f"region-{self.region}" if self.region else self.dataset
        return f"{_quoted(self.project)}.{_quoted(where)}.INFORMATION_SCHEMA.{name}"

    @property
    def location(self) -> Optional[str]:
        return self.region


def _in_list(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def schemata_sql(scope: Scope) -> str:
    return (
        "SELECT schema_name AS dataset, location, creation_time, last_modified_time "
        f"FROM {scope.view('SCHEMATA')} WHERE schema_name IN UNNEST(@datasets)"
    )


def schemata_options_sql(scope: Scope) -> str:
    return (
        "SELECT schema_name AS dataset, option_name, option_value "
        f"FROM {scope.view('SCHEMATA_OPTIONS')} "
        f"WHERE schema_name IN UNNEST(@datasets) AND option_name IN ({_in_list(DATASET_OPTIONS)})"
    )


def tables_sql(scope: Scope) -> str:
    return (
        "SELECT table_schema AS dataset, table_name, table_type, creation_time, ddl "
        f"FROM {scope.view('TABLES')} WHERE table_schema IN UNNEST(@datasets)"
    )


def table_options_sql(scope: Scope) -> str:
    return (
        "SELECT table_schema AS dataset, table_name, option_name, option_value "
        f"FROM {scope.view('TABLE_OPTIONS')} "
        f"WHERE table_schema IN UNNEST(@datasets) AND option_name IN ({_in_list(TABLE_OPTIONS)})"
    )


def columns_sql(scope: Scope) -> str:
    return (
        "SELECT c.table_schema AS dataset, c.table_name, c.column_name, c.ordinal_position, c.is_nullable, "
        "c.is_partitioning_column, c.clustering_ordinal_position, c.column_default, "
        "f.field_path, f.data_type, f.description "
        f"FROM {scope.view('COLUMNS')} AS c JOIN {scope.view('COLUMN_FIELD_PATHS')} AS f "
        "ON f.table_schema = c.table_schema AND f.table_name = c.table_name AND f.column_name = c.column_name "
        "WHERE c.table_schema IN UNNEST(@datasets) AND c.is_hidden = 'NO' "
        "ORDER BY dataset, c.table_name, c.ordinal_position, f.field_path"
    )


def views_sql(scope: Scope) -> str:
    return (
        "SELECT table_schema AS dataset, table_name, view_definition, use_standard_sql "
        f"FROM {scope.view('VIEWS')} WHERE table_schema IN UNNEST(@datasets)"
    )


def fingerprint_sql(scope: Scope) -> str:
    """Per dataset: a hash of every table's DDL (columns, nested fields, descriptions, labels, partitioning,
    clustering, view SQL are all in it) and of the dataset's own DDL (its options). Metadata only: data never
    changes a DDL, so loads and DML leave the fingerprint alone."""
    return (
        "SELECT table_schema AS dataset, 't' AS part, COUNT(*) AS n, "
        "BIT_XOR(FARM_FINGERPRINT(CONCAT(table_name, '|', table_type, '|', IFNULL(ddl, '')))) AS h "
        f"FROM {scope.view('TABLES')} "
        + ("" if scope.region else "WHERE table_schema IN UNNEST(@datasets) ")
        + "GROUP BY table_schema"
        + (
            f" UNION ALL SELECT schema_name, 's', 1, FARM_FINGERPRINT(IFNULL(ddl, '')) FROM {scope.view('SCHEMATA')}"
            if scope.region
            else ""
        )
    )


# --- parsing option values (they come back as GoogleSQL literals) ---

_LABEL = re.compile(r'STRUCT\("((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)"\)')


def parse_string_literal(value: Optional[str]) -> Optional[str]:
    """'"a \\"b\\" \\u00e9"' -> 'a "b" é' (TABLE_OPTIONS shows strings as GoogleSQL literals)."""
    if value is None:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)  # GoogleSQL's escapes for these values are JSON's (\", \\, \n, \uXXXX)
        except ValueError:
            return value[1:-1]
    return value


def parse_labels(value: Optional[str]) -> dict[str, str]:
    """'[STRUCT("env", "prod"), STRUCT("team", "growth")]' -> {"env": "prod", "team": "growth"}."""
    return {parse_string_literal(f'"{k}"'): parse_string_literal(f'"{v}"') for k, v in _LABEL.findall(value or "")}


def _options(rows: list[dict]) -> tuple[str, dict[str, str]]:
    """(description, properties) from option rows of one object."""
    description, props = "", {}
    for r in sorted(rows, key=lambda r: r["option_name"]):
        name, value = r["option_name"], r["option_value"]
        if name == "description":
            description = parse_string_literal(value) or ""
        elif name == "labels":
            props.update({f"label.{k}": v for k, v in sorted(parse_labels(value).items())})
        elif value is not None:
            props[name] = parse_string_literal(value)
    return description, props


_PARTITION_BY = re.compile(r"^PARTITION BY (.+?);?$", re.MULTILINE)
_CLUSTER_BY = re.compile(r"^CLUSTER BY (.+?);?$", re.MULTILINE)


def _ts(v) -> Optional[str]:
    return v.isoformat() if isinstance(v, datetime) else (str(v) if v is not None else None)


def base_type(data_type: str) -> str:
    """'ARRAY<STRUCT<a INT64>>' -> 'ARRAY', 'NUMERIC(10, 2)' -> 'NUMERIC'."""
    return re.split(r"[<(]", data_type, maxsplit=1)[0].strip().upper()


def build_dataset(
    name: str,
    info: dict,
    option_rows: list[dict],
    tables: list[dict],
    table_options: list[dict],
    columns: list[dict],
    views: list[dict],
    source: BigQuerySource,
) -> Database:
    """Rows of one dataset -> its snapshot (the pure part of read(), tested on hand-written rows)."""
    comment, props = _options(option_rows)
    if info.get("description"):  # from the API (per-dataset mode)
        comment = info["description"]
    props.update({f"label.{k}": v for k, v in sorted((info.get("labels") or {}).items())})
    if info.get("location"):
        props["location"] = info["location"]
    db = Database(name=name, comment=comment, properties=dict(sorted(props.items())))
    opts_by_table: dict[str, list[dict]] = defaultdict(list)
    for r in table_options:
        opts_by_table[r["table_name"]].append(r)
    cols_by_table: dict[str, list[dict]] = defaultdict(list)
    for r in columns:
        cols_by_table[r["table_name"]].append(r)
    view_sql = {r["table_name"]: r["view_definition"] for r in views}
    for t in sorted(tables, key=lambda r: r["table_name"]):
        tname, ttype = t["table_name"], t["table_type"]
        if not source.table_allowed(name, tname):
            continue
        if ttype in ("VIEW", "MATERIALIZED VIEW") and not source.include_views:
            continue
        tcomment, tprops = _options(opts_by_table.get(tname, []))
        ddl = t.get("ddl") or ""
        if m := _PARTITION_BY.search(ddl):
            tprops["partitioning"] = m.group(1).strip()
        if m := _CLUSTER_BY.search(ddl):
            tprops["clustering"] = m.group(1).strip()
        rows = sorted(cols_by_table.get(tname, []), key=lambda r: (int(r["ordinal_position"]), r["field_path"]))
        part_cols = [
            r["column_name"]
            for r in rows
            if r["field_path"] == r["column_name"] and r.get("is_partitioning_column") == "YES"
        ]
        clustered = sorted(
            (int(r["clustering_ordinal_position"]), r["column_name"])
            for r in rows
            if r["field_path"] == r["column_name"] and r.get("clustering_ordinal_position") is not None
        )
        if part_cols:
            tprops["partition_columns"] = ",".join(part_cols)
        if clustered:
            tprops["clustering_columns"] = ",".join(c for _, c in clustered)
        table = Table(
            name=tname,
            table_type=ttype,
            comment=tcomment,
            create_time=_ts(t.get("creation_time")),
            columns=[
                Column(
                    name=r["field_path"],
                    ordinal=int(r["ordinal_position"]),
                    column_type=r["data_type"],
                    data_type=base_type(r["data_type"]),
                    nullable=(r["is_nullable"] == "YES") if r["field_path"] == r["column_name"] else True,
                    default=None if r.get("column_default") in (None, "NULL") else r["column_default"],
                    comment=r.get("description") or "",
                )
                for r in rows
            ],
            view_definition=view_sql.get(tname)
            if ttype == "VIEW"
            else (ddl or None)
            if ttype == "MATERIALIZED VIEW"
            else None,
            properties=dict(sorted(tprops.items())),
        )
        if ttype == "VIEW" and tname not in view_sql:
            db.warnings.append(
                Finding(
                    f"view {tname!r}: no row in INFORMATION_SCHEMA.VIEWS (no SQL, no lineage)", VIEW_UNREADABLE, tname
                )
            )
        db.tables.append(table)
    return db


class BigQueryReader:
    """INFORMATION_SCHEMA reads over one google.cloud.bigquery.Client (from dagster-gcp's BigQueryResource)."""

    def __init__(
        self, client, source: BigQuerySource, retry_timeout_s: float = 120, deadline_s: Optional[float] = None
    ):
        from google.cloud import bigquery

        self.client = client
        self.source = source
        # google-cloud-bigquery retries transient errors for 10 minutes by default: longer than a sensor tick may take
        self.retry = bigquery.DEFAULT_RETRY.with_timeout(retry_timeout_s)
        self.timeout_s = retry_timeout_s
        # one bound over every query and API call of this reader together (a sensor tick: base.SENSOR_TICK_DEADLINE_S)
        self.deadline_s = deadline_s
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.queries = 0  # query jobs run
        self.api_calls = 0  # datasets.list / datasets.get calls
        self.tables_filtered = 0  # left out by table_pattern or include_views

    def deadline_passed(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline - 0.05

    def deadline_error(self):
        from google.api_core.exceptions import DeadlineExceeded

        return DeadlineExceeded(
            f"source {self.source.name!r}: the fingerprint read did not finish within the sensor "
            f"tick's deadline of {self.deadline_s:g}s (every query and API call together, inside "
            "Dagster's 60 s sensor timeout); the next tick tries again"
        )

    def _left(self) -> tuple[object, float]:
        """(retry, timeout) for the next call: the reader's own, or what is left of its deadline."""
        if self.deadline is None:
            return self.retry, self.timeout_s
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.deadline_error()
        return self.retry.with_timeout(min(left, self.timeout_s)), min(left, self.timeout_s)

    def _query(self, sql: str, scope: Scope, datasets: Optional[Sequence[str]] = None) -> list[dict]:
        from google.cloud import bigquery

        params = [bigquery.ArrayQueryParameter("datasets", "STRING", list(datasets))] if datasets is not None else []
        self.queries += 1
        retry, timeout = self._left()
        job = self.client.query(
            sql,
            job_config=bigquery.QueryJobConfig(query_parameters=params),
            project=self.source.project,
            location=scope.location,
            api_method="QUERY",  # jobs.query: one round trip for small results
            retry=retry,
            job_retry=None,
            timeout=timeout,
        )
        retry, timeout = self._left()
        return [dict(row.items()) for row in job.result(retry=retry, timeout=timeout)]

    def _regions(self) -> list[Scope]:
        return [Scope(self.source.project, region=r) for r in self.source.regions or ()]

    def list_databases(self) -> list[str]:
        """Allowed datasets that exist and are visible, sorted."""
        return sorted(self._dataset_locations())

    def _dataset_locations(self) -> dict[str, Optional[str]]:
        """{dataset: region} (region None in per-dataset mode) of the allowed datasets."""
        found: dict[str, Optional[str]] = {}
        if self.source.regions:
            for scope in self._regions():
                for r in self._query(f"SELECT schema_name AS dataset FROM {scope.view('SCHEMATA')}", scope):
                    if self.source.database_allowed(r["dataset"]):
                        found[r["dataset"]] = scope.region
        else:
            self.api_calls += 1
            for item in self.client.list_datasets(self.source.project, retry=self.retry):
                if self.source.database_allowed(item.dataset_id):
                    found[item.dataset_id] = None
        return found

    def read(self, datasets: Sequence[str]) -> Iterator[Database]:
        """One snapshot per requested dataset, in the order given; a missing dataset yields nothing."""
        if not datasets:
            return
        got: dict[str, Database] = {}
        if self.source.regions:
            for scope in self._regions():
                got.update(self._read_region(scope, list(datasets)))
        else:
            for name in datasets:
                db = self._read_one(name)
                if db is not None:
                    got[name] = db
        for name in datasets:
            if name in got:
                yield got[name]

    def _read_region(self, scope: Scope, datasets: list[str]) -> dict[str, Database]:
        schemata = self._query(schemata_sql(scope), scope, datasets)
        here = [r["dataset"] for r in schemata]
        if not here:
            return {}
        rows = {
            name: self._query(sql(scope), scope, here)
            for name, sql in (
                ("options", schemata_options_sql),
                ("tables", tables_sql),
                ("table_options", table_options_sql),
                ("columns", columns_sql),
                ("views", views_sql),
            )
        }
        by = {k: defaultdict(list) for k in rows}
        for k, rs in rows.items():
            for r in rs:
                by[k][r["dataset"]].append(r)
        out = {}
        for s in schemata:
            name = s["dataset"]
            out[name] = build_dataset(
                name,
                {"location": s.get("location")},
                by["options"][name],
                by["tables"][name],
                by["table_options"][name],
                by["columns"][name],
                by["views"][name],
                self.source,
            )
            self.tables_filtered += len(by["tables"][name]) - len(out[name].tables)
        return out

    def _read_one(self, name: str) -> Optional[Database]:
        from google.api_core.exceptions import NotFound

        try:
            self.api_calls += 1
            ds = self.client.get_dataset(f"{self.source.project}.{name}", retry=self.retry)
        except NotFound:
            return None
        scope = Scope(self.source.project, dataset=name)
        rows = {
            k: self._query(sql(scope), scope, [name])
            for k, sql in (
                ("tables", tables_sql),
                ("table_options", table_options_sql),
                ("columns", columns_sql),
                ("views", views_sql),
            )
        }
        info = {"description": ds.description, "labels": ds.labels, "location": ds.location}
        db = build_dataset(
            name, info, [], rows["tables"], rows["table_options"], rows["columns"], rows["views"], self.source
        )
        self.tables_filtered += len(rows["tables"]) - len(db.tables)
        return db

    def fingerprints(self) -> dict[str, str]:
        """{dataset: fingerprint} of the allowed datasets: one query per region (or per dataset without regions)."""
        parts: dict[str, list[str]] = defaultdict(list)
        if self.source.regions:
            for scope in self._regions():
                for r in self._query(fingerprint_sql(scope), scope):
                    parts[r["dataset"]].append(f"{scope.region}:{r['part']}:{r['n']}:{r['h']}")
        else:
            self.api_calls += 1
            retry, timeout = self._left()
            for item in list(self.client.list_datasets(self.source.project, retry=retry, timeout=timeout)):
                name = item.dataset_id
                if not self.source.database_allowed(name):
                    continue
                self.api_calls += 1
                retry, timeout = self._left()
                ds = self.client.get_dataset(f"{self.source.project}.{name}", retry=retry, timeout=timeout)
                parts[name].append(f"d:{ds.etag}")
                scope = Scope(self.source.project, dataset=name)
                for r in self._query(fingerprint_sql(scope), scope, [name]):
                    parts[name].append(f"t:{r['n']}:{r['h']}")
        return {db: "|".join(sorted(p)) for db, p in parts.items() if self.source.database_allowed(db)}


def grant_commands(
    source: BigQuerySource, member: str = "serviceAccount:<catalog-sa>@<project>.iam.gserviceaccount.com"
) -> list[str]:
    """The least-privilege IAM bindings: metadata readable, table data never; query jobs allowed (INFORMATION_SCHEMA
    is read by query jobs, billed to the project)."""
    return [
        f"gcloud projects add-iam-policy-binding {source.project} --member={member} "
        "--role=roles/bigquery.metadataViewer",
        f"gcloud projects add-iam-policy-binding {source.project} --member={member} --role=roles/bigquery.jobUser",
    ]
