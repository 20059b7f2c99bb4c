"""TLS to the catalog servers, on a real MariaDB and a real PostgreSQL started here with TLS on, with a CA and
certificates this module makes (tests/tls_certs.py): the server certificate names `localhost` only.

- MySQL `tls:`: a certificate checked against `ca` and `host` (verify_identity), against `ca` only, a client
  certificate for an account REQUIRE X509; `required` refuses a server without TLS before the login is sent;
  `preferred` (default) encrypts when offered; `disabled` does not.
- PostgreSQL: sslmode verify-full refuses a wrong host name and a certificate of another CA; require refuses a
  server without TLS; a client certificate for a `cert` line of pg_hba.conf.
- check-access says whether its connection was encrypted; grants says how to make the server insist on TLS.
"""

from __future__ import annotations

import re

import pytest
from tls_certs import make_pki

from metadata_assets import local_mariadb, local_postgres
from metadata_assets.sources.base import SourceUnavailable
from metadata_assets.sources.mysql.config import MySQLSource
from metadata_assets.sources.mysql.reader import connect as mysql_connect
from metadata_assets.sources.postgres.config import PostgresSource
from metadata_assets.sources.postgres.reader import connect as pg_connect
from metadata_assets.sources.registry import kind

CLIENT = "tls_client"  # the client certificate's CN: PostgreSQL's `cert` login maps it to this role
PASSWORD = "tls-pw-1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), server_names=("localhost",), client_cn=CLIENT)


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv("TLS_TEST_PW", PASSWORD)


# --- MySQL / MariaDB ---


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory, pki):
    server = local_mariadb.start(tmp_path_factory.mktemp("mariadb-tls"), tls=pki.server)
    server.execute(
        "CREATE DATABASE IF NOT EXISTS tls_shop",
        "CREATE TABLE IF NOT EXISTS tls_shop.t (id INT PRIMARY KEY)",
        f"CREATE USER IF NOT EXISTS 'tls_reader'@'%' IDENTIFIED BY '{PASSWORD}'",
        "GRANT REFERENCES, SHOW VIEW ON tls_shop.* TO 'tls_reader'@'%'",
        f"CREATE USER IF NOT EXISTS '{CLIENT}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509",
        f"GRANT REFERENCES, SHOW VIEW ON tls_shop.* TO '{CLIENT}'@'%'",
    )
    yield server
    server.stop()


def mysql_source(server, host="localhost", user="tls_reader", **tls) -> MySQLSource:
    return MySQLSource(
        name="tls_src",
        type="mysql",
        host=host,
        port=server.port,
        user=user,
        password_env="TLS_TEST_PW",
        connect_timeout_s=5,
        tls=tls,
        database_pattern={"allow": ["tls_shop"]},
    )


def mysql_cipher(source) -> str:
    conn = mysql_connect(source)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            return cur.fetchone()["Value"]
    finally:
        conn.close()


def test_mysql_certificate_and_host_name_checked(tls_mariadb, pki):
    source = mysql_source(tls_mariadb, ca=str(pki.ca))
    assert source.tls.effective_mode == "required"
    assert mysql_cipher(source)  # TLS in use
    assert kind("mysql").list_databases(source) == ["tls_shop"]  # the reading path connects the same way
    report = kind("mysql").check_access(source)
    assert report.tls.startswith("TLS (TLSv1.") and report.tls.endswith(
        "TLS required, certificate checked against tls.ca and its host name"
    )
    assert f"connection: {report.tls}" in report.text()


def test_mysql_wrong_host_name_is_refused(tls_mariadb, pki):
    """The certificate names localhost; 127.0.0.1 is the same server, but not the name the certificate vouches for."""
    with pytest.raises(SourceUnavailable) as e:
        mysql_connect(mysql_source(tls_mariadb, host="127.0.0.1", ca=str(pki.ca)))
    msg = str(e.value)
    assert "IP address mismatch" in msg and "certificate" in msg, msg
    assert msg.endswith("[TLS required, certificate checked against tls.ca and its host name]")
    # verify_identity: false checks the CA only (VERIFY_CA)
    assert mysql_cipher(mysql_source(tls_mariadb, host="127.0.0.1", ca=str(pki.ca), verify_identity=False))


