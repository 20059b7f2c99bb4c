"""A private, throwaway PostgreSQL server (Debian's `postgresql` package): its own data dir, socket dir and TCP port.

For the benchmark's deployed shape (Dagster's run, event and schedule storage on PostgreSQL, as Cloud SQL is on
GKE) and for tests. PostgreSQL refuses to run as root: as root the server runs as the `postgres` account the Debian
package creates, and its directory is handed to that account. Nothing here is used in production.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from metadata_assets.local_mariadb import free_port


def _bin(name: str) -> str:
    found = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    if found:  # the newest major version installed (by number: 15 after 9.6)
        return max(found, key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
    if shutil.which(name):
        return shutil.which(name)
    raise FileNotFoundError(f"{name} not found: install Debian's postgresql (./dev.sh setup does it)")


@dataclass
class LocalPostgres:
    """A running private server; user `postgres` connects over TCP without a password (trust, loopback only)."""

    datadir: Path
    port: int
    process: subprocess.Popen
    log: object = None  # the server's log file, closed by stop()
    owns_dir: bool = False  # start() made datadir's parent for it (see _server_dir): destroy() removes it
    host = "127.0.0.1"
    user = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back, disconnect, stop
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def destroy(self) -> None:
        """Stop the server and delete its files: the data dir and socket dir, and the directory start() made for
        them outside the caller's when it did; never anything else of the caller's."""
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)
        else:
            shutil.rmtree(self.datadir, ignore_errors=True)
            shutil.rmtree(self.datadir.parent / "pgsock", ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _as_server_user() -> tuple[int | None, int | None]:
    """(uid, gid) to run server binaries as: as root, the `postgres` account; else None (as we are)."""
    if os.geteuid() != 0:
        return None, None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root, but there is no `postgres` account to run PostgreSQL as "
            "(Debian's postgresql package creates it)"
        ) from None
    return pw.pw_uid, pw.pw_gid


def _traversable_by_others(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in path.parents)


def _server_dir(basedir: Path, uid: int | None, gid: int | None) -> Path:
    """Where the server's files go: basedir, unless the `postgres` account cannot reach it (pytest's and mkdtemp's
    directories are 0700 root): then a directory of its own under the system temp dir, linked as basedir/server."""
    basedir.mkdir(parents=True, exist_ok=True)
    if uid is None or _traversable_by_others(basedir):
        return basedir
    link = basedir / "server"
    if link.is_symlink() and link.resolve().is_dir():
        return link.resolve()
    d = Path(tempfile.mkdtemp(prefix="metadata-assets-postgres-"))
    os.chown(d, uid, gid)
    link.unlink(missing_ok=True)
    link.symlink_to(d)
    return d


def _tls_settings(basedir: Path, tls, uid: int | None, gid: int | None) -> list[str]:
    """The server's TLS files copied where it can read them (its key 0600 and its own, as PostgreSQL demands), and
    the settings that turn TLS on with them."""
    d = basedir / "tls"
    d.mkdir(exist_ok=True)
    settings = ["ssl=on"]
    for name, src, setting in (
        ("server.crt", tls.cert, "ssl_cert_file"),
        ("server.key", tls.key, "ssl_key_file"),
        ("ca.crt", tls.ca, "ssl_ca_file"),
    ):
        dst = d / name
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o600)
        if uid is not None:
            os.chown(dst, uid, gid)
        settings.append(f"{setting}={dst}")
    if uid is not None:
        os.chown(d, uid, gid)
    return settings


def _write_hba(datadir: Path, lines: list[str], uid: int | None, gid: int | None) -> None:
    """pg_hba.conf as initdb wrote it, with `lines` first (the first matching line decides)."""
    hba, orig = datadir / "pg_hba.conf", datadir / "pg_hba.conf.initdb"
    if not orig.exists():
        shutil.copyfile(hba, orig)
    hba.write_text("".join(f"{line}\n" for line in lines) + orig.read_text())
    if uid is not None:
        os.chown(hba, uid, gid)


def start(
    basedir: Path, port: int | None = None, timeout_s: float = 60, tls=None, hba: list[str] | None = None
) -> LocalPostgres:
    """initdb (once) under basedir/pgdata and start the server on 127.0.0.1:port; returns when it accepts logins.
    With `tls` (local_mariadb.ServerTLS) the server offers TLS with that certificate and checks client certificates
    against its CA; `hba` lines go first in pg_hba.conf (e.g. `hostssl all alice 127.0.0.1/32 cert`)."""
    uid, gid = _as_server_user()
    requested = Path(basedir).absolute()
    basedir = _server_dir(requested, uid, gid)
    as_user = {} if uid is None else {"user": uid, "group": gid, "extra_groups": [], "cwd": str(basedir)}
    datadir, sockdir = basedir / "pgdata", basedir / "pgsock"
    sockdir.mkdir(exist_ok=True)
    if uid is not None:
        for p in (basedir, sockdir):
            os.chown(p, uid, gid)
        if datadir.exists():
            os.chown(datadir, uid, gid)
    if not (datadir / "PG_VERSION").exists():
        subprocess.run(
            [
                _bin("initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
            text=True,
            **as_user,
        )
    if hba is not None:
        _write_hba(datadir, hba, uid, gid)
    settings = _tls_settings(basedir, tls, uid, gid) if tls is not None else []
    port = port or free_port()
    log = open(basedir / "postgres.log", "ab")
    process = subprocess.Popen(
        [
            _bin("postgres"),
            "-D",
            str(datadir),
            "-p",
            str(port),
            "-k",
            str(sockdir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            *(arg for setting in settings for arg in ("-c", setting)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **as_user,
    )
    server = LocalPostgres(datadir=datadir, port=port, process=process, log=log, owns_dir=basedir != requested)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(f"postgres exited with {process.returncode}; see {basedir / 'postgres.log'}")
        ready = subprocess.run(
            [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"], capture_output=True
        )
        if ready.returncode == 0:
            return server
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"postgres on port {port} not ready after {timeout_s:.0f}s; see {basedir / 'postgres.log'}")


def create_database(server: LocalPostgres, name: str) -> None:
    subprocess.run(
        [
            _bin("psql"),
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-U",
            server.user,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            f'CREATE DATABASE "{name}"',
        ],
        check=True,
        capture_output=True,
    )


def execute(server: LocalPostgres, database: str, sql: str) -> None:
    """Run SQL (one or more statements) in a database as the server's superuser, autocommitted."""
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()
