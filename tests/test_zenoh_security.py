"""Zenoh security through ``--zenoh-config``: a router that requires mutual TLS, and one
that requires user-password authentication, opened in the test process; the worker (the
CLI) delivers with the right JSON5 config and stops with one ``Error:`` line naming the
endpoint with a wrong one (never a hang, a retry loop or a traceback)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zenoh

from oprc_redis_events import ObjectStore
from oprc_redis_events.dev.certs import Certificates, make_certificates
from oprc_redis_events.dev.servers import free_port

from .helpers import watch_all
from .test_cli_errors import assert_one_error_line, env

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
PASSWORD = "zenoh-s3cret-pw"


class Router:
    """A Zenoh router in this process with ``config`` (a dict), counting the PUTs it sees."""

    def __init__(self, config: dict[str, Any]) -> None:
        base = {"mode": "router", "scouting": {"multicast": {"enabled": False}}}
        self.session = zenoh.open(zenoh.Config.from_json5(json.dumps({**base, **config})))
        self.keys: list[str] = []
        self._lock = threading.Lock()
        self._sub = self.session.declare_subscriber("oprc/**", self._on_sample)

    def _on_sample(self, sample: Any) -> None:
        with self._lock:
            self.keys.append(str(sample.key_expr))

    def close(self) -> None:
        self._sub.undeclare()
        self.session.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def tls_router(certificates: Certificates, *, mtls: bool) -> tuple[Router, str]:
    endpoint = f"tls/127.0.0.1:{free_port()}"
    tls = {
        "root_ca_certificate": str(certificates.ca),
        "listen_certificate": str(certificates.server_certificate),
        "listen_private_key": str(certificates.server_key),
        "enable_mtls": mtls,
    }
    router = Router({"listen": {"endpoints": [endpoint]}, "transport": {"link": {"tls": tls}}})
    return router, endpoint


@pytest.fixture
def mtls_router(certificates: Certificates) -> Iterator[tuple[Router, str]]:
    router, endpoint = tls_router(certificates, mtls=True)
    yield router, endpoint
    router.close()


@pytest.fixture
def password_router(tmp_path: Path) -> Iterator[tuple[Router, str]]:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    dictionary = tmp_path / "credentials.txt"
    dictionary.write_text(f"oprc-worker:{PASSWORD}\n")
    auth = {"usrpwd": {"dictionary_file": str(dictionary)}}
    router = Router({"listen": {"endpoints": [endpoint]}, "transport": {"auth": auth}})
    yield router, endpoint
    router.close()


def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def tls_config(tmp_path: Path, certificates: Certificates, *, client_certificate: bool) -> str:
    tls: dict[str, Any] = {"root_ca_certificate": str(certificates.ca)}
    if client_certificate:
        tls.update(
            enable_mtls=True,
            connect_certificate=str(certificates.client_certificate),
            connect_private_key=str(certificates.client_key),
        )
    config = {"transport": {"link": {"tls": tls}}}
    return write_config(tmp_path / "zenoh-tls.json5", json.dumps(config, indent=2))


def password_config(tmp_path: Path, password: str) -> str:
    config = {"transport": {"auth": {"usrpwd": {"user": "oprc-worker", "password": password}}}}
    return write_config(tmp_path / "zenoh-auth.json5", json.dumps(config, indent=2))


def worker_delivers(redis_url: str, endpoint: str, config: str, router: Router) -> str:
    """Run the worker CLI with ``config``; a write must reach ``router``.  Its output."""
    worker = subprocess.Popen(
        [*CLI, "worker", "--redis-url", redis_url, "--zenoh-connect", endpoint,
         "--zenoh-config", config, "--log-level", "debug"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(),
    )  # fmt: skip
    store = ObjectStore.from_url(redis_url)
    try:
        store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
        deadline = time.monotonic() + 30
        while not router.keys and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
    finally:
        store.close()
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert router.keys and router.keys[0].startswith("oprc/svc/0/async/f/"), output
    assert worker.returncode == 0, output
    return output


def worker_refused(redis_url: str, endpoint: str, config: str) -> str:
    """Run the worker CLI with a wrong ``config``: one ``Error:`` line, exit status 1."""
    out = subprocess.run(
        [*CLI, "worker", "--redis-url", redis_url, "--zenoh-connect", endpoint,
         "--zenoh-config", config],
        capture_output=True, text=True, timeout=60, env=env(),
    )  # fmt: skip
    message = assert_one_error_line(out)
    assert out.returncode == 1
    assert f"Zenoh at {endpoint} refused the session" in message, message
    return message


def test_mutual_tls(
    mtls_router: tuple[Router, str], certificates: Certificates, redis_url: str, tmp_path: Path
) -> None:
    router, endpoint = mtls_router
    worker_delivers(
        redis_url, endpoint, tls_config(tmp_path, certificates, client_certificate=True), router
    )
    message = worker_refused(
        redis_url, endpoint, tls_config(tmp_path, certificates, client_certificate=False)
    )
    assert "enable_mtls" in message and "connect_certificate" in message


def test_server_side_tls(certificates: Certificates, redis_url: str, tmp_path: Path) -> None:
    """The router's certificate checked against the CA of the config; without the CA (Zenoh
    then trusts the public WebPKI roots only) the router is refused."""
    router, endpoint = tls_router(certificates, mtls=False)
    try:
        config = tls_config(tmp_path, certificates, client_certificate=False)
        worker_delivers(redis_url, endpoint, config, router)
        no_ca = write_config(tmp_path / "no-ca.json5", "{}")
        assert "root_ca_certificate" in worker_refused(redis_url, endpoint, no_ca)
    finally:
        router.close()


def test_user_password(password_router: tuple[Router, str], redis_url: str, tmp_path: Path) -> None:
    router, endpoint = password_router
    output = worker_delivers(redis_url, endpoint, password_config(tmp_path, PASSWORD), router)
    assert PASSWORD not in output
    wrong = password_config(tmp_path, "wrong-password")
    message = worker_refused(redis_url, endpoint, wrong)
    assert "transport/auth/usrpwd" in message and "wrong-password" not in message
    tail = subprocess.run(
        [*CLI, "tail", "--zenoh-connect", endpoint, "--zenoh-config", wrong, "--timeout", "5"],
        capture_output=True, text=True, timeout=60, env=env(),
    )  # fmt: skip
    assert f"Zenoh at {endpoint} refused the session" in assert_one_error_line(tail)


def test_a_bad_config_file_shows_no_value_of_it(redis_url: str, tmp_path: Path) -> None:
    """Zenoh quotes a wrongly typed value and a syntax error's line: neither is shown."""
    auth = {"usrpwd": {"user": "u", "password": PASSWORD}}
    wrong_type = {"transport": {"auth": auth, "link": {"tls": {"enable_mtls": PASSWORD}}}}
    for text in (json.dumps(wrong_type), json.dumps({"transport": {"auth": auth}}) + " x"):
        config = write_config(tmp_path / "bad.json5", text)
        out = subprocess.run(
            [*CLI, "worker", "--redis-url", redis_url, "--zenoh-config", config],
            capture_output=True, text=True, timeout=60, env=env(),
        )  # fmt: skip
        message = assert_one_error_line(out)
        assert "cannot read Zenoh config file" in message, message
        assert PASSWORD not in out.stdout + out.stderr


@pytest.mark.quick
def test_config_file_messages_quote_no_value() -> None:
    from oprc_redis_events.connect.zenoh_session import config_file_message

    typed = (
        'JSON error: Message { msg: "invalid type: string \\"hunter2, x\\", expected a boolean", '
        "location: Some(Location { line: 3, column: 9 }) } at /x/zenoh-config/src/lib.rs:1484."
    )
    assert config_file_message(Exception(typed)) == (
        "invalid type: string, expected a boolean (line 3, column 9)"
    )
    syntax = (
        ' --> 1:56\n  |\n1 | { password: "hunter2" } x\n  |   ^---\n  |\n  = expected identifier'
    )
    assert config_file_message(Exception(syntax)) == "--> 1:56 = expected identifier"
