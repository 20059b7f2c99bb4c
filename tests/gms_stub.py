"""A loopback stand-in for DataHub GMS: the two endpoints DataHubRestEmitter uses, decoded with acryl-datahub classes.

GET /config answers like GMS (noCode: "true"); POST /aspects?action=ingestProposal and ...ingestProposalBatch decode
every proposal into MetadataChangeProposalWrapper (a proposal acryl-datahub cannot decode is answered 400, like GMS
would). `fail_with(status, times)` makes the next requests fail; `stop()` closes the port (connection refused).

Fault modes for tests/test_faults.py (each as a real server on loopback would behave):
`refuse(401|403)` answers every request, GET /config included, with that status; `hang(seconds)` holds every POST
that long before answering; `drop_after_commit(times)` stores a request's proposals, then closes the connection
without an answer (DataHub committed, the client never heard); `die_after(k)` closes the port after k more
accepted POSTs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, urlparse

from datahub.emitter.mcp import MetadataChangeProposalWrapper
from datahub.emitter.serialization_helper import post_json_transform
from datahub.metadata.schema_classes import MetadataChangeProposalClass


def decode_proposal(obj: dict) -> MetadataChangeProposalWrapper:
    mcpc = MetadataChangeProposalClass.from_obj(post_json_transform(obj))
    assert mcpc.validate(), f"invalid proposal {obj}"
    mcpw = MetadataChangeProposalWrapper.try_from_mcpc(mcpc)
    assert mcpw is not None and mcpw.aspect is not None and mcpw.aspect.validate(), f"undecodable aspect {obj}"
    return mcpw


class GmsStub:
    def __init__(self):
        self.proposals: list[MetadataChangeProposalWrapper] = []
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        self.auth_headers: list[Optional[str]] = []
        self.async_flags: list[str] = []
        self._fail: list[int] = []  # statuses to answer the next POSTs with
        self.refuse_status: Optional[int] = None
        self.hang_s = 0.0
        self._drop_after_commit = 0
        self._die_after: Optional[int] = None
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self.port: Optional[int] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> "GmsStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                with stub._lock:
                    stub.requests.append(("GET", self.path))
                if stub.refuse_status:
                    return self._reply(stub.refuse_status, {"message": "Unauthorized", "status": stub.refuse_status})
                if urlparse(self.path).path == "/config":
                    self._reply(200, {"noCode": "true", "versions": {"acryldata/datahub": {"version": "v1.2.0"}}})
                else:
                    self._reply(404, {"message": "not found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlparse(self.path)
                action = parse_qs(url.query).get("action", [None])[0]
                with stub._lock:
                    stub.requests.append(("POST", self.path))
                    stub.auth_headers.append(self.headers.get("Authorization"))
                    status = stub._fail.pop(0) if stub._fail else stub.refuse_status
                if stub.hang_s:
                    time.sleep(stub.hang_s)
                if status:
                    return self._reply(status, {"message": f"stub answers {status}", "status": status})
                if url.path != "/aspects" or action not in ("ingestProposal", "ingestProposalBatch"):
                    return self._reply(404, {"message": f"unexpected {self.path}"})
                doc = json.loads(body)
                raw = doc["proposals"] if action == "ingestProposalBatch" else [doc["proposal"]]
                try:
                    decoded = [decode_proposal(p) for p in raw]
                except Exception as e:  # GMS rejects what it cannot read
                    return self._reply(400, {"message": f"cannot decode proposal: {e}", "status": 400})
                with stub._lock:
                    stub.proposals.extend(decoded)
                    stub.async_flags.append(str(doc.get("async")))
                    drop = stub._drop_after_commit > 0
                    stub._drop_after_commit -= drop
                    die = stub._die_after is not None and stub._die_after <= 1
                    if stub._die_after is not None:
                        stub._die_after -= 1
                if drop:  # committed, but the answer never reaches the client
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if die:
                    threading.Thread(target=stub.stop, daemon=True).start()
                self._reply(
                    200,
                    {"value": [p.entityUrn for p in decoded]}
                    if action.endswith("Batch")
                    else {"value": decoded[0].entityUrn},
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def fail_with(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._fail = [status] * times

    def refuse(self, status: int = 401) -> None:
        self.refuse_status = status

    def hang(self, seconds: float) -> None:
        self.hang_s = seconds

    def drop_after_commit(self, times: int = 1) -> None:
        with self._lock:
            self._drop_after_commit = times

    def die_after(self, batches: int) -> None:
        with self._lock:
            self._die_after = batches

    def heal(self) -> None:
        """Back to answering normally (a stopped stub needs start(port) again)."""
        with self._lock:
            self._fail, self.refuse_status, self.hang_s = [], None, 0.0
            self._drop_after_commit, self._die_after = 0, None

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server:
            server.shutdown()
            server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.proposals.clear()
            self.requests.clear()
            self.auth_headers.clear()
            self.async_flags.clear()

    # --- what arrived ---
    def aspects(self, urn: str) -> dict[str, object]:
        """The last value of each aspect received for the URN."""
        return {p.aspectName: p.aspect for p in self.proposals if p.entityUrn == urn}

    def removed(self) -> set[str]:
        return {p.entityUrn for p in self.proposals if p.aspectName == "status" and p.aspect.removed}

    def urns(self) -> set[str]:
        return {p.entityUrn for p in self.proposals}
