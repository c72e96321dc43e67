"""Dead-letter streams (``oprc:{cls:pid}:dlq``): list, replay and purge.

A dead letter is the original outbox entry's fields plus ``dlq:reason`` (why it was
dead-lettered), ``dlq:error`` (the last error, when there was one), ``dlq:source_id``
(its id in the outbox), ``dlq:attempts`` and ``dlq:failed_at`` (ms).  Replaying puts the
original fields back into the outbox with ``src`` = the first outbox id, so the
replayed triggers keep their event and invocation ids.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis

from .errors import OprcEventsError
from .keys import PARTITIONS_KEY, PREFIX, PartitionKeys, as_text

__all__ = [
    "DeadLetter",
    "DeadLetterRecord",
    "DeadLetterStreamError",
    "dead_letter",
    "dead_letter_fields",
    "list_dead_letters",
    "partitions_with_dlq",
    "purge",
    "replay",
]

META_PREFIX = b"dlq:"

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


def dead_letter_fields(
    fields: dict[bytes, bytes],
    *,
    source_id: str,
    reason: str,
    error: str = "",
    attempts: int = 0,
    failed_at: int,
) -> dict[bytes, bytes]:
    """The fields of a dead letter for the outbox entry ``fields``."""
    record = {k: v for k, v in fields.items() if not k.startswith(META_PREFIX)}
    record.update(
        {
            b"dlq:reason": reason.encode(),
            b"dlq:error": error.encode(),
            b"dlq:source_id": source_id.encode(),
            b"dlq:attempts": str(attempts).encode(),
            b"dlq:failed_at": str(failed_at).encode(),
        }
    )
    return record


async def dead_letter(
    client: aredis.Redis, partition: PartitionKeys, group: str, records: list[DeadLetterRecord]
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
                    )
                    pipe.xadd(partition.dead_letters, record)  # type: ignore[arg-type]
                pipe.xack(partition.outbox, group, *[r[0] for r in records])
                await pipe.execute()
                return
            except redis.WatchError:
                continue  # the key changed under us: look again


def _decode(partition: PartitionKeys, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    def text(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="replace")

    return DeadLetter(
        partition=partition,
        id=entry_id.decode(),
        source_id=text(b"dlq:source_id"),
        reason=text(b"dlq:reason"),
        error=text(b"dlq:error"),
        attempts=int(text(b"dlq:attempts") or 0),
        failed_at=int(text(b"dlq:failed_at") or 0),
        fields={k: v for k, v in fields.items() if not k.startswith(META_PREFIX)},
    )


async def partitions_with_dlq(client: aredis.Redis) -> list[PartitionKeys]:
    """Every partition that has a dead-letter stream."""
    found: set[PartitionKeys] = set()
    async for key in client.scan_iter(match=f"{PREFIX}:{{*}}:dlq", _type="stream"):
        found.add(PartitionKeys.from_key(as_text(key)))
    for member in await client.smembers(PARTITIONS_KEY):
        partition = PartitionKeys.from_member(as_text(member))
        if await client.exists(partition.dead_letters):
            found.add(partition)
    return sorted(found)


async def list_dead_letters(
    client: aredis.Redis, partition: PartitionKeys, count: int | None = None
) -> list[DeadLetter]:
    entries: Any = await client.xrange(partition.dead_letters, count=count)
    return [_decode(partition, i, f) for i, f in entries]


async def replay(
    client: aredis.Redis, partition: PartitionKeys, ids: Iterable[str] | None = None
) -> int:
    """Put dead letters (all, or ``ids``) back into the outbox; return how many."""
    letters = await list_dead_letters(client, partition)
    wanted = set(ids) if ids is not None else None
    done = 0
    for letter in letters:
        if wanted is not None and letter.id not in wanted:
            continue
        fields = dict(letter.fields)
        fields.setdefault(b"src", letter.source_id.encode())
        pipe = client.pipeline(transaction=True)  # one slot: outbox and dlq share the tag
        pipe.xadd(partition.outbox, fields)  # type: ignore[arg-type]
        pipe.xdel(partition.dead_letters, letter.id)
        await pipe.execute()
        done += 1
    return done


async def purge(
    client: aredis.Redis, partition: PartitionKeys, ids: Iterable[str] | None = None
) -> int:
    """Delete dead letters (all, or ``ids``); return how many."""
    if ids is None:
        count = int(await client.xlen(partition.dead_letters))
        await client.delete(partition.dead_letters)
        return count
    wanted = list(ids)
    return int(await client.xdel(partition.dead_letters, *wanted)) if wanted else 0
