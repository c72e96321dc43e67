"""How the worker finds partition outboxes, and what it does when one is unusable.

A mixin of :class:`~oprc_redis_events.worker.loop.Worker`.  Outboxes are found through the
registry (``oprc:partitions``, a hint kept by writers), the outboxes announced on
``oprc:new-outbox`` by the write script (:mod:`.announce`: discovered at once) and a SCAN
every ``RESCAN_INTERVAL_S``; the worker creates its consumer group on each.  Whatever is found
is untrusted: a member or stream name that does not parse, an outbox that is not a
stream, a registry of the wrong type.  Such a name is handed to
:class:`~oprc_redis_events.worker.broken.BrokenPartitions` (logged once, counted, skipped,
tried again later) and every other partition is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis

from ..config import Settings
from ..errors import InvalidIdError
from ..protocol.keys import PARTITIONS_KEY, PREFIX, PartitionKeys, as_text
from .acks import AckQueue
from .batches import Batches
from .broken import BrokenPartitions, full_stream, is_server_wide, pipelined
from .deadletters import DeadLetterStreamError
from .logonce import ThrottledLog

__all__ = ["RESCAN_INTERVAL_S", "PartitionDiscovery", "PartitionState"]

log = logging.getLogger("oprc_redis_events.worker.loop")

RESCAN_INTERVAL_S = 30.0


@dataclass
class PartitionState:
    keys: PartitionKeys
    retry_at: float | None = None  # set: re-read our pending entries then; None: read new ones


def _text(raw: bytes | str) -> str:
    """A name read from Redis, for matching and for log lines (never raises)."""
    return raw.decode(errors="backslashreplace") if isinstance(raw, bytes) else raw


def _member_label(member: str) -> str:
    return f"member {member!r} of {PARTITIONS_KEY}"


def _parse_member(raw: bytes | str) -> tuple[str, str | None, str]:
    """A registry member: its label for log lines, and its outbox or what is wrong."""
    label = _member_label(_text(raw))
    try:
        return label, PartitionKeys.from_member(as_text(raw)).outbox, ""
    except (InvalidIdError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        return label, None, f"not a <cls>:<partition> name ({err})"


class PartitionDiscovery:
    """Keeps ``partitions`` (every usable outbox) current; see the module docstring."""

    client: aredis.Redis
    settings: Settings
    partitions: dict[str, PartitionKeys]
    states: dict[str, PartitionState]
    broken: BrokenPartitions
    acks: AckQueue
    batches: Batches
    _stop: asyncio.Event
    _last_scan: float
    _scan_found: set[str]  # outboxes found by the last SCAN
    _scan_labels: set[str]  # every name the last SCAN saw, usable or not
    _group_start: str | None = None  # with from_now: the id our new groups start after
    #: registry members as last read: (label, outbox or None, what is wrong with it)
    _members: dict[bytes | str, tuple[str, str | None, str]]

    _wake: asyncio.Event  # a new outbox was announced: maintain now
    _announced: set[str]  # outbox keys announced since the last discovery
    _states_changed: asyncio.Event  # maintenance took a partition: the loop reads it now
    _blocking: Any = None  # the loop's WakeableRead, once it read (one Redis only)
    announcements: Any  # the OutboxAnnouncements listener
    problems: ThrottledLog

    def _init_wakeups(self) -> None:
        """The state behind waking up at once for a new partition (see the module)."""
        from .announce import OutboxAnnouncements

        self._wake, self._states_changed = asyncio.Event(), asyncio.Event()
        self._announced, self._members = set(), {}
        self.announcements = OutboxAnnouncements(self.client, self.announce, self.problems)

    async def _wake_loop(self) -> None:
        """A partition was taken: the loop reads it now, not after its current wait."""
        self._states_changed.set()
        if self._blocking is not None:
            await self._blocking.wake()

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Sleep, waking up at once when the worker is asked to stop (or ``wake`` is set,
        which is then cleared); return whether ``wake`` was set."""
        if wake is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)
            return False
        if not wake.is_set():
            tasks = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(wake.wait())]
            try:
                await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
        woken = wake.is_set()
        wake.clear()
        return woken

    def announce(self, outbox: str) -> None:
        """A new outbox was published (``""``: maybe some, unheard): discover at once."""
        if outbox in self.partitions:
            return  # known already (another class of write, or a stream made again)
        if outbox:
            self._announced.add(outbox)
        self._wake.set()

    async def discover(self) -> None:
        """Find partition outboxes and make sure our consumer group exists on each (reading
        the whole retained outbox, or with from_now what was written after our start)."""
        if self.settings.from_now and self._group_start is None:
            seconds, micros = await self.client.time()  # the first discovery: our start
            self._group_start = f"{seconds * 1000 + micros // 1000}-0"
        found, labels = await self._registered()
        found |= self._announced  # (not in the registry yet: the writer adds it next)
        self._announced = set()
        if time.monotonic() - self._last_scan >= RESCAN_INTERVAL_S:
            # The registry is a hint (a writer that lost it, a stream made by hand): a
            # SCAN now and then finds every outbox.
            await self._scan()
            self._last_scan = time.monotonic()
        found |= self._scan_found
        self.broken.keep_only(labels | self._scan_labels | found)
        await self._join(
            [s for s in sorted(found - self.partitions.keys()) if not self.broken.skipped(s)]
        )

    async def _registered(self) -> tuple[set[str], set[str]]:
        """The outboxes named by the registry, and every name it holds."""
        found: set[str] = set()
        labels = {PARTITIONS_KEY}
        try:
            members = await self.client.smembers(PARTITIONS_KEY)
        except redis.ResponseError as err:
            if is_server_wide(err):
                raise
            if not self.broken.skipped(PARTITIONS_KEY):  # SCAN still finds the outboxes
                problem = await self._key_problem(PARTITIONS_KEY, "set", err)
                self.broken.mark(PARTITIONS_KEY, problem)
            return found, labels
        self.broken.ok(PARTITIONS_KEY)
        known, self._members = self._members, {}
        for raw in members:
            label, outbox, problem = known.get(raw) or _parse_member(raw)
            self._members[raw] = (label, outbox, problem)  # parsed once, not every round
            labels.add(label)
            if self.broken.skipped(label):
                continue
            if outbox is None:
                self.broken.mark(label, problem)
            else:
                found.add(outbox)
        return found, labels

    async def _scan(self) -> None:
        found: set[str] = set()
        labels: set[str] = set()
        async for raw in self.client.scan_iter(match=f"{PREFIX}:{{*}}:outbox", _type="stream"):
            key = _text(raw)
            labels.add(key)
            try:
                PartitionKeys.from_key(as_text(raw))
            except (InvalidIdError, ValueError) as err:
                if not self.broken.skipped(key):
                    self.broken.mark(key, f"not the outbox of a partition ({err})")
                continue
            found.add(key)
        self._scan_found, self._scan_labels = found, labels

    async def _join(self, streams: list[str]) -> None:
        """Create our group on each of ``streams`` (new partitions, or broken ones), all in
        one pipeline; a stream whose name or group fails is blamed alone."""
        joining: dict[str, PartitionKeys] = {}
        for stream in streams:
            try:
                joining[stream] = PartitionKeys.from_key(stream)
            except (InvalidIdError, ValueError) as err:
                self.broken.mark(stream, f"not the outbox of a partition ({err})")
        names = list(joining)
        start = self._group_start or "0"
        replies = await pipelined(
            self.client,
            len(names),
            lambda target, i: target.xgroup_create(
                names[i], self.settings.group, id=start, mkstream=True
            ),
        )
        for stream, reply in zip(names, replies, strict=True):
            async with self.on_partition(stream):
                if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                    raise reply
                self.partitions[stream] = joining[stream]
                self.broken.usable(stream)
                log.debug("found partition %s", joining[stream].member)

    @contextlib.asynccontextmanager
    async def on_partition(self, stream: str) -> AsyncIterator[None]:
        """Blame a Redis error inside the block (or a dead-letter key of the wrong type) on
        ``stream``: the partition is dropped (and, but for a lost group, marked broken);
        the error goes no further.  An error about the server as a whole is re-raised."""
        try:
            yield
        except redis.ResponseError as err:
            if is_server_wide(err):
                raise
            self.partition_failed(stream, await self._key_problem(stream, "stream", err))
        except DeadLetterStreamError as err:
            self.partition_failed(stream, err)

    def partition_failed(self, stream: str, err: object) -> None:
        """Stop serving ``stream`` for now: its state, its deferred acknowledgements (its
        entries stay pending and are read again) and, at the next rebalance, its lease."""
        self.acks.drop(stream)
        self.batches.drop(stream)
        self.states.pop(stream, None)
        self.partitions.pop(stream, None)
        if "NOGROUP" in str(err):  # the group is gone: discovery creates it again
            log.warning("consumer group of %s is gone (%s); creating it again", stream, err)
            return
        self.broken.mark(stream, str(err))

    async def _key_problem(self, key: str, expected: str, err: Exception) -> str:
        """What is wrong with ``key``, for a log line: its type when that is the problem."""
        if "Invalid stream ID" in str(err) or "last possible ID" in str(err):
            return f"{key}: {full_stream(err)}"
        if "WRONGTYPE" not in str(err):
            return str(err)
        with contextlib.suppress(redis.RedisError):
            kind = _text(await self.client.type(key))
            if kind != expected:  # else another key of the partition is the wrong one
                return f"{key} is a {kind}, not a {expected}; rename or delete it"
        return f"{key}: {err}"

    def _forget_partitions(self) -> None:
        """Discover again from scratch (Redis lost its data, or a group was destroyed).
        The leases we hold are kept: they are renewed, or found lost, at the next
        rebalance, and no partition waits for a lease we forgot we held."""
        self.partitions.clear()
        self.states.clear()
        self.batches = Batches()
        self._last_scan = -RESCAN_INTERVAL_S
