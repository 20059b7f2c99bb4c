"""The project's Dagster resources: where the MCE files live, the DataHub the push writes to, and each source's reads.

`project_resources(cfg)` builds them from the sources config; the Definitions register them (Dagit's *Resources*
page shows each one's settings and which assets use it), and an asset built on its own (`build_mce_asset(cfg,
source)` in a test or another project) carries the same objects, so it materializes without a Definitions around it.
No SQL here: a source's reads are its kind's (sources/<type>/kind.py). No secret is a field: a password or token
stays in the environment variable whose NAME the config gives.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from dagster import ConfigurableResource

from metadata_assets.config import DataHubTarget, LiteTarget, ProjectConfig, RestTarget
from metadata_assets.datahub.sinks import Sink, open_sink
from metadata_assets.source_config import SourceConfig
from metadata_assets.storage.store import Store, open_store

STORE_KEY = "mce_store"
DATAHUB_KEY = "datahub"


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
        return cls(target=target.target, lite_path=target.lite.path, rest_server_env=target.rest.server_env,
                   rest_token_env=target.rest.token_env, rest_timeout_s=target.rest.timeout_s,
                   rest_retries=target.rest.retries, rest_batch_size=target.rest.batch_size)

    def open(self) -> Sink:
        return open_sink(DataHubTarget(
            target=self.target, lite=LiteTarget(path=self.lite_path),
            rest=RestTarget(server_env=self.rest_server_env, token_env=self.rest_token_env,
                            timeout_s=self.rest_timeout_s, retries=self.rest_retries,
                            batch_size=self.rest_batch_size)))


class SourceResource(ConfigurableResource):
    """One source's reads, through its kind (sources/registry.py): the client a run reads through (BigQuery:
    dagster-gcp's BigQueryResource; MySQL and PostgreSQL connect themselves) and extraction into the store."""

    name: str
    type: str
    settings_json: str  # the source's config as loaded (the password's variable name, never the password)

    @classmethod
    def from_config(cls, source: SourceConfig) -> "SourceResource":
        return cls(name=source.name, type=source.type, settings_json=source.model_dump_json())

    def config(self) -> SourceConfig:
        from metadata_assets.sources.registry import config_model

        return config_model(self.type).model_validate_json(self.settings_json)

    @contextmanager
    def client(self) -> Iterator[object]:
        from metadata_assets.sources.registry import kind

        with kind(self.type).client(self.config()) as client:
            yield client

    def extract(self, databases, store: Store, progress=None, rewrite: bool = False, report=None):
        """extract.extract() of these databases with the source's client open for the whole run."""
        from metadata_assets.extract import extract

        source = self.config()
        with self.client() as client:
            yield from extract(source, databases, store, progress=progress, client=client, rewrite=rewrite,
                               report=report)


_CACHE: dict[tuple, ConfigurableResource] = {}


def _shared(resource: ConfigurableResource) -> ConfigurableResource:
    # Dagster requires the resources bound to the assets of one job to be the same objects: one per settings
    key = (type(resource).__name__, resource.model_dump_json())
    return _CACHE.setdefault(key, resource)


def project_resources(cfg: ProjectConfig) -> dict[str, ConfigurableResource]:
    """{resource key: resource} of the project; the same objects for the same settings."""
    return {STORE_KEY: _shared(MCEStoreResource(uri=cfg.storage.uri)),
            DATAHUB_KEY: _shared(DataHubResource.from_config(cfg.datahub)),
            **{source_key(s): _shared(SourceResource.from_config(s)) for s in cfg.sources}}


def asset_resources(cfg: ProjectConfig, source: SourceConfig) -> dict[str, ConfigurableResource]:
    """What a source's assets use: the store, DataHub (an extraction run may push at its end) and the source."""
    resources = project_resources(cfg)
    return {k: resources[k] for k in (STORE_KEY, DATAHUB_KEY, source_key(source))}


def project_store(cfg: ProjectConfig) -> Store:
    """The project's store, opened through its resource (what sensors and the in-process helpers read)."""
    return project_resources(cfg)[STORE_KEY].open()
