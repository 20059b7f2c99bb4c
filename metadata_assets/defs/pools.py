"""Load limits on MySQL hosts: at most N extraction runs against one host at a time; one push per source.

Mechanism: Dagster concurrency pools. The extraction asset of every source declares `pool=source_pool(source)`
(one pool per host:port, shared by all sources on that host). With `concurrency.pools.granularity: run` in the
instance (deploy/values.yaml) the QueuedRunCoordinator keeps a run QUEUED while its pool is full, so no run pod is
even started; every run of the asset counts (schedule, sensor, backfill, a click in the UI), whatever its tags.

A pool's limit lives in the Dagster instance, not in code. The sources YAML is the one place operators set it
(`max_concurrent_runs` per source; sources sharing a host get the smallest): this sensor writes those limits into
the instance whenever they differ, and `concurrency.pools.defaultLimit` covers the gap before its first tick.
"""

from __future__ import annotations

from dagster import DagsterInstance, DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from metadata_assets.config import ProjectConfig
from metadata_assets.defs.keys import push_pool, source_pool

SENSOR_NAME = "mysql_pool_limits"


def pool_limits(cfg: ProjectConfig) -> dict[str, int]:
    """Pool name -> limit: the smallest max_concurrent_runs of the sources that read that MySQL host."""
    limits: dict[str, int] = {}
    for source in cfg.sources:
        pool = source_pool(source)
        limits[pool] = min(limits.get(pool, source.max_concurrent_runs), source.max_concurrent_runs)
        limits[push_pool(source)] = 1  # two pushes of one source would race on its push state
    return limits


def apply_pool_limits(instance: DagsterInstance, limits: dict[str, int]) -> dict[str, int]:
    """Set each pool's slot count in the instance where it differs (or only comes from the default).
    Returns the pools that were changed, with their new limit."""
    current = {p.name: p for p in instance.event_log_storage.get_pool_limits()}
    changed = {}
    for pool, limit in sorted(limits.items()):
        have = current.get(pool)
        if have is None or have.from_default or have.limit != limit:
            instance.event_log_storage.set_concurrency_slots(pool, limit)
            changed[pool] = limit
    return changed


def build_pool_limits_sensor(cfg: ProjectConfig, minimum_interval_seconds: int = 60):
    limits = pool_limits(cfg)

    @sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Keeps each MySQL host's concurrency pool limit equal to max_concurrent_runs in the sources "
        "config: " + (", ".join(f"{p}={n}" for p, n in sorted(limits.items())) or "no sources"),
    )
    def mysql_pool_limits(context: SensorEvaluationContext):
        changed = apply_pool_limits(context.instance, limits)
        if changed:
            context.log.info(f"pool limits set: {changed}")
            return SkipReason(f"set {', '.join(f'{p}={n}' for p, n in changed.items())}")
        return SkipReason("pool limits already match the sources config")

    return mysql_pool_limits
