"""Errors Redis reports from our scripts name our file and line, not the prepended text."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest
import redis

from oprc_redis_events.lua.loader import (
    EVENT_TYPES_LINE,
    QUICK_LINE,
    locate,
    register,
    source,
)

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


def test_an_error_in_the_quick_path_before_the_library_names_write_lua(
    client: redis.Redis,
) -> None:
    write = register(client, "write")
    keys = [f"oprc:{{c:0}}:{k}:1" for k in ("obj", "meta")] + ["oprc:{c:0}:outbox"]
    keys += ["oprc:{c:0}:shadow:1", "oprc:{c:0}:capture", "oprc:switch"]
    with pytest.raises(redis.ResponseError) as raised:
        write(keys=keys, args=["update", "1", "0", "", "1", "not a count"])
    place = PLACE.search(locate(str(raised.value)))
    assert place is not None, raised.value
    file, number = place.group(1), int(place.group(2))
    assert file == "write.lua"
    assert number < _line_of("write.lua", "--@library"), number
    assert "n < 2" in _line(file, number), _line(file, number)


def _line_of(path: str, text: str) -> int:
    lines = resources.files("oprc_redis_events.lua").joinpath(path).read_text().splitlines()
    return lines.index(text) + 1


@pytest.mark.quick
@pytest.mark.parametrize("name", ["write", "capture"])
def test_every_line_of_a_script_is_located_in_its_file(name: str) -> None:
    """Each line Redis could report, in each part (write.lua before the library, the
    library, after it), maps to the file and line holding that same text."""
    text = source(name)
    sha = hashlib.sha1(text.encode()).hexdigest()
    filled = (QUICK_LINE.split(" = ")[0], EVENT_TYPES_LINE.split(" = ")[0])
    seen = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:  # nothing Redis reports (and capture's blank line after the library)
            continue
        message = f"ERR user_script:{number}: boom script: {sha}, on @user_script:{number}."
        place = PLACE.search(locate(message))
        assert place is not None
        seen.add(place.group(1))
        found = _line(place.group(1), int(place.group(2)))
        assert found == line or (found.startswith(filled) and line.startswith(filled)), number
    assert seen == {f"{name}.lua", "lib/events.lua"}
