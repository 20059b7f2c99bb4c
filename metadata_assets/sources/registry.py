"""Source kinds by `type`: the one list to extend when a kind of database is added (see sources/base.py).

Each entry names the kind's configuration model and its SourceKind as "module:attribute", imported on first use:
configs load without importing every kind's client library.
"""

from __future__ import annotations

import functools
import importlib

from metadata_assets.source_config import SourceConfig

_SOURCES: dict[str, tuple[str, str]] = {
    "mysql": ("metadata_assets.sources.mysql.config:MySQLSource", "metadata_assets.sources.mysql.kind:KIND"),
    "bigquery": (
        "metadata_assets.sources.bigquery.config:BigQuerySource",
        "metadata_assets.sources.bigquery.kind:KIND",
    ),
    "postgres": (
        "metadata_assets.sources.postgres.config:PostgresSource",
        "metadata_assets.sources.postgres.kind:KIND",
    ),
}


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def source_types() -> tuple[str, ...]:
    return tuple(_SOURCES)


def config_model(source_type: str) -> type[SourceConfig]:
    return _load(_SOURCES[source_type][0])


def config_models() -> list[type[SourceConfig]]:
    return [config_model(t) for t in _SOURCES]


@functools.cache
def kind(source_type: str):
    """The SourceKind of a type (one shared instance)."""
    try:
        return _load(_SOURCES[source_type][1])
    except KeyError:
        raise ValueError(f"unknown source type {source_type!r} (known: {', '.join(_SOURCES)})") from None


def kind_of(source: SourceConfig):
    return kind(source.type)
