"""``AsyncObjectStore``: the typed object API over a redis-py client (asyncio).

Every write is one call of the Lua write path (``lua/write.lua``): the write, its
field-level events and its outbox entry happen atomically inside Redis.  The store
is a thin face over :mod:`oprc_redis_events.ops`, which decides what to send and
what the reply means.

The synchronous ``AsyncObjectStore`` (``store.py``) is generated from this file by
``scripts/unasync.py``; edit this one and run ``make unasync``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
import redis.asyncio

from . import ops
from .config import Settings, redact_url
from .errors import ObjectNotFoundError, OprcEventsError, RedisUnavailableError
from .keys import PARTITIONS_KEY, FieldKey, ObjectId, PartitionKeys
from .ops import ObjectRecord, ObjectRef, Value, WriteResult
from .pb.oprc_data_pb2 import ObjectEvent
from .scripts import register

__all__ = ["AsyncObjectStore"]


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Convert redis-py's connection failures into :class:`RedisUnavailableError`."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as err:
        raise RedisUnavailableError(f"{what}: Redis is unavailable ({err})") from err
    except redis.ResponseError as err:
        raise OprcEventsError(f"{what}: Redis refused the command ({err})") from err


class AsyncObjectStore:
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
    ) -> None:
        self.client = client
        self.settings = settings or Settings.from_env()
        self.depth = depth
        self.traceparent = traceparent
        self._write = register(client, "write")
        self.known_partitions: set[str] = set()  # registered in oprc:partitions

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> AsyncObjectStore:
        """A store on a new client for ``url``; ``settings`` override the environment."""
        config = Settings.from_url(url, **settings)
        return cls(redis.asyncio.Redis.from_url(url), config)

    def __repr__(self) -> str:
        return f"AsyncObjectStore({redact_url(self.settings.redis_url)!r}, depth={self.depth})"

    def with_context(self, *, depth: int, traceparent: str | None = None) -> AsyncObjectStore:
        """A store on the same client whose writes carry ``depth`` and ``traceparent``."""
        bound = AsyncObjectStore(self.client, self.settings, depth=depth, traceparent=traceparent)
        bound.known_partitions = self.known_partitions
        return bound

    async def close(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> AsyncObjectStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes -------------------------------------------------------------------------

    def build(self, ref: ObjectRef, mode: str, **kw: Any) -> ops.ScriptCall:
        """The write-script call for ``mode`` with this store's context and settings."""
        return ops.build_write(
            ref,
            mode,
            depth=self.depth,
            traceparent=self.traceparent,
            events_enabled=self.settings.events_enabled,
            **kw,
        )

    async def _run(self, ref: ObjectRef, mode: str, **kw: Any) -> WriteResult:
        call = self.build(ref, mode, **kw)
        with redis_errors(f"{mode} {ref.describe()}"):
            result = ops.parse_write(call, await self._write(keys=call.keys, args=call.args))
            if result.entry_id is not None and ref.keys.member not in self.known_partitions:
                await self.client.sadd(PARTITIONS_KEY, ref.keys.member)
                self.known_partitions.add(ref.keys.member)
        return result

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

    # -- reads --------------------------------------------------------------------------

    async def get(self, cls_id: str, partition_id: int, object_id: ObjectId) -> ObjectRecord | None:
        """The object's fields, triggers and version; ``None`` when it does not exist."""
        ref = ObjectRef.of(cls_id, partition_id, object_id)
        with redis_errors(f"get {ref.describe()}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.hgetall(ref.obj)
            pipe.hgetall(ref.meta)
            data, meta = await pipe.execute()
        return ops.parse_record(ref, data, meta)

    async def get_triggers(
        self, cls_id: str, partition_id: int, object_id: ObjectId
    ) -> ObjectEvent:
        """The object's trigger configuration (empty when none is set).

        Raises :class:`ObjectNotFoundError` when the object does not exist.
        """
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
