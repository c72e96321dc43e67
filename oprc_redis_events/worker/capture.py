"""Keyspace capture: events for writes that bypassed the library (redis-cli, other apps).

The worker subscribes to keyspace notifications of object keys only
(``__keyspace@<db>__:oprc:{*}:obj:*``) and, for every key touched, runs ``lua/capture.lua``,
which diffs the object against its shadow (the state last reported) and appends the same
outbox entries as the write path.  Notifications say *that* a key changed, not how, so a
burst of writes to one key is reported as the net change; expiry and eviction are DELETE
for every field (and the object's triggers go with it).

Redis drops notifications for a subscriber that is disconnected, or that it cuts off at its
output-buffer limit; redis-py then either raises or reconnects and re-subscribes silently.
So the capture reconciles, scanning every object and diffing it, at start, after every
subscription error, and after every silent re-connection, which it counts through the
pub/sub ``on_connect`` hook: a change made while it was not listening is still reported.

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
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.client
from redis.keyspace_notifications import KeyNotification

from ..client.core import ObjectRef
from ..client.wrapper_core import object_ref
from ..errors import CaptureError, ConfigError
from ..lua.loader import register
from ..protocol.keys import PARTITIONS_KEY, PREFIX, PartitionKeys, as_text
from .badkeys import BadKeys, display

__all__ = ["REQUIRED_FLAGS", "CaptureError", "KeyspaceCapture", "merged_flags"]

log = logging.getLogger("oprc_redis_events.worker.capture")

#: K keyspace channel, h hash commands, g generic (del, rename...), x expired, e evicted
REQUIRED_FLAGS = "Khgxe"
_ALL = "g$lshzxet"  # what "A" stands for
DROP_EVENTS = frozenset({"expired", "evicted"})
BATCH = 500
MAX_FAILURES = 5  # unexpected failures in a row before the capture gives up
MAX_BACKOFF_S = 5.0


def merged_flags(current: str) -> str | None:
    """``current`` plus what capture needs, or ``None`` when nothing is missing."""
    have = set(current.replace("A", _ALL))
    missing = [f for f in REQUIRED_FLAGS if f not in have]
    return None if not missing else current + "".join(missing)


class _PubSub(redis.asyncio.client.PubSub):
    """A PubSub that counts its (re)connections: each one may have lost notifications."""

    connections = 0

    async def on_connect(self, connection: Any) -> None:
        self.connections += 1
        await super().on_connect(connection)


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
        db: int = 0,
        retry_base_s: float = 0.1,
    ) -> None:
        self.client = client
        self.events_enabled = events_enabled
        self.db = db
        self.retry_base_s = retry_base_s
        self.stats = CaptureStats()
        self.bad_keys = BadKeys()
        #: why the capture stopped for good (``run`` raised it), else ``None``
        self.failed: BaseException | None = None
        self._failures = 0  # unexpected failures since the last good reconcile
        self._synced = False  # this subscription reconciled
        self._reconcile_due = False  # a diff failed: reconcile everything
        self._script: Any = register(client, "capture")
        self._flagged: set[str] = set()
        self._registered: set[str] = set()
        self._dirty: dict[ObjectRef, bool] = {}  # object -> drop its triggers (it ended)
        self._wake = asyncio.Event()

    async def ensure_notifications(self) -> None:
        """Make sure ``notify-keyspace-events`` includes what capture needs."""
        try:
            config = await self.client.config_get("notify-keyspace-events")
            current = as_text(config.get("notify-keyspace-events") or "")
            wanted = merged_flags(current)
            if wanted is not None:
                await self.client.config_set("notify-keyspace-events", wanted)
                log.info("set notify-keyspace-events from %r to %r", current, wanted)
        except redis.ResponseError as err:
            raise ConfigError(
                f"keyspace capture needs notify-keyspace-events to include {REQUIRED_FLAGS} "
                f"and this Redis refused to read or set it ({err}); set it in redis.conf "
                f"(notify-keyspace-events {REQUIRED_FLAGS}) or allow CONFIG SET"
            ) from err

    @property
    def healthy(self) -> bool:
        """Capturing: not stopped, and no failure since the last good reconcile."""
        return self.failed is None and self._failures == 0

    async def run(self, stop: asyncio.Event) -> None:
        """Listen and report until ``stop`` is set; survive Redis going away and bad keys.
        Raises (and sets :attr:`failed`) only when it cannot go on: notifications cannot be
        turned on (:class:`ConfigError`), or :class:`CaptureError` after ``MAX_FAILURES``
        unexpected failures in a row."""
        try:
            await self.ensure_notifications()
            await self._serve(stop)
        except Exception as err:
            self.failed = err
            log.error("keyspace capture stopped: %s", err)
            raise

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
        pubsub = _PubSub(self.client.connection_pool, ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(f"__keyspace@{self.db}__:{PREFIX}:{{*}}:obj:*")
            # redis-py calls on_connect for re-connections only: reconcile now, then after
            # each one (it re-subscribes silently, and what was published meanwhile is lost).
            seen_connections = -1
            while not stop.is_set():
                if pubsub.connections != seen_connections or self._reconcile_due:
                    seen_connections = pubsub.connections
                    self._reconcile_due = False
                    await self.reconcile()
                    self._failures, self._synced = 0, True
                message = await pubsub.get_message(timeout=0.2)
                if message is not None:
                    self._on_message(message)
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

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
                backoff = self.retry_base_s
                continue
            except redis.RedisError as err:
                if finish.is_set():  # the next start reconciles them
                    log.warning("capture: %d change(s) left to the next reconcile", len(batch))
                    self._dirty.clear()
                    return
                log.warning("capture: Redis unavailable (%s); retrying in %.1fs", err, backoff)
                for ref, drop in batch.items():
                    self._dirty[ref] = self._dirty.get(ref, False) or drop
            except Exception:  # never end silently: log, and let a reconcile catch up
                log.exception("capture: diffing %d object(s) failed; reconciling", len(batch))
                self._reconcile_due = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _diff_all(self, items: list[tuple[ObjectRef, bool]]) -> int:
        """Run the diff script for each object (pipelined); return the changes found.
        An object with a key of the wrong type is skipped (logged once)."""
        for ref, _ in items:
            await self._flag(ref.keys)
        pipe = self.client.pipeline(transaction=False)
        pipe.scripts.add(self._script)
        for ref, drop in items:
            keys = [ref.obj, ref.meta, ref.keys.outbox, ref.shadow]
            args = [ref.segment, "drop" if drop else "keep", "1" if self.events_enabled else "0"]
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
        changes, error = 0, None
        for (ref, _), reply in zip(items, replies, strict=True):
            bad = _bad_key_reason(reply)
            if bad is not None:
                self.bad_keys.skip(ref.obj, bad)
            elif isinstance(reply, Exception):
                error = error or reply
            else:
                self.bad_keys.fixed(ref.obj)
                changes += int(reply[0])
                if reply[2] and ref.keys.member not in self._registered:
                    await self.client.sadd(PARTITIONS_KEY, ref.keys.member)
                    self._registered.add(ref.keys.member)
        self.stats.diffs += len(items)
        self.stats.changes += changes
        if error is not None:
            raise error
        return changes

    async def _flag(self, keys: PartitionKeys) -> None:
        if keys.member not in self._flagged:
            await self.client.set(keys.capture_flag, "1")
            self._flagged.add(keys.member)

    async def reconcile(self) -> int:
        """Diff every object (and every shadow whose object is gone); return the changes."""
        refs: set[ObjectRef] = set()
        for member in await self.client.smembers(PARTITIONS_KEY):
            try:
                keys = PartitionKeys.from_member(as_text(member))
            except ValueError as err:  # InvalidIdError, a bad number, not UTF-8
                self.bad_keys.skip(display(member), f"malformed member of {PARTITIONS_KEY} ({err})")
                continue
            await self._flag(keys)
        for kind in ("obj", "shadow", "meta"):
            async for key in self.client.scan_iter(match=f"{PREFIX}:{{*}}:{kind}:*", count=1000):
                ref = self._ref_of(key, kind)
                if ref is not None:
                    refs.add(ref)
        ordered = sorted(refs, key=lambda r: (r.keys.member, r.segment))
        changes = 0
        for start in range(0, len(ordered), BATCH):
            changes += await self._diff_all([(r, False) for r in ordered[start : start + BATCH]])
        self.stats.reconciles += 1
        self.stats.reconciled_changes += changes
        log.info(
            "capture: reconciled %d objects, %d change(s) found%s",
            len(ordered),
            changes,
            f", {len(self.bad_keys)} bad key(s) skipped" if self.bad_keys else "",
        )
        return changes


def _bad_key_reason(reply: object) -> str | None:
    """What is wrong with the key when capture.lua refused it (a key of the wrong type, or
    corrupted state such as a garbage version or a full outbox), else ``None``."""
    if not isinstance(reply, redis.ResponseError):
        return None
    text = str(reply)
    for marker in ("WRONGTYPE ", "CORRUPT "):
        if text.startswith(marker):
            return text.removeprefix(marker)
    return None
