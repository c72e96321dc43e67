"""Follow-ups of issue 9 on the command line: field names parsed alike by every command,
pipes closed early, busy ports, repeated options; each run as a user would."""

from __future__ import annotations

import pytest

from oprc_redis_events.dev.servers import free_port

from .test_cli_errors import assert_one_error_line, run


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
