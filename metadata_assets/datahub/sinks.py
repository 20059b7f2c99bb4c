"""Where pushed proposals go: DataHub Lite (embedded SQLite) or DataHub GMS over REST.

Both are acryl-datahub's own clients. A sink's `emit` returns only once DataHub has confirmed every proposal it was
given (Lite: committed to SQLite; REST: GMS answered 2xx in SYNC_PRIMARY mode, i.e. written to its primary store)
and raises otherwise. No Dagster here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

from datahub.emitter.mcp import MetadataChangeProposalWrapper

from metadata_assets.config import ConfigError, DataHubTarget, LiteTarget, RestTarget


class DataHubUnavailable(RuntimeError):
    """DataHub could not be reached or refused a request; nothing sent in the failing call counts as pushed."""


class Sink(Protocol):
    def check(self) -> None: ...
    def emit(self, mcps: Sequence[MetadataChangeProposalWrapper]) -> None: ...
    def describe(self) -> str: ...
    def close(self) -> None: ...


class LiteSink:
    """DataHub Lite, the same store the `datahub-lite` sink and the `datahub lite` CLI use."""

    def __init__(self, target: LiteTarget):
        from datahub.lite.lite_util import get_datahub_lite

        self.path = str(Path(target.path).absolute())
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # WAL: Lite commits once per proposal; without it every commit is a full journal fsync.
        self.lite = get_datahub_lite({"type": "sqlite", "config": {
            "file": self.path, "options": {"journal_mode": "WAL", "synchronous": "NORMAL"}}})

    def check(self) -> None:
        pass

    def emit(self, mcps: Sequence[MetadataChangeProposalWrapper]) -> None:
        for mcp in mcps:
            self.lite.write(mcp)

    def describe(self) -> str:
        return f"DataHub Lite at {self.path}"

    def close(self) -> None:
        self.lite.close()


class RestSink:
    """DataHub GMS through DataHubRestEmitter: batched, retried on 429/5xx by the emitter's session, with a timeout."""

    def __init__(self, target: RestTarget):
        from datahub.emitter.rest_emitter import DataHubRestEmitter

        server = os.environ.get(target.server_env)
        if not server:
            raise ConfigError(f"datahub.rest: environment variable {target.server_env} (server_env) is not set")
        token = os.environ.get(target.token_env) if target.token_env else None
        self.server = server
        self.batch_size = target.batch_size
        self.emitter = DataHubRestEmitter(
            gms_server=server, token=token or None, timeout_sec=target.timeout_s,
            retry_max_times=target.retries,
            # the rest.li batch endpoint (ingestProposalBatch), whatever the server advertises, so what runs in
            # production is exactly what the contract test checks
            openapi_ingestion=False,
        )

    def check(self) -> None:
        try:
            self.emitter.test_connection()
        except Exception as e:
            raise DataHubUnavailable(f"{self.describe()} is not reachable: {_short(e)}") from None

    def emit(self, mcps: Sequence[MetadataChangeProposalWrapper]) -> None:
        from datahub.emitter.rest_emitter import EmitMode

        for start in range(0, len(mcps), self.batch_size):
            try:
                self.emitter.emit_mcps(list(mcps[start:start + self.batch_size]), emit_mode=EmitMode.SYNC_PRIMARY)
            except Exception as e:
                raise DataHubUnavailable(f"{self.describe()} did not accept a batch: {_short(e)}") from None

    def describe(self) -> str:
        return f"DataHub GMS at {self.server}"  # never the token

    def close(self) -> None:
        self.emitter.close()


def _short(e: Exception) -> str:
    info = getattr(e, "info", None)
    detail = info.get("message") if isinstance(info, dict) else None
    text = f"{type(e).__name__}: {e.args[0] if e.args else e}"
    return f"{text} ({detail})" if detail and detail not in text else text


def open_sink(target: DataHubTarget) -> Sink:
    if target.target == "rest":
        return RestSink(target.rest)
    return LiteSink(target.lite)


def lite_reader(path: str):
    """Read-only DataHub Lite handle (acryl-datahub's API) for inspecting what was pushed."""
    from datahub.lite.lite_util import get_datahub_lite

    return get_datahub_lite({"type": "sqlite", "config": {"file": str(Path(path).absolute()), "read_only": True}},
                            read_only=True)


__all__ = ["DataHubUnavailable", "LiteSink", "RestSink", "Sink", "open_sink", "lite_reader"]
