"""Handing a batch's triggers to Zenoh: PUTs in write order, GETs with bounded concurrency.

The worker decides *what* goes out (:class:`~.plans.Plan`: an outbox entry and its
dispatches, built by :func:`~.plans.screened`) and
what to do about failures; :class:`Dispatcher` makes it go out and reports how far it got
(:class:`Outcome`): the plans before ``done`` went out completely; the next one was held
(hold mode: no subscriber), failed (the publisher raised, a GET got no answer) or ran out
of time.  Responses of ``invoke`` deliveries to stateful targets are recorded as function
events on the target objects, in write order.

A batch of a few PUTs (at most :data:`INLINE_PUTS`) goes out on the event loop itself: the
hop to a sending thread is most of a quiet stream's latency on a busy machine.  An inline
send stops after the PUT that takes it past :data:`INLINE_SLOW_S` (Zenoh's queue full), and
the rest of its batch goes out from the thread.  Larger batches, and every batch for
:data:`INLINE_BACKOFF_S` after an inline send that took longer than :data:`INLINE_SLOW_S` or
failed, or after a send that ran out of time, go out from a thread, where
``trigger_timeout_ms`` bounds them and the loop goes on.

The GETs of a whole batch start together (``invoke`` delivery: at most
``max_concurrent_triggers`` at once) and are collected in write order.  When one fails, the
others of the batch may already have run: the dispatcher remembers, per partition, every
dispatch of the entries still to go that went out or is still running (a PUT handed to
Zenoh, a GET in flight or answered), keyed by (entry id, invocation id), and the retry
reuses them instead of running those functions again.  What it remembers is at most one
batch per partition, and is dropped once the entry went out or no longer comes back
(acknowledged, dead-lettered, taken by another worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ..client.aio.store import AsyncObjectStore
from ..client.invoke import InvokeResult
from ..config import Settings
from ..errors import ObjectNotFoundError
from ..pb.oprc_invoke_pb2 import InvocationResponse
from ..protocol.encode import Dispatch
from ..protocol.keys import parse_object_segment
from .metrics import WorkerMetrics
from .plans import Forged, Plan, forged_letters, screened
from .publisher import Publisher
from .stats import WorkerStats

__all__ = ["Dispatcher", "Forged", "Outcome", "Plan", "forged_letters", "screened"]

#: a batch of at most this many PUTs goes out on the event loop, no thread hop
INLINE_PUTS = 64
#: an inline send slower than this (Zenoh's queue filling up) or failed sends every batch
#: from the thread for INLINE_BACKOFF_S
INLINE_SLOW_S = 0.02
INLINE_BACKOFF_S = 5.0


class _Deadline:
    """An inline send's stop flag: set once ``at`` (``time.monotonic()``) has passed, so
    that the PUTs after a slow one go out from the thread (see :meth:`_in_thread`)."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at

    def is_set(self) -> bool:
        return time.monotonic() > self.at


#: what stops a send between two PUTs: the thread's cancel event or the inline deadline
Cancel = threading.Event | _Deadline

_SENT = "sent"  # a PUT handed to Zenoh, or a GET whose answer was collected
_PENDING = "pending"
#: (entry id, invocation id) -> the GET (running or done) or _SENT
Memo = dict[tuple[str, str], Future[InvokeResult] | str]


class _NoAnswer(Exception):
    """A GET that no function answered (timeout, no function, undecodable reply)."""


def _unanswered(call: Future[InvokeResult] | str) -> bool:
    """A GET that ended without an answer (it must be asked again)."""
    if not isinstance(call, Future) or not call.done():
        return False
    return call.exception() is not None or not call.result().answered


