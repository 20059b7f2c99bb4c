"""A loopback stand-in for BigQuery's REST API, answering from recorded INFORMATION_SCHEMA rows.

google-cloud-bigquery talks to it unchanged: BIGQUERY_EMULATOR_HOST points the client at it, and Application Default
Credentials come from a throwaway service-account key file (GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is this
server, so the OAuth token exchange (a signed JWT grant) happens here too. It answers:
  POST /token                                    OAuth2 refresh -> bearer token
  POST /bigquery/v2/projects/P/queries           jobs.query (what client.query(..., api_method="QUERY") sends)
  GET  /bigquery/v2/projects/P/queries/JOB       jobs.getQueryResults (the same rows again)
  GET  /bigquery/v2/projects/P/datasets[/D]      datasets.list / datasets.get
Queries are not executed: the view named in FROM picks the recorded rows (tests/data/bigquery/<view>.json),
filtered by the @datasets array parameter, projected on the SELECT list's output names. Fingerprint queries get
per-dataset counts and hashes of the recorded DDL. Every request is recorded for assertions.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

DATA = Path(__file__).parent / "data" / "bigquery"
VIEW_FILES = {"SCHEMATA": "schemata", "SCHEMATA_OPTIONS": "schemata_options", "TABLES": "tables",
              "TABLE_OPTIONS": "table_options", "COLUMNS": "columns", "VIEWS": "views"}
TYPES = {"creation_time": "TIMESTAMP", "last_modified_time": "TIMESTAMP", "ordinal_position": "INT64",
         "clustering_ordinal_position": "INT64", "n": "INT64", "h": "INT64"}


def load_rows() -> dict[str, list[dict]]:
    return {name: json.loads((DATA / f"{name}.json").read_text()) for name in VIEW_FILES.values()}


def _output_names(sql: str) -> list[str]:
    select = re.match(r"SELECT (.*?) FROM ", sql, re.S).group(1)
    names = []
    for item in select.split(", "):
        m = re.search(r" AS (\w+)$", item)
        names.append(m.group(1) if m else item.split(".")[-1].strip())
    return names


def _ts_value(iso: str, int64: bool) -> str:
    from datetime import datetime

    seconds = datetime.fromisoformat(iso).timestamp()
    return str(int(round(seconds * 1_000_000))) if int64 else repr(seconds)


class BigQueryStub:
    def __init__(self, project: str, rows: Optional[dict[str, list[dict]]] = None):
        self.project = project
        self.rows = rows if rows is not None else load_rows()
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, json body)
        self.queries: list[dict] = []  # {"sql", "datasets", "location", "project"}
        self.tokens_issued = 0
        self.deny_queries = False  # answer query jobs as BigQuery does for an account without the roles
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
                if self.path == "/token":
                    stub.tokens_issued += 1
                    return self._send(200, {"access_token": "stub-token", "expires_in": 3600,
                                            "token_type": "Bearer"})
                if not self._authorized():
                    return self._send(401, {"error": {"code": 401, "message": "no bearer token"}})
                m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/queries", self.path.split("?")[0])
                if m and stub.deny_queries:
                    return self._send(403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": (
                        f"Access Denied: Project {m.group(1)}: User does not have bigquery.jobs.create permission "
                        f"in project {m.group(1)}."), "errors": [{"reason": "accessDenied", "message": "denied"}]}})
                if m:
                    return self._send(200, stub._query(m.group(1), body))
                return self._send(404, {"error": {"code": 404, "message": f"not stubbed: POST {self.path}"}})

            def do_GET(self):
                stub.requests.append(("GET", self.path, {}))
                if not self._authorized():
                    return self._send(401, {"error": {"code": 401, "message": "no bearer token"}})
                path = self.path.split("?")[0]
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/queries/([^/]+)", path):
                    return self._send(200, stub._results[m.group(2)])
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/jobs/([^/]+)", path):
                    return self._send(200, stub._jobs[m.group(2)])
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets", path):
                    return self._send(200, {"kind": "bigquery#datasetList", "datasets": [
                        {"kind": "bigquery#dataset", "id": f"{m.group(1)}:{s['dataset']}", "location": s["location"],
                         "datasetReference": {"projectId": m.group(1), "datasetId": s["dataset"]}}
                        for s in stub.rows["schemata"]]})
                if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)", path):
                    s = next((s for s in stub.rows["schemata"] if s["dataset"] == m.group(2)), None)
                    if s is None:
                        return self._send(404, {"error": {"code": 404, "message": f"Not found: Dataset {m.group(2)}"}})
                    opts = {o["option_name"]: o["option_value"] for o in stub.rows["schemata_options"]
                            if o["dataset"] == s["dataset"]}
                    from metadata_assets.sources.bigquery import parse_labels, parse_string_literal

                    return self._send(200, {
                        "kind": "bigquery#dataset", "id": f"{m.group(1)}:{s['dataset']}", "location": s["location"],
                        "etag": hashlib.sha256(s["ddl"].encode()).hexdigest()[:12],
                        "datasetReference": {"projectId": m.group(1), "datasetId": s["dataset"]},
                        "description": parse_string_literal(opts.get("description")),
                        "labels": parse_labels(opts.get("labels"))})
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

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        adc = tmp_path / "adc.json"  # a throwaway service account whose token_uri is this server
        adc.write_text(json.dumps({"type": "service_account", "project_id": self.project,
                                   "private_key_id": "stub", "private_key": key,
                                   "client_email": f"catalog@{self.project}.iam.gserviceaccount.com",
                                   "client_id": "1", "token_uri": f"{self.url}/token"}))
        return {"BIGQUERY_EMULATOR_HOST": self.url, "GOOGLE_APPLICATION_CREDENTIALS": str(adc),
                "GOOGLE_CLOUD_PROJECT": self.project}

    # --- query answering ---
    def _query(self, project: str, body: dict) -> dict:
        sql = body["query"]
        params = {p["name"]: p for p in body.get("queryParameters", [])}
        datasets = None
        if "datasets" in params:
            datasets = [v["value"] for v in params["datasets"]["parameterValue"]["arrayValues"]]
        self.queries.append({"sql": sql, "datasets": datasets, "location": body.get("location"), "project": project})
        int64_ts = bool(body.get("formatOptions", {}).get("useInt64Timestamp"))
        if "FARM_FINGERPRINT" in sql:
            names, rows = ["dataset", "part", "n", "h"], self._fingerprint_rows(sql, datasets)
        else:
            view = re.search(r"INFORMATION_SCHEMA\.(\w+)", sql).group(1)
            names = _output_names(sql)
            rows = [r for r in self.rows[VIEW_FILES[view]] if datasets is None or r["dataset"] in datasets]
            if (m := re.search(r"`region-([^`]+)`", sql)) and view == "SCHEMATA":
                rows = [r for r in rows if r["location"].lower() == m.group(1)]
            rows = [{n: r.get(n) for n in names} for r in rows]
        job_id = f"job_{uuid.uuid4().hex[:12]}"
        schema = {"fields": [{"name": n, "type": TYPES.get(n, "STRING"), "mode": "NULLABLE"} for n in names]}

        def cell(n, v):
            if v is None:
                return {"v": None}
            if TYPES.get(n) == "TIMESTAMP":
                return {"v": _ts_value(v, int64_ts)}
            return {"v": str(v)}

        result = {"kind": "bigquery#queryResponse", "jobComplete": True, "schema": schema,
                  "jobReference": {"projectId": project, "jobId": job_id, "location": body.get("location") or "US"},
                  "totalRows": str(len(rows)), "rows": [{"f": [cell(n, r[n]) for n in names]} for r in rows],
                  "cacheHit": False, "totalBytesProcessed": "10485760"}
        self._results[job_id] = {**result, "kind": "bigquery#getQueryResultsResponse"}
        self._jobs[job_id] = {"kind": "bigquery#job", "id": f"{project}:{job_id}", "jobReference": result["jobReference"],
                              "configuration": {"jobType": "QUERY", "query": {"query": sql, "useLegacySql": False}},
                              "status": {"state": "DONE"},
                              "statistics": {"creationTime": "1700000000000", "startTime": "1700000000000",
                                             "endTime": "1700000000100", "query": {"totalBytesProcessed": "10485760"}}}
        return result

    def _fingerprint_rows(self, sql: str, datasets: Optional[list[str]]) -> list[dict]:
        def h(text: str) -> int:
            return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)

        out: dict[str, dict] = {}
        for t in self.rows["tables"]:
            if datasets is not None and t["dataset"] not in datasets:
                continue
            r = out.setdefault(t["dataset"], {"dataset": t["dataset"], "part": "t", "n": 0, "h": 0})
            r["n"] += 1
            r["h"] ^= h(f"{t['table_name']}|{t['table_type']}|{t['ddl']}")
        rows = list(out.values())
        if "SCHEMATA" in sql:
            rows += [{"dataset": s["dataset"], "part": "s", "n": 1, "h": h(s["ddl"])} for s in self.rows["schemata"]]
        return rows
