"""Keyspace capture: events for writes that bypassed the library (redis-cli, other apps).

The worker subscribes to keyspace notifications of object keys only
(``__keyspace@<db>__:oprc:{*}:obj:*``; on a Redis Cluster on every primary, as
notifications are node-local: :mod:`.capture_nodes`) and, for every key touched, runs
``lua/capture.lua`` (pipelined per node: :mod:`.capture_diff`), which diffs the object
against its shadow (the state last reported) and appends the same outbox entries as the
write path (a new partition goes to ``announce``).  Notifications say *that* a key changed,
not how, so a burst of writes to one key is reported as the net change; expiry and
eviction are DELETE for every field (and the object's triggers go with it).

Redis drops notifications for a subscriber that is disconnected, or that it cuts off at its
output-buffer limit; redis-py then either raises or reconnects and re-subscribes silently.
So the capture reconciles, scanning every object and diffing it, at start, after every
subscription error, after every silent re-connection, which it counts through the pub/sub
``on_connect`` hook, and on a cluster whenever a primary comes or goes or slots move: a
change made while it was not listening is still reported.  A diff refused while its slot
moves (``TRYAGAIN``, ``ASK``, ``MOVED`` the cluster client could not follow) is retried.

While capture serves a partition, ``oprc:{cls:pid}:capture`` exists; the write path then
keeps the shadow in step with what it reports itself, so a write made through the library
is not reported a second time.

Bad state never stops the capture: a key of the wrong type (an object, shadow, trigger or
outbox key that is not a hash / stream), a key name that does not parse and a malformed
member of ``oprc:partitions`` are logged once each and skipped, and everything else is
still captured.  Any other failure is logged at once and retried (with a reconcile);
after ``MAX_FAILURES`` failures in a row :meth:`KeyspaceCapture.run` gives up with
:class:`CaptureError`.  :attr:`KeyspaceCapture.healthy` says whether it is capturing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
from redis.keyspace_notifications import KeyNotification

from ..client.core import ObjectRef
from ..client.wrapper_core import object_ref
from ..errors import CaptureError
from ..lua.loader import register
from ..protocol.keys import NEW_OUTBOX_CHANNEL, PARTITIONS_KEY, PREFIX, PartitionKeys, as_text
from .badkeys import BadKeys, bad_key_reason, display
from .capture_diff import TRANSIENT, diff_call, run_diffs
from .capture_nodes import REQUIRED_FLAGS, CaptureNodes, db_of, merged_flags

__all__ = ["REQUIRED_FLAGS", "CaptureError", "KeyspaceCapture", "merged_flags"]

log = logging.getLogger("oprc_redis_events.worker.capture")

DROP_EVENTS = frozenset({"expired", "evicted"})
BATCH = 500
MAX_FAILURES = 5  # unexpected failures in a row before the capture gives up
MAX_BACKOFF_S = 5.0


@dataclass
class CaptureStats:
    notifications: int = 0
    diffs: int = 0
    changes: int = 0
    reconciles: int = 0
    reconciled_changes: int = 0
    failures: int = 0


class KeyspaceCapture:
    """Reports raw writes to object keys (see the module docstring)."""

    def __init__(
        self,
        client: aredis.Redis,
        *,
        events_enabled: bool = True,
        db: int | None = None,
        retry_base_s: float = 0.1,
    ) -> None:
        self.client = client
        self.events_enabled = events_enabled
        self.db = db_of(client) if db is None else db
        self.retry_base_s = retry_base_s
        self.stats = CaptureStats()
        self.bad_keys = BadKeys()
        #: why the capture stopped for good (``run`` raised it), else ``None``
        self.failed: BaseException | None = None
        #: the node(s) listened on: this Redis, or every primary of a cluster
        self.nodes = CaptureNodes(client, log)
        self._running = False
        self._failures = 0  # unexpected failures since the last good reconcile
        self._synced = False  # this subscription reconciled
        self._reconcile_due = False  # a diff failed: reconcile everything
        self._deferred = 0  # diffs queued again (their slot was moving): retry after a pause
        self._script: Any = register(client, "capture")
        self._flagged: set[str] = set()
        self._registered: set[str] = set()
        self._dirty: dict[ObjectRef, bool] = {}  # object -> drop its triggers (it ended)
        self._wake = asyncio.Event()
        self.announce: Callable[[str], None] = lambda outbox: None  # a new outbox: the worker's

    async def ensure_notifications(self) -> None:
        """Make sure ``notify-keyspace-events`` includes what capture needs (on every
        primary of a cluster)."""
        async with self._nodes_open():
            await self.nodes.update(force=True)
            await self.nodes.check_notifications()

    @contextlib.asynccontextmanager
    async def _nodes_open(self) -> AsyncIterator[None]:
        """Outside :meth:`run` (a burst), the node clients opened meanwhile are closed."""
        try:
            yield
        finally:
            if not self._running:
                await self.nodes.close()

    @property
    def healthy(self) -> bool:
        """Capturing: not stopped, and no failure since the last good reconcile."""
        return self.failed is None and self._failures == 0

    async def run(self, stop: asyncio.Event) -> None:
        """Listen and report until ``stop`` is set; survive Redis going away and bad keys.
        Raises (and sets :attr:`failed`) only when it cannot go on: notifications cannot be
        turned on (:class:`ConfigError`), or :class:`CaptureError` after ``MAX_FAILURES``
        unexpected failures in a row."""
        self._running = True
        try:
            await self.ensure_notifications()
            await self._serve(stop)
        except Exception as err:
            self.failed = err
            log.error("keyspace capture stopped: %s", err)
            raise
        finally:
            self._running = False
            await self.nodes.close()

    async def _serve(self, stop: asyncio.Event) -> None:
        finish = asyncio.Event()  # the drain ends with the listener, however that ends
        drain = asyncio.create_task(self._drain(finish))
        attempts = 0
        try:
            while not stop.is_set():
                self._synced = False
                try:
                    await self._listen(stop)
                except (redis.ConnectionError, redis.TimeoutError) as err:
                    # Notifications published meanwhile are lost: the next subscription
                    # starts with a reconcile.
                    log.warning("capture: subscription lost (%s); resubscribing", err)
                except Exception as err:
                    self._failed_once(err)
                attempts = 0 if self._synced else attempts + 1
                delay = min(self.retry_base_s * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            finish.set()
            self._wake.set()
            await drain

    def _failed_once(self, err: Exception) -> None:
        """Log an unexpected failure at once; give up after ``MAX_FAILURES`` in a row."""
        self._failures += 1
        self.stats.failures += 1
        if self._failures >= MAX_FAILURES:
            raise CaptureError(
                f"keyspace capture failed {self._failures} times in a row, last with "
                f"{type(err).__name__}: {err}"
            ) from err
        log.error(
            "capture failed (%s: %s); reconciling and listening again (failure %d of %d)",
            type(err).__name__,
            err,
            self._failures,
            MAX_FAILURES,
            exc_info=err,
        )

    async def _listen(self, stop: asyncio.Event) -> None:
        try:
            await self.nodes.update(force=True)
            seen: Hashable = None
            while not stop.is_set():
                await self.nodes.update()  # a cluster's primaries and slots, every second
                await self.nodes.subscribe(f"__keyspace@{self.db}__:{PREFIX}:{{*}}:obj:*")
                # redis-py re-subscribes silently after a re-connection, and what was
                # published meanwhile is lost; keys move with their slots: reconcile.
                if self.nodes.epoch != seen or self._reconcile_due:
                    seen = self.nodes.epoch
                    self._reconcile_due = False
                    await self.nodes.check_notifications()  # a promoted replica, a restart
                    await self.reconcile()
                    self._failures, self._synced = 0, True
                await self.nodes.poll(0.2, self._on_message)
        finally:
            await self.nodes.unsubscribe()

    def _on_message(self, message: dict[str, Any]) -> None:
        note = KeyNotification.from_message(message)
        if note is None:
            return
        self.stats.notifications += 1
        ref = self._ref_of(note.key, "obj")
        if ref is not None:
            self._dirty[ref] = self._dirty.get(ref, False) or note.event_type in DROP_EVENTS
            self._wake.set()

    def _ref_of(self, name: bytes | str, kind: str) -> ObjectRef | None:
        """The object of an object, shadow or meta key; ``None`` (logged once) when the
        name does not parse."""
        try:
            key = as_text(name)
            ref = object_ref(key.replace(f":{kind}:", ":obj:", 1) if kind != "obj" else key)
        except ValueError as err:  # InvalidIdError, or a name that is not UTF-8
            self.bad_keys.skip(display(name), f"not a valid object key ({err})")
            return None
        if ref is None and kind == "obj":
            self.bad_keys.skip(key, "not a valid object key")
        return ref

    async def _drain(self, finish: asyncio.Event) -> None:
        backoff = self.retry_base_s
        while not (finish.is_set() and not self._dirty):
            if not self._dirty:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                continue
            batch = dict(list(self._dirty.items())[:BATCH])
            for ref in batch:
                del self._dirty[ref]
            try:
                await self._diff_all(list(batch.items()))
                if not self._deferred:
                    backoff = self.retry_base_s
                    continue
                self._deferred = 0
                if finish.is_set():  # the next start reconciles them
                    return self._left_over()
            except redis.RedisError as err:
                if finish.is_set():
                    return self._left_over()
                log.warning("capture: Redis unavailable (%s); retrying in %.1fs", err, backoff)
                for ref, drop in batch.items():
                    self._later(ref, drop)
            except Exception:  # never end silently: log, and let a reconcile catch up
                log.exception("capture: diffing %d object(s) failed; reconciling", len(batch))
                self._reconcile_due = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _left_over(self) -> None:
        log.warning("capture: %d change(s) left to the next reconcile", len(self._dirty))
        self._dirty.clear()

    def _later(self, ref: ObjectRef, drop: bool) -> None:
        """Diff ``ref`` again later (``drop`` sticks until a diff succeeds)."""
        self._dirty[ref] = self._dirty.get(ref, False) or drop
        self._wake.set()

    async def _diff_all(self, items: list[tuple[ObjectRef, bool]]) -> int:
        """Run the diff script for each object (pipelined per node); return the changes
        found.  An object with a key of the wrong type is skipped (logged once); on a
        cluster one whose slot is moving is queued again (:attr:`_deferred` counts them)."""
        for ref, _ in items:
            await self._flag(ref.keys)
        cluster, events = self.nodes.cluster, self.events_enabled
        calls = [diff_call(ref, drop, events, cluster=cluster) for ref, drop in items]
        replies = await run_diffs(self.nodes, self._script, calls)
        changes, error = 0, None
        for (ref, drop), reply in zip(items, replies, strict=True):
            bad = bad_key_reason(reply)
            if bad is not None:
                self.bad_keys.skip(ref.obj, bad)
            elif self.nodes.cluster and isinstance(reply, TRANSIENT):
                self._later(ref, drop)
                self._deferred += 1
            elif isinstance(reply, Exception):
                error = error or reply
            else:
                self.bad_keys.fixed(ref.obj)
                changes += int(reply[0])
                await self._register(ref.keys, reply)
        self.stats.diffs += len(items)
        self.stats.changes += changes
        if error is not None:
            raise error
        return changes

    async def _register(self, keys: PartitionKeys, reply: Any) -> None:
        if reply[2] and keys.member not in self._registered:
            await self.client.sadd(PARTITIONS_KEY, keys.member)
            self._registered.add(keys.member)
            self.announce(keys.outbox)  # this worker, and every other one:
            await self.client.publish(NEW_OUTBOX_CHANNEL, keys.outbox)

    async def _flag(self, keys: PartitionKeys) -> None:
        if keys.member not in self._flagged:
            await self.client.set(keys.capture_flag, "1")
            self._flagged.add(keys.member)

    async def reconcile(self) -> int:
        """Diff every object (and every shadow whose object is gone), on every node;
        return the changes."""
        async with self._nodes_open():
            await self.nodes.update(force=not self.nodes.nodes)
            await self._flag_partitions()
            refs: set[ObjectRef] = set()
            for kind in ("obj", "shadow", "meta"):
                async for key in self.nodes.scan(f"{PREFIX}:{{*}}:{kind}:*"):
                    ref = self._ref_of(key, kind)
                    if ref is not None:
                        refs.add(ref)
            ordered = sorted(refs, key=lambda r: (r.keys.member, r.segment))
            changes = 0
            for start in range(0, len(ordered), BATCH):
                batch = ordered[start : start + BATCH]
                changes += await self._diff_all([(r, False) for r in batch])
        self.stats.reconciles += 1
        self.stats.reconciled_changes += changes
        log.info(
            "capture: reconciled %d objects, %d change(s) found%s",
            len(ordered),
            changes,
            f", {len(self.bad_keys)} bad key(s) skipped" if self.bad_keys else "",
        )
        return changes

    async def _flag_partitions(self) -> None:
        for member in await self.client.smembers(PARTITIONS_KEY):
            try:
                keys = PartitionKeys.from_member(as_text(member))
            except ValueError as err:  # InvalidIdError, a bad number, not UTF-8
                self.bad_keys.skip(display(member), f"malformed member of {PARTITIONS_KEY} ({err})")
                continue
            await self._flag(keys)
