"""A MySQL/MariaDB source's configuration (`type: mysql`): one server, one partition per allowed database."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from metadata_assets.source_config import Pattern, ServerSource
from metadata_assets.strict import StrictModel as _Strict

# Never catalogued, whatever the patterns say.
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})


class MySQLTLS(_Strict):
    """TLS to the server, as the mysql client's --ssl-mode: disabled, preferred (TLS when the server offers it,
    its certificate unchecked: pymysql's default), required (TLS or no login; the password is never sent in the
    clear). `ca` makes the server's certificate chain to it, and `verify_identity` makes it name `host`."""

    mode: Optional[Literal["disabled", "preferred", "required"]] = Field(
        default=None, description="default: required when ca or cert is set, else preferred"
    )
    ca: Optional[str] = Field(default=None, description="PEM file of the CA(s) the server's certificate must chain to")
    verify_identity: Optional[bool] = Field(
        default=None,
        description="with ca: the certificate must name `host` (VERIFY_IDENTITY; the default); "
        "false: the CA only (VERIFY_CA)",
    )
    cert: Optional[str] = Field(default=None, description="client certificate (PEM), for an account REQUIRE X509")
    key: Optional[str] = Field(default=None, description="its private key (PEM), unless it is in `cert`")

    @model_validator(mode="after")
    def _consistent(self) -> "MySQLTLS":
        if self.key and not self.cert:
            raise ValueError("key without cert: give the client certificate too")
        if self.verify_identity is not None and not self.ca:
            raise ValueError(
                "verify_identity without ca: the host name is checked on a certificate checked against "
                "a CA, give it as ca"
            )
        given = [k for k in ("ca", "cert") if getattr(self, k)]
        if given and self.mode in ("disabled", "preferred"):
            raise ValueError(
                f"{given[0]} is set but mode is {self.mode}: a certificate is only checked (or "
                "sent) on a connection that requires TLS (mode: required, or leave mode out)"
            )
        return self

    @property
    def effective_mode(self) -> str:
        return self.mode or ("required" if self.ca or self.cert else "preferred")

    def describe(self) -> str:
        """For people: what the connection's TLS is."""
        mode = self.effective_mode
        if mode != "required":
            return {
                "disabled": "TLS disabled (tls.mode: disabled)",
                "preferred": "TLS when the server offers it, certificate not checked (tls.mode: preferred)",
            }[mode]
        if not self.ca:
            return "TLS required, certificate not checked (no tls.ca)"
        return "TLS required, certificate checked against tls.ca" + (
            " and its host name" if self.checks_host_name else " (host name not checked)"
        )

    @property
    def checks_host_name(self) -> bool:
        return bool(self.ca) and self.verify_identity is not False


class MySQLSource(ServerSource):
    type: Literal["mysql"]
    port: int = Field(default=3306, ge=1, le=65535)
    query_timeout_s: float = Field(
        default=300,
        gt=0,
        le=86400,
        description="longest wait for one information_schema query or SHOW CREATE; also bounds a sensor tick's "
        "fingerprint query",
    )
    batch_size: int = Field(
        default=200,
        ge=1,
        le=1000,
        description="databases per bulk query (and the least per run unless databases_per_run is set); at "
        "most 1000 (a UNION ALL of 1000 branches is already large)",
    )
    max_concurrent_runs: int = Field(default=2, ge=1, le=64, description="extraction runs against this host at once")
    sensor_interval_s: int = Field(
        default=15,
        ge=5,
        le=86400,
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
    tls: MySQLTLS = Field(default_factory=MySQLTLS, description="TLS to the server (see MySQLTLS)")

    def database_allowed(self, database: str) -> bool:
        return database.lower() not in SYSTEM_DATABASES and self.database_pattern.allowed(database)
