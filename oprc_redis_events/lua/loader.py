"""Loading of the Lua scripts in ``lua/``, for sync and asyncio clients alike.

Scripts are registered as redis-py ``Script`` objects (on a plain client, ones whose calls
go out directly: :mod:`.direct`): they run EVALSHA and load the script again after
``NOSCRIPT`` (a Redis restart, a failover, ``SCRIPT FLUSH``), so callers never manage the
script cache.  A script that uses the
shared library gets it (a Redis script cannot import another) in place of its line
``--@library`` (``write.lua``: after its quick path, so that a quick write never defines
the library's functions), or in front when it has no such line (``capture.lua``).  That
shifts the line numbers Redis reports; :func:`locate` turns Redis' ``user_script:<line>``
back into the file and line of our source (``lua/write.lua:57``, ``lua/lib/events.lua:12``).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from typing import Any

import redis.asyncio as aredis

from ..protocol.codes import by_code, lua_table
from .direct import AsyncDirectScript, DirectScript, direct_usable

__all__ = ["REFUSAL_CODES", "SCRIPT_NAMES", "locate", "refusal", "register", "source"]

SCRIPT_NAMES = ("write", "lease", "capture", "expire")
LIBRARY = "lib/events.lua"

#: scripts that use the shared library lua/lib/events.lua (a script cannot import one)
USES_LIBRARY = frozenset({"write", "capture"})

# Redis 7: "... user_script:57: ... script: <sha>, on @user_script:57."; Redis 6.2:
# "Error running script (call to f_<sha>): @user_script:57: ..."
_SHA = re.compile(r"(?:script: |f_)([0-9a-f]{40})")
_LINE = re.compile(r"@?user_script:(\d+)")
_scripts_by_sha: dict[str, str] = {}


def _read(*parts: str) -> str:
    return resources.files(__package__).joinpath(*parts).read_text("utf-8")


#: the line of lib/events.lua that the loader completes from the one table of event kinds
EVENT_TYPES_LINE = "local EVENT_TYPES = {}"
#: the line of a script where the library goes (in front when a script has none)
LIBRARY_MARK = "--@library"
#: the line of write.lua, before the library, that the loader completes with what its quick
#: path needs of it: the numbers of events c and u (as EVENT_TYPES), the library's MAX_VERSION
QUICK_LINE = "local CREATED, UPDATED, MAX_VERSION = nil, nil, nil"
_MAX_VERSION = re.compile(r"^local MAX_VERSION = (\d+)$", re.M)


@cache
def _library() -> str:
    text = _read(LIBRARY)
    if EVENT_TYPES_LINE not in text:
        raise RuntimeError(f"lua/{LIBRARY} lost its line {EVENT_TYPES_LINE!r}")
    return text.replace(EVENT_TYPES_LINE, f"local EVENT_TYPES = {lua_table()}", 1)


def _library_lines() -> int:
    """How many lines come before a script's own first line when the library is put in
    front (the library and a newline)."""
    return (_library() + "\n").count("\n")


def _block() -> str:
    """The library as the lines that replace a script's ``--@library`` line."""
    return _library().rstrip("\n") + "\n"


def _split(name: str) -> tuple[str, str, bool]:
    """``lua/<name>.lua`` as the text before its library line, the text after it, and
    whether it has that line (else all of it is after)."""
    body = _read(f"{name}.lua")
    head, mark, tail = body.partition(LIBRARY_MARK + "\n")
    if not mark:
        return "", body, False
    if head and not head.endswith("\n"):
        raise RuntimeError(f"lua/{name}.lua: {LIBRARY_MARK!r} must be a line of its own")
    return head, tail, True


def _quick_line() -> str:
    found = _MAX_VERSION.search(_library())
    if found is None:
        raise RuntimeError(f"lua/{LIBRARY} lost its line 'local MAX_VERSION = <number>'")
    numbers = f'"{by_code("c").number}", "{by_code("u").number}", {found.group(1)}'
    return f"local CREATED, UPDATED, MAX_VERSION = {numbers}"


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped inside the package, with the shared library
    in place of its ``--@library`` line (or in front of it) when it uses it."""
    if name in USES_LIBRARY:
        head, tail, marked = _split(name)
        if QUICK_LINE in head:
            head = head.replace(QUICK_LINE, _quick_line(), 1)
        elif marked:  # the quick path before the library would run with nil constants
            raise RuntimeError(f"lua/{name}.lua lost its line {QUICK_LINE!r}")
        text = head + _library() + "\n" + tail if not marked else head + _block() + tail
    else:
        text = _read(f"{name}.lua")
    _scripts_by_sha[hashlib.sha1(text.encode()).hexdigest()] = name
    return text


def _place(name: str, line: int) -> str:
    if name in USES_LIBRARY:
        head, _, marked = _split(name)
        before = head.count("\n")
        size = _block().count("\n") if marked else _library_lines()
        if line <= before:
            return f"lua/{name}.lua:{line}"
        if line <= before + size:
            return f"lua/{LIBRARY}:{line - before}"
        line += 1 - size if marked else -size  # the library replaced the marked line
    return f"lua/{name}.lua:{line}"


def locate(message: str) -> str:
    """``message`` (an error Redis reported from one of our scripts) with every
    ``user_script:<line>`` replaced by our file and line; unchanged for other errors."""
    found = _SHA.search(message)
    name = _scripts_by_sha.get(found.group(1)) if found else None
    if name is None:
        return message
    return _LINE.sub(lambda m: _place(name, int(m.group(1))), message)


#: the error codes of the scripts' refusals of corrupted state (``lua/lib/events.lua``): a key
#: of the wrong type, or a garbage version, a full outbox...; nothing was written
REFUSAL_CODES = ("CORRUPT ", "WRONGTYPE ")


def refusal(message: str) -> str | None:
    """What a script's refusal says is wrong (it names the key), or ``None`` when
    ``message`` is not one."""
    for code in REFUSAL_CODES:
        if message.startswith(code):
            return message[len(code) :]
    return None


def register(client: Any, name: str) -> Any:
    """A redis-py ``Script`` (sync client) or ``AsyncScript`` (asyncio client) for ``name``;
    on a plain client, one whose own calls go out directly (:mod:`.direct`)."""
    if direct_usable(client):
        kind = AsyncDirectScript if isinstance(client, aredis.Redis) else DirectScript
        return kind(client, source(name))
    return client.register_script(source(name))
