"""Deferred acknowledgements: entries whose PUTs went to Zenoh, acknowledged later.

Zenoh's ``put()`` returns once a message is queued in the session, not sent, so the
worker acknowledges a batch only ``ack_delay_ms`` after its PUTs (see the README's
Reliability section).  :class:`AckQueue` holds those batches until they are due.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

import msgspec

from ..protocol.keys import PartitionKeys
from .deadletters import DeadLetterRecord

__all__ = ["AckQueue", "DeferredAck"]


class DeferredAck(msgspec.Struct, gc=False):
    """Entries whose PUTs went to Zenoh, acknowledged once ``due``.

    Hundreds wait at a time (``ack_delay_ms`` of batches); the struct is not tracked by the
    garbage collector (``gc=False``) and its ids are a tuple of texts, which is not either
    (a rare dead letter's fields are), as every collection stops the event loop for a time
    that grows with the objects it walks.  It refers to nothing that refers back."""

    due: float
    partition: PartitionKeys
    acked: tuple[str, ...]
    dead: tuple[DeadLetterRecord, ...]

    @classmethod
    def of(
        cls,
        due: float,
        partition: PartitionKeys,
        acked: Sequence[str],
        dead: Sequence[DeadLetterRecord],
    ) -> DeferredAck:
        """One, from the lists the caller gathered (kept as tuples)."""
        return cls(due, partition, tuple(acked), tuple(dead))


#: due batches are acknowledged together at most this often (one XACK per partition, not
#: one per batch: a worker at a steady 1,000 writes/s reads batches of one entry)
FLUSH_INTERVAL_S = 0.05


def _merged(ready: list[DeferredAck]) -> list[DeferredAck]:
    """One item per partition (its entries in order), in the order of their first batch."""
    by_outbox: dict[str, list[DeferredAck]] = {}
    for item in ready:
        by_outbox.setdefault(item.partition.outbox, []).append(item)
    return [
        items[0]
        if len(items) == 1
        else DeferredAck(
            max(i.due for i in items),
            items[0].partition,
            tuple(e for i in items for e in i.acked),
            tuple(d for i in items for d in i.dead),
        )
        for items in by_outbox.values()
    ]


class AckQueue:
    """Batches waiting for their acknowledgement, in the order they were sent."""

    def __init__(self) -> None:
        self.items: list[DeferredAck] = []
        self._next_flush = 0.0

    def add(self, item: DeferredAck) -> None:
        self.items.append(item)

    def take(
        self, streams: Collection[str] | None = None, *, wait: bool = False
    ) -> list[DeferredAck]:
        """Remove and return the batches that are due, merged per partition (all of them,
        or those of ``streams``, when ``wait``: the caller then sleeps until the last one
        is due).
        Without ``wait``, nothing is returned within :data:`FLUSH_INTERVAL_S` of the last
        time something was."""
        now = time.monotonic()
        if not self.items or (not wait and now < self._next_flush):
            return []
        keep: list[DeferredAck] = []
        ready: list[DeferredAck] = []
        for item in self.items:
            mine = streams is None or item.partition.outbox in streams
            (ready if mine and (wait or item.due <= now) else keep).append(item)
        self.items = keep
        if ready and not wait:
            self._next_flush = now + FLUSH_INTERVAL_S
        return _merged(ready)

    def put_back(self, items: list[DeferredAck]) -> None:
        """Batches that could not be acknowledged yet (Redis went away): try again later."""
        self.items[:0] = items

    def drop(self, stream: str) -> int:
        """Forget ``stream``'s batches (its partition broke: its entries stay pending and
        are delivered again once it works); return how many entries that leaves."""
        dropped = [i for i in self.items if i.partition.outbox == stream]
        self.items = [i for i in self.items if i.partition.outbox != stream]
        return sum(len(i.acked) for i in dropped)
