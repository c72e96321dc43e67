"""Many writes of one partition in one call of the write script (no I/O).

A call of ``write.lua`` costs Redis far more than the HSET it wraps, so writes that go out
together (a store's :meth:`batch`, a wrapper's pipeline) are grouped: consecutive writes of
one partition (one ``{cls:pid}`` hash tag, so one slot) become one script call in ``batch``
mode (see the end of ``lua/write.lua``), at most :data:`MAX_WRITES_PER_CALL` at a time.
Each write in it runs exactly as it would alone, one after the other, and gets its own
reply: a write the script refuses is reported for that write only, and the writes after it
still run.  The whole call is one atomic step of Redis (no other client's command runs
between its writes); a refused write changes nothing, the others stay applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redis.exceptions import ResponseError

from .core import ScriptCall

__all__ = ["BATCH_MODES", "MAX_WRITES_PER_CALL", "batch_call", "batch_replies", "groups"]

#: the modes a batch call may hold: their only failures are the script's own refusals (an
#: increment's HINCRBY may fail as a Redis error, which would stop the whole script)
BATCH_MODES: Final = frozenset(
    {"create", "update", "upsert", "replace", "setnx", "delete_fields", "delete"}
)
#: the most writes one script call holds (Redis runs nothing else meanwhile)
MAX_WRITES_PER_CALL: Final = 500


def groups(calls: Sequence[ScriptCall | None]) -> list[list[int]]:
    """The positions of ``calls`` cut into runs sent as one script call each: consecutive
    writes of one partition in :data:`BATCH_MODES`; ``None`` (not a write) and other modes
    stand alone."""
    out: list[list[int]] = []
    current: list[int] = []
    last: object = None
    for i, call in enumerate(calls):
        groupable = call is not None and call.mode in BATCH_MODES
        key = call.target.keys if call is not None and groupable else None
        if current and (key is None or key != last or len(current) >= MAX_WRITES_PER_CALL):
            out.append(current)
            current = []
        if key is None:
            out.append([i])
            continue
        current.append(i)
        last = key
    if current:
        out.append(current)
    return out


def batch_call(calls: Sequence[ScriptCall]) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one ``batch`` call of ``write.lua`` making ``calls`` (all
    of one partition) in order."""
    first = calls[0]
    keys: list[str] = list(first.keys)
    where = {first.target.segment: 1}
    args: list[Any] = ["batch", len(calls)]
    for call in calls:
        k = where.get(call.target.segment)
        if k is None:
            k = where[call.target.segment] = len(keys) + 1
            keys += [call.target.obj, call.target.meta, call.target.shadow]
        args += [k, len(call.args), *call.args]
    return keys, args


def batch_replies(reply: Any, count: int) -> list[Any]:
    """One reply per write of a batch call: as the script would have returned it alone, a
    refusal as the ``ResponseError`` a single call raises; an error of the whole call (or
    a reply that is not the batch's) for every write."""
    if isinstance(reply, Exception):
        return [reply] * count
    if not isinstance(reply, list) or len(reply) != count:
        return [ResponseError(f"unexpected reply to a batch of {count} writes: {reply!r}")] * count
    out: list[Any] = []
    for one in reply:
        if isinstance(one, list) and len(one) == 2 and one[0] == -1:
            text = one[1].decode("utf-8", "replace") if isinstance(one[1], bytes) else one[1]
            out.append(ResponseError(str(text)))
        else:
            out.append(one)
    return out
