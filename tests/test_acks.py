"""Deferred acknowledgements (worker/acks.py): merged per partition, in order, and out of
the garbage collector's sight."""

from __future__ import annotations

import gc

import pytest

from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.acks import AckQueue, DeferredAck

pytestmark = pytest.mark.quick

A, B = PartitionKeys.of("orders", 0), PartitionKeys.of("orders", 1)


def test_due_batches_are_merged_per_partition_in_the_order_they_were_sent() -> None:
    queue = AckQueue()
    queue.add(DeferredAck.of(1.0, A, ["1-1"], []))
    queue.add(DeferredAck.of(2.0, B, ["1-2"], []))
    queue.add(DeferredAck.of(3.0, A, ["1-3", "1-4"], []))
    queue.add(DeferredAck.of(9e18, A, ["1-5"], []))  # not due
    ready = queue.take()
    assert [(r.partition, r.acked, r.due) for r in ready] == [
        (A, ("1-1", "1-3", "1-4"), 3.0),
        (B, ("1-2",), 2.0),
    ]
    assert [r.acked for r in queue.take(A.outbox, wait=True)] == [("1-5",)]
    assert queue.items == []


def test_a_waiting_acknowledgement_is_not_tracked_by_the_garbage_collector() -> None:
    """Hundreds wait at a time; every collection would walk them (README Latency)."""
    item = DeferredAck.of(1.0, A, ["1-1", "1-2"], [])
    gc.collect()  # tuples of texts are untracked by the first collection that sees them
    assert not gc.is_tracked(item)
    assert not gc.is_tracked(item.acked)
    assert isinstance(item.acked, tuple)


def test_drop_forgets_a_partitions_batches_and_counts_their_entries() -> None:
    queue = AckQueue()
    queue.add(DeferredAck.of(1.0, A, ["1-1", "1-2"], []))
    queue.add(DeferredAck.of(1.0, B, ["1-3"], []))
    assert queue.drop(A.outbox) == 2
    assert [r.partition for r in queue.items] == [B]
