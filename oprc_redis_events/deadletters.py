"""Dead-letter streams (``oprc:{cls:pid}:dlq``): list, replay and purge.

A dead letter is the original outbox entry's fields plus ``dlq:reason`` (why it was
dead-lettered), ``dlq:error`` (the last error, when there was one), ``dlq:source_id``
(its id in the outbox), ``dlq:attempts`` and ``dlq:failed_at`` (ms).  Replaying puts the
original fields back into the outbox with ``src`` = the first outbox id, so the
replayed triggers keep their event and invocation ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis

from .keys import PARTITIONS_KEY, PREFIX, PartitionKeys, as_text

__all__ = [
    "DeadLetter",
    "dead_letter_fields",
    "list_dead_letters",
    "partitions_with_dlq",
    "purge",
    "replay",
]

META_PREFIX = b"dlq:"


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
