"""Shared fixtures: one private MariaDB server for the whole session; each test gets its own databases.

Every test names its databases with a unique prefix and a source whose database_pattern allows only that prefix,
so tests never see each other's schemas although they share one server.
"""

import itertools
import os
import uuid
from pathlib import Path

import pytest

from metadata_assets import local_mariadb
from metadata_assets.config import ProjectConfig
from metadata_assets.source_config import Pattern
from metadata_assets.sources.mysql.config import MySQLSource

os.environ.setdefault("DATAHUB_TELEMETRY_ENABLED", "false")
SAMPLE_SQL = Path(__file__).parents[1] / "metadata_assets" / "demo" / "sample.sql"
_counter = itertools.count()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    server = local_mariadb.start(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


class Schema:
    """A test's private set of databases on the shared server, plus a least-privilege account for them."""

    def __init__(self, server: local_mariadb.LocalMariaDB, monkeypatch):
        self.server = server
        self.prefix = f"t{next(_counter)}_{uuid.uuid4().hex[:6]}_"
        self.user = f"ro_{self.prefix.rstrip('_')}"[:32]
        self.password = "pw-" + uuid.uuid4().hex[:8]
        self.password_env = f"PW_{self.prefix.upper().rstrip('_')}"
        monkeypatch.setenv(self.password_env, self.password)
        self.databases: list[str] = []

    def db(self, name: str) -> str:
        return self.prefix + name

    def create(self, name: str, *statements: str) -> str:
        """CREATE DATABASE <prefix+name> and run statements in it (USE'd)."""
        from metadata_assets.sources.mysql import quote_ident

        full = self.db(name)
        self.server.execute(
            f"CREATE DATABASE {quote_ident(full)} CHARACTER SET utf8mb4", f"USE {quote_ident(full)}", *statements
        )
        self.databases.append(full)
        return full

    def load_sample(self) -> list[str]:
        """The demo sample with every database renamed under this test's prefix."""
        sql = SAMPLE_SQL.read_text()
        for name in ("shop", "billing", "analytics", "scratch_tmp"):
            sql = sql.replace(f"DATABASE IF NOT EXISTS {name} ", f"DATABASE IF NOT EXISTS {self.db(name)} ")
            sql = sql.replace(f" {name}.", f" {self.db(name)}.")
        self.server.execute(*local_mariadb.split_sql(sql))
        names = [self.db(n) for n in ("shop", "billing", "analytics", "scratch_tmp")]
        self.databases += names
        return names

    def grant(self, databases=None) -> None:
        local_mariadb.grant_reader(self.server, self.user, self.password, list(databases or self.databases))

    def source(self, **overrides) -> MySQLSource:
        fields = dict(
            name="src",
            type="mysql",
            host=self.server.host,
            port=self.server.port,
            user=self.user,
            password_env=self.password_env,
            database_pattern=Pattern(allow=[f"{self.prefix}.*"]),
        )
        fields.update(overrides)
        return MySQLSource(**fields)

    def project(self, tmp_path, **source_overrides) -> ProjectConfig:
        return ProjectConfig(
            sources=[self.source(**source_overrides)],
            storage={"uri": str(tmp_path / "store")},
            datahub={"lite": {"path": str(tmp_path / "lite.sqlite")}},
        )


@pytest.fixture
def schema(mariadb, monkeypatch):
    return Schema(mariadb, monkeypatch)
