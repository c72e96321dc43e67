"""The partitions the admin tools (``groups``, ``dlq``, ``trim``) work on, found without
stopping at a bad key.

Anyone can write any key, so what is found is untrusted: a member of ``oprc:partitions``
that is not UTF-8 or not ``cls:pid``, a registry that is not a set, a key of the layout of
the wrong type.  Each such key is handed to ``skip(key, what is wrong)`` (the CLI prints a
warning and exits non-zero at the end) and the rest is served, as the worker does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis
import redis.asyncio as aredis

from ..errors import InvalidIdError
from ..protocol.keys import PARTITIONS_KEY, PREFIX, PartitionKeys
from .badkeys import display

__all__ = ["Skip", "find_partitions", "ignore", "skipping"]

#: called with a key (or member) that is skipped and what is wrong with it
Skip = Callable[[str, str], None]


def ignore(key: str, why: str) -> None:
    """A :data:`Skip` that says nothing (for callers that do not report)."""


def _member(raw: bytes | str, skip: Skip) -> PartitionKeys | None:
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        return PartitionKeys.from_member(text)
    except UnicodeDecodeError:
        skip(f"member {display(raw)!r} of {PARTITIONS_KEY}", "it is not UTF-8: remove it (SREM)")
    except InvalidIdError as err:
        skip(f"member {display(raw)!r} of {PARTITIONS_KEY}", f"{err}: remove it (SREM)")
    return None


async def _registered(client: aredis.Redis, skip: Skip) -> list[PartitionKeys]:
    try:
        members: Any = await client.smembers(PARTITIONS_KEY)
    except redis.ResponseError as err:
        kind = display(await client.type(PARTITIONS_KEY))
        skip(PARTITIONS_KEY, f"it is a {kind}, not a set ({err}): delete it")
        return []
    return [p for p in (_member(m, skip) for m in members) if p is not None]


async def find_partitions(
    client: aredis.Redis, suffix: str, skip: Skip = ignore
) -> list[PartitionKeys]:
    """Every partition whose ``oprc:{cls:pid}:<suffix>`` key exists: the streams SCAN finds,
    and the members of ``oprc:partitions`` with such a key (of any type: the caller finds
    and skips a key of the wrong type)."""
    found: set[PartitionKeys] = set()
    async for key in client.scan_iter(match=f"{PREFIX}:{{*}}:{suffix}", _type="stream"):
        try:
            found.add(PartitionKeys.from_key(key.decode()))
        except (UnicodeDecodeError, InvalidIdError) as err:
            skip(display(key), f"its name does not parse ({err}): rename or delete it")
    for partition in await _registered(client, skip):
        if partition not in found and await client.exists(f"{PREFIX}:{partition.tag}:{suffix}"):
            found.add(partition)
    return sorted(found)


#: errors about the server rather than about one key: never skipped
SERVER_WIDE = ("NOAUTH", "WRONGPASS", "READONLY", "LOADING", "BUSY", "OOM", "MISCONF")


@contextlib.asynccontextmanager
async def skipping(key: str, skip: Skip) -> AsyncIterator[None]:
    """Hand Redis' refusal of a command on ``key`` (a key of the wrong type, a stream id
    out of range) to ``skip`` instead of raising it; errors about the server (Redis away,
    read-only, out of memory, credentials) propagate."""
    try:
        yield
    except redis.ResponseError as err:
        if str(err).startswith(SERVER_WIDE):
            raise
        skip(key, f"{err}; fix or delete the key")
