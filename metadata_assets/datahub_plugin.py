"""Wiring for DataHub's own Dagster plugin (`acryl-datahub-dagster-plugin`) beside this project's assets.

The plugin records every asset event of a run as a dataset `urn:li:dataset:(urn:li:dataPlatform:dagster,<key joined
by .>,<env>)` (`DagsterGenerator.emit_asset`). This project's assets, `<source>/mce_files` and `<source>/datahub_push`,
are not data sets: they catalogue the real tables, which the push sends to DataHub under their own URNs. As released
(1.7.0.17) the plugin's config cannot keep them out:

- a materialization goes through `asset_keys_to_dataset_urn_converter` (None skips it; the default rule already
  skips keys of fewer than 3 parts, as ours are), but an **observation** (each extraction run records one, its
  ExtractionReport) goes straight to `emit_asset`, which asks no converter and reads no `datahub_urn`;
- a `datahub_urn` text on a materialization only redirects the lineage target: `emit_asset` still writes the
  `dagster` dataset of the asset key;
- `capture_asset_materialization: false` or `emit_assets: false` switch it off for every asset of the deployment.

So `make_datahub_sensor` here is the plugin's `make_datahub_sensor` (same arguments, same tick) around a subclass of
its `DatahubSensors` whose `process_asset_logs` leaves this project's asset events out; everything else (DataFlow and
DataJob of each run, the run and op instances, the user's own assets, a custom converter or lineage extractor) is the
plugin's. The plugin is imported only when the sensor is made: it is not a dependency of this package.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Optional, Sequence

# the last part of the asset keys this project defines (defs/keys.py: mce_asset_key, push_asset_key)
CATALOG_ASSET_NAMES = frozenset({"mce_files", "datahub_push"})


def is_catalog_asset_key(path: Sequence[str], sources: Optional[Iterable[str]] = None) -> bool:
    """Whether an asset key (its path) is one of this project's: `<source>/mce_files` or `<source>/datahub_push`,
    of one of `sources` (source names) when given, of any source otherwise."""
    path = list(path)
    if len(path) != 2 or path[1] not in CATALOG_ASSET_NAMES:
        return False
    return sources is None or path[0] in set(sources)


def _event_asset_key(log) -> Optional[Sequence[str]]:
    event = log.dagster_event
    key = event.asset_key if event is not None else None
    return key.path if key is not None else None


@lru_cache(maxsize=None)
def _catalog_aware_sensors_class():
    from datahub_dagster_plugin.sensors.datahub_sensors import DatahubSensors

    class CatalogAwareDatahubSensors(DatahubSensors):
        """The plugin's sensors, leaving the asset events of this project's assets out (no `dagster` dataset, no
        inlet or outlet of the op's DataJob)."""

        catalog_sources: Optional[frozenset] = None

        def process_asset_logs(self, context, dagster_generator, log, dataset_inputs, dataset_outputs) -> None:
            path = _event_asset_key(log)
            if path is not None and is_catalog_asset_key(path, self.catalog_sources):
                context.log.debug(f"metadata_assets: {'/'.join(path)} is a catalog asset, not a DataHub dataset")
                return
            super().process_asset_logs(context, dagster_generator, log, dataset_inputs, dataset_outputs)

    return CatalogAwareDatahubSensors


def catalog_aware_datahub_sensors(config: Any, sources: Optional[Iterable[str]] = None, **kwargs):
    """A `DatahubSensors` (the plugin's class, its arguments) that leaves this project's assets out."""
    cls = _catalog_aware_sensors_class()
    sensors = cls(config, **kwargs)
    sensors.catalog_sources = frozenset(sources) if sources is not None else None
    return sensors


def make_datahub_sensor(
    config: Any,
    sources: Optional[Iterable[str]] = None,
    name: Optional[str] = None,
    minimum_interval_seconds: Optional[int] = None,
    description: Optional[str] = None,
    job=None,
    jobs=None,
    default_status=None,
    asset_selection=None,
    required_resource_keys=None,
    monitored_jobs=None,
    job_selection=None,
    monitor_all_code_locations: Optional[bool] = None,
):
    """Use instead of `datahub_dagster_plugin.sensors.datahub_sensors.make_datahub_sensor`: the same arguments (a
    `DatahubDagsterSourceConfig` first) and the same sensor, except that `<source>/mce_files` and
    `<source>/datahub_push` (of `sources`, source names, when given) never become `dagster` datasets."""
    from dagster import DefaultSensorStatus, SkipReason, sensor

    sources = frozenset(sources) if sources is not None else None

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        description=description,
        job=job,
        jobs=jobs,
        default_status=default_status or DefaultSensorStatus.STOPPED,
        asset_selection=asset_selection,
        required_resource_keys=required_resource_keys,
    )
    def datahub_sensor(context):
        # as the plugin's sensor: run its run-status and asset sensors inside this one's tick
        for each in catalog_aware_datahub_sensors(
            config,
            sources,
            minimum_interval_seconds=minimum_interval_seconds,
            monitored_jobs=monitored_jobs,
            job_selection=job_selection,
            monitor_all_code_locations=monitor_all_code_locations,
        ).sensors:
            each.evaluate_tick(context)
        return SkipReason("Trigger run status sensors if any new runs present...")

    return datahub_sensor
