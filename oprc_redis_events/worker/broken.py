"""Partitions the worker skips because their state in Redis is unusable.

Redis does not roll a script back, and anyone can write any key, so the worker treats
what it reads as untrusted: an outbox that is not a stream, a dead-letter stream of the
wrong type, a registry member or stream name that does not parse.  One bad key never
stops the rest: the partition (or name) is logged once, then at a slow interval with a
count (:class:`~oprc_redis_events.worker.logonce.ThrottledLog`), counted in the metrics, skipped,
and tried again after ``retry_s``.  It leaves the list when it works again (logged) or
when it is gone from Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis

from ..errors import OprcEventsError
from .logonce import ThrottledLog

__all__ = [
    "RETRY_S",
    "TOPOLOGY_ERRORS",
    "BrokenKeyError",
    "BrokenPartitions",
    "full_stream",
    "is_server_wide",
    "pipelined",
    "redis_unusable",
    "resend_lost",
    "topology_changing",
]

log = logging.getLogger("oprc_redis_events.worker.loop")

#: seconds before a broken partition is tried again
RETRY_S = 10.0

#: error codes about the server, not about one key: no partition is to blame for them
SERVER_WIDE = ("READONLY", "OOM", "MISCONF", "BUSY", "MASTERDOWN", "NOAUTH", "LOADING")
SERVER_WIDE_ERRORS = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.MasterDownError,
)


class BrokenKeyError(OprcEventsError):
    """A key of the layout holds something the worker cannot use (see the message)."""


#: a Redis Cluster changing under a command (a slot moving, a failover), which redis-py
#: could not settle within its own redirections and retries (MOVED, ASK, TRYAGAIN,
#: CLUSTERDOWN, "TTL exhausted", a slot no node serves yet)
TOPOLOGY_ERRORS = (
    redis.exceptions.ClusterError,
    redis.exceptions.AskError,  # and MovedError
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)


def topology_changing(err: BaseException) -> bool:
    """Whether ``err`` comes from a cluster whose slots or primaries are changing: to wait
    out and retry, never to blame on a key, count as a failed delivery or dead-letter."""
    return isinstance(err, TOPOLOGY_ERRORS)


def is_server_wide(err: redis.ResponseError) -> bool:
    """Whether ``err`` is about the server (read-only replica, out of memory, a cluster
    slot moving...) rather than about the key of the command that got it."""
    # redis-py strips the code from the message of the errors it maps to its own classes
    if isinstance(err, SERVER_WIDE_ERRORS):
        return True
    return str(err).startswith(SERVER_WIDE) or topology_changing(err)


def redis_unusable(err: BaseException) -> bool:
    """Whether ``err`` says Redis cannot be used at the moment (unreachable, timing out,
    read-only, out of memory, a cluster changing...): to wait out, not to blame on a key
    or a task."""
    if isinstance(err, (redis.ConnectionError, redis.TimeoutError)) or topology_changing(err):
        return True
    return isinstance(err, redis.ResponseError) and is_server_wide(err)


async def resend_lost(replies: list[Any], send: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """The replies of a pipeline executed with ``raise_on_error=False``, where a command
    whose reply was lost (a connection error in its place: on a cluster redis-py neither
    retries nor raises it) is sent again alone by ``send(i)``, through the client and its
    retries; only for commands that may run twice.  An error reply is kept in its place."""
    out = list(replies)
    for i, reply in enumerate(out):
        if isinstance(reply, (redis.ConnectionError, redis.TimeoutError)):
            try:
                out[i] = await send(i)
            except redis.ResponseError as err:
                out[i] = err
    return out


async def pipelined(client: Any, count: int, command: Callable[[Any, int], Any]) -> list[Any]:
    """The replies of ``command(target, i)`` for i in ``range(count)``, queued on one
    pipeline of ``client`` (one round trip; on a cluster one per node), an error reply in
    its place; a reply lost with its connection is asked again alone (:func:`resend_lost`:
    only for commands that may run twice).  One command is sent alone, without a pipeline."""
    if not count:
        return []
    if count == 1:
        try:
            return [await command(client, 0)]
        except redis.ResponseError as err:
            return [err]
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        command(pipe, i)
    replies = await pipe.execute(raise_on_error=False)
    return await resend_lost(replies, lambda i: command(client, i))


def full_stream(err: object) -> str:
    """The reason, with its remedy, for Redis refusing a stream id: a stream whose ids ran
    out (its last id is 18446744073709551615-18446744073709551615, written behind the
    library's back) can take no entry and no id after its last."""
    return (
        f"{err} (its ids have probably reached the largest stream id, "
        "18446744073709551615-18446744073709551615, so nothing can be added after it): "
        "let the workers drain it, then trim it (`oprc-redis-events trim`) or delete it"
    )


class BrokenPartitions:
    """The partitions (outbox keys) and malformed names skipped at the moment."""

    def __init__(
        self,
        problems: ThrottledLog,
        retry_s: float = RETRY_S,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.problems = problems
        self.retry_s = retry_s
        self.clock = clock
        self.errors = 0  # every failure seen (a counter for the metrics)
        self._retry_at: dict[str, float] = {}  # skipped until then
        self._unresolved: set[str] = set()  # failed, and not served since

    def mark(self, name: str, reason: str) -> None:
        """``name`` failed: skip it for ``retry_s`` and say so (once, then a count)."""
        self.errors += 1
        self._retry_at[name] = self.clock() + self.retry_s
        self._unresolved.add(name)
        self.problems.warning(
            ("broken", name),
            "skipping %s: %s (tried again every %g s; other partitions are served)",
            name,
            reason,
            self.retry_s,
        )

    def is_unresolved(self, name: str) -> bool:
        """Whether ``name`` failed and was not served since (its retries are not news)."""
        return name in self._unresolved

    def skipped(self, name: str) -> bool:
        """Whether ``name`` is broken and not due for another try yet."""
        return self._retry_at.get(name, 0.0) > self.clock()

    def usable(self, name: str) -> None:
        """Discovery could use ``name`` again: it is no longer skipped or counted, but its
        problem is only over once it was served (:meth:`ok`); a partition whose dead-letter
        key is still broken fails again then, and is not logged again at once."""
        self._retry_at.pop(name, None)

    def ok(self, name: str) -> None:
        """``name`` was served (again): its problem is over."""
        self._retry_at.pop(name, None)
        if name in self._unresolved:
            self._unresolved.discard(name)
            self.problems.resolved(("broken", name))
            log.info("%s works again and is served", name)

    def keep_only(self, names: Iterable[str]) -> None:
        """Forget broken names that are no longer found in Redis at all."""
        present = set(names)
        for name in [n for n in self._unresolved if n not in present]:
            self._retry_at.pop(name, None)
            self._unresolved.discard(name)
            self.problems.resolved(("broken", name))

    def __len__(self) -> int:
        return len(self._retry_at)

    def __contains__(self, name: object) -> bool:
        return name in self._retry_at
