"""metadata-assets: DataHub metadata from information_schema, as Dagster software-defined assets."""

__version__ = "0.1.0"