def test_mysql_certificate_of_another_ca_is_refused(tls_mariadb, pki):
    with pytest.raises(SourceUnavailable, match="certificate verify failed"):
        mysql_connect(mysql_source(tls_mariadb, ca=str(pki.other_ca)))
    with pytest.raises(SourceUnavailable, match="certificate verify failed"):
        mysql_connect(mysql_source(tls_mariadb, ca=str(pki.other_ca), verify_identity=False))


def test_mysql_required_refuses_a_server_without_tls_before_the_login(mariadb, pki):
    """The session's MariaDB offers no TLS. The account does not exist: had the login been sent, the answer would
    be 'Access denied'; the refusal comes first."""
    for tls in ({"mode": "required"}, {"ca": str(pki.ca)}):
        with pytest.raises(SourceUnavailable) as e:
            mysql_connect(mysql_source(mariadb, host="127.0.0.1", user="nobody_tls", **tls))
        assert "SSL is required but the server doesn't support it" in str(e.value), str(e.value)
        assert "Access denied" not in str(e.value)
    # preferred (the default) logs in without TLS there, and says so
    with pytest.raises(SourceUnavailable, match="Access denied"):
        mysql_connect(mysql_source(mariadb, host="127.0.0.1", user="nobody_tls"))


def test_mysql_preferred_encrypts_when_offered_and_disabled_does_not(tls_mariadb, mariadb, monkeypatch):
    assert mysql_cipher(mysql_source(tls_mariadb))  # default preferred: encrypted, certificate unchecked
    assert mysql_cipher(mysql_source(tls_mariadb, mode="required"))
    assert mysql_cipher(mysql_source(tls_mariadb, mode="disabled")) == ""
    # a server without TLS: preferred connects in the clear; check-access says so
    local_mariadb.grant_reader(mariadb, "plain_tls_reader", PASSWORD, ["plain_tls_none"])
    plain = mysql_source(mariadb, host="127.0.0.1", user="plain_tls_reader")
    assert mysql_cipher(plain) == ""
    report = kind("mysql").check_access(plain, ["plain_tls_none"])
    assert report.tls == (
        "NOT encrypted: catalog queries and results travel in the clear; TLS when the server "
        "offers it, certificate not checked (tls.mode: preferred); tls.mode: required (with tls.ca) "
        "refuses a server without TLS"
    )


def test_mysql_client_certificate_for_an_account_that_requires_x509(tls_mariadb, pki):
    with_cert = mysql_source(
        tls_mariadb, user=CLIENT, ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key)
    )
    assert mysql_cipher(with_cert)
    with pytest.raises(SourceUnavailable, match="Access denied"):
        mysql_connect(mysql_source(tls_mariadb, user=CLIENT, ca=str(pki.ca)))
    grants = "\n".join(kind("mysql").grant_text(with_cert, ["tls_shop"]))
    assert f"ALTER USER '{CLIENT}'@'%' REQUIRE X509;" in grants
    assert "ALTER USER 'tls_reader'@'%' REQUIRE SSL;" in "\n".join(
        kind("mysql").grant_text(mysql_source(tls_mariadb), ["tls_shop"])
    )


def test_mysql_unreadable_tls_file_names_the_field(tls_mariadb, tmp_path):
    with pytest.raises(SourceUnavailable) as e:
        mysql_connect(mysql_source(tls_mariadb, ca=str(tmp_path / "nope.pem")))
    assert str(e.value) == (
        f"source 'tls_src' (tls_reader@localhost:{tls_mariadb.port}): field tls.ca: cannot load "
        f"{tmp_path / 'nope.pem'}: No such file or directory"
    )


# --- PostgreSQL ---


