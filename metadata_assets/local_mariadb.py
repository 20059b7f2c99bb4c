"""A private, throwaway MariaDB server: its own data dir, socket and TCP port.

Used by the demo, the test suite and the benchmark so that none of them depends on a server that happens to be
running. Nothing here is used in production.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


def _find(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or next((str(Path(d, name)) for d in SEARCH_DIRS if Path(d, name).exists()), None)
        if found:
            return found
    raise FileNotFoundError(
        f"none of {', '.join(names)} found: install Debian's mariadb-server (./dev.sh setup does it)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerTLS:
    """A server's TLS files (PEM): its certificate and key, and the CA that client certificates must chain to."""

    cert: Path
    key: Path
    ca: Path


@dataclass
class LocalMariaDB:
    """A running private server; `root` connects over TCP without a password."""

    datadir: Path
    port: int
    socket_path: Path
    process: subprocess.Popen

    host = "127.0.0.1"

    def connect(self, user: str = "root", password: str = "", database: str | None = None, **kw):
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            **kw,
        )

    def execute(self, *statements: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for stmt in statements:
                    cur.execute(stmt)
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LocalMariaDB":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(
    basedir: Path | str, port: int | None = None, extra_args: tuple[str, ...] = (), tls: ServerTLS | None = None
) -> LocalMariaDB:
    """Initialise (once) and start a server whose files all live under `basedir`; with `tls`, the server offers TLS
    with that certificate (and checks client certificates against its CA, for accounts that REQUIRE X509)."""
    if tls is not None:
        extra_args = (f"--ssl-cert={tls.cert}", f"--ssl-key={tls.key}", f"--ssl-ca={tls.ca}", *extra_args)
    basedir = Path(basedir).absolute()
    datadir = basedir / "data"
    basedir.mkdir(parents=True, exist_ok=True)
    if not (datadir / "mysql").exists():
        if datadir.exists():
            shutil.rmtree(datadir)
        subprocess.run(
            [
                _find("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    port = port or free_port()
    sock = basedir / "mariadb.sock"
    tmpdir = basedir / "tmp"  # its own: servers sharing /tmp have clashed on internal temp-table files
    tmpdir.mkdir(exist_ok=True)
    log = basedir / "error.log"
    proc = subprocess.Popen(
        [
            _find("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--log-error={log}",
            f"--pid-file={basedir / 'mariadb.pid'}",
            f"--tmpdir={tmpdir}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = LocalMariaDB(datadir=datadir, port=port, socket_path=sock, process=proc)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"mariadbd exited with {proc.returncode}; {log}:\n{tail}")
        try:
            server.connect().close()
            return server
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise TimeoutError(
                    f"mariadbd did not accept connections on port {port} within 60 s (see {log})"
                ) from None
            time.sleep(0.1)


def split_sql(text: str) -> list[str]:
    """Statements of a simple SQL script: `;` at the end of a line ends a statement; `--` lines are comments."""
    stmts, cur = [], []
    for line in text.splitlines():
        if line.strip().startswith("--") and not cur:
            continue
        cur.append(line)
        if line.rstrip().endswith(";"):
            stmts.append("\n".join(cur).rstrip().rstrip(";"))
            cur = []
    if "".join(cur).strip():
        stmts.append("\n".join(cur))
    return [s for s in stmts if s.strip()]


def grant_reader(server: LocalMariaDB, user: str, password: str, databases: list[str]) -> None:
    """A least-privilege catalog account: REFERENCES, SHOW VIEW on each database, nothing else."""
    from metadata_assets.sources.mysql import quote_ident

    server.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'")
    server.execute(*(f"GRANT REFERENCES, SHOW VIEW ON {quote_ident(db)}.* TO '{user}'@'%'" for db in databases))
