"""What the worker does with the entries it read: plan, publish, acknowledge, dead-letter.

A mixin of :class:`~oprc_redis_events.worker.loop.Worker`.  Entries are untrusted: anything
that goes wrong in turning one into PUTs (a missing or malformed field, a timestamp out
of range, a target that cannot be addressed, an exception nobody foresaw) dead-letters
that entry with the reason, and the partition flows on.  A failed delivery pauses the
partition and is retried with a backoff until ``max_deliveries``, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from typing import Any

from ..errors import OprcEventsError
from ..protocol.encode import Delivery, Dispatch, build_dispatch
from ..protocol.keys import PartitionKeys
from ..protocol.limits import Limits, limits_of
from ..protocol.outbox import OutboxEntry, decode_entry
from .acks import DeferredAck
from .broken import pipelined, topology_changing
from .conditions import skipped
from .deadletters import DeadLetterRecord, dead_letter
from .discovery import PartitionDiscovery
from .dispatch import Dispatcher, Forged, Outcome, Plan, screened
from .logonce import ThrottledLog
from .policy import Failure, after_failure
from .publisher import Publisher
from .stats import WorkerStats

__all__ = ["EntryHandling", "describe"]

log = logging.getLogger("oprc_redis_events.worker.loop")

#: poison entries of one batch logged one line each; the rest of the batch in one line
POISON_LINES = 10


def describe(err: Exception) -> str:
    """An error as a line of a log or a dead letter's reason."""
    if isinstance(err, OprcEventsError):
        return str(err)
    return f"{type(err).__name__}: {err}"