def _unmatched(publisher: Publisher, plan: Plan, memo: Memo) -> str | None:
    """The key of a PUT of ``plan`` still to send that no subscriber matches (hold mode)."""
    for d in plan.dispatches:
        sent = memo.get((plan.entry_id, d.invocation_id)) == _SENT
        if d.mode != "invoke" and not sent and not publisher.matching(d.key):
            return d.key
    return None


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

    #: start the GETs of a whole batch at once (``False``: an entry's GETs start when the
    #: entry before it was answered; measured slower, see README, kept for the benchmark)
    lookahead = True
    _inline_off_until = 0.0  # monotonic: every send from the thread until then

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
        self._memo: dict[str, Memo] = {}  # outbox stream -> what went out of its entries

    def close(self) -> None:
        self._memo.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def publish(self, publisher: Publisher, plans: list[Plan]) -> Outcome:
        """Send ``plans`` in order (off the event loop) and record invoked outcomes."""
        if not any(p.dispatches for p in plans):
            return Outcome(len(plans))
        outcome = await self._in_thread(publisher, plans)
        try:
            for dispatch, response in outcome.answers:
                await self._record(dispatch, response)
        except BaseException:
            # Redis failed: forget what went out, so that the retry records every answer
            # (asking the functions again: at least once, never an answer lost).
            self._memo.pop(plans[0].entry.partition.outbox, None)
            raise
        return outcome

    async def record(self, dispatch: Dispatch, response: InvocationResponse) -> None:
        """Record an invoked function's outcome (a batch's answer: see batch_handling)."""
        await self._record(dispatch, response)

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
        invokes = any(d.mode == "invoke" for p in plans for d in p.dispatches)
        if (
            not invokes
            and sum(len(p.dispatches) for p in plans) <= INLINE_PUTS
            and time.monotonic() >= self._inline_off_until
        ):  # a few PUTs, Zenoh keeping up: on the loop (see the module docstring)
            started = time.monotonic()
            outcome = self._send(publisher, plans, _Deadline(started + INLINE_SLOW_S), invokes)
            if outcome.error is not None or time.monotonic() - started > INLINE_SLOW_S:
                self._inline_off_until = time.monotonic() + INLINE_BACKOFF_S
            if outcome.done == len(plans) or outcome.error or outcome.held_key:
                return outcome
            rest = await self._threaded(publisher, plans[outcome.done :], invokes)
            rest.done += outcome.done  # past the deadline: the rest from the thread
            return rest
        return await self._threaded(publisher, plans, invokes)

    async def _threaded(self, publisher: Publisher, plans: list[Plan], invokes: bool) -> Outcome:
        """Send ``plans`` from the sending thread, within ``trigger_timeout_ms`` (PUTs)."""
        cancel = threading.Event()
        task = asyncio.ensure_future(
            asyncio.to_thread(self._send, publisher, plans, cancel, invokes)
        )
        timeout = self.settings.trigger_timeout_ms / 1000
        if invokes:
            return await task  # each GET has the timeout of its own
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            self._inline_off_until = time.monotonic() + INLINE_BACKOFF_S
            cancel.set()
            outcome = await task  # stops after the put in hand
            if outcome.done < len(plans) and outcome.error is None and outcome.held_key is None:
                outcome.error = f"dispatch did not complete within {timeout * 1000:.0f} ms"
            return outcome

    def _send(
        self, publisher: Publisher, plans: list[Plan], cancel: Cancel, invokes: bool
    ) -> Outcome:
        """Send ``plans`` in write order, reusing what an earlier attempt already sent
        (``invokes``: some of them are GETs)."""
        stream = plans[0].entry.partition.outbox
        memo = self._memo.pop(stream, {})
        if self.lookahead and invokes:
            for plan in plans:
                self._start(publisher, plan, memo)
        outcome = Outcome(0)
        try:
            if memo or invokes or self.settings.hold or not self.lookahead:
                self._walk(publisher, plans, memo, cancel, outcome)
            else:
                self._put_all(publisher, plans, memo, cancel, outcome)
        finally:
            self._count(plans[: outcome.done])
            to_go = {p.entry_id for p in plans[outcome.done :]}
            kept = {key: sent for key, sent in memo.items() if key[0] in to_go}
            if kept:
                self._memo[stream] = kept
        return outcome

    def _put_all(
        self,
        publisher: Publisher,
        plans: list[Plan],
        memo: Memo,
        cancel: Cancel,
        outcome: Outcome,
    ) -> None:
        """:meth:`_walk` for the usual batch: PUTs only, nothing sent before, no hold.
        ``cancel`` stops it between two PUTs; the PUTs of the plan it stopped in, or that
        failed, are remembered (``memo``), for what sends the rest."""
        put = publisher.put
        for i, plan in enumerate(plans):
            outcome.done = i
            sent = 0
            try:
                for d in plan.dispatches:
                    if cancel.is_set():
                        break
                    put(d.key, d.body)
                    sent += 1
            except Exception as err:  # any failure of the edge is a failed attempt
                outcome.error = f"{type(err).__name__}: {err}"
            if outcome.error is not None or sent < len(plan.dispatches):
                for d in plan.dispatches[:sent]:
                    memo[(plan.entry_id, d.invocation_id)] = _SENT
                return
        outcome.done = len(plans)

    def _start(self, publisher: Publisher, plan: Plan, memo: Memo) -> None:
        """Start the GETs of ``plan`` that are neither running nor answered."""
        timeout = self.settings.trigger_timeout_ms / 1000
        for d in plan.dispatches:
            key = (plan.entry_id, d.invocation_id)
            if d.mode == "invoke" and (key not in memo or _unanswered(memo[key])):
                memo[key] = self._invoker().submit(publisher.invoke, d.key, d.body, timeout)

    def _walk(
        self,
        publisher: Publisher,
        plans: list[Plan],
        memo: Memo,
        cancel: Cancel,
        outcome: Outcome,
    ) -> None:
        """PUT, or collect the answers of the GETs, plan after plan; stop at the first
        plan that is held or fails."""
        for i, plan in enumerate(plans):
            outcome.done = i
            if cancel.is_set():
                return
            if self.settings.hold:
                outcome.held_key = _unmatched(publisher, plan, memo)
                if outcome.held_key is not None:
                    return
            if not self.lookahead:
                self._start(publisher, plan, memo)
            try:
                for d in plan.dispatches:
                    self._deliver(publisher, plan.entry_id, d, memo, outcome)
            except Exception as err:  # any failure of the edge is a failed attempt
                no_answer = isinstance(err, _NoAnswer)
                outcome.error = str(err) if no_answer else f"{type(err).__name__}: {err}"
                return
        outcome.done = len(plans)

    def _deliver(
        self, publisher: Publisher, entry_id: str, d: Dispatch, memo: Memo, outcome: Outcome
    ) -> None:
        key = (entry_id, d.invocation_id)
        call = memo.get(key, _PENDING)
        if call == _SENT:
            return  # an earlier attempt sent it: never twice
        if d.mode == "invoke":
            assert isinstance(call, Future), "started by _start"
            result = call.result()
            if not result.answered:
                raise _NoAnswer(result.response.payload.decode(errors="replace"))
            outcome.answers.append((d, result.response))
        else:
            publisher.put(d.key, d.body)
        memo[key] = _SENT

    def _count(self, plans: list[Plan]) -> None:
        """Count the triggers of ``plans``, which went out: statistics and metrics."""
        by_target = self.stats.sent_by_target
        sent, last, run = 0, None, 0
        for plan in plans:
            sent += len(plan.dispatches)
            for d in plan.dispatches:  # runs of one target counted at once
                if d.target is not last:
                    if last is not None:
                        by_target[(last.cls_id, last.fn_id)] += run
                    last, run = d.target, 0
                run += 1
        if last is not None:
            by_target[(last.cls_id, last.fn_id)] += run
        if sent:
            self.stats.triggers_sent += sent
            self.metrics.observe_dispatches(
                [(p.entry.timestamp, len(p.dispatches)) for p in plans if p.dispatches]
            )

    def _invoker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.settings.max_concurrent_triggers, thread_name_prefix="oprc-invoke"
            )
        return self._pool
