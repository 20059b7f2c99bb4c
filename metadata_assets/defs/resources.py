"""The project's Dagster resources: live handles only, opened when a run or a tick needs them.

- `MCEStoreResource` opens the store of MCE files, snapshots, version records and push state (`storage.uri`);
- `DataHubResource` opens the sink the push writes to (`datahub:`);
- `SourceResource` opens one source's client (its kind's: sources/<type>/kind.py).

`project_resources(cfg)` builds them once per Definitions (definitions.py registers them: Dagit's *Resources* page
shows each one's settings and which assets use it); a source's assets built on their own (`build_mce_asset(
SourceSetup.of(cfg, source))` in a test or another project) bind the objects of their SourceSetup, so they
materialize without a Definitions around them. Dagster wants one object per resource key in a job: assets of
several sources built on their own share one `project_resources(cfg)`, passed to each `SourceSetup.of` (no module
cache makes them identical behind the caller's back). Assets get them by parameter (`mce_store: MCEStoreResource`);
a source's own resource has a key per source (`source_key`), which `per_source_parameter` gives the asset's
parameter; sensors open them through their SourceSetup (tests build sensors alone, with no resources around). No SQL here, and no secret is a field: a password or token stays in the environment variable
whose NAME the config gives.
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from metadata_assets.config import DataHubTarget, LiteTarget, ProjectConfig, RestTarget
from metadata_assets.datahub.sinks import Sink, open_sink
from metadata_assets.source_config import SourceConfig
from metadata_assets.sources.registry import config_model, kind
from metadata_assets.storage.store import Store, open_store

STORE_KEY = "mce_store"
DATAHUB_KEY = "datahub"
SOURCE_PARAMETER = "source_resource"  # the parameter per_source_parameter renames to the source's key


def source_key(source: SourceConfig) -> str:
    return f"{source.name}_source"


class MCEStoreResource(ConfigurableResource):
    """MCE files, snapshots, version records and push state (`storage.uri`): a directory or gs://bucket/prefix."""

    uri: str

    def open(self) -> Store:
        return open_store(self.uri)


class DataHubResource(ConfigurableResource):
    """The DataHub the push writes to (`datahub:`): DataHub Lite (a SQLite file) or GMS over REST, whose URL and
    token are read from the environment variables named here when the push opens it."""

    target: str = "lite"
    lite_path: str = ""
    rest_server_env: str = "DATAHUB_GMS_URL"
    rest_token_env: Optional[str] = "DATAHUB_GMS_TOKEN"
    rest_timeout_s: float = 30
    rest_retries: int = 5
    rest_batch_size: int = 100

    @classmethod
    def from_config(cls, target: DataHubTarget) -> "DataHubResource":
        return cls(
            target=target.target,
            lite_path=target.lite.path,
            rest_server_env=target.rest.server_env,
            rest_token_env=target.rest.token_env,
            rest_timeout_s=target.rest.timeout_s,
            rest_retries=target.rest.retries,
            rest_batch_size=target.rest.batch_size,
        )

    def open(self) -> Sink:
        return open_sink(
            DataHubTarget(
                target=self.target,
                lite=LiteTarget(path=self.lite_path),
                rest=RestTarget(
                    server_env=self.rest_server_env,
                    token_env=self.rest_token_env,
                    timeout_s=self.rest_timeout_s,
                    retries=self.rest_retries,
                    batch_size=self.rest_batch_size,
                ),
            )
        )


class SourceResource(ConfigurableResource):
    """One source's client, through its kind (sources/registry.py): BigQuery's is dagster-gcp's BigQueryResource;
    MySQL and PostgreSQL connect themselves (their client is None). Its settings are the source's config as loaded
    (the password's variable name, never the password), which Dagit shows."""

    name: str
    type: str
    settings_json: str
    _source: Optional[SourceConfig] = PrivateAttr(default=None)

    @classmethod
    def from_config(cls, source: SourceConfig) -> "SourceResource":
        resource = cls(name=source.name, type=source.type, settings_json=source.model_dump_json())
        resource._source = source
        return resource

    def config(self) -> SourceConfig:
        """The source's config: the one it was built from, or (a copy Dagster made from its settings) read once."""
        if self._source is None:
            self._source = config_model(self.type).model_validate_json(self.settings_json)
        return self._source

    @contextmanager
    def client(self) -> Iterator[object]:
        """The kind's client, open while the block runs (a secret it needs is read now: ConfigError if missing)."""
        with kind(self.type).client(self.config()) as client:
            yield client


def project_resources(cfg: ProjectConfig) -> dict[str, ConfigurableResource]:
    """{resource key: resource} of the project: the store, DataHub and each source's client."""
    return {
        STORE_KEY: MCEStoreResource(uri=cfg.storage.uri),
        DATAHUB_KEY: DataHubResource.from_config(cfg.datahub),
        **{source_key(s): SourceResource.from_config(s) for s in cfg.sources},
    }


def per_source_parameter(source: SourceConfig) -> Callable[[Callable], Callable]:
    """A decorator: the function with its `source_resource` parameter named as the source's resource key, which is
    how Dagster injects it (by parameter name, read from the signature, `__signature__` included). Every source's
    asset keeps one body while each source has a resource key of its own, as Dagit's Resources page lists them."""
    key = source_key(source)

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def with_source_key(*args, **kwargs):
            kwargs[SOURCE_PARAMETER] = kwargs.pop(key)
            return fn(*args, **kwargs)

        with_source_key.__signature__ = signature.replace(
            parameters=[p.replace(name=key) if p.name == SOURCE_PARAMETER else p for p in signature.parameters.values()]
        )
        return with_source_key

    return decorate
