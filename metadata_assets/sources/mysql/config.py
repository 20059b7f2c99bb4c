"""A MySQL/MariaDB source's configuration (`type: mysql`): one server, one partition per allowed database."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from metadata_assets.source_config import Pattern, ServerSource

# Never catalogued, whatever the patterns say.
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})


class MySQLSource(ServerSource):
    type: Literal["mysql"]
    port: int = Field(default=3306, ge=1, le=65535)
    query_timeout_s: float = Field(
        default=300, gt=0, le=86400,
        description="longest wait for one information_schema query or SHOW CREATE; also bounds a sensor tick's "
                    "fingerprint query",
    )
    batch_size: int = Field(default=200, ge=1, le=1000,
                            description="databases per bulk query (and per run, at most: databases_per_run); at "
                                        "most 1000 (a UNION ALL of 1000 branches is already large)")
    max_concurrent_runs: int = Field(default=2, ge=1, le=64, description="extraction runs against this host at once")
    sensor_interval_s: int = Field(
        default=15, ge=5, le=86400,
        description="seconds between the schema sensor's fingerprint queries; a tick whose query took longer than "
                    "a tenth of this stretches the interval to 10x that cost, so a large server is not kept busy",
    )

    include_stored_procedures: bool = Field(
        default=True,
        description="catalog stored procedures and functions (a DataFlow per database, a DataJob per routine) as "
                    "DataHub's mysql source does; needs an optional grant that shows routine text "
                    "(`metadata-assets grants` prints it), else one warning per run",
    )
    procedure_pattern: Pattern = Field(default=Pattern(), description='matched against "database.routine"')

    def database_allowed(self, database: str) -> bool:
        return database.lower() not in SYSTEM_DATABASES and self.database_pattern.allowed(database)
