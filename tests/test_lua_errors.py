"""Errors Redis reports from our scripts name our file and line, not the prepended text."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import redis

from oprc_redis_events.lua.loader import locate, register

PLACE = re.compile(r"lua/([\w/]+\.lua):(\d+)")


def _line(path: str, number: int) -> str:
    text = resources.files("oprc_redis_events.lua").joinpath(path).read_text()
    return text.splitlines()[number - 1]


def test_a_runtime_error_in_a_script_names_its_own_file_and_line(client: redis.Redis) -> None:
    write = register(client, "write")
    keys = [f"oprc:{{c:0}}:{k}:1" for k in ("obj", "meta")] + ["oprc:{c:0}:outbox"]
    keys += ["oprc:{c:0}:shadow:1", "oprc:{c:0}:capture", "oprc:switch"]
    with pytest.raises(redis.ResponseError) as raised:
        write(keys=keys, args=["create", "1", "0", "", "1", "not a count"])
    message = locate(str(raised.value))
    place = PLACE.search(message)
    assert place is not None, message
    assert "user_script" not in message
    file, number = place.group(1), int(place.group(2))
    assert file == "write.lua"
    assert "n" in _line(file, number) and "for" in _line(file, number), _line(file, number)


def test_other_errors_are_left_alone() -> None:
    assert locate("WRONGTYPE Operation against a key") == "WRONGTYPE Operation against a key"
    unknown = "ERR user_script:3: boom script: " + "0" * 40 + ", on @user_script:3."
    assert locate(unknown) == unknown
