"""``AsyncObjectStore``: the typed object API over a redis-py client (asyncio).

Every write is one call of the Lua write path (``lua/write.lua``): the write, its
field-level events and its outbox entry happen atomically inside Redis.  The store is a thin
face over :mod:`oprc_redis_events.client.core`, which decides what to send and what the
reply means.  Its synchronous twin (``client/sync_generated/store.py``) is generated from
this file by ``scripts/unasync.py``; edit this one and run ``make unasync``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import redis
import redis.asyncio

from ...config import Settings, redact_url
from ...connect import permissions
from ...connect.cluster import is_cluster
from ...connect.redis_client import async_redis_client
from ...errors import ObjectNotFoundError
from ...lua.loader import register
from ...pb.oprc_data_pb2 import ObjectEvent
from ...pb.oprc_invoke_pb2 import InvocationResponse
from ...protocol.context import check_depth, check_traceparent
from ...protocol.keys import PARTITIONS_KEY, FieldKey, ObjectId, PartitionKeys
from ...protocol.limits import limits_of
from ...protocol.switch import switch_key
from .. import core as ops
from .. import invoke as functions
from ..address import client_address
from ..core import ObjectRecord, ObjectRef, Value, WriteResult
from ..redis_errors import WriteErrors, redis_errors
from .batch import AsyncWriteBatch
from .trigger_edits import AsyncTriggerEdits

__all__ = ["AsyncObjectStore"]


class AsyncObjectStore(AsyncTriggerEdits):
    """Objects as Redis hashes, with the trigger configuration they carry.

    ``client`` is a ``redis.asyncio.Redis`` (``decode_responses`` must be off: values are bytes).
    ``depth`` and ``traceparent`` describe the cause of the writes made through this
    store: 0 and none for a user's own writes (see :meth:`with_context`).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings | None = None,
        *,
        depth: int = 0,
        traceparent: str | None = None,
        zenoh_session: Any = None,
    ) -> None:
        self.client = client
        self.settings = settings or Settings.from_env()
        self.depth = check_depth(depth)
        self.traceparent = check_traceparent(traceparent)
        self.zenoh_session = zenoh_session
        self._owns_session = False
        self._write = register(client, "write")
        self.cluster = is_cluster(client)
        self.known_partitions: set[str] = set()  # registered in oprc:partitions
        self.access = {"checked": not self.settings.check_permissions}  # shared: with_context

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        zenoh_connect: str | None = None,
        zenoh_session: Any = None,
        **settings: Any,
    ) -> AsyncObjectStore:
        """A store on a new client for ``url``; ``settings`` override the environment.
        ``zenoh_connect`` (an endpoint such as ``tcp/127.0.0.1:7447``) or ``zenoh_session``
        lets :meth:`invoke` reach functions over Zenoh."""
        if zenoh_connect is not None:
            settings["zenoh_connect"] = (zenoh_connect,)
        config = Settings.from_url(url, **settings)
        return cls(async_redis_client(config), config, zenoh_session=zenoh_session)

    def __repr__(self) -> str:
        where = client_address(self.client) or redact_url(self.settings.redis_url)
        return f"AsyncObjectStore({where!r}, depth={self.depth})"

    def with_context(self, *, depth: int, traceparent: str | None = None) -> AsyncObjectStore:
        """A store on the same client whose writes carry ``depth`` (an int, 0 <= depth <
        2**63) and ``traceparent`` (a W3C traceparent or ``None``); anything else raises
        :class:`InvalidValueError`."""
        bound = AsyncObjectStore(
            self.client,
            self.settings,
            depth=depth,
            traceparent=traceparent,
            zenoh_session=self.zenoh_session,
        )
        bound.known_partitions = self.known_partitions
        bound.access = self.access
        return bound

    async def close(self) -> None:
        if self._owns_session and self.zenoh_session is not None:
            self.zenoh_session.close()
            self.zenoh_session = None
        await self.client.aclose()

    async def __aenter__(self) -> AsyncObjectStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes -------------------------------------------------------------------------

    def batch(self) -> AsyncWriteBatch:
        """Writes sent together, one script call per run of one partition (see README)."""
        return AsyncWriteBatch(self)

    def build(self, ref: ObjectRef, mode: str, **kw: Any) -> ops.ScriptCall:
        """The write-script call for ``mode`` with this store's context and settings."""
        return ops.build_write(
            ref,
            mode,
            depth=self.depth,
            traceparent=self.traceparent,
            events_enabled=self.settings.events_enabled,
            limits=limits_of(self.settings),
            switch=switch_key(ref.keys, cluster=self.cluster),
            **kw,
        )

    async def call(self, call: ops.ScriptCall) -> Any:
        """Run one write-script call and return its raw reply (redis-py errors propagate);
        register the partition in ``oprc:partitions`` the first time it queues an entry.
        The first write (not a function event) checks the writer's rights first."""
        if call.mode != "func":
            await self.check_access()
        reply = await self._write(keys=call.keys, args=call.args)
        member = call.target.keys.member
        if ops.parse_reply_entry(reply) and member not in self.known_partitions:
            await self.client.sadd(PARTITIONS_KEY, member)
            self.known_partitions.add(member)
        return reply

    async def check_access(self) -> None:
        """ACL DRYRUN of the writer's commands, once (a connection error: see the write)."""
        if not self.access["checked"]:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                await permissions.check_access_async(self.client, "writer")
                self.access["checked"] = True

    async def _run(self, ref: ObjectRef, mode: str, **kw: Any) -> WriteResult:
        call = self.build(ref, mode, **kw)
        with WriteErrors(mode, ref):
            return ops.parse_write(call, await self.call(call))

    async def create(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        entries: Mapping[FieldKey, Value] | None = None,
        *,
        event: ObjectEvent | bytes | None = None,
    ) -> WriteResult:
        """Create an object with ``entries`` and trigger configuration ``event``.

        Every field is a CREATE event (matched against ``event`` itself).  Raises
        :class:`ObjectExistsError` and changes nothing when the object exists.
        """
        ref = ObjectRef.of(cls_id, partition_id, object_id)
        return await self._run(ref, "create", entries=entries, event=event, replace_triggers=True)

    async def update(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        entries: Mapping[FieldKey, Value],
    ) -> WriteResult:
        """Merge ``entries`` into an existing object (other fields stay).

        Raises :class:`ObjectNotFoundError` and changes nothing when there is no object.
        """
        return await self._run(
            ObjectRef.of(cls_id, partition_id, object_id), "update", entries=entries
        )

    async def upsert(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        entries: Mapping[FieldKey, Value],
    ) -> WriteResult:
        """Merge ``entries`` into the object, creating it (without triggers) when missing."""
        return await self._run(
            ObjectRef.of(cls_id, partition_id, object_id), "upsert", entries=entries
        )

    async def replace(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        entries: Mapping[FieldKey, Value],
    ) -> WriteResult:
        """Make ``entries`` the object's whole content: fields not given are deleted (DELETE)."""
        return await self._run(
            ObjectRef.of(cls_id, partition_id, object_id), "replace", entries=entries
        )

    async def set_field(
        self, cls_id: str, partition_id: int, object_id: ObjectId, key: FieldKey, value: Value
    ) -> WriteResult:
        """``update`` of one field."""
        return await self.update(cls_id, partition_id, object_id, {key: value})

    async def delete_fields(
        self, cls_id: str, partition_id: int, object_id: ObjectId, keys: Iterable[FieldKey]
    ) -> WriteResult:
        """Delete the given fields (DELETE for each one present).  The object must exist."""
        ref = ObjectRef.of(cls_id, partition_id, object_id)
        return await self._run(ref, "delete_fields", delete_keys=keys)

    async def delete_field(
        self, cls_id: str, partition_id: int, object_id: ObjectId, key: FieldKey
    ) -> WriteResult:
        """``delete_fields`` of one field."""
        return await self.delete_fields(cls_id, partition_id, object_id, [key])

    async def delete(self, cls_id: str, partition_id: int, object_id: ObjectId) -> bool:
        """Delete the object and its triggers (DELETE for every field); ``False`` if absent."""
        return (await self._run(ObjectRef.of(cls_id, partition_id, object_id), "delete")).existed

    async def set_triggers(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        event: ObjectEvent | bytes | None,
    ) -> WriteResult:
        """Replace the object's trigger configuration (``None`` removes every trigger)."""
        ref = ObjectRef.of(cls_id, partition_id, object_id)
        return await self._run(ref, "set_triggers", event=event, replace_triggers=True)

    # -- function events --------------------------------------------------------------

    async def report_function_result(
        self,
        cls_id: str,
        partition_id: int,
        object_id: ObjectId,
        fn_id: str,
        response: InvocationResponse | None = None,
        *,
        ok: bool | None = None,
        output: bytes | str | None = None,
        error: str | None = None,
    ) -> WriteResult:
        """Record that ``fn_id`` ran for an object: FUNC_COMPLETE when ``response`` is OKAY
        (payload: its output), FUNC_ERROR otherwise (payload: the error text), so the
        object's ``func_trigger[fn_id]`` targets fire.  For a runtime that ran an
        asynchronous invocation itself; :meth:`invoke` records on its own.

        Without a ``response``: ``ok=True`` (with ``output``) or ``ok=False`` / ``error=``
        (the error text) say the same.
        """
        if response is None:
            response = functions.response_of(ok=ok, output=output, error=error)
        ref = ObjectRef.of(cls_id, partition_id, object_id)
        code, payload = functions.function_event(response)
        return await self._run(ref, "func", func=(fn_id, code, payload))

    async def invoke(
        self,
        cls_id: str,
        partition_id: int,
        fn_id: str,
        payload: bytes = b"",
        *,
        object_id: ObjectId | None = None,
        timeout: float | None = None,
        options: dict[str, str] | None = None,
    ) -> InvocationResponse:
        """Invoke a function synchronously (Zenoh GET on its invoke key) and return its
        ``InvocationResponse``.  A timeout or no function answering gives a SYSTEM_ERROR
        response whose payload says so.  For an object invocation the outcome is recorded
        as FUNC_COMPLETE (OKAY) or FUNC_ERROR (anything else) on the object."""
        key = functions.invoke_key(cls_id, partition_id, fn_id, object_id)
        opts = {"depth": str(self.depth), "invocation_id": functions.new_invocation_id()}
        if self.traceparent:
            opts["traceparent"] = self.traceparent
        opts.update(options or {})
        body = functions.build_request(cls_id, partition_id, fn_id, payload, object_id, opts)
        seconds = self.settings.trigger_timeout_ms / 1000 if timeout is None else timeout
        result = await functions.run_blocking(
            functions.get_response, self._session(), key, body, seconds
        )
        if object_id is not None:
            with contextlib.suppress(ObjectNotFoundError):  # no object: no triggers to fire
                await self.report_function_result(
                    cls_id, partition_id, object_id, fn_id, result.response
                )
        return result.response

    def _session(self) -> Any:
        if self.zenoh_session is None:
            from ...connect.zenoh_session import open_session  # Zenoh only when invoking

            self.zenoh_session = open_session(self.settings)
            self._owns_session = True
        return self.zenoh_session

    # -- reads --------------------------------------------------------------------------

    async def get(self, cls_id: str, partition_id: int, object_id: ObjectId) -> ObjectRecord | None:
        """The object's fields, triggers and version; ``None`` when it does not exist."""
        ref = ObjectRef.of(cls_id, partition_id, object_id)
        with redis_errors(f"get {ref.describe()}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.type(ref.obj)
            pipe.type(ref.meta)
            pipe.hgetall(ref.obj)
            pipe.hgetall(ref.meta)
            obj_type, meta_type, data, meta = await pipe.execute(raise_on_error=False)
            ops.check_types(ref, obj_type, meta_type, data, meta)  # a wrong type, named
        return ops.parse_record(ref, data, meta)

    async def get_triggers(
        self, cls_id: str, partition_id: int, object_id: ObjectId
    ) -> ObjectEvent:
        """The object's trigger configuration (empty when none is set); raises
        :class:`ObjectNotFoundError` when the object does not exist."""
        record = await self.get(cls_id, partition_id, object_id)
        if record is None:
            ref = ObjectRef.of(cls_id, partition_id, object_id)
            raise ObjectNotFoundError(f"{ref.describe()} does not exist")
        return record.event or ObjectEvent()

    async def partitions(self) -> list[PartitionKeys]:
        """Partitions that have had an outbox entry, as recorded in ``oprc:partitions``."""
        with redis_errors("list partitions"):
            members = await self.client.smembers(PARTITIONS_KEY)
        return sorted(PartitionKeys.from_member(m.decode()) for m in members)  # type: ignore[union-attr]
