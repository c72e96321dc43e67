"""The dispatcher's PUTs of a batch (pure, an in-memory publisher): in write order, counted
once per batch, and a PUT that went out before its entry's failure is not sent again by
the retry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from oprc_redis_events.config import Settings
from oprc_redis_events.errors import ZenohUnavailableError
from oprc_redis_events.protocol.encode import build_dispatch
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import OutboxEntry, OutboxEvent
from oprc_redis_events.protocol.triggers import Target
from oprc_redis_events.worker.dispatch import INLINE_PUTS, INLINE_SLOW_S, Dispatcher, Plan
from oprc_redis_events.worker.metrics import WorkerMetrics
from oprc_redis_events.worker.publisher import MemoryPublisher
from oprc_redis_events.worker.stats import WorkerStats

pytestmark = pytest.mark.quick

TARGETS = [Target("svc", 0, None, None, "a", {}), Target("svc", 0, None, None, "b", {})]


def plans(count: int) -> list[Plan]:
    out = []
    for n in range(count):
        event = OutboxEvent(1, 4, "1", b"v", TARGETS)
        entry = OutboxEntry(PartitionKeys.of("c", 0), f"{n + 1}-0", "7", 1, 0, 1000, None, [event])
        out.append(
            Plan(entry.entry_id, {}, entry, [build_dispatch(entry, event, i) for i in (0, 1)])
        )
    return out


class FailsOnce(MemoryPublisher):
    """Refuses the PUT to function ``b`` of the second entry, once."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def put(self, key: str, payload: bytes) -> None:
        if "/b/" in key and len(self.sent) == 3 and not self.refused:
            self.refused += 1
            raise ZenohUnavailableError("refused")
        super().put(key, payload)


def dispatcher() -> tuple[Dispatcher, WorkerStats, Any]:
    stats = WorkerStats()
    metrics = WorkerMetrics(None)
    return Dispatcher(Settings.from_env({}), stats, metrics, None), stats, metrics  # type: ignore[arg-type]


def test_a_retry_sends_only_what_did_not_go_out() -> None:
    d, stats, metrics = dispatcher()
    publisher, batch = FailsOnce(), plans(3)
    outcome = asyncio.run(d.publish(publisher, batch))
    assert outcome.done == 1 and outcome.error == "ZenohUnavailableError: refused"
    assert stats.triggers_sent == 2  # the first entry's, counted; the second's a went out
    retry = asyncio.run(d.publish(publisher, batch[outcome.done :]))
    assert retry.done == 2 and retry.error is None
    keys = [key for key, _ in publisher.sent]
    assert keys == [p.key for plan in batch for p in plan.dispatches]  # each once, in order
    assert stats.triggers_sent == 6
    assert stats.sent_by_target == {("svc", "a"): 3, ("svc", "b"): 3}
    assert sum(metrics.latency.counts) == 6


class Threads(MemoryPublisher):
    """Records the thread of each PUT; the first ones take ``slow`` seconds each."""

    def __init__(self, slow: float = 0.0, slow_puts: int = 0) -> None:
        super().__init__()
        self.threads: list[str] = []
        self.slow, self.slow_puts = slow, slow_puts

    def put(self, key: str, payload: bytes) -> None:
        import threading
        import time

        self.threads.append(threading.current_thread().name)
        if len(self.threads) <= self.slow_puts:
            time.sleep(self.slow)
        super().put(key, payload)


def test_a_few_puts_go_out_on_the_loop_until_one_is_slow() -> None:
    import threading

    main = threading.current_thread().name
    d, _, _ = dispatcher()
    publisher = Threads(slow=INLINE_SLOW_S * 1.5, slow_puts=1)
    asyncio.run(d.publish(publisher, plans(2)))  # 4 PUTs: on the loop; the first one slow
    asyncio.run(d.publish(publisher, plans(1)))  # after a slow one: from the thread
    assert publisher.threads[0] == main and main not in publisher.threads[1:]
    d, _, _ = dispatcher()
    publisher = Threads(slow=INLINE_SLOW_S / 4, slow_puts=1)  # slow, not too slow: on
    asyncio.run(d.publish(publisher, plans(1)))
    asyncio.run(d.publish(publisher, plans(1)))
    assert publisher.threads == [main] * 4
    d, _, _ = dispatcher()
    publisher = Threads()
    many = INLINE_PUTS // 2 + 1  # two PUTs each: more than INLINE_PUTS
    asyncio.run(d.publish(publisher, plans(many)))
    asyncio.run(d.publish(publisher, plans(INLINE_PUTS // 2)))  # fast and few: on the loop
    assert main not in publisher.threads[: 2 * many]
    assert publisher.threads[2 * many :] == [main] * INLINE_PUTS


def test_an_inline_send_past_its_deadline_sends_the_rest_from_the_thread() -> None:
    """Zenoh's queue filling up makes PUTs slow: the loop stops after the PUT that took it
    past INLINE_SLOW_S, and the thread sends the rest, each PUT once, in order."""
    import threading

    main = threading.current_thread().name
    d, stats, _ = dispatcher()
    publisher = Threads(slow=INLINE_SLOW_S * 0.75, slow_puts=4)
    batch = plans(INLINE_PUTS // 2)  # INLINE_PUTS PUTs: inline at first
    outcome = asyncio.run(d.publish(publisher, batch))
    assert outcome.done == len(batch) and outcome.error is None
    on_loop = publisher.threads.count(main)
    assert 1 <= on_loop <= 3 and publisher.threads[:on_loop] == [main] * on_loop
    assert main not in publisher.threads[on_loop:]
    assert [key for key, _ in publisher.sent] == [p.key for plan in batch for p in plan.dispatches]
    assert stats.triggers_sent == INLINE_PUTS
