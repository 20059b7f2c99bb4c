"""Where pushed proposals go: DataHub Lite (embedded SQLite) or DataHub GMS over REST.

Both are acryl-datahub's own clients. A sink's `emit` returns only once DataHub has confirmed every proposal it was
given (Lite: committed to SQLite; REST: GMS answered 2xx in SYNC_PRIMARY mode, i.e. written to its primary store)
and raises otherwise. No Dagster here.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Optional, Protocol, Sequence

from datahub.emitter.mcp import MetadataChangeProposalWrapper

from metadata_assets.config import ConfigError, DataHubTarget, LiteTarget, RestTarget
from metadata_assets.datahub.lite_index import close_without_reindex, reindex_entities
from metadata_assets.datahub.lite_write import write_objs
from metadata_assets.datahub.mce_json import rare_shape, simplified_obj


class DataHubUnavailable(RuntimeError):
    """DataHub could not be reached or refused a request; nothing sent in the failing call counts as pushed."""


class DataHubRefused(DataHubUnavailable):
    """DataHub answered 401 or 403: the token or the account's privileges are wrong, and no retry can help."""


class Sink(Protocol):
    def check(self) -> None: ...
    def emit(self, mcps: Sequence[MetadataChangeProposalWrapper], deadline: Optional[float] = None) -> None:
        """Returns once DataHub confirmed every proposal; `deadline` (time.monotonic()) stops between requests."""

    def describe(self) -> str: ...
    def close(self) -> None: ...


class CompiledToObj(MetadataChangeProposalWrapper):
    """A proposal whose to_obj(simplified_structure=True), which Lite's write() calls on each proposal, takes the
    compiled converter of the MCE files (mce_json.simplified_obj: the same dict, tests/test_serialization.py) instead
    of avrogen's generic walk (about 60% of a Lite write)."""

    @classmethod
    def of(cls, m: MetadataChangeProposalWrapper) -> "CompiledToObj":
        return cls(**{f.name: getattr(m, f.name) for f in dataclasses.fields(m)})

    def to_obj(self, tuples: bool = False, simplified_structure: bool = False) -> dict:
        if simplified_structure and not tuples and not rare_shape(self):
            return simplified_obj(self, with_system_metadata=True)
        return super().to_obj(tuples=tuples, simplified_structure=simplified_structure)


class LiteSink:
    """DataHub Lite, the same store the `datahub-lite` sink and the `datahub lite` CLI use."""

    def __init__(self, target: LiteTarget):
        self.path = str(Path(target.path).absolute())
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._opened = None

    @property
    def lite(self):
        """Opened at the first write."""
        if self._opened is None:
            from datahub.lite.lite_util import get_datahub_lite

            # WAL: Lite commits once per proposal; without it every commit is a full journal fsync.
            self._opened = get_datahub_lite(
                {
                    "type": "sqlite",
                    "config": {"file": self.path, "options": {"journal_mode": "WAL", "synchronous": "NORMAL"}},
                }
            )
        return self._opened

    def check(self) -> None:
        pass

    def emit(self, mcps: Sequence[MetadataChangeProposalWrapper], deadline: Optional[float] = None) -> None:
        """Writes the proposals, then places their entities in Lite's browse index (datahub/lite_index.py) before
        returning, so what the push records as confirmed is also browsable (`datahub lite ls`)."""
        for mcp in mcps:
            self.lite.write(CompiledToObj.of(mcp))
        reindex_entities(self.lite, (m.entityUrn for m in mcps))

    def emit_objs(self, objs: Sequence[dict], system_metadata: dict, deadline: Optional[float] = None) -> None:
        """`emit` for proposals as an MCE file holds them (dicts), written without decoding them
        (datahub/lite_write.py); `system_metadata` is SystemMetadataClass.to_obj() of each one's."""
        reindex_entities(self.lite, write_objs(self.lite, objs, system_metadata))

    def describe(self) -> str:
        return f"DataHub Lite at {self.path}"

    def close(self) -> None:
        # not Lite's close(): it would rebuild the browse index of the whole catalog, which emit kept current
        if self._opened is not None:
            close_without_reindex(self._opened)
            self._opened = None


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
            gms_server=server,
            token=token or None,
            timeout_sec=target.timeout_s,
            retry_max_times=target.retries,
            # the rest.li batch endpoint (ingestProposalBatch), whatever the server advertises, so what runs in
            # production is exactly what the contract test checks
            openapi_ingestion=False,
        )

    def check(self) -> None:
        try:
            self.emitter.test_connection()
        except Exception as e:
            raise _unavailable(e, f"{self.describe()} is not reachable") from None

    def emit(self, mcps: Sequence[MetadataChangeProposalWrapper], deadline: Optional[float] = None) -> None:
        """Batches of `batch_size`. One request waits at most (retries + 1) x timeout_s plus the emitter's backoff;
        past `deadline` no further batch is started."""
        from datahub.emitter.rest_emitter import EmitMode

        for start in range(0, len(mcps), self.batch_size):
            if start and deadline is not None and time.monotonic() >= deadline:
                raise DataHubUnavailable(f"{self.describe()}: push deadline reached in the middle of a database")
            try:
                self.emitter.emit_mcps(list(mcps[start : start + self.batch_size]), emit_mode=EmitMode.SYNC_PRIMARY)
            except Exception as e:
                raise _unavailable(e, f"{self.describe()} did not accept a batch") from None

    def describe(self) -> str:
        return f"DataHub GMS at {self.server}"  # never the token

    def close(self) -> None:
        self.emitter.close()


def http_status(e: BaseException) -> Optional[int]:
    """The HTTP status behind an acryl-datahub emitter error, when there was a response."""
    response = getattr(e.__cause__, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return int(response.status_code)
    info = getattr(e, "info", None)
    if isinstance(info, dict) and isinstance(info.get("status"), int):
        return info["status"]
    text = str(e)
    if "authentication error" in text:  # test_connection's wording for a 401 on GET /config
        return 401
    m = re.search(r"status_code: (\d{3})", text)
    return int(m.group(1)) if m else None


def _unavailable(e: Exception, what: str) -> DataHubUnavailable:
    status = http_status(e)
    if status in (401, 403):
        return DataHubRefused(
            f"{what}: HTTP {status} ({'the token is missing, expired or wrong' if status == 401 else 'the token may not write metadata'}): {_short(e)}"
        )
    return DataHubUnavailable(f"{what}: {_short(e)}")


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

    return get_datahub_lite(
        {"type": "sqlite", "config": {"file": str(Path(path).absolute()), "read_only": True}}, read_only=True
    )


__all__ = ["DataHubRefused", "DataHubUnavailable", "LiteSink", "RestSink", "Sink", "open_sink", "lite_reader"]
