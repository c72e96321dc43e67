"""Follow-ups of issue 9 on the command line: field names parsed alike by every command,
pipes closed early, busy ports, repeated options; each run as a user would."""

from __future__ import annotations

import shlex
import socket
import subprocess
from collections.abc import Iterator

import pytest

from oprc_redis_events import ObjectStore
from oprc_redis_events.dev.servers import free_port

from .test_cli_errors import CLI, assert_one_error_line, run


@pytest.mark.parametrize(
    "args",
    [
        ["explain", "orders", "0", "1001", "042=x"],
        ["explain", "orders", "0", "1001", "--delete", "042"],
        ["put", "orders", "0", "1001", "042=x"],
        ["delete", "orders", "0", "1001", "042"],
    ],
    ids=["explain-set", "explain-delete", "put", "delete-field"],
)
def test_every_command_refuses_a_field_name_the_store_refuses(args: list[str]) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # refused before any connection
    message = assert_one_error_line(run([*args, "--redis-url", down]))
    assert "'042' is all digits but not a canonical number" in message, message


def test_explain_refuses_a_negative_depth() -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    out = run(["explain", "orders", "0", "1001", "42=x", "--depth", "-1", "--redis-url", down])
    message = assert_one_error_line(out)
    assert out.returncode == 2 and "--depth" in message and ">=0" in message, message


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback TCP port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_busy_metrics_port_is_one_error_naming_it(redis_url: str, busy_port: int) -> None:
    out = run(["worker", "--redis-url", redis_url, "--metrics-port", str(busy_port)], timeout=120)
    message = assert_one_error_line(out)
    assert out.returncode == 1 and f"127.0.0.1:{busy_port}" in message, message
    assert "Address already in use" in message and "--metrics-port" in message, message


def test_a_zenoh_listen_endpoint_that_cannot_be_bound_fails_at_once(
    redis_url: str, busy_port: int
) -> None:
    endpoint = f"tcp/127.0.0.1:{busy_port}"
    out = run(["worker", "--redis-url", redis_url, "--zenoh-listen", endpoint], timeout=120)
    message = assert_one_error_line(out)
    assert out.returncode == 1 and endpoint in message and "--zenoh-listen" in message, message
    assert "retrying" not in out.stderr, out.stderr


def test_a_repeated_option_key_is_refused(redis_url: str) -> None:
    out = run(
        [
            *("triggers", "add", "orders", "0", "1", "on_update", "42", "svc/0/fn"),
            *("--option", "a=b", "--option", "a=c", "--redis-url", redis_url),
        ]
    )
    message = assert_one_error_line(out)
    assert out.returncode == 2 and "'a' is given twice" in message, message


def test_output_cut_short_by_a_pipe_exits_quietly(redis_url: str) -> None:
    with ObjectStore.from_url(redis_url) as store:
        store.create("orders", 0, 1, {i: b"v" * 64 for i in range(5000)})  # > a pipe's buffer
    cli = " ".join(shlex.quote(a) for a in CLI)
    out = subprocess.run(
        ["bash", "-c", f"{cli} get orders 0 1 --redis-url {redis_url} | head -4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert len(out.stdout.splitlines()) == 4
    assert out.stderr == "", out.stderr
