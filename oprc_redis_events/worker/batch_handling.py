"""Handling a partition's entries when some targets are batched (``oprc.batch_max`` /
``oprc.batch_ms``, :mod:`~oprc_redis_events.protocol.batching`).

A mixin of :class:`~oprc_redis_events.worker.loop.Worker`.  The triggers of a batched
target are taken out of their entry's dispatches and gathered in the partition's open
batches (:mod:`.batches`); the entry is acknowledged only once every batch holding one of
its triggers went out (its PUT, after ``ack_delay_ms`` as any other).  A batch goes out
when it is full (``batch_max``), or when its window ends (``batch_ms`` after its first
trigger: the loop wakes for it).  Held entries stay pending: the worker refreshes their
idle time (``XCLAIM ... JUSTID``, which counts no delivery) so that no claim takes them,
and a pending re-read skips those it already holds.  A batch that fails drops the
partition's open batches and pauses the partition as a failed entry would: its entries,
read again in order, form the same batches, with the same invocation ids.

Coalescing windows (``oprc.coalesce_ms``, :mod:`.coalescing`) take the same road; a read
whose entries create or delete an (object, field) with an open window is handled in parts:
the plans before that entry, then the windows it ends, then the rest.
"""

from __future__ import annotations

import asyncio
import time

from ..protocol.batch_wire import batch_dispatch
from ..protocol.coalescing import COALESCE_MS_OPTION
from ..protocol.encode import Dispatch
from ..protocol.keys import PartitionKeys
from .acks import DeferredAck
from .batches import Batches, OpenBatch
from .broken import topology_changing
from .coalescing import UPDATE, coalesced_dispatch, cuts
from .deadletters import DeadLetterRecord
from .dispatch import Outcome, Plan, forged_letters
from .handling import EntryHandling, describe

__all__ = ["BatchHandling"]


def _divert(plans: list[Plan]) -> list[list[Dispatch]]:
    """Take the batched and coalesced triggers out of each plan's dispatches; return them,
    per plan."""
    batched: list[list[Dispatch]] = []
    for plan in plans:
        mine: list[Dispatch] = []
        rest: list[Dispatch] = []
        for d in plan.dispatches:  # one pass; coalesced(d) inlined: this runs for every trigger
            held = d.payload is not None or (
                d.event_type == UPDATE and COALESCE_MS_OPTION in d.target.options
            )
            (mine if held else rest).append(d)
        if mine:
            plan.dispatches = rest
        batched.append(mine)
    return batched