class EntryHandling(PartitionDiscovery):
    """Turns a partition's entries into PUTs and settles them (see the module docstring)."""

    stats: WorkerStats
    problems: ThrottledLog
    dispatcher: Dispatcher
    publisher: Publisher | None
    delivery: Delivery

    def plan(
        self, entry: OutboxEntry, limits: Limits | None = None
    ) -> tuple[list[Dispatch], list[Forged]]:
        """The dispatches of one decoded entry and its forged targets (none when its depth
        is at the limit, or when it is a dead letter replayed for another consumer group);
        ``limits``: the settings' (:func:`limits_of`), when the caller has them."""
        if entry.group not in (None, self.settings.group):
            return [], []
        if entry.depth >= self.settings.max_trigger_depth:
            stopped = sum(len(e.targets) for e in entry.events)
            self.stats.depth_stops += stopped
            log.warning(
                "depth limit: entry %s of %s at depth %d >= max %d; %d trigger(s) not dispatched",
                entry.entry_id,
                entry.partition.member,
                entry.depth,
                self.settings.max_trigger_depth,
                stopped,
            )
            return [], []
        payload_format, delivery = self.settings.payload_format, self.delivery
        return screened(
            entry,
            lambda event, i: build_dispatch(
                entry, event, i, payload_format=payload_format, delivery=delivery
            ),
            limits or limits_of(self.settings),
            lambda event, i: skipped(entry, event, i, self.stats, self.problems),
        )

    def _plans(
        self, partition: PartitionKeys, entries: list[tuple[str, dict[bytes, bytes]]]
    ) -> tuple[list[Plan], list[DeadLetterRecord]]:
        """Decode and plan each entry; an entry that cannot become PUTs is a dead letter."""
        plans: list[Plan] = []
        dead: list[DeadLetterRecord] = []
        limits, events = limits_of(self.settings), 0
        for entry_id, fields in entries:
            try:
                entry = decode_entry(partition, entry_id, fields)
                plans.append(Plan(entry_id, fields, entry, *self.plan(entry, limits)))
                events += len(entry.events)
            except Exception as err:  # whatever it is, this entry must not stop the others
                reason = f"cannot be dispatched: {describe(err)}"
                dead.append((entry_id, fields, reason, "", 1))
        self.stats.entries_read += len(entries)
        self.stats.events_read += events
        self._log_poison(partition, dead)
        return plans, dead

    def _log_poison(self, partition: PartitionKeys, dead: list[DeadLetterRecord]) -> None:
        """One line per poison entry (an entry read again, its dead letter not written yet,
        is not logged again at once), the entries beyond :data:`POISON_LINES` of one batch
        in one line with their count and ids: every one is in the log."""
        for entry_id, _, reason, _, _ in dead[:POISON_LINES]:
            self.problems.error(
                ("poison", partition.member, entry_id),
                "dead-lettering entry %s of %s: %s",
                entry_id,
                partition.member,
                reason,
            )
        rest = dead[POISON_LINES:]
        if rest:
            log.error(
                "dead-lettering %d more entries of %s (ids %s .. %s) that cannot be "
                "dispatched either; `oprc-redis-events dlq list --cls %s --partition %d` "
                "shows each with its reason",
                len(rest),
                partition.member,
                rest[0][0],
                rest[-1][0],
                partition.cls_id,
                partition.partition_id,
            )

    async def _publish(self, plans: list[Plan]) -> Outcome:
        """Publish ``plans``; an unforeseen exception is a failed attempt of the plan that
        raised it (found by publishing the plans one at a time)."""
        assert self.publisher is not None
        try:
            return await self.dispatcher.publish(self.publisher, plans)
        except Exception as err:
            if topology_changing(err):  # a slot moving, a failover: not the entry's fault
                raise
            if len(plans) > 1:
                return await self._publish_one_by_one(plans)
            return Outcome(0, error=describe(err))

    async def _publish_one_by_one(self, plans: list[Plan]) -> Outcome:
        for done, plan in enumerate(plans):
            outcome = await self._publish([plan])
            if outcome.done == 0:
                return Outcome(done, held_key=outcome.held_key, error=outcome.error)
        return Outcome(len(plans))

    async def _flush_acks(
        self, streams: Collection[str] | None = None, *, wait: bool = False
    ) -> None:
        """Acknowledge deferred batches that are due (all of them, or those of ``streams``,
        when ``wait``: after sleeping until they are due)."""
        ready = self.acks.take(streams, wait=wait)
        if not ready:
            return
        if wait:
            await asyncio.sleep(max(0.0, max(i.due for i in ready) - time.monotonic()))
        try:
            replies = await self._acknowledge(ready)
        except BaseException:  # Redis went away, a slot no node serves...: try again later
            self.acks.put_back(ready)  # (acknowledging again changes nothing)
            raise
        for i, (item, reply) in enumerate(zip(ready, replies, strict=True)):
            try:
                async with self.on_partition(item.partition.outbox):
                    if isinstance(reply, Exception):
                        raise reply
                    await self._finish(item.partition, (), item.dead)
            except BaseException:
                self.acks.put_back(ready[i:])
                raise

    async def _acknowledge(self, ready: Sequence[DeferredAck]) -> list[Any]:
        """XACK each partition's entries: one command, or all partitions' in one pipeline
        (one round trip; on a cluster one per node); a partition's error in its place."""
        group, acking = self.settings.group, [item for item in ready if item.acked]

        def xack(target: Any, i: int) -> Any:
            return target.xack(acking[i].partition.outbox, group, *acking[i].acked)

        replies = iter(await pipelined(self.client, len(acking), xack))
        return [next(replies) if item.acked else 0 for item in ready]

    async def _after_failure(
        self, partition: PartitionKeys, failed: Plan, outcome: Outcome
    ) -> DeadLetterRecord | None:
        """Schedule the retry of a failed or held entry, or return its dead letter."""
        held = outcome.held_key is not None
        attempts = 0 if held else await self._deliveries(partition.outbox, failed.entry_id)
        age_ms = max(0, int(time.time() * 1000) - failed.entry.timestamp)  # (see outbox)
        decision = after_failure(Failure(outcome.held_key, attempts, age_ms), self.settings)
        state = self.states.get(partition.outbox)
        if state is not None:
            state.retry_at = time.monotonic() + decision.delay_ms / 1000
        where = (failed.entry_id, partition.member)
        if decision.action == "hold":
            self.stats.held += 1
        elif decision.action == "retry":
            self.stats.retries += 1
            log.warning(
                "entry %s of %s failed (attempt %d of %d: %s); retrying in %d ms",
                *where,
                attempts,
                self.settings.max_deliveries,
                outcome.error,
                decision.delay_ms,
            )
        else:
            error = f" ({outcome.error})" if outcome.error and not held else ""
            log.error("dead-lettering entry %s of %s: %s%s", *where, decision.reason, error)
            return (failed.entry_id, failed.fields, decision.reason, outcome.error or "", attempts)
        return None

    async def _deliveries(self, stream: str, entry_id: str) -> int:
        pending = await self.client.xpending_range(
            stream, self.settings.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def _finish(
        self, partition: PartitionKeys, acked: Sequence[str], dead: Sequence[DeadLetterRecord]
    ) -> None:
        """Acknowledge the entries that went out; move ``dead`` to the dead letters."""
        if acked:
            await self.client.xack(partition.outbox, self.settings.group, *acked)
        if dead:
            await dead_letter(self.client, partition, self.settings.group, dead)
            self.stats.dead_letters += len(dead)
