"""Open batches of batched targets (``oprc.batch_max`` / ``oprc.batch_ms``): the worker's
bookkeeping, pure.

Per partition, the triggers of a batched target gather in an :class:`OpenBatch` (one per
target: :func:`~oprc_redis_events.protocol.batch_wire.batch_group`) in event order.  A
batch closes when it holds ``batch_max`` triggers, or when its window ends: ``batch_ms``
after its first trigger's write (the entry's timestamp), so that the same entries, read
again later, gather the same way: a trigger written after the window starts the next batch;
the worker's clock ends a window nobody else closes (never later than ``batch_ms`` after
the batch opened in the worker, never before it opened).
An entry with a trigger in an open batch is *held*: it is not acknowledged until every
batch holding one of its triggers went out, so a worker stopped before that leaves it
pending and the next reader forms the same batches again from the pending entries, read
in order.
Coalescing windows (``oprc.coalesce_ms``, :mod:`.coalescing`) are open batches too, one per
(target, object, field), with the same held entries and windows; closing one closes the
windows of its target opened before it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..protocol.batch_wire import batch_group
from ..protocol.batching import batch_settings
from ..protocol.coalescing import coalesce_ms
from ..protocol.encode import Dispatch
from ..protocol.keys import PartitionKeys
from .coalescing import Window, window_of
from .deadletters import DeadLetterRecord
from .dispatch import Plan

__all__ = ["Batches", "OpenBatch"]


@dataclass
class OpenBatch:
    """The triggers gathered for one target of one partition, and their entries."""

    partition: PartitionKeys
    size: int | None  # batch_max
    due: float | None  # monotonic time its window ends (batch_ms after its first)
    closes_at: int | None  # the write time (ms) from which a trigger is for the next batch
    members: list[Dispatch] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)  # the entry of each member
    coalesce: bool = False  # a coalescing window (oprc.coalesce_ms): sends its last member

    def full(self) -> bool:
        return self.size is not None and len(self.members) >= self.size


class Batches:
    """The open batches of a worker's partitions and the entries they hold."""

    def __init__(self) -> None:
        #: (stream, target) of a batch, (stream, target, object, field) of a window; in
        #: the order they opened
        self.open: dict[tuple[object, ...], OpenBatch] = {}
        #: stream -> entry id -> triggers of that entry in open (or unsent) batches
        self.held: dict[str, dict[str, int]] = {}
        #: stream -> entry id -> the dead letter of a held entry's forged targets, written
        #: (which acknowledges the entry) once no batch holds the entry
        self.letters: dict[str, dict[str, DeadLetterRecord]] = {}

    def add(self, partition: PartitionKeys, plan: Plan, d: Dispatch, now: float) -> list[OpenBatch]:
        """Gather trigger ``d`` of ``plan`` (``now``: monotonic); return the batches that
        closed: its target's batch whose window ended before ``d`` was written, and its own
        batch when that is now full."""
        stream = partition.outbox
        window = coalesce_ms(d.target.options)
        key: tuple[object, ...] = (stream, batch_group(d))
        if window is not None:
            key += window_of(plan, d)
        closed: list[OpenBatch] = []
        batch = self.open.get(key)
        written = plan.entry.timestamp
        if batch is not None and batch.closes_at is not None and written >= batch.closes_at:
            closed += self._close(key)
            batch = None
        if batch is None:
            size, ms = (
                (None, window)
                if window is not None
                else batch_settings(d.target.options) or (None, None)
            )
            batch = self.open[key] = self._opened(partition, size, ms, written, now)
            batch.coalesce = window is not None
        batch.members.append(d)
        batch.plans.append(plan)
        held = self.held.setdefault(stream, {})
        held[plan.entry_id] = held.get(plan.entry_id, 0) + 1
        if batch.full():
            closed.append(self.open.pop(key))
        return closed

    @staticmethod
    def _opened(
        partition: PartitionKeys, size: int | None, window: int | None, written: int, now: float
    ) -> OpenBatch:
        if window is None:
            return OpenBatch(partition, size, None, None)
        left_ms = written + window - time.time() * 1000  # the window's rest, by write time
        due = now + min(max(left_ms, 0.0), window) / 1000
        return OpenBatch(partition, size, due, written + window)

    def _close(self, key: tuple[object, ...]) -> list[OpenBatch]:
        """Close the batch ``key``; a window closes its target's windows opened before it
        first (windows of a target go out in the order of their first update)."""
        if not self.open[key].coalesce:
            return [self.open.pop(key)]
        keys: list[tuple[object, ...]] = []
        for k in self.open:
            if k[:2] == key[:2]:
                keys.append(k)
            if k == key:
                break
        return [self.open.pop(k) for k in keys]

    def end(self, stream: str, windows: list[Window]) -> list[OpenBatch]:
        """Close the windows of ``stream`` for ``windows`` (a CREATE or DELETE of their
        object and field), with the windows of their targets opened before them."""
        closed: list[OpenBatch] = []
        for key in [k for k in self.open if k[0] == stream and k[2:] in windows]:
            if key in self.open:
                closed += self._close(key)
        return closed

    def coalescing(self, stream: str) -> set[Window]:
        """The (object, field)s of ``stream`` with an open window."""
        return {(str(k[2]), str(k[3])) for k in self.open if k[0] == stream and len(k) == 4}

    def holds(self, stream: str, entry_id: str) -> bool:
        """Whether ``entry_id`` of ``stream`` has a trigger in a batch not yet sent."""
        return entry_id in self.held.get(stream, ())

    def due(self, now: float) -> list[OpenBatch]:
        """Close and return the batches whose window ended, in the order they opened (a
        window with the windows of its target opened before it: :meth:`_close`)."""
        closed: list[OpenBatch] = []
        for key in [k for k, b in self.open.items() if b.due is not None and b.due <= now]:
            if key in self.open:
                closed += self._close(key)
        return closed

    def next_due(self) -> float | None:
        """When the next window ends (``None``: no open batch has one)."""
        return min((b.due for b in self.open.values() if b.due is not None), default=None)

    def hold_letters(self, stream: str, dead: list[DeadLetterRecord]) -> list[DeadLetterRecord]:
        """Keep the dead letters of held entries (writing one acknowledges its entry) until
        the entry is free; return the others."""
        held = self.held.get(stream, {})
        if not any(r[0] in held for r in dead):
            return dead
        kept = self.letters.setdefault(stream, {})
        kept.update((r[0], r) for r in dead if r[0] in held)
        return [r for r in dead if r[0] not in held]

    def sent(self, batch: OpenBatch) -> tuple[list[str], list[DeadLetterRecord]]:
        """``batch`` went out: the entries no batch holds any more, to acknowledge, and the
        dead letters kept for some of them (:meth:`hold_letters`), to write instead."""
        stream = batch.partition.outbox
        free = self._freed(batch)
        kept = self.letters.get(stream, {})
        letters = [kept.pop(e) for e in free if e in kept]
        if letters:
            done = {r[0] for r in letters}
            free = [e for e in free if e not in done]
        return free, letters

    def _freed(self, batch: OpenBatch) -> list[str]:
        held = self.held.get(batch.partition.outbox, {})
        free: list[str] = []
        for plan in batch.plans:
            left = held.get(plan.entry_id, 0) - 1
            if left <= 0:
                held.pop(plan.entry_id, None)
                if plan.entry_id not in free:
                    free.append(plan.entry_id)
            else:
                held[plan.entry_id] = left
        return free

    def drop(self, stream: str) -> int:
        """Forget ``stream``'s batches (their entries stay pending: read again, they form
        the same batches); return how many entries that leaves held."""
        for key in [k for k in self.open if k[0] == stream]:
            del self.open[key]
        self.letters.pop(stream, None)
        return len(self.held.pop(stream, {}))

    def streams(self) -> Iterator[str]:
        """The streams with held entries."""
        return (s for s, held in self.held.items() if held)

    def pending(self) -> bool:
        """Whether any batch is open."""
        return bool(self.open)