class BatchHandling(EntryHandling):
    """Entries in, PUTs and batches out, settled (see the module docstring)."""

    batches: Batches
    _last_touch: float = 0.0

    async def _handle(
        self, partition: PartitionKeys, entries: list[tuple[str, dict[bytes, bytes]]]
    ) -> int:
        """Dispatch one partition's entries in order; gather the batched triggers;
        acknowledge and dead-letter (in parts when a CREATE or DELETE ends a window)."""
        stream = partition.outbox
        fresh = [e for e in entries if not self.batches.holds(stream, e[0])]
        plans, dead = self._plans(partition, fresh)
        batched = _divert(plans)
        parts = (
            cuts(plans, batched, self.batches.coalescing(stream))
            if self.batches.open or any(batched)
            else []
        )
        start = 0
        for cut, ending in [*parts, (len(plans), [])]:
            if not await self._handle_part(partition, plans[start:cut], batched[start:cut], dead):
                break
            dead = []
            if ending and not await self._send_batches(self.batches.end(stream, ending)):
                break
            start = cut
        return len(entries)

    async def _handle_part(
        self,
        partition: PartitionKeys,
        plans: list[Plan],
        batched: list[list[Dispatch]],
        dead: list[DeadLetterRecord],
    ) -> bool:
        """Publish ``plans``, gather their batched triggers, acknowledge and dead-letter;
        whether all went out (and the partition is still ours)."""
        stream = partition.outbox
        outcome = await self._publish(plans)
        done = plans[: outcome.done]
        closed = self._gather(partition, done, batched)
        acked = [p.entry_id for p in done if not self.batches.holds(stream, p.entry_id)]
        dead = forged_letters(dead, done, self.stats)  # the rest went out
        dead = self.batches.hold_letters(stream, dead)  # held entries: once they are free
        if outcome.done < len(plans):
            verdict = await self._after_failure(partition, plans[outcome.done], outcome)
            if verdict is not None:
                dead.append(verdict)
        if outcome.done and any(p.dispatches for p in done):
            due = time.monotonic() + self.settings.ack_delay_ms / 1000
            self.acks.add(DeferredAck.of(due, partition, acked, dead))
        else:
            await self._finish(partition, acked, dead)
        sent = await self._send_batches(closed)
        return sent and outcome.done == len(plans) and stream in self.states

    def _gather(
        self, partition: PartitionKeys, done: list[Plan], batched: list[list[Dispatch]]
    ) -> list[OpenBatch]:
        """Add the batched triggers of the plans that went out; return the full batches."""
        now = time.monotonic()
        closed: list[OpenBatch] = []
        for plan, mine in zip(done, batched, strict=False):
            for d in mine:
                closed += self.batches.add(partition, plan, d, now)
        return closed

    async def _send_batches(self, closed: list[OpenBatch]) -> bool:
        """Send each batch in order; a partition whose batch failed sends no more now.
        Whether every batch went out."""
        failed: set[str] = set()
        for batch in closed:
            stream = batch.partition.outbox
            if stream in failed or stream not in self.states:
                continue
            async with self.on_partition(stream):  # a Redis error of the partition: its own
                if not await self._send_one(batch):
                    failed.add(stream)
        return not failed

    async def _send_one(self, batch: OpenBatch) -> bool:
        """Send ``batch``; queue the acknowledgement of the entries it frees."""
        fmt = self.settings.payload_format
        if batch.coalesce:
            d = coalesced_dispatch(batch.members, batch.plans, fmt, self.delivery)
        else:
            d = batch_dispatch(batch.members, fmt)
        outcome = await self._send_batch(d)
        if outcome.done == 0:
            await self._batch_failed(batch, outcome)
            return False
        count = 1 if batch.coalesce else len(batch.members)
        self.stats.triggers_sent += count
        self.stats.sent_by_target[(d.target.cls_id, d.target.fn_id)] += count
        if batch.coalesce:
            self.stats.updates_coalesced += len(batch.members) - 1
        else:
            self.stats.batches_sent += 1
        due = time.monotonic() + self.settings.ack_delay_ms / 1000
        self.acks.add(DeferredAck.of(due, batch.partition, *self.batches.sent(batch)))
        return True

    async def _send_batch(self, d: Dispatch) -> Outcome:
        """PUT (or GET, ``invoke``) one batch: ``Outcome(1)`` when it went out."""
        assert self.publisher is not None
        publisher = self.publisher
        timeout = self.settings.trigger_timeout_ms / 1000
        try:
            if d.mode == "invoke":
                result = await asyncio.to_thread(publisher.invoke, d.key, d.body, timeout)
                if not result.answered:
                    return Outcome(0, error=result.response.payload.decode(errors="replace"))
                await self.dispatcher.record(d, result.response)
            elif self.settings.hold and not publisher.matching(d.key):
                return Outcome(0, held_key=d.key)
            else:
                await asyncio.wait_for(asyncio.to_thread(publisher.put, d.key, d.body), timeout)
        except Exception as err:
            if topology_changing(err):
                raise
            return Outcome(0, error=describe(err))
        return Outcome(1)

    async def _batch_failed(self, batch: OpenBatch, outcome: Outcome) -> None:
        """Drop the partition's batches and pause it (its first entry counts the attempt);
        after ``max_deliveries``, dead-letter the batch's entries."""
        partition = batch.partition
        self.batches.drop(partition.outbox)
        verdict = await self._after_failure(partition, batch.plans[0], outcome)
        if verdict is None:
            return
        _, _, reason, error, attempts = verdict
        dead: list[DeadLetterRecord] = []
        for plan in batch.plans:
            if all(plan.entry_id != r[0] for r in dead):
                what = "coalesce" if batch.coalesce else "batch"
                dead.append((plan.entry_id, plan.fields, f"{what}: {reason}", error, attempts))
        await self._finish(partition, [], dead)

    async def _burst_over(self) -> bool:
        """Burst mode, nothing left to read: send the open batches (when their windows
        end; at once when none has a window); once none is open, acknowledge what went
        out and say so."""
        if self.batches.pending():
            await self._close_due_batches(everything=self.batches.next_due() is None)
            await asyncio.sleep(0.005)
            return False
        await self._flush_acks(wait=True)
        return True

    async def _close_due_batches(self, *, everything: bool = False) -> None:
        """Send the batches whose window ended (``everything``: every open batch)."""
        now = float("inf") if everything else time.monotonic()
        if everything:
            closed = list(self.batches.open.values())
            self.batches.open.clear()
        else:
            closed = self.batches.due(now)
        if closed:
            await self._send_batches(closed)
        await self._touch_held()

    async def _touch_held(self) -> None:
        """Reset the idle time of held entries (no delivery counted), so that no claim
        (``claim_idle_ms``) takes them while their batch gathers."""
        now = time.monotonic()
        if now - self._last_touch < self.settings.claim_idle_ms / 4000:
            return
        self._last_touch = now
        s = self.settings
        for stream in list(self.batches.streams()):
            ids: list[int | bytes | str | memoryview[int]] = list(self.batches.held.get(stream, {}))
            if stream in self.states and ids:
                async with self.on_partition(stream):
                    await self.client.xclaim(stream, s.group, s.consumer, 0, ids, justid=True)
