"""Real faults on loopback for tests/test_faults.py: a peer that never speaks, a proxy that stalls, a killed server.

Nothing here imitates the MySQL driver: the driver talks to a real MariaDB (or to a real socket that misbehaves)
and meets the fault as it would in production.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Optional

from metadata_assets import local_mariadb


class SilentPeer:
    """Accepts TCP connections and never sends a byte (a wedged proxy, a firewall that black-holes, a hung host)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.accepted:
            c.close()


class StallingProxy:
    """A TCP proxy to a real server; `stall()` stops forwarding the server's answers (a query that never returns),
    for connections open now and any made later, until `resume()`. `slow(s)` forwards each piece of the server's
    answers `s` seconds late: every single read finishes within its timeout, but their sum grows (a congested link,
    a server trickling its rows)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.delay_s = 0.0
        self._closed = False
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.stalled.set()

    def resume(self) -> None:
        self.stalled.clear()

    def slow(self, seconds: float) -> None:
        self.delay_s = seconds

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        pairs = {client: upstream, upstream: client}
        try:
            while not self._closed:
                readable, _, _ = select.select(list(pairs), [], [], 0.05)
                for s in readable:
                    if s is upstream and self.stalled.is_set():
                        continue  # hold the server's answer
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is upstream and self.delay_s:
                        time.sleep(self.delay_s)
                    pairs[s].sendall(data)
                if self.stalled.is_set():
                    time.sleep(0.05)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


def kill_server(server: local_mariadb.LocalMariaDB) -> None:
    """SIGKILL: no shutdown, no goodbye to clients (a crash, an OOM kill, a failover)."""
    server.process.kill()
    server.process.wait(timeout=30)


def restart_server(server: local_mariadb.LocalMariaDB) -> local_mariadb.LocalMariaDB:
    """Start the killed server again on the same data dir and port (InnoDB recovers its log)."""
    fresh = local_mariadb.start(server.datadir.parent, port=server.port)
    server.process = fresh.process
    return server


def within(seconds: float, fn: Callable, *args, **kwargs):
    """Run fn in a thread and give up after `seconds`: a hang fails the test instead of blocking the suite.
    Returns (result, exception, elapsed)."""
    pool = ThreadPoolExecutor(max_workers=1)
    started = time.monotonic()
    future = pool.submit(fn, *args, **kwargs)
    try:
        result, error = future.result(timeout=seconds), None
    except FutureTimeout:
        pool.shutdown(wait=False)
        raise AssertionError(
            f"{getattr(fn, '__name__', fn)} still waiting after {seconds}s: an unbounded wait"
        ) from None
    except Exception as e:  # noqa: BLE001 - the caller asserts on it
        result, error = None, e
    pool.shutdown(wait=False)
    return result, error, time.monotonic() - started


class CountingHook:
    """Calls `action` when the n-th statement matching `needle` is about to run (wraps MySQLReader.query)."""

    def __init__(self, needle: str, n: int, action: Callable[[], None]):
        self.needle, self.n, self.action = needle, n, action
        self.seen = 0
        self.fired: Optional[float] = None

    def install(self, monkeypatch) -> "CountingHook":
        from metadata_assets.sources.mysql import MySQLReader

        original = MySQLReader.query
        hook = self

        def query(reader, sql, args=()):
            if hook.needle in sql and hook.fired is None:
                hook.seen += 1
                if hook.seen == hook.n:
                    hook.fired = time.monotonic()
                    hook.action()
            return original(reader, sql, args)

        monkeypatch.setattr(MySQLReader, "query", query)
        return self


class RewriteHook:
    """Sends the n-th statement matching `needle` to the server with `old` replaced by `new` (wraps
    MySQLReader.query): the real server then refuses a real statement, e.g. with an unknown column."""

    def __init__(self, needle: str, n: int, old: str, new: str):
        self.needle, self.n, self.old, self.new = needle, n, old, new
        self.seen = 0
        self.sent: Optional[str] = None

    def install(self, monkeypatch) -> "RewriteHook":
        from metadata_assets.sources.mysql import MySQLReader

        original = MySQLReader.query
        hook = self

        def query(reader, sql, args=()):
            if hook.needle in sql and hook.sent is None:
                hook.seen += 1
                if hook.seen == hook.n:
                    assert hook.old in sql, f"{hook.old!r} not in the statement to rewrite"
                    sql = hook.sent = sql.replace(hook.old, hook.new, 1)
            return original(reader, sql, args)

        monkeypatch.setattr(MySQLReader, "query", query)
        return self
