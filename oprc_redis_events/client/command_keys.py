"""Which keys a Redis command names, and whether it may write them (no I/O).

Redis' own commands come from the generated :mod:`command_table` (``scripts/command_table.py``
reads COMMAND of a server).  Commands newer than that server, RedisJSON's, and SORT's STORE
(Redis marks its position "unknown") are added here by hand.  Key positions follow Redis'
key specs: a command's argument vector is its name (split at spaces, as redis-py sends
"XGROUP CREATE"), then its arguments.

Lookups are by name and cached, so a read-only command costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .command_table import CONTAINERS, READS, WRITES, KeySpec

__all__ = ["Command", "argv_of", "command_of", "key_indexes"]

_ONE: Final[tuple[str, int, int, int]] = ("range", 0, 1, 0)
_FIRST: Final[tuple[KeySpec, ...]] = ((1, _ONE),)
_TWO: Final[tuple[KeySpec, ...]] = ((1, _ONE), (2, _ONE))

_JSON_WRITES: Final = (
    *("arrappend", "arrinsert", "arrpop", "arrtrim", "clear", "del", "forget", "merge"),
    *("numincrby", "nummultby", "numpowby", "set", "strappend", "toggle"),
)
_JSON_READS: Final = (
    *("arrindex", "arrlen", "debug", "get", "mget", "objkeys", "objlen", "resp", "strlen"),
    "type",
)

#: write commands that the generated table (Redis 7.0) does not know
NEWER_WRITES: Final[dict[str, tuple[KeySpec, ...]]] = {
    **dict.fromkeys(("hexpire", "hpexpire", "hexpireat", "hpexpireat", "hpersist"), _FIRST),
    **dict.fromkeys(("hgetdel", "hgetex", "hsetex", "vadd", "vrem", "vsetattr"), _FIRST),
    **dict.fromkeys(("xackdel", "xdelex", "delex", "increx", "xnack", "xcfgset"), _FIRST),
    "msetex": ((1, ("keynum", 0, 1, 2)),),
    "lmovem": _TWO,
    "blmovem": _TWO,
    "himport|set": ((2, _ONE),),
    **{f"json.{name}": _FIRST for name in _JSON_WRITES},
    "json.mset": ((1, ("range", -1, 3, 0)),),
    "sort": ((1, _ONE), (("STORE", 2), _ONE)),
}
#: read-only commands that the generated table does not know (newer, or removed)
NEWER_READS: Final = frozenset(
    (
        *("httl", "hpttl", "hexpiretime", "hpexpiretime", "digest", "sdiffcard", "sunioncard"),
        *("waitaof", "vcard", "vdim", "vemb", "vgetattr", "vinfo", "vlinks", "vrandmember"),
        *("vsim", "vismember", "himport|prepare", "himport|discard", "himport|discardall"),
        *("client|no-touch", "client|setinfo"),
        "stralgo",  # Redis 6 only
        *(f"json.{name}" for name in _JSON_READS),
    )
)


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command as the wrapper sees it: ``writes`` is ``None`` when unknown."""

    name: str
    writes: bool | None
    specs: tuple[KeySpec, ...] = ()


_CONTAINERS: Final = CONTAINERS | {"himport"}
_CACHE: dict[Any, Command] = {}
_CACHE_LIMIT: Final = 4096


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def argv_of(args: Sequence[Any]) -> list[Any]:
    """The argument vector Redis sees: redis-py may send "XGROUP CREATE" as one name."""
    head = args[0]
    if isinstance(head, str) and " " in head:
        return [*head.split(), *args[1:]]
    if isinstance(head, bytes) and b" " in head:
        return [*head.split(), *args[1:]]
    return list(args)


def command_of(args: Sequence[Any]) -> Command:
    """What the table knows of the command ``args`` sends (cached by name)."""
    head = args[0]
    cached = _CACHE.get(head) if isinstance(head, (str, bytes)) else None
    if cached is not None:
        return cached
    argv = argv_of(args)
    name = _text(argv[0]).lower()
    cacheable = True
    if name in _CONTAINERS:
        if len(argv) < 2:
            return Command(name, False)
        name = f"{name}|{_text(argv[1]).lower()}"
        cacheable = len(argv) > len(args)  # the name carried the subcommand
    command = _resolve(name)
    if cacheable and isinstance(head, (str, bytes)) and len(_CACHE) < _CACHE_LIMIT:
        _CACHE[head] = command
    return command


def _resolve(name: str) -> Command:
    if name in NEWER_WRITES:
        return Command(name, True, NEWER_WRITES[name])
    if name in WRITES:
        return Command(name, True, WRITES[name])
    if name in READS or name in NEWER_READS:
        return Command(name, False)
    return Command(name, None)


def key_indexes(specs: tuple[KeySpec, ...], argv: Sequence[Any]) -> list[int]:
    """The positions in ``argv`` that hold keys, by Redis' key-spec rules."""
    out: list[int] = []
    for begin, find in specs:
        first = _begin(begin, argv)
        if first is not None:
            out += _find(find, first, argv)
    return out


def _begin(begin: int | tuple[str, int], argv: Sequence[Any]) -> int | None:
    if isinstance(begin, int):
        return begin
    keyword, start = begin
    argc = len(argv)
    indexes = range(start, argc) if start > 0 else range(argc + start, 0, -1)
    for i in indexes:
        if 0 < i < argc and _text(argv[i]).upper() == keyword:
            return i + 1
    return None


def _find(find: tuple[str, int, int, int], first: int, argv: Sequence[Any]) -> list[int]:
    kind, a, b, c = find
    argc = len(argv)
    if kind == "keynum":
        try:
            count = int(_text(argv[first + a]))
        except (IndexError, ValueError):
            return []
        first += b
        return [i for i in range(first, first + max(count, 0) * c, c) if i < argc]
    if a >= 0:
        last = first + a
    elif c:
        last = first + (argc - first) // c + a
    else:
        last = argc + a
    return list(range(first, min(last, argc - 1) + 1, max(b, 1)))
