"""A loopback stand-in for BigQuery's REST API that executes the SQL it is sent, on hand-written INFORMATION_SCHEMA rows.

google-cloud-bigquery talks to it unchanged: BIGQUERY_EMULATOR_HOST points the client at it, and Application Default
Credentials come from a throwaway service-account key file (GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is this
server, so the OAuth token exchange (a signed JWT grant) happens here too. It answers:
  POST /token                                    OAuth2 refresh -> bearer token
  POST /bigquery/v2/projects/P/queries           jobs.query (what client.query(..., api_method="QUERY") sends)
  GET  /bigquery/v2/projects/P/queries/JOB       jobs.getQueryResults (the same rows again)
  GET  /bigquery/v2/projects/P/datasets[/D]      datasets.list / datasets.get

Queries are executed, not matched: each is parsed as GoogleSQL by sqlglot, transpiled to DuckDB and run in a fresh
in-memory DuckDB database holding the INFORMATION_SCHEMA views it names, with BigQuery's column names and types
(`project`.`region-us`.INFORMATION_SCHEMA.TABLES is a DuckDB table of that catalog, schema and name, holding the rows
of that region's datasets; `project`.`dataset`.INFORMATION_SCHEMA.TABLES those of one dataset). Query parameters
(@datasets) become DuckDB parameters. A query that does not parse, names a column, view, project or parameter that
does not exist, or fails in DuckDB, gets BigQuery's answer to an invalid query (HTTP 400, reason invalidQuery), so
google-cloud-bigquery raises BadRequest. FARM_FINGERPRINT is a DuckDB function: FarmHash Fingerprint64 itself is not
reimplemented, a signed 64-bit hash of the same bytes stands in (digests differ from BigQuery's; the sensor only
compares a dataset's digest with its own from the last tick). BIT_XOR, COUNT, CONCAT, IFNULL, UNNEST, UNION ALL,
JOIN, ORDER BY are DuckDB's own.

The rows are hand-written from BigQuery's INFORMATION_SCHEMA documentation (tests/data/bigquery/<view>.json, in the
shape the reader's queries return: `dataset` for the schema column, COLUMNS and COLUMN_FIELD_PATHS as one list);
`_views()` lays them out as the documented views. They were not captured from BigQuery. Every request is recorded
for assertions.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import duckdb  # noqa: F401  (a missing test dependency fails at collection, not as 120 s of client retries)
import sqlglot  # noqa: F401

DATA = Path(__file__).parent / "data" / "bigquery"
ROW_FILES = ("schemata", "schemata_options", "tables", "table_options", "columns", "views")

# The documented columns of each INFORMATION_SCHEMA view used here, with their types (BigQuery type, DuckDB type).
_S, _I, _T = ("STRING", "VARCHAR"), ("INT64", "BIGINT"), ("TIMESTAMP", "TIMESTAMPTZ")
VIEWS = {
    "SCHEMATA": {
        "catalog_name": _S,
        "schema_name": _S,
        "schema_owner": _S,
        "creation_time": _T,
        "last_modified_time": _T,
        "location": _S,
        "ddl": _S,
        "default_collation_name": _S,
    },
    "SCHEMATA_OPTIONS": {
        "catalog_name": _S,
        "schema_name": _S,
        "option_name": _S,
        "option_type": _S,
        "option_value": _S,
    },
    "TABLES": {
        "table_catalog": _S,
        "table_schema": _S,
        "table_name": _S,
        "table_type": _S,
        "is_insertable_into": _S,
        "is_typed": _S,
        "creation_time": _T,
        "base_table_catalog": _S,
        "base_table_schema": _S,
        "base_table_name": _S,
        "snapshot_time_ms": _T,
        "ddl": _S,
        "default_collation_name": _S,
        "upsert_stream_apply_watermark": _T,
    },
    "TABLE_OPTIONS": {
        "table_catalog": _S,
        "table_schema": _S,
        "table_name": _S,
        "option_name": _S,
        "option_type": _S,
        "option_value": _S,
    },
    "COLUMNS": {
        "table_catalog": _S,
        "table_schema": _S,
        "table_name": _S,
        "column_name": _S,
        "ordinal_position": _I,
        "is_nullable": _S,
        "data_type": _S,
        "is_generated": _S,
        "generation_expression": _S,
        "is_stored": _S,
        "is_hidden": _S,
        "is_updatable": _S,
        "is_system_defined": _S,
        "is_partitioning_column": _S,
        "clustering_ordinal_position": _I,
        "collation_name": _S,
        "column_default": _S,
        "rounding_mode": _S,
    },
    "COLUMN_FIELD_PATHS": {
        "table_catalog": _S,
        "table_schema": _S,
        "table_name": _S,
        "column_name": _S,
        "field_path": _S,
        "data_type": _S,
        "description": _S,
        "collation_name": _S,
        "rounding_mode": _S,
    },
    "VIEWS": {
        "table_catalog": _S,
        "table_schema": _S,
        "table_name": _S,
        "view_definition": _S,
        "check_option": _S,
        "use_standard_sql": _S,
    },
}
SCHEMA_COLUMN = {"SCHEMATA": "schema_name", "SCHEMATA_OPTIONS": "schema_name"}  # the others: table_schema
PROJECT_LEVEL_ONLY = ("SCHEMATA", "SCHEMATA_OPTIONS")  # no dataset-qualified form of these views


def hand_written_rows() -> dict[str, list[dict]]:
    return {name: json.loads((DATA / f"{name}.json").read_text()) for name in ROW_FILES}


load_rows = hand_written_rows  # the name the tests used before the rows were called what they are


class InvalidQuery(Exception):
    """What BigQuery answers with HTTP 400 invalidQuery."""


def farm_fingerprint_standin(text: str) -> int:
    """A signed 64-bit hash of the UTF-8 bytes (FarmHash Fingerprint64 is not reimplemented here)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _views(rows: dict[str, list[dict]], project: str) -> dict[str, list[dict]]:
    """The hand-written rows laid out as the documented INFORMATION_SCHEMA views (missing columns NULL)."""
    out: dict[str, list[dict]] = {
        "SCHEMATA": [
            {"catalog_name": project, "schema_name": r["dataset"], **_drop(r, "dataset")} for r in rows["schemata"]
        ],
        "SCHEMATA_OPTIONS": [
            {"catalog_name": project, "schema_name": r["dataset"], **_drop(r, "dataset")}
            for r in rows["schemata_options"]
        ],
        "TABLES": [
            {"table_catalog": project, "table_schema": r["dataset"], **_drop(r, "dataset")} for r in rows["tables"]
        ],
        "TABLE_OPTIONS": [
            {"table_catalog": project, "table_schema": r["dataset"], **_drop(r, "dataset")}
            for r in rows["table_options"]
        ],
        "VIEWS": [
            {"table_catalog": project, "table_schema": r["dataset"], **_drop(r, "dataset")} for r in rows["views"]
        ],
        "COLUMNS": [],
        "COLUMN_FIELD_PATHS": [],
    }
    for r in rows["columns"]:
        where = {
            "table_catalog": project,
            "table_schema": r["dataset"],
            "table_name": r["table_name"],
            "column_name": r["column_name"],
        }
        out["COLUMN_FIELD_PATHS"].append(
            {**where, "field_path": r["field_path"], "data_type": r["data_type"], "description": r.get("description")}
        )
        if r["field_path"] == r["column_name"]:  # one COLUMNS row per top-level column
            out["COLUMNS"].append(
                {
                    **where,
                    "is_hidden": r.get("is_hidden", "NO"),
                    **{
                        k: r.get(k)
                        for k in (
                            "ordinal_position",
                            "is_nullable",
                            "data_type",
                            "is_partitioning_column",
                            "clustering_ordinal_position",
                            "column_default",
                        )
                    },
                }
            )
    for view, table in out.items():
        unknown = {k for r in table for k in r} - set(VIEWS[view])
        assert not unknown, f"hand-written rows of {view} have columns the view does not: {unknown}"
    return out


