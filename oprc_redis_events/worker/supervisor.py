"""Supervision of the worker's background tasks: none of them ends silently.

Each task (the dispatch loop, the maintenance loop, keyspace capture, ...) runs under
:class:`Supervisor`.  A task that raises, or returns while the worker is not stopping,
is logged at once (with its traceback, unless it is one of our own errors, whose message
says what is wrong; a failure that repeats is then logged with a count at a slow
interval), reported not ready while it is down, and restarted after a backoff.  A task
that fails ``max_failures`` times in a row (a run that lasted ``healthy_after_s`` resets
the count), or raises a :class:`~.errors.ConfigError` that no retry can fix (or capture's
:class:`~.errors.CaptureError`: capture has retried on its own already), fails the
worker: it stops, and ``run_async`` raises :class:`WorkerFailedError`, so the process
exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import CaptureError, ConfigError, OprcEventsError
from .logonce import ThrottledLog

__all__ = ["RestartPolicy", "Supervisor", "WorkerFailedError"]

log = logging.getLogger("oprc_redis_events.worker.loop")


class WorkerFailedError(OprcEventsError):
    """A background task of the worker failed and could not recover."""


def _trace(err: BaseException, wanted: bool = True) -> BaseException | None:
    """The traceback worth logging: none for our own errors, whose message says it all."""
    return err if wanted and not isinstance(err, OprcEventsError) else None


@dataclass(frozen=True)
class RestartPolicy:
    max_failures: int = 5  # failures in a row that fail the worker
    backoff_s: float = 0.5  # before the first restart, doubling
    max_backoff_s: float = 30.0
    healthy_after_s: float = 60.0  # a run this long resets the count


class Supervisor:
    """Runs named tasks until ``stop`` is set (see the module docstring)."""

    def __init__(
        self,
        stop: asyncio.Event,
        problems: ThrottledLog,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.stop = stop
        self.problems = problems
        self.policy = policy or RestartPolicy()
        self.failure: str | None = None  # why the worker failed
        self.down: set[str] = set()  # tasks waiting for a restart
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def healthy(self) -> bool:
        return self.failure is None and not self.down

    def start(self, name: str, run: Callable[[], Awaitable[object]]) -> None:
        """Run ``run()`` as task ``name``, restarting it as the policy says."""
        self._tasks.append(asyncio.create_task(self._guard(name, run), name=name))

    async def join(self) -> None:
        """Wait until every task has ended (they end once ``stop`` is set)."""
        await asyncio.gather(*self._tasks)

    def fail(self, name: str, err: BaseException, failures: int = 1) -> None:
        """Fail the worker because of task ``name`` (call it on the worker's event loop)."""
        if self.failure is None:
            times = f" {failures} times in a row" if failures > 1 else ""
            self.failure = f"{name} failed{times}: {type(err).__name__}: {err}"
            trace = _trace(err, wanted=failures == 1)  # else logged with the first failure
            log.critical("%s; the worker stops", self.failure, exc_info=trace)
        self.stop.set()

    async def _guard(self, name: str, run: Callable[[], Awaitable[object]]) -> None:
        failures = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                await run()
                if self.stop.is_set():
                    return
                err: Exception = RuntimeError(f"{name} ended while the worker was running")
            except Exception as raised:
                err = raised
            if time.monotonic() - started >= self.policy.healthy_after_s:
                failures = 0
            failures += 1
            if failures >= self.policy.max_failures or isinstance(err, ConfigError | CaptureError):
                self.fail(name, err, failures)
                return
            await self._restart_later(name, err, failures)

    async def _restart_later(self, name: str, err: Exception, failures: int) -> None:
        p = self.policy
        delay = min(p.backoff_s * 2 ** (failures - 1), p.max_backoff_s)
        self.problems.error(
            ("task", name, type(err).__name__),
            "%s failed (%s: %s); restarting it in %.1f s",
            name,
            type(err).__name__,
            err,
            delay,
            exc_info=_trace(err),
        )
        self.down.add(name)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
        finally:
            self.down.discard(name)
