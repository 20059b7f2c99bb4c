"""One source as its Dagster objects are built from: built once per source (definitions.py) and handed to the
builders of its extraction and push assets and of its schema, push and notification sensors (the daily schedule
needs the source's own config only, the pool-limits sensor every source's).

A `SourceSetup` holds the source's config, its kind, its URN rules, the project's DataHub settings (ui_url,
push_from_extraction, the push's fail-safe and deadline, the push sensor's interval), the source's webhooks, and the
resources (defs/resources.py) its assets bind when built on their own and its sensors open: the store, DataHub and
the source's client. The builders read nothing else of the project config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dagster import ConfigurableResource

from metadata_assets import notify
from metadata_assets.change_config import Webhook
from metadata_assets.config import DataHubTarget, ProjectConfig
from metadata_assets.defs.resources import (
    DATAHUB_KEY,
    STORE_KEY,
    DataHubResource,
    MCEStoreResource,
    SourceResource,
    source_key,
)
from metadata_assets.source_config import SourceConfig
from metadata_assets.sources.base import SourceKind
from metadata_assets.sources.registry import kind_of


@dataclass(frozen=True)
class SourceSetup:
    source: SourceConfig
    kind: SourceKind
    rules: object  # the kind's URN rules (naming, containers, version_parts)
    datahub: DataHubTarget
    webhooks: tuple[Webhook, ...]
    store: MCEStoreResource
    sink: DataHubResource
    client: SourceResource

    @classmethod
    def of(
        cls, cfg: ProjectConfig, source: SourceConfig, resources: Optional[dict[str, ConfigurableResource]] = None
    ) -> "SourceSetup":
        """The source's setup; with `resources` (project_resources(cfg), built once by the definitions) it shares
        them with the other sources, else it gets resources of its own."""
        if resources is None:
            store, sink = MCEStoreResource(uri=cfg.storage.uri), DataHubResource.from_config(cfg.datahub)
            client = SourceResource.from_config(source)
        else:
            store, sink, client = resources[STORE_KEY], resources[DATAHUB_KEY], resources[source_key(source)]
        kind = kind_of(source)
        return cls(
            source=source,
            kind=kind,
            rules=kind.urn_rules(source),
            datahub=cfg.datahub,
            webhooks=tuple(notify.targets_for(cfg, source)),
            store=store,
            sink=sink,
            client=client,
        )

    @property
    def resources(self) -> dict[str, ConfigurableResource]:
        """What the source's assets use, by key: the store, DataHub (an extraction run may push at its end) and the
        source's client."""
        return {STORE_KEY: self.store, DATAHUB_KEY: self.sink, source_key(self.source): self.client}
