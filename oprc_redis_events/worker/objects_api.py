"""The ODGM data API served from Redis: OPRC functions read and write objects here.

For each class it serves (every partition, or those given) an :class:`ObjectsApi`
declares on a Zenoh session what ODGM's shard network declares
(:mod:`~oprc_redis_events.protocol.objdata` has the table): a queryable on
``oprc/{cls}/{pid}/objects/*`` (GET: the object's ``ObjData``, an empty reply when it is
absent), a queryable on ``oprc/{cls}/{pid}/objects/*/set`` (a full replace with the
triggers its ``event`` carries) and a subscriber on ``oprc/{cls}/{pid}/objects/*`` (DELETE
samples delete the object; PUT samples of an ``ObjData`` set it, as ODGM).

Every write goes through the store's Lua write path, so unlike ODGM's these writes fire
their triggers: a set is one ``replace`` (fields not given: DELETE events) with the new
trigger configuration, in one atomic script call.  A bad request gets an error reply
naming the problem and changes nothing; nothing raised here reaches Zenoh's threads.

Zenoh calls back on its own threads; requests are handled on the event loop that
:meth:`ObjectsApi.start` ran on, one task each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import zenoh

from ..client.aio.store import AsyncObjectStore
from ..client.core import ObjectRef, parse_write
from ..client.redis_errors import write_errors
from ..errors import OprcEventsError
from ..protocol import objdata
from ..protocol.keys import validate_id, validate_partition
from .inflight import InFlight
from .logonce import ThrottledLog

__all__ = ["ObjectsApi", "ObjectsApiStats"]

log = logging.getLogger("oprc_redis_events.worker.objects_api")


@dataclass
class ObjectsApiStats:
    """What the data API served: requests by kind, errors, writes the guard refused."""

    requests: dict[str, int] = field(default_factory=dict)  # get, set, put, delete
    errors: int = 0
    rate_limited: int = 0

    def count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1


class ObjectsApi:
    """Serves the data API of ``classes`` on ``session`` from ``store`` (module doc).

    ``partitions``: serve only these partitions of each class (default: all).
    ``max_writes_per_s``: writes per object per second before the guard refuses them
    (0: no guard); ``max_object_bytes``: the largest ``ObjData`` a set may carry;
    ``inflight``: the invocations this process has running, whose depth + 1 a write to
    their object takes (:mod:`.inflight`; otherwise writes are depth 0)."""

    def __init__(
        self,
        store: AsyncObjectStore,
        session: Any,
        classes: Iterable[str],
        *,
        partitions: Iterable[int] | None = None,
        max_writes_per_s: int = objdata.DEFAULT_MAX_WRITES_PER_S,
        max_object_bytes: int = objdata.DEFAULT_MAX_OBJECT_BYTES,
        inflight: InFlight | None = None,
    ) -> None:
        self.store = store
        self.session = session
        self.classes = [validate_id("cls_id", c) for c in classes]
        self.partitions = (
            None if partitions is None else [validate_partition(p) for p in partitions]
        )
        self.guard = objdata.WriteRateGuard(max_writes_per_s)
        self.max_object_bytes = max_object_bytes
        self.inflight = inflight
        self.stats = ObjectsApiStats()
        self.problems = ThrottledLog(log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._declared: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def expressions(self) -> list[tuple[str, str]]:
        """(object key expression, set key expression) per class and partition served."""
        pids: list[int | None] = [None] if self.partitions is None else [*self.partitions]
        return [objdata.served_expressions(c, p) for c in self.classes for p in pids]

    async def start(self) -> ObjectsApi:
        """Declare the queryables and subscribers; requests run on the running loop."""
        self._loop = asyncio.get_running_loop()
        for objects, sets in self.expressions():
            # complete: a GET with Zenoh's default target (BEST_MATCHING, as the SDK's)
            # reaches one serving process, however many serve the class
            for expr in (objects, sets):
                queryable = self.session.declare_queryable(expr, self._on_query, complete=True)
                self._declared.append(queryable)
            self._declared.append(self.session.declare_subscriber(objects, self._on_sample))
        log.info(
            "serving the ODGM data API of %s (%s)",
            ", ".join(self.classes),
            "all partitions" if self.partitions is None else f"partitions {self.partitions}",
        )
        return self

    async def close(self) -> None:
        """Undeclare everything, then let the requests in hand finish."""
        for entity in self._declared:
            try:
                entity.undeclare()
            except Exception as err:  # a session closed first: nothing left to undeclare
                log.debug("undeclare: %s", err)
        self._declared.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> ObjectsApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- from Zenoh's threads to the loop -----------------------------------------------

    def _on_query(self, query: Any) -> None:
        log.debug("query on %s", query.key_expr)
        self._submit(self._serve_query(query))

    def _on_sample(self, sample: Any) -> None:
        self._submit(self._serve_sample(sample))

    def _submit(self, coro: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            return
        try:
            loop.call_soon_threadsafe(self._spawn, coro)
        except RuntimeError:  # the loop closed meanwhile
            coro.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- requests -----------------------------------------------------------------------

    async def _serve_query(self, query: Any) -> None:
        key = str(query.key_expr)
        try:
            address = objdata.parse_object_key(key)
            if address.is_set:
                body = query.payload.to_bytes() if query.payload is not None else None
                await self._set(address, body, "set")
                reply = b""
            else:
                reply = await self._get(address)
            query.reply(key, reply)
            log.debug("replied on %s (%d bytes)", key, len(reply))
        except Exception as err:
            self._reply_error(query, key, err)
        finally:
            query.drop()

    async def _serve_sample(self, sample: Any) -> None:
        key = str(sample.key_expr)
        deleting = sample.kind == zenoh.SampleKind.DELETE
        try:
            address = objdata.parse_object_key(key)
            if deleting:
                await self._delete(address)
            else:
                await self._set(address, sample.payload.to_bytes(), "put")
        except Exception as err:  # a sample has no reply: logged and counted
            self.stats.errors += 1
            kind = "delete" if deleting else "put"
            self.problems.warning(
                ("sample", kind, type(err)), "%s on %s refused: %s", kind, key, err
            )

    def _reply_error(self, query: Any, key: str, err: Exception) -> None:
        self.stats.errors += 1
        if not isinstance(err, OprcEventsError):
            log.error("unexpected error serving %s: %r", key, err, exc_info=err)
        text = str(err) if isinstance(err, OprcEventsError) else f"internal error: {err!r}"
        self.problems.warning(("query", type(err)), "request on %s refused: %s", key, text)
        try:
            query.reply_err(text.encode())
        except Exception as reply_err:
            log.debug("could not reply on %s: %s", key, reply_err)

    async def _get(self, address: objdata.ObjectAddress) -> bytes:
        self.stats.count("get")
        record = await self.store.get(address.cls_id, address.partition_id, address.object_id)
        if record is None:
            return b""  # what ODGM answers for an absent object
        return record.to_obj_data().SerializeToString(deterministic=True)

    async def _set(self, address: objdata.ObjectAddress, body: bytes | None, kind: str) -> None:
        self.stats.count(kind)
        data = objdata.decode_obj_data(body, self.max_object_bytes)
        ref = ObjectRef.of(address.cls_id, address.partition_id, address.object_id)
        store = self._store_for(ref)
        call = store.build(
            ref,
            "replace",
            entries=objdata.entries_of(data),
            event=objdata.event_of(data),
            replace_triggers=True,
        )  # everything is validated before the guard counts the write
        self._check_rate(address)
        with write_errors(f"set {ref.describe()}"):
            parse_write(call, await store.call(call))

    async def _delete(self, address: objdata.ObjectAddress) -> None:
        self.stats.count("delete")
        store = self._store_for(
            ObjectRef.of(address.cls_id, address.partition_id, address.object_id)
        )
        self._check_rate(address)
        await store.delete(address.cls_id, address.partition_id, address.object_id)

    def _store_for(self, ref: ObjectRef) -> AsyncObjectStore:
        """The store to write ``ref`` with: at the depth of an invocation running on it."""
        cause = None
        if self.inflight is not None:
            cause = self.inflight.cause(ref.keys.cls_id, ref.keys.partition_id, ref.segment)
        if cause is None:
            return self.store
        return self.store.with_context(depth=cause.depth + 1, traceparent=cause.traceparent)

    def _check_rate(self, address: objdata.ObjectAddress) -> None:
        if self.guard.allow((address.cls_id, address.partition_id, address.object_id)):
            return
        self.stats.rate_limited += 1
        self.problems.warning(
            ("rate", address.cls_id),
            "data API: writes to %s refused past %d per object per second (a loop through "
            "functions? the data API carries no trigger depth)",
            address.describe(),
            self.guard.limit,
        )
        raise objdata.RateLimitedError(
            f"too many writes: {address.describe()} had {self.guard.limit} write(s) through "
            "the data API in this second, the most allowed per object; nothing was changed"
        )