def _drop(row: dict, *keys: str) -> dict:
    return {k: v for k, v in row.items() if k not in keys}


def _bq_type(duckdb_type: str) -> str:
    t = str(duckdb_type).upper()
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    if t in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "INT64"
    if t == "BOOLEAN":
        return "BOOL"
    if t in ("DOUBLE", "FLOAT"):
        return "FLOAT64"
    return "STRING"


class BigQueryStub:
    def __init__(self, project: str, rows: Optional[dict[str, list[dict]]] = None):
        self.project = project
        self.rows = rows if rows is not None else hand_written_rows()
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, json body)
        self.queries: list[dict] = []  # {"sql", "datasets", "location", "project", "duckdb_sql", "error"}
        self.tokens_issued = 0
        self.deny_queries = False  # answer query jobs as BigQuery does for an account without the roles
        self.delay_s = 0.0  # every API answer this late (a slow or congested API)
        self._results: dict[str, dict] = {}
        self._jobs: dict[str, dict] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    return {"form": raw.decode()}
                return json.loads(raw) if raw else {}

            def do_POST(self):
                body = self._body()
                stub.requests.append(("POST", self.path, body))
                if stub.delay_s and self.path != "/token":
                    time.sleep(stub.delay_s)
                if self.path == "/token":
                    stub.tokens_issued += 1
                    return self._send(200, {"access_token": "stub-token", "expires_in": 3600, "token_type": "Bearer"})
                if not self._authorized():
                    return self._send(401, {"error": {"code": 401, "message": "no bearer token"}})
                m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/queries", self.path.split("?")[0])
                if m and stub.deny_queries:
                    return self._send(
                        403,
                        {
                            "error": {
                                "code": 403,
                                "status": "PERMISSION_DENIED",
                                "message": (
                                    f"Access Denied: Project {m.group(1)}: User does not have bigquery.jobs.create permission "
                                    f"in project {m.group(1)}."
                                ),
                                "errors": [{"reason": "accessDenied", "message": "denied"}],
                            }
                        },
                    )
                if m:
                    try:
                        return self._send(200, stub._query(m.group(1), body))
                    except Exception as e:  # BigQuery's answer to a query it cannot run; a stand-in fault fails
                        # fast the same way instead of a dropped connection the client would retry for minutes
                        if not isinstance(e, InvalidQuery):
                            e = f"the stand-in itself failed: {type(e).__name__}: {e}"
                        return self._send(
                            400,
                            {
                                "error": {
                                    "code": 400,
                                    "status": "INVALID_ARGUMENT",
                                    "message": str(e),
                                    "errors": [{"reason": "invalidQuery", "location": "q", "message": str(e)}],
                                }
                            },
                        )
                return self._send(404, {"error": {"code": 404, "message": f"not stubbed: POST {self.path}"}})

            def do_GET(self):
                stub.requests.append(("GET", self.path, {}))
                if stub.delay_s:
                    time.sleep(stub.delay_s)
                if not self._authorized():
                    return self._send(401, {"error": {"code": 401, "message": "no bearer token"}})
                path = self.path.split("?")[0]
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/queries/([^/]+)", path):
                    return self._send(200, stub._results[m.group(2)])
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/jobs/([^/]+)", path):
                    return self._send(200, stub._jobs[m.group(2)])
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets", path):
                    return self._send(
                        200,
                        {
                            "kind": "bigquery#datasetList",
                            "datasets": [
                                {
                                    "kind": "bigquery#dataset",
                                    "id": f"{m.group(1)}:{s['dataset']}",
                                    "location": s["location"],
                                    "datasetReference": {"projectId": m.group(1), "datasetId": s["dataset"]},
                                }
                                for s in stub.rows["schemata"]
                            ],
                        },
                    )
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)", path):
                    s = next((s for s in stub.rows["schemata"] if s["dataset"] == m.group(2)), None)
                    if s is None:
                        return self._send(404, {"error": {"code": 404, "message": f"Not found: Dataset {m.group(2)}"}})
                    opts = {
                        o["option_name"]: o["option_value"]
                        for o in stub.rows["schemata_options"]
                        if o["dataset"] == s["dataset"]
                    }
                    from metadata_assets.sources.bigquery import parse_labels, parse_string_literal

                    return self._send(
                        200,
                        {
                            "kind": "bigquery#dataset",
                            "id": f"{m.group(1)}:{s['dataset']}",
                            "location": s["location"],
                            "etag": hashlib.sha256(s["ddl"].encode()).hexdigest()[:12],
                            "datasetReference": {"projectId": m.group(1), "datasetId": s["dataset"]},
                            "description": parse_string_literal(opts.get("description")),
                            "labels": parse_labels(opts.get("labels")),
                        },
                    )
                return self._send(404, {"error": {"code": 404, "message": f"not stubbed: GET {self.path}"}})

            def _authorized(self) -> bool:
                return self.headers.get("Authorization") == "Bearer stub-token"

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "BigQueryStub":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def environ(self, tmp_path: Path) -> dict[str, str]:
        """The environment that points google-cloud-bigquery (via dagster-gcp's resource) at this server."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            .decode()
        )
        adc = tmp_path / "adc.json"  # a throwaway service account whose token_uri is this server
        adc.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project,
                    "private_key_id": "stub",
                    "private_key": key,
                    "client_email": f"catalog@{self.project}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        return {
            "BIGQUERY_EMULATOR_HOST": self.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(adc),
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    # --- query answering: the SQL is executed ---
    def _query(self, project: str, body: dict) -> dict:
        sql = body["query"]
        params = {p["name"]: p for p in body.get("queryParameters", [])}
        datasets = None
        if "datasets" in params:
            datasets = [v["value"] for v in params["datasets"]["parameterValue"]["arrayValues"]]
        record = {
            "sql": sql,
            "datasets": datasets,
            "location": body.get("location"),
            "project": project,
            "duckdb_sql": None,
            "error": None,
        }
        self.queries.append(record)
        try:
            names, types, rows = self._execute(sql, params, record)
        except InvalidQuery as e:
            record["error"] = str(e)
            raise
        int64_ts = bool(body.get("formatOptions", {}).get("useInt64Timestamp"))
        job_id = f"job_{uuid.uuid4().hex[:12]}"
        schema = {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in zip(names, types)]}

        def cell(t, v):
            if v is None:
                return {"v": None}
            if t == "TIMESTAMP":
                micros = int(round(v.astimezone(timezone.utc).timestamp() * 1_000_000))
                return {"v": str(micros) if int64_ts else repr(micros / 1_000_000)}
            return {"v": str(v)}

        result = {
            "kind": "bigquery#queryResponse",
            "jobComplete": True,
            "schema": schema,
            "jobReference": {"projectId": project, "jobId": job_id, "location": body.get("location") or "US"},
            "totalRows": str(len(rows)),
            "rows": [{"f": [cell(t, v) for t, v in zip(types, r)]} for r in rows],
            "cacheHit": False,
            "totalBytesProcessed": "10485760",
        }
        self._results[job_id] = {**result, "kind": "bigquery#getQueryResultsResponse"}
        self._jobs[job_id] = {
            "kind": "bigquery#job",
            "id": f"{project}:{job_id}",
            "jobReference": result["jobReference"],
            "configuration": {"jobType": "QUERY", "query": {"query": sql, "useLegacySql": False}},
            "status": {"state": "DONE"},
            "statistics": {
                "creationTime": "1700000000000",
                "startTime": "1700000000000",
                "endTime": "1700000000100",
                "query": {"totalBytesProcessed": "10485760"},
            },
        }
        return result

    def _execute(self, sql: str, params: dict, record: dict) -> tuple[list[str], list[str], list[tuple]]:
        """Parse as GoogleSQL, create the INFORMATION_SCHEMA views it names, run it in DuckDB."""
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(sql, read="bigquery")
        except sqlglot.errors.ParseError as e:
            raise InvalidQuery(f"Syntax error: {e}") from None
        views = _views(self.rows, self.project)
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.create_function(
                "farm_fingerprint", farm_fingerprint_standin, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("BIGINT")
            )
            made: set[tuple[str, str, str]] = set()
            for table in tree.find_all(exp.Table):
                self._create_view(con, table, views, made)
            used = {p.name for p in tree.find_all(exp.Parameter)} | {
                p.name for p in tree.find_all(exp.Placeholder) if p.name
            }
            missing = used - set(params)
            if missing:
                raise InvalidQuery(f"Query parameter '{sorted(missing)[0]}' not found")
            values = {}
            for name in used:
                p = params[name]
                if "arrayValues" in p["parameterValue"]:
                    values[name] = [v["value"] for v in p["parameterValue"]["arrayValues"]]
                else:
                    values[name] = p["parameterValue"]["value"]
            duck_sql = tree.sql(dialect="duckdb")
            record["duckdb_sql"] = duck_sql
            try:
                cursor = con.execute(duck_sql, values) if values else con.execute(duck_sql)
                rows = cursor.fetchall()
            except duckdb.Error as e:
                raise InvalidQuery(str(e).splitlines()[0]) from None
            names = [d[0] for d in cursor.description]
            return names, [_bq_type(d[1]) for d in cursor.description], rows
        finally:
            con.close()

    def _create_view(self, con, table, views: dict[str, list[dict]], made: set) -> None:
        """`project`.`region-xx`|`dataset`.INFORMATION_SCHEMA.VIEW as a DuckDB table catalog.schema."name"."""
        if not table.name.upper().startswith("INFORMATION_SCHEMA."):
            raise InvalidQuery(
                f"Not found: Table {table.sql(dialect='bigquery')} (this stand-in holds INFORMATION_SCHEMA views only)"
            )
        project, where, name = table.catalog, table.db, table.name
        view = name.split(".", 1)[1].upper()
        if not project or not where:
            raise InvalidQuery(f"Table {name} must be qualified with a project and a region or dataset")
        if project != self.project:
            raise InvalidQuery(f"Access Denied: Project {project}: the stand-in serves project {self.project} only")
        if view not in VIEWS:
            raise InvalidQuery(f"Not found: Table {project}:{where}.{name}")
        if where.lower().startswith("region-"):
            region = where[len("region-") :].lower()
            keep = {s["dataset"] for s in self.rows["schemata"] if s["location"].lower() == region}
        elif view in PROJECT_LEVEL_ONLY:
            raise InvalidQuery(f"INFORMATION_SCHEMA.{view} is not available with a dataset qualifier ({where})")
        else:
            if not any(s["dataset"] == where for s in self.rows["schemata"]):
                raise InvalidQuery(f"Not found: Dataset {project}:{where}")
            keep = {where}
        key = (project, where, name)
        if key in made:
            return
        made.add(key)
        cols = VIEWS[view]
        con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS \"{project}\"")
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{where}"')
        ref = f'"{project}"."{where}"."{name}"'
        con.execute(f"CREATE TABLE {ref} (" + ", ".join(f'"{c}" {t[1]}' for c, t in cols.items()) + ")")
        schema_col = SCHEMA_COLUMN.get(view, "table_schema")
        rows = [r for r in views[view] if r[schema_col] in keep]
        if rows:
            con.executemany(
                f"INSERT INTO {ref} VALUES (" + ", ".join("?" for _ in cols) + ")",
                [[_value(r.get(c), t) for c, t in cols.items()] for r in rows],
            )


def _value(v, t):
    if v is not None and t == _T:
        return datetime.fromisoformat(v)
    return v
