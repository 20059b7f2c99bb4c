"""Names Dagster knows this project's objects by: asset keys, partitions, run tags, concurrency pools.

Imported by every module of defs/ and importing none of them; no SQL, no reading.
"""

from __future__ import annotations

import json

from dagster import AssetKey, DynamicPartitionsDefinition
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from metadata_assets.source_config import RunPod, SourceConfig
from metadata_assets.sources.registry import kind_of

# --- assets and partitions ---


def partitions_def(source: SourceConfig) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=f"{source.name}_databases")


def mce_asset_key(source: SourceConfig) -> AssetKey:
    return AssetKey([source.name, "mce_files"])


def push_asset_key(source: SourceConfig) -> AssetKey:
    return AssetKey([source.name, "datahub_push"])


# --- pools ---


def source_pool(source: SourceConfig) -> str:
    """One concurrency pool per server, shared by every source on it (MySQL: host:port; BigQuery: project)."""
    return kind_of(source).pool(source)


def push_pool(source: SourceConfig) -> str:
    """The push of a source runs alone: its pool has one slot (defs/pools.py)."""
    return "datahub_push_" + source.name


# --- tags ---

DATA_VERSION_TAG = "dagster/data_version"
MAX_RETRIES_TAG = "dagster/max_retries"
EXTRACTION_RUN_RETRIES = 2
# set by the schema sensor on runs for changed databases: the run pushes what it extracted (defs/push.py)
PUSH_AFTER_TAG = "metadata_assets/push_after"
# on every extraction run the schedule and the sensors request: the source it reads
EXTRACT_SOURCE_TAG = "metadata_assets/extract_source"
# why the schema sensor requested a run ("schema changed", "new database")
REASON_TAG = "metadata_assets/reason"
# on push runs: the source they push; BLOCKED_TAG on a run the fail-safe stopped (retrying it changes nothing)
PUSH_SOURCE_TAG = "metadata_assets/push_source"
BLOCKED_TAG = "metadata_assets/push_blocked"


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags that make one run materialize the partition range keys[0]..keys[-1] (contiguous keys)."""
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def k8s_tags(cpu: str, memory: str) -> dict:
    return {
        "dagster-k8s/config": {
            "container_config": {
                "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}
            }
        }
    }


EXTRACTION_POD = {"cpu": RunPod().cpu, "memory": RunPod().memory}  # the default; sources.yaml: run_pod


def run_pod_tags(source: SourceConfig) -> dict:
    return k8s_tags(cpu=source.run_pod.cpu, memory=source.run_pod.memory)


def run_tags(source: SourceConfig) -> dict[str, str]:
    """Tags for RunRequests of this source's extraction. The K8sRunLauncher sizes the run pod from *run* tags
    (op_tags only reach per-step pods under k8s_job_executor). No tag is needed for the server's limit: the
    asset's pool applies to every run of it (see defs/pools.py)."""
    tags = {key: json.dumps(value, sort_keys=True) for key, value in run_pod_tags(source).items()}
    # re-run a failed extraction run (needs run_retries enabled on the instance: deploy/values.yaml, the demo)
    tags[MAX_RETRIES_TAG] = str(EXTRACTION_RUN_RETRIES)
    tags[EXTRACT_SOURCE_TAG] = source.name
    return tags
