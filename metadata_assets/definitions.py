"""The single Dagster Definitions of this project, built from the sources config.

Config file: $METADATA_ASSETS_CONFIG, else the demo config shipped in the package.
"""

from __future__ import annotations

import warnings

from dagster import BetaWarning, Definitions, PreviewWarning, definitions, in_process_executor

# backfill_policy and pools are beta/preview in dagster 1.13; we rely on them knowingly
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)

from metadata_assets.config import ProjectConfig, load
from metadata_assets.defs.extraction import build_mce_asset
from metadata_assets.defs.notifications import build_notification_sensor
from metadata_assets.defs.pools import build_pool_limits_sensor
from metadata_assets.defs.push import build_push_asset, build_push_sensor
from metadata_assets.defs.resources import project_resources
from metadata_assets.defs.schedule import build_daily_schedule
from metadata_assets.defs.schema_sensor import build_schema_sensor
from metadata_assets.defs.source_setup import SourceSetup


def build_definitions(cfg: ProjectConfig) -> Definitions:
    # No secret is read here: `dg check defs`, `dg list defs` and a code location load without the sources'
    # passwords; a run or sensor tick that needs one reads it then, and a missing one is an error naming the source
    # and the variable (SourceConfig.password), as `metadata-assets check-access` reports it too.
    # The resources are built once and registered here; each source's setup holds the same objects (its sensors
    # open the store through them).
    resources = project_resources(cfg)
    assets, sensors, schedules = [], [], []
    for source in cfg.sources:
        setup = SourceSetup.of(cfg, source, resources)
        assets.append(build_mce_asset(setup, bind_resources=False))
        sensors.append(build_schema_sensor(setup))
        assets.append(build_push_asset(setup, bind_resources=False))
        sensors.append(build_push_sensor(setup))
        sensors.append(build_notification_sensor(setup))
        schedules.append(build_daily_schedule(source))
    sensors.append(build_pool_limits_sensor(cfg))
    # Every run is one asset step (extraction of a partition range, or a push): the multiprocess executor would
    # start a second Python process per run (imports of dagster and acryl-datahub again, and its memory)
    # for no parallelism. Each run stays its own process (the run launcher's, a pod on Kubernetes).
    # (the asset checks are the extraction asset's own check_specs: defs/checks.py)
    return Definitions(
        assets=assets, sensors=sensors, schedules=schedules, resources=resources, executor=in_process_executor
    )


@definitions
def defs() -> Definitions:
    """Loaded lazily by Dagster's tools, so importing build_definitions (tests, CLI) needs no config."""
    return build_definitions(load())
