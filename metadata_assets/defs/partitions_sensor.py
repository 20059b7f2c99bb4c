"""Keeps each source's dynamic partitions equal to the allowed databases that exist."""


from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from metadata_assets.config import MySQLSource
from metadata_assets.defs.extraction import mce_asset_key, partitions_def
from metadata_assets.sources.mysql import SourceUnavailable, list_databases


def build_partition_sensor(source: MySQLSource, minimum_interval_seconds: int = 60):
    parts = partitions_def(source)

    @sensor(
        name=f"{source.name}_databases_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=[mce_asset_key(source)],
        description=f"Adds new allowed databases of `{source.name}` as partitions and removes dropped ones.",
    )
    def databases_sensor(context: SensorEvaluationContext):
        try:
            wanted = set(list_databases(source))
        except SourceUnavailable as e:
            return SkipReason(f"source unreachable: {e}")
        have = set(parts.get_partition_keys(dynamic_partitions_store=context.instance))
        added, removed = sorted(wanted - have), sorted(have - wanted)
        if not added and not removed:
            return SkipReason(f"{len(have)} databases, no change")
        requests = []
        if added:
            requests.append(parts.build_add_request(added))
        if removed:
            requests.append(parts.build_delete_request(removed))
        return SensorResult(dynamic_partitions_requests=requests)

    return databases_sensor
