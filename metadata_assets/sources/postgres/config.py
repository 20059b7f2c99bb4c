"""A PostgreSQL source's configuration (`type: postgres`): one server, one partition per allowed database."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from metadata_assets.source_config import Pattern, ServerSource

# Never catalogued, whatever the patterns say: templates and the managed services' own admin databases.
SYSTEM_DATABASES = frozenset({"template0", "template1", "rdsadmin", "cloudsqladmin", "azure_maintenance", "azure_sys"})
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})


class PostgresSource(ServerSource):
    type: Literal["postgres"]
    port: int = Field(default=5432, ge=1, le=65535)
    initial_database: str = Field(
        default="postgres", description="the database connected to for listing the others (CONNECT needed there)")
    schema_pattern: Pattern = Field(default=Pattern(), description='matched against "database.schema"')
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    batch_size: int = Field(default=100, ge=1, le=1000,
                            description="databases per run in the schedule (each database is its own connection)")
    sensor_interval_s: int = Field(
        default=60, ge=5, le=86400,
        description="seconds between the schema sensor's fingerprint reads (one connection and one query per "
                    "database); a tick whose reads took longer than a tenth of this stretches the interval to 10x "
                    "that cost",
    )

    include_stored_procedures: bool = Field(
        default=True,
        description="catalog functions and procedures (a DataFlow per schema, a DataJob per routine) as DataHub's "
                    "postgres source does with include_stored_procedures; pg_proc shows their source to every role "
                    "that can connect, so no grant is needed; routines of extensions are left out",
    )
    procedure_pattern: Pattern = Field(default=Pattern(), description='matched against "database.schema.routine"')

    def database_allowed(self, database: str) -> bool:
        return database not in SYSTEM_DATABASES and self.database_pattern.allowed(database)

    def table_allowed(self, database: str, table: str) -> bool:
        """`table` is "schema.table" (a PostgreSQL snapshot's table names): its schema must be allowed too."""
        schema = table.split(".", 1)[0]
        return self.schema_allowed(database, schema) and self.table_pattern.allowed(f"{database}.{table}")

    def schema_allowed(self, database: str, schema: str) -> bool:
        if schema in SYSTEM_SCHEMAS or schema.startswith(("pg_temp_", "pg_toast_temp_")):
            return False
        return self.schema_pattern.allowed(f"{database}.{schema}")
