"""Every command, run as a user would, with its server down and with a malformed argument:
one ``Error:`` line and a non-zero exit status, never a traceback.

The commands are enumerated from the click group, so a new command is covered (or the test
says what it needs to know about it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import click
import pytest

from oprc_redis_events import ObjectStore
from oprc_redis_events.cli import main
from oprc_redis_events.dev.servers import RedisServer, free_port

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
DAEMONS = {("worker",), ("serve",), ("objects",)}  # they wait for their servers instead of failing
OFFLINE = {("acl",)}  # they talk to no server
#: a value for each argument or required option, by parameter name
SAMPLES = {
    "cls_id": "orders",
    "partition": "0",
    "partitions": "0",
    "object_id": "1",
    "key": "42",
    "assignments": "42=x",
    "name": "some-group",
    "fn_id": "f",
    "target": "svc/0/fn",
}
MODULE_FUNC = "oprc_redis_events.functions.examples:send_notification"


def leaf_commands(
    group: click.Group = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = dict(leaf_commands())


def sample_args(command: click.Command) -> list[str]:
    """Well-formed values for the command's required arguments and options."""
    args: list[str] = []
    for param in command.params:
        if not param.required or param.name is None:
            continue
        if isinstance(param.type, click.Choice):
            value = str(param.type.choices[0])
        elif getattr(param, "metavar", None) == "MODULE:FUNC":
            value = MODULE_FUNC
        else:
            value = SAMPLES.get(
                param.name, "0" if isinstance(param.type, click.types.IntParamType) else "x"
            )
        args += [param.opts[0], value] if isinstance(param, click.Option) else [value]
    return args


def options(command: click.Command) -> set[str]:
    return {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts}


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPRC_EVENTS_", "ODGM_"))}
    return {**clean, "PYTHONUNBUFFERED": "1"}


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env(), input=""
    )


def assert_one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    text = out.stdout + out.stderr
    assert out.returncode in (1, 2), text
    assert "Traceback" not in text, text
    assert ".rs:" not in text, text  # no Rust source paths from Zenoh
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    return errors[0]


def test_every_command_is_enumerated() -> None:
    assert {("dlq", "replay"), ("groups", "drop"), ("triggers", "add"), ("tail",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(set(COMMANDS) - DAEMONS - OFFLINE), ids=" ".join)
def test_server_down_is_one_error_line(path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    args = [*path, *sample_args(command)]
    opts = options(command)
    if "--redis-url" in opts:
        args += ["--redis-url", f"redis://127.0.0.1:{free_port()}/0"]
    elif "--zenoh-connect" in opts:
        args += ["--zenoh-connect", f"tcp/127.0.0.1:{free_port()}", "--timeout", "2"]
    else:
        pytest.fail(f"{' '.join(path)}: no server to take down; teach this test about it")
    if "--yes" in opts:
        args.append("--yes")
    message = assert_one_error_line(run(args))
    assert "Point --redis-url" in message or "Zenoh" in message, message


@pytest.mark.parametrize("path", sorted(DAEMONS), ids=" ".join)
def test_daemons_wait_for_redis_without_a_traceback(path: tuple[str, ...]) -> None:
    args = [
        *path,
        *sample_args(COMMANDS[path]),
        "--redis-url",
        f"redis://127.0.0.1:{free_port()}/0",
    ]
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env()
    )
    try:
        time.sleep(3)
        assert proc.poll() is None, "it gave up"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_malformed_argument_is_one_error_line(path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    args = [*path, *sample_args(command)]
    opts = options(command)
    if "--redis-url" in opts:
        args += ["--redis-url", "127.0.0.1:6379"]  # no scheme
        expected = "write redis://127.0.0.1:6379"
    elif "--key" in opts:
        args += ["--key", "oprc/#"]
        expected = "write e.g. oprc/**"
    elif "--db" in opts:
        args += ["--db", "-1"]
        expected = "Invalid value for '--db'"
    else:
        pytest.fail(f"{' '.join(path)}: no malformed argument known; teach this test one")
    message = assert_one_error_line(run(args))
    assert expected in message, message


@pytest.fixture
def live(redis_url: str) -> Iterator[tuple[str, ObjectStore]]:
    store = ObjectStore.from_url(redis_url)
    yield redis_url, store
    store.close()


@pytest.mark.parametrize("target", ["svc.fn", "svc/x/fn", "svc/0/objects/fn", "a b/0/fn"])
def test_a_malformed_trigger_target_says_what_to_write(
    live: tuple[str, ObjectStore], target: str
) -> None:
    url, store = live
    store.create("orders", 0, 1, {42: b"a"})
    out = run(
        ["triggers", "add", "orders", "0", "1", "on_update", "42", target, "--redis-url", url]
    )
    message = assert_one_error_line(out)
    assert out.returncode == 1 and "write cls/pid/fn" in message, message
    assert len(store.get_triggers("orders", 0, 1).data_trigger) == 0


def test_an_option_without_a_value_is_refused(live: tuple[str, ObjectStore]) -> None:
    url, store = live
    store.create("orders", 0, 1, {42: b"a"})
    out = run(
        [
            *("triggers", "add", "orders", "0", "1", "on_update", "42", "svc/0/fn"),
            *("--option", "nokv", "--redis-url", url),
        ]
    )
    message = assert_one_error_line(out)
    assert out.returncode == 2 and "'nokv' is not KEY=VALUE" in message, message
    assert len(store.get_triggers("orders", 0, 1).data_trigger) == 0


def test_explain_refuses_setting_and_deleting_one_field(live: tuple[str, ObjectStore]) -> None:
    url, store = live
    store.create("orders", 0, 1, {42: b"a"})
    out = run(["explain", "orders", "0", "1", "42=x", "--delete", "42", "--redis-url", url])
    message = assert_one_error_line(out)
    assert out.returncode == 2 and "field 42 is both set" in message, message


def test_put_create_on_an_existing_object_names_real_commands(
    live: tuple[str, ObjectStore],
) -> None:
    import re

    url, store = live
    store.create("orders", 0, 1, {42: b"a"})
    message = assert_one_error_line(
        run(["put", "orders", "0", "1", "42=b", "--create", "--redis-url", url])
    )
    suggested = re.findall(r"`oprc-redis-events ([a-z-]+)", message)
    assert suggested and all(name in main.commands for name in suggested), message
    assert "update" not in suggested and "upsert" not in message


def test_wrong_password_is_one_error_line() -> None:
    with RedisServer(extra=["--requirepass", "right-pw"]) as server:
        url = f"redis://:wrong-pw@127.0.0.1:{server.port}/0"
        for args in (["get", "orders", "0", "1"], ["dlq", "list"], ["groups", "list"]):
            out = run([*args, "--redis-url", url])
            message = assert_one_error_line(out)
            assert "credentials" in message and "wrong-pw" not in out.stderr, message


def test_zenoh_configuration_errors_read_as_text() -> None:
    message = assert_one_error_line(run(["tail", "--zenoh-connect", "nonsense", "--timeout", "1"]))
    assert "Endpoints must be of the form <protocol>/<address>" in message
    assert "Json5Err" not in message
