"""Handing a batch's triggers to Zenoh: PUTs in write order, GETs with bounded concurrency.

The worker decides *what* goes out (:class:`Plan`: an outbox entry and its dispatches) and
what to do about failures; :class:`Dispatcher` makes it go out and reports how far it got
(:class:`Outcome`): the plans before ``done`` went out completely; the next one was held
(hold mode: no subscriber), failed (the publisher raised, a GET got no answer) or ran out
of time.  Responses of ``invoke`` deliveries to stateful targets are recorded as function
events on the target objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .asyncio_store import AsyncObjectStore
from .config import Settings
from .errors import ObjectNotFoundError
from .functions import InvokeResult
from .keys import parse_object_segment
from .metrics import WorkerMetrics
from .outbox import OutboxEntry
from .pb.oprc_invoke_pb2 import InvocationResponse
from .publisher import Publisher
from .stats import WorkerStats
from .wire import Dispatch

__all__ = ["Dispatcher", "Outcome", "Plan"]


@dataclass
class Plan:
    """One entry of a batch and the dispatches it makes."""

    entry_id: str
    fields: dict[bytes, bytes]
    entry: OutboxEntry
    dispatches: list[Dispatch]


@dataclass
class Outcome:
    """How far a publish got: ``done`` plans went out; the next was held or failed.
    ``answers`` are the responses of ``invoke`` deliveries that went out."""

    done: int
    held_key: str | None = None
    error: str | None = None
    answers: list[tuple[Dispatch, InvocationResponse]] = field(default_factory=list)


class Dispatcher:
    """Publishes plans for a worker (its settings, statistics, metrics and store)."""

    def __init__(
        self,
        settings: Settings,
        stats: WorkerStats,
        metrics: WorkerMetrics,
        store: AsyncObjectStore,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.metrics = metrics
        self.store = store
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def publish(self, publisher: Publisher, plans: list[Plan]) -> Outcome:
        """Send ``plans`` in order (off the event loop) and record invoked outcomes."""
        if not any(p.dispatches for p in plans):
            return Outcome(len(plans))
        outcome = await self._in_thread(publisher, plans)
        for dispatch, response in outcome.answers:
            await self._record(dispatch, response)
        return outcome

    async def _record(self, dispatch: Dispatch, response: InvocationResponse) -> None:
        """Record an invoked function's outcome on its target object (function event)."""
        target = dispatch.target
        if not target.stateful:
            return
        oid = parse_object_segment(target.object_segment)
        store = self.store.with_context(depth=dispatch.depth + 1, traceparent=dispatch.traceparent)
        with contextlib.suppress(ObjectNotFoundError):
            await store.report_function_result(
                target.cls_id, target.partition_id, oid, target.fn_id, response
            )

    async def _in_thread(self, publisher: Publisher, plans: list[Plan]) -> Outcome:
        cancel = threading.Event()
        task = asyncio.ensure_future(asyncio.to_thread(self._send, publisher, plans, cancel))
        timeout = self.settings.trigger_timeout_ms / 1000
        if any(d.mode == "invoke" for p in plans for d in p.dispatches):
            return await task  # each GET has the timeout of its own
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            cancel.set()
            outcome = await task  # stops after the put in hand
            if outcome.done < len(plans) and outcome.error is None and outcome.held_key is None:
                outcome.error = f"dispatch did not complete within {timeout * 1000:.0f} ms"
            return outcome

    def _send(self, publisher: Publisher, plans: list[Plan], cancel: threading.Event) -> Outcome:
        """PUTs one at a time in write order; GETs (``invoke``) started together, at most
        ``max_concurrent_triggers`` at once, and awaited in write order."""
        timeout = self.settings.trigger_timeout_ms / 1000
        calls: dict[int, Future[InvokeResult]] = {
            id(d): self._invoker().submit(publisher.invoke, d.key, d.body, timeout)
            for plan in plans
            for d in plan.dispatches
            if d.mode == "invoke"
        }
        outcome = Outcome(0)
        for i, plan in enumerate(plans):
            outcome.done = i
            if cancel.is_set():
                return outcome
            if self.settings.hold:
                for d in plan.dispatches:
                    if d.mode != "invoke" and not publisher.matching(d.key):
                        outcome.held_key = d.key
                        return outcome
            try:
                for d in plan.dispatches:
                    if d.mode == "invoke":
                        result = calls[id(d)].result()
                        if not result.answered:
                            outcome.error = result.response.payload.decode(errors="replace")
                            return outcome
                        outcome.answers.append((d, result.response))
                    else:
                        publisher.put(d.key, d.body)
            except Exception as err:  # any failure of the edge is a failed attempt
                outcome.error = f"{type(err).__name__}: {err}"
                return outcome
            self._count(plan)
        outcome.done = len(plans)
        return outcome

    def _count(self, plan: Plan) -> None:
        stats = self.stats
        for d in plan.dispatches:
            stats.triggers_sent += 1
            stats.sent_by_target[(d.target.cls_id, d.target.fn_id)] += 1
        if plan.dispatches:
            self.metrics.observe_dispatch(plan.entry.timestamp, len(plan.dispatches))

    def _invoker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.max_concurrent_triggers, thread_name_prefix="oprc-invoke"
            )
        return self._pool