@pytest.fixture(scope="module")
def tls_pg(tmp_path_factory, pki):
    server = local_postgres.start(
        tmp_path_factory.mktemp("pg-tls"),
        tls=pki.server,
        hba=[f"hostssl all {CLIENT} 127.0.0.1/32 cert", f"host all {CLIENT} all reject"],
    )
    local_postgres.execute(server, "postgres", f"CREATE ROLE {CLIENT} LOGIN; CREATE ROLE tls_reader LOGIN")
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def plain_pg(tmp_path_factory):
    server = local_postgres.start(tmp_path_factory.mktemp("pg-plain"))
    yield server
    server.destroy()


def pg_source(server, host="localhost", user="tls_reader", **tls) -> PostgresSource:
    return PostgresSource(
        name="tls_pg",
        type="postgres",
        host=host,
        port=server.port,
        user=user,
        password_env="TLS_TEST_PW",
        connect_timeout_s=5,
        **tls,
    )


def pg_ssl(source) -> bool:
    conn = pg_connect(source)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_pg_verify_full_checks_certificate_and_host_name(tls_pg, pki):
    source = pg_source(tls_pg, sslmode="verify-full", sslrootcert=str(pki.ca))
    assert pg_ssl(source) is True
    report = kind("postgres").check_access(source, ["postgres"])
    assert report.tls.startswith("TLS (TLSv1.") and report.tls.endswith(
        "TLS required, certificate and host name checked (sslmode verify-full)"
    )
    with pytest.raises(SourceUnavailable) as e:
        pg_connect(pg_source(tls_pg, host="127.0.0.1", sslmode="verify-full", sslrootcert=str(pki.ca)))
    assert re.search(r'server certificate for "localhost".* does not match host name "127.0.0.1"', str(e.value)), e
    assert str(e.value).endswith("[TLS required, certificate and host name checked (sslmode verify-full)]")
    # verify-ca: the CA only
    assert pg_ssl(pg_source(tls_pg, host="127.0.0.1", sslmode="verify-ca", sslrootcert=str(pki.ca))) is True


def test_pg_certificate_of_another_ca_is_refused(tls_pg, pki):
    for mode in ("verify-full", "verify-ca"):
        with pytest.raises(SourceUnavailable, match="certificate verify failed"):
            pg_connect(pg_source(tls_pg, sslmode=mode, sslrootcert=str(pki.other_ca)))


def test_pg_require_refuses_a_server_without_tls(plain_pg, pki):
    for tls in ({"sslmode": "require"}, {"sslmode": "verify-full", "sslrootcert": str(pki.ca)}):
        with pytest.raises(SourceUnavailable, match="server does not support SSL, but SSL was required"):
            pg_connect(pg_source(plain_pg, user="postgres", **tls))
    plain = pg_source(plain_pg, user="postgres")  # prefer (the default): in the clear, and check-access says so
    assert pg_ssl(plain) is False
    assert (
        kind("postgres")
        .check_access(plain, ["postgres"])
        .tls.startswith(
            "NOT encrypted: catalog queries and results travel in the clear; TLS when the server offers it, certificate "
            "not checked (sslmode prefer); sslmode verify-full"
        )
    )


def test_pg_prefer_encrypts_when_offered_and_disable_does_not(tls_pg):
    assert pg_ssl(pg_source(tls_pg)) is True
    assert pg_ssl(pg_source(tls_pg, sslmode="disable")) is False


def test_pg_client_certificate_for_a_cert_login(tls_pg, pki):
    source = pg_source(
        tls_pg,
        user=CLIENT,
        sslmode="verify-full",
        sslrootcert=str(pki.ca),
        sslcert=str(pki.client_cert),
        sslkey=str(pki.client_key),
    )
    assert pg_ssl(source) is True
    with pytest.raises(SourceUnavailable, match="certificate"):
        pg_connect(pg_source(tls_pg, user=CLIENT, sslmode="verify-full", sslrootcert=str(pki.ca)))
    grants = "\n".join(kind("postgres").grant_text(source, ["postgres"]))
    assert f"'hostssl all {CLIENT} <client network> cert'" in grants
