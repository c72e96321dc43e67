"""Outbox retention: trim only what every consumer group has acknowledged.

An entry may be removed once every group has acknowledged it: below the oldest
pending entry of a group that has some, and up to the last entry delivered to a group
that has none.  A stream with no group keeps everything (nothing was acknowledged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis

from ..errors import OprcEventsError
from .broken import pipelined

__all__ = ["OutboxBoundError", "acknowledged_bound", "trim_outbox", "trim_outboxes"]


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


def acknowledged_bound(
    groups: list[dict[str, Any]], oldest_pending: dict[Any, bytes | str]
) -> str | None:
    """The smallest id some group still needs (entries below it are acknowledged by all
    groups), or ``None`` when the stream has no group: ``groups`` as XINFO GROUPS lists
    them, ``oldest_pending`` the oldest pending id of each group that has some (``None``
    when they were acknowledged since)."""
    bounds: list[str] = []
    for group in groups:
        min_id = oldest_pending.get(group["name"]) if group["pending"] else None
        if min_id is not None:
            bounds.append(min_id.decode() if isinstance(min_id, bytes) else min_id)
        else:  # (none pending: all acknowledged since, say) everything delivered may go
            bounds.append(_after(group["last-delivered-id"]) or _ALL)
    return min(bounds, key=_parse) if bounds else None


def _checked(replies: list[Any]) -> list[Any]:
    """``replies``, once none is an error other than a command's own error reply (a cluster
    error returned in place: about the cluster, for the caller to wait out)."""
    for reply in replies:
        if isinstance(reply, Exception) and not isinstance(reply, redis.ResponseError):
            raise reply
    return replies


def _trim_command(stream: str | bytes, bound: str) -> Callable[[Any], Any]:
    if bound == _ALL:
        return lambda target: target.xtrim(stream, maxlen=0, approximate=False)
    return lambda target: target.xtrim(stream, minid=bound, approximate=False)


async def trim_outboxes(
    client: Any, streams: Sequence[str | bytes]
) -> list[int | redis.ResponseError]:
    """Remove the acknowledged entries of each of ``streams``: three round trips whatever
    their number (on a cluster, three per node): XINFO GROUPS of each, XPENDING of each
    group with pending entries, XTRIM of each.  Per stream, how many entries were removed
    (0 for a stream that does not exist), or the error reply about it in its place (not a
    stream, a group destroyed meanwhile...).  Each command may run twice: a reply lost
    with its connection is asked again alone."""
    infos = _checked(await pipelined(client, len(streams), lambda t, i: t.xinfo_groups(streams[i])))
    results: list[int | redis.ResponseError] = [0] * len(streams)
    asks: list[tuple[int, Any]] = []  # (stream, group) of each group with pending entries
    for i, groups in enumerate(infos):
        if isinstance(groups, redis.ResponseError):
            if not str(groups).startswith("no such key"):  # (a stream gone: 0 removed)
                results[i] = groups
            continue
        asks += [(i, g["name"]) for g in groups if g["pending"]]
    summaries = _checked(
        await pipelined(client, len(asks), lambda t, j: t.xpending(streams[asks[j][0]], asks[j][1]))
    )
    oldest: list[dict[Any, bytes | str]] = [{} for _ in streams]
    for (i, group), summary in zip(asks, summaries, strict=True):
        if isinstance(summary, redis.ResponseError):
            results[i] = summary
        else:
            oldest[i][group] = summary["min"]
    trims: list[tuple[int, Callable[[Any], Any]]] = []
    for i, groups in enumerate(infos):
        if isinstance(groups, list) and not isinstance(results[i], redis.ResponseError):
            bound = acknowledged_bound(groups, oldest[i])
            if bound is not None:
                trims.append((i, _trim_command(streams[i], bound)))
    removed = _checked(await pipelined(client, len(trims), lambda t, k: trims[k][1](t)))
    for (i, _), count in zip(trims, removed, strict=True):
        results[i] = count if isinstance(count, redis.ResponseError) else int(count)
    return results


async def trim_outbox(client: Any, stream: str | bytes, *, maxlen: int | None = None) -> int:
    """Remove acknowledged entries from ``stream``; return how many were removed.

    With ``maxlen``, refuse (:class:`OutboxBoundError`, nothing removed beyond the
    acknowledged entries) when keeping ``maxlen`` entries would drop unacknowledged ones.
    """
    (removed,) = await trim_outboxes(client, [stream])
    if isinstance(removed, redis.ResponseError):
        raise removed
    if maxlen is not None:
        left = int(await client.xlen(stream))
        if left > maxlen:
            name = stream.decode(errors="backslashreplace") if isinstance(stream, bytes) else stream
            raise OutboxBoundError(
                f"{name} holds {left} entries not yet acknowledged by every consumer group; "
                f"a bound of {maxlen} would drop {left - maxlen} of them. Start or fix the "
                "workers, or dead-letter entries explicitly."
            )
    return removed
