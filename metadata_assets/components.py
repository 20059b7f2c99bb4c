"""The catalog as a Dagster component: a team that runs Dagster adds an estate to its own project with a defs.yaml.

    dg scaffold defs metadata_assets.components.DataHubCatalog estate      # writes defs/estate/defs.yaml

    type: metadata_assets.components.DataHubCatalog
    attributes:
      sources:                  # exactly the `sources:` of this project's sources.yaml (README: Configuration)
        - {name: orders_eu, type: mysql, host: 10.0.0.12, user: catalog_reader, password_env: ORDERS_EU_PW}
      storage: {uri: gs://bucket/mce}
      datahub: {target: rest}

The attributes are validated by the same pydantic models as sources.yaml (config.ProjectConfig) and built by the
same `definitions.build_definitions` as this project's own Definitions: one path, whichever way it is configured.
One DataHubCatalog per code location (its resources, `mce_store` and `datahub`, and the pool-limits sensor are
per catalog); list every source of every kind in it.
"""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg

from metadata_assets.config import ProjectConfig, parse

_TEMPLATE = """\
type: metadata_assets.components.DataHubCatalog

attributes:
  # the same keys as sources.yaml: see metadata-assets' README, Configuration reference
  sources:
    - name: my_mysql
      type: mysql
      host: "{{ env.MY_MYSQL_HOST }}"
      user: catalog_reader
      password_env: MY_MYSQL_PASSWORD   # the NAME of the variable holding the password
  storage:
    uri: .metadata_assets/mce
  datahub:
    target: lite
"""


class _CatalogScaffolder(dg.Scaffolder):
    def scaffold(self, request) -> None:
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(_TEMPLATE)


@dg.scaffold_with(_CatalogScaffolder)
class DataHubCatalog(dg.Component, dg.Model, dg.Resolvable):
    """Schemas of MySQL/MariaDB, PostgreSQL and BigQuery sources as partitioned assets (one partition per database),
    written as DataHub metadata files from the catalog alone and pushed to DataHub on a schedule and on change."""

    sources: list[dict[str, Any]]
    storage: Optional[dict[str, Any]] = None
    datahub: Optional[dict[str, Any]] = None

    def project_config(self) -> ProjectConfig:
        """The attributes as a sources config, validated exactly as sources.yaml is (config.parse)."""
        doc = {"sources": self.sources}
        for k in ("storage", "datahub"):
            if getattr(self, k) is not None:
                doc[k] = getattr(self, k)
        return parse(doc, "DataHubCatalog attributes")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from metadata_assets.definitions import build_definitions

        return build_definitions(self.project_config())
