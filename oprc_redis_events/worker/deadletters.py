"""Dead-letter streams (``oprc:{cls:pid}:dlq``): list, replay and purge.

A dead letter is the original outbox entry's fields plus ``dlq:reason`` (why it was
dead-lettered), ``dlq:error`` (the last error, when there was one), ``dlq:source_id``
(its id in the outbox), ``dlq:group`` (the consumer group that gave up on it),
``dlq:attempts`` and ``dlq:failed_at`` (ms).  Replaying puts the original fields back
into the outbox with ``src`` = the first outbox id, so the replayed triggers keep their
event and invocation ids, and ``g`` = the letter's group, so only that group sends them
again (the other groups delivered the entry already).  Replay and purge are atomic per
letter: a letter is replayed once even when two operators replay at the same time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis

from ..errors import OprcEventsError
from ..protocol.keys import PartitionKeys, as_text
from .inventory import Skip, find_partitions, ignore

__all__ = [
    "DeadLetter",
    "DeadLetterRecord",
    "DeadLetterStreamError",
    "dead_letter",
    "dead_letter_fields",
    "last_id",
    "list_dead_letters",
    "missing_ids",
    "partitions_with_dlq",
    "purge",
    "replay",
]

META_PREFIX = b"dlq:"
_STREAM_ID = re.compile(r"\d+(-\d+)?")

#: an entry to dead-letter: (entry id, its fields, reason, last error, attempts)
DeadLetterRecord = tuple[str, dict[bytes, bytes], str, str, int]


class DeadLetterStreamError(OprcEventsError):
    """A partition's dead-letter key exists but is not a stream: nothing can be moved there."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: PartitionKeys
    id: str
    source_id: str
    reason: str
    error: str
    attempts: int
    failed_at: int
    fields: dict[bytes, bytes]  # the original outbox entry
    group: str = ""  # the consumer group that dead-lettered it ("": not recorded)


def dead_letter_fields(
    fields: dict[bytes, bytes],
    *,
    source_id: str,
    reason: str,
    error: str = "",
    attempts: int = 0,
    failed_at: int,
    group: str = "",
) -> dict[bytes, bytes]:
    """The fields of a dead letter for the outbox entry ``fields`` given up by ``group``."""
    record = {k: v for k, v in fields.items() if not k.startswith(META_PREFIX)}
    record.update(
        {
            b"dlq:reason": reason.encode(),
            b"dlq:group": group.encode(),
            b"dlq:error": error.encode(),
            b"dlq:source_id": source_id.encode(),
            b"dlq:attempts": str(attempts).encode(),
            b"dlq:failed_at": str(failed_at).encode(),
        }
    )
    return record


async def dead_letter(
    client: aredis.Redis, partition: PartitionKeys, group: str, records: Sequence[DeadLetterRecord]
) -> None:
    """Move ``records`` to the partition's dead-letter stream and acknowledge them in the
    outbox, in one MULTI.  When the dead-letter key is not a stream nothing is written and
    nothing acknowledged (:class:`DeadLetterStreamError`): the entries stay pending, rather
    than acknowledged with their dead letter lost (Redis runs the rest of a MULTI after a
    failed command)."""
    now = int(time.time() * 1000)
    async with client.pipeline(transaction=True) as pipe:  # one slot: outbox and dlq share the tag
        while True:
            try:
                await pipe.watch(partition.dead_letters)
                kind = as_text(await pipe.type(partition.dead_letters))
                if kind not in ("stream", "none"):
                    raise DeadLetterStreamError(
                        f"{partition.dead_letters} is a {kind}, not a stream: dead letters of "
                        f"{partition.member} cannot be written; rename or delete that key"
                    )
                pipe.multi()  # type: ignore[no-untyped-call]
                for entry_id, fields, reason, error, attempts in records:
                    record = dead_letter_fields(
                        fields,
                        source_id=entry_id,
                        reason=reason,
                        error=error,
                        attempts=attempts,
                        failed_at=now,
                        group=group,
                    )
                    pipe.xadd(partition.dead_letters, record)  # type: ignore[arg-type]
                pipe.xack(partition.outbox, group, *[r[0] for r in records])
                await pipe.execute()
                return
            except redis.WatchError:
                continue  # the key changed under us: look again


