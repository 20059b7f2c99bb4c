"""A PostgreSQL source's configuration (`type: postgres`): one server, one partition per allowed database."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator

from metadata_assets.source_config import Pattern, ServerSource

# Never catalogued, whatever the patterns say: templates and the managed services' own admin databases.
SYSTEM_DATABASES = frozenset({"template0", "template1", "rdsadmin", "cloudsqladmin", "azure_maintenance", "azure_sys"})
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast"})


class PostgresSource(ServerSource):
    type: Literal["postgres"]
    port: int = Field(default=5432, ge=1, le=65535)
    initial_database: str = Field(
        default="postgres", description="the database connected to for listing the others (CONNECT needed there)"
    )
    schema_pattern: Pattern = Field(default=Pattern(), description='matched against "database.schema"')
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer",
        description="libpq's sslmode: prefer (default) encrypts when the server offers TLS and "
        "checks nothing; verify-full checks the certificate and the host name",
    )
    sslrootcert: Optional[str] = Field(
        default=None,
        validate_default=True,
        description="PEM file of the CA(s) the server's certificate must chain to (libpq's "
        "sslrootcert; 'system': the system's CAs); needed by verify-ca and verify-full",
    )
    sslcert: Optional[str] = Field(
        default=None, description="client certificate (PEM), for `cert` logins in pg_hba.conf"
    )
    sslkey: Optional[str] = Field(default=None, validate_default=True, description="its private key (PEM, mode 0600)")
    batch_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="databases per batch, each its own connection (and the least per run unless "
        "databases_per_run is set)",
    )
    sensor_interval_s: int = Field(
        default=60,
        ge=5,
        le=86400,
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

    @field_validator("sslrootcert")
    @classmethod
    def _root_cert_when_verifying(cls, cert: Optional[str], info: ValidationInfo) -> Optional[str]:
        mode = info.data.get("sslmode")
        if mode in ("verify-ca", "verify-full") and not cert:
            raise ValueError(
                f"sslmode {mode} needs sslrootcert: the CA file that signed the server's certificate "
                "(or 'system' for the system's CAs)"
            )
        if mode == "disable" and cert:
            raise ValueError("set with sslmode disable: a certificate is only checked over TLS")
        return cert

    @field_validator("sslkey")
    @classmethod
    def _key_with_cert(cls, key: Optional[str], info: ValidationInfo) -> Optional[str]:
        if bool(key) != bool(info.data.get("sslcert")):
            raise ValueError("sslcert and sslkey go together: the client certificate and its private key")
        return key

    def tls_description(self) -> str:
        """For people: what the connection's TLS is."""
        return {
            "disable": "TLS disabled (sslmode disable)",
            "allow": "TLS only if the server insists, certificate not checked (sslmode allow)",
            "prefer": "TLS when the server offers it, certificate not checked (sslmode prefer)",
            "require": "TLS required, certificate not checked (sslmode require)",
            "verify-ca": "TLS required, certificate checked against sslrootcert (sslmode verify-ca; host name "
            "not checked)",
            "verify-full": "TLS required, certificate and host name checked (sslmode verify-full)",
        }[self.sslmode]

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
