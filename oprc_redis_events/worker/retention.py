"""Outbox retention: trim only what every consumer group has acknowledged.

An entry may be removed once every group has acknowledged it: below the oldest
pending entry of a group that has some, and up to the last entry delivered to a group
that has none.  A stream with no group keeps everything (nothing was acknowledged).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis

from ..errors import OprcEventsError

__all__ = ["OutboxBoundError", "acknowledged_bound", "trim_outbox"]


class OutboxBoundError(OprcEventsError):
    """A requested outbox bound would drop entries some group has not acknowledged."""


#: the bound of a stream whose every entry was acknowledged up to its largest possible id
_ALL = f"{2**64}-0"


def _parse(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


#: the largest part of a stream id (2^64 - 1)
_MAX_PART = 2**64 - 1


def _after(entry_id: bytes | str) -> str | None:
    """The id right after ``entry_id``; ``None`` after the largest id there is."""
    ms, seq = _parse(entry_id)
    if seq < _MAX_PART:
        return f"{ms}-{seq + 1}"
    return f"{ms + 1}-0" if ms < _MAX_PART else None


async def acknowledged_bound(client: aredis.Redis, stream: str) -> str | None:
    """The smallest id some group still needs (entries below it are acknowledged by all
    groups), or ``None`` when the stream has no group."""
    groups: list[dict[str, Any]] = await client.xinfo_groups(stream)
    bounds: list[str] = []
    for group in groups:
        if group["pending"]:
            summary = await client.xpending(stream, group["name"])
            min_id = summary["min"]
            bounds.append(min_id.decode() if isinstance(min_id, bytes) else min_id)
        else:  # after the largest id there is: the group needs nothing that is stored
            bounds.append(_after(group["last-delivered-id"]) or _ALL)
    return min(bounds, key=_parse) if bounds else None


async def trim_outbox(client: aredis.Redis, stream: str, *, maxlen: int | None = None) -> int:
    """Remove acknowledged entries from ``stream``; return how many were removed.

    With ``maxlen``, refuse (:class:`OutboxBoundError`, nothing removed beyond the
    acknowledged entries) when keeping ``maxlen`` entries would drop unacknowledged ones.
    """
    if not await client.exists(stream):
        return 0
    bound = await acknowledged_bound(client, stream)
    removed = 0
    if bound == _ALL:
        removed = int(await client.xtrim(stream, maxlen=0, approximate=False))
    elif bound is not None:
        removed = int(await client.xtrim(stream, minid=bound, approximate=False))
    if maxlen is not None:
        left = int(await client.xlen(stream))
        if left > maxlen:
            raise OutboxBoundError(
                f"{stream} holds {left} entries not yet acknowledged by every consumer group; "
                f"a bound of {maxlen} would drop {left - maxlen} of them. Start or fix the "
                "workers, or dead-letter entries explicitly."
            )
    return removed