def _number(text: str) -> int:
    """A count or time of a dead letter; 0 when it was written as something else."""
    return int(text) if text.isascii() and text.isdigit() else 0


def _decode(partition: PartitionKeys, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="replace")

    return DeadLetter(
        partition=partition,
        id=entry_id.decode(),
        source_id=text(b"dlq:source_id"),
        reason=text(b"dlq:reason"),
        error=text(b"dlq:error"),
        attempts=_number(text(b"dlq:attempts")),
        failed_at=_number(text(b"dlq:failed_at")),
        fields={k: v for k, v in fields.items() if not k.startswith(META_PREFIX)},
        group=text(b"dlq:group"),
    )


async def partitions_with_dlq(client: aredis.Redis, skip: Skip = ignore) -> list[PartitionKeys]:
    """Every partition that has a dead-letter key; a member of ``oprc:partitions`` that does
    not parse (or a registry of the wrong type) goes to ``skip``."""
    return await find_partitions(client, "dlq", skip)


async def list_dead_letters(
    client: aredis.Redis, partition: PartitionKeys, count: int | None = None
) -> list[DeadLetter]:
    entries: Any = await client.xrange(partition.dead_letters, count=count)
    return [_decode(partition, i, f) for i, f in entries]


def _check_ids(ids: Iterable[str]) -> list[str]:
    wanted = list(ids)
    for entry_id in wanted:
        if not _STREAM_ID.fullmatch(entry_id):
            raise OprcEventsError(
                f"{entry_id!r} is not a dead letter id: ids look like 1732680000000-0 "
                "(`oprc-redis-events dlq list` shows them)"
            )
    return wanted


async def missing_ids(
    client: aredis.Redis, partition: PartitionKeys, ids: Iterable[str]
) -> list[str]:
    """Those of ``ids`` that are not dead letters of ``partition``."""
    missing = []
    for entry_id in _check_ids(ids):
        if not await client.xrange(partition.dead_letters, entry_id, entry_id):
            missing.append(entry_id)
    return missing


async def replay(
    client: aredis.Redis,
    partition: PartitionKeys,
    ids: Iterable[str] | None = None,
    *,
    group: str | None = None,
) -> int:
    """Put dead letters (all, or ``ids``; only ``group``'s with ``group``) back into the
    outbox, each for the group that dead-lettered it; return how many."""
    wanted = set(_check_ids(ids)) if ids is not None else None
    done = 0
    for letter in await list_dead_letters(client, partition):
        if wanted is not None and letter.id not in wanted:
            continue
        if group is not None and letter.group != group:
            continue
        done += await _replay_one(client, partition, letter)
    return done


async def _replay_one(client: aredis.Redis, partition: PartitionKeys, letter: DeadLetter) -> int:
    """Move one letter back into the outbox, unless someone else moved or purged it first
    (WATCH on the dead-letter stream, retried when it changes)."""
    fields = dict(letter.fields)
    fields.setdefault(b"src", letter.source_id.encode())
    if letter.group:
        fields[b"g"] = letter.group.encode()

    async def move(pipe: Any) -> int:
        if not await pipe.xrange(partition.dead_letters, letter.id, letter.id):
            return 0
        pipe.multi()
        pipe.xadd(partition.outbox, fields)
        pipe.xdel(partition.dead_letters, letter.id)
        return 1

    moved: int = await client.transaction(move, partition.dead_letters, value_from_callable=True)
    return moved


async def last_id(client: aredis.Redis, partition: PartitionKeys) -> str | None:
    """The id of the newest dead letter of ``partition`` (``None`` when there is none)."""
    newest: Any = await client.xrevrange(partition.dead_letters, count=1)
    return as_text(newest[0][0]) if newest else None


async def purge(
    client: aredis.Redis,
    partition: PartitionKeys,
    ids: Iterable[str] | None = None,
    *,
    up_to: str | None = None,
) -> int:
    """Delete dead letters: ``ids``, or every letter up to the id ``up_to`` (the newest
    one an operator was shown; letters that arrive after it stay); return how many."""
    if ids is not None:
        wanted = _check_ids(ids)
        return int(await client.xdel(partition.dead_letters, *wanted)) if wanted else 0
    if up_to is None:
        return 0
    ms, _, seq = up_to.partition("-")
    return int(await client.xtrim(partition.dead_letters, minid=f"{ms}-{int(seq or 0) + 1}"))
