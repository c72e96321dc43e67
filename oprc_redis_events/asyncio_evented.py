"""``AsyncEventedRedis``: a drop-in wrapper around a redis-py client (asyncio).

Hash commands on object keys (``oprc:{cls:pid}:obj:<oid>``) go through the Lua write path,
so they produce the same events as the typed API; every other command, and the same
commands on other keys, pass through to the wrapped client untouched.

=====================  =========================================================
intercepted command    on an object key
=====================  =========================================================
HSET (and ``mapping``) merge fields (creating the object); returns fields added
HSETNX                 set a field only when absent; returns 1 or 0
HDEL                   delete fields; returns how many existed
HINCRBY, HINCRBYFLOAT  increment a field; returns the new value
DEL, UNLINK            delete the object and its triggers; returns how many existed
EXPIRE family          expire the object (and its triggers, without capture); bool
=====================  =========================================================

EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT and PERSIST on an object key run ``lua/expire.lua``:
the object's expiry, and its triggers' too unless keyspace capture serves the partition
(capture turns the expiry into DELETE events, then removes the triggers).
``pipeline()`` returns a pipeline that intercepts the same commands.

``evented.py`` (sync) is generated from ``asyncio_evented.py`` (asyncio) by
``scripts/unasync.py``: edit the asyncio file, then run ``make unasync``.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from .asyncio_store import AsyncObjectStore
from .config import Settings
from .evented_core import (
    Intercepted,
    converter,
    expire_call,
    hset_entries,
    object_ref,
    values_of,
)
from .keys import FieldKey
from .ops import ObjectRef
from .scripts import register

__all__ = ["AsyncEventedPipeline", "AsyncEventedRedis"]


class AsyncEventedRedis:
    """Wraps ``client``; unknown attributes are the client's own (``r.get``, ``r.xadd``...)."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings | None = None,
        *,
        depth: int = 0,
        traceparent: str | None = None,
    ) -> None:
        self.client = client
        self.store = AsyncObjectStore(client, settings, depth=depth, traceparent=traceparent)
        self._expire_script = register(client, "expire")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def __repr__(self) -> str:
        return f"AsyncEventedRedis({self.client!r})"

    async def __aenter__(self) -> AsyncEventedRedis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def _write(self, ref: ObjectRef, mode: str, **kw: Any) -> Any:
        reply = await self.store.call(self.store.build(ref, mode, **kw))
        return converter(mode)(reply)

    async def hset(
        self,
        name: str | bytes,
        key: Any = None,
        value: Any = None,
        mapping: dict[Any, Any] | None = None,
        items: list[Any] | None = None,
    ) -> int:
        ref = object_ref(name)
        if ref is None:
            return int(await self.client.hset(name, key, value, mapping, items))
        entries = hset_entries(self.client, key, value, mapping, items)
        return int(await self._write(ref, "upsert", entries=entries))

    async def hsetnx(self, name: str | bytes, key: Any, value: Any) -> int:
        ref = object_ref(name)
        if ref is None:
            return int(await self.client.hsetnx(name, key, value))
        entries = hset_entries(self.client, key, value, None, None)
        return int(await self._write(ref, "setnx", entries=entries))

    async def hdel(self, name: str | bytes, *keys: Any) -> int:
        ref = object_ref(name)
        if ref is None:
            return int(await self.client.hdel(name, *keys))
        return int(await self._write(ref, "delete_fields", delete_keys=values_of(keys)))

    async def hincrby(self, name: str | bytes, key: Any, amount: int = 1) -> int:
        ref = object_ref(name)
        if ref is None:
            return int(await self.client.hincrby(name, key, amount))
        entries: dict[FieldKey, Any] = {values_of([key])[0]: amount}
        return int(await self._write(ref, "incr", entries=entries))

    async def hincrbyfloat(self, name: str | bytes, key: Any, amount: float = 1.0) -> float:
        ref = object_ref(name)
        if ref is None:
            return float(await self.client.hincrbyfloat(name, key, amount))
        entries: dict[FieldKey, Any] = {values_of([key])[0]: repr(float(amount))}
        return float(await self._write(ref, "incrfloat", entries=entries))

    async def _expire(self, name: str | bytes, command: str, when: Any, **flags: bool) -> bool:
        ref = object_ref(name)
        if ref is None:
            plain = getattr(self.client, command.lower())
            return bool(await (plain(name) if command == "PERSIST" else plain(name, when, **flags)))
        keys, args = expire_call(ref, command, when, **flags)
        return bool(await self._expire_script(keys=keys, args=args))

    async def expire(
        self,
        name: str | bytes,
        time: Any,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        return await self._expire(name, "EXPIRE", time, nx=nx, xx=xx, gt=gt, lt=lt)

    async def pexpire(
        self,
        name: str | bytes,
        time: Any,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        return await self._expire(name, "PEXPIRE", time, nx=nx, xx=xx, gt=gt, lt=lt)

    async def expireat(
        self,
        name: str | bytes,
        when: Any,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        return await self._expire(name, "EXPIREAT", when, nx=nx, xx=xx, gt=gt, lt=lt)

    async def pexpireat(
        self,
        name: str | bytes,
        when: Any,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        return await self._expire(name, "PEXPIREAT", when, nx=nx, xx=xx, gt=gt, lt=lt)

    async def persist(self, name: str | bytes) -> bool:
        return await self._expire(name, "PERSIST", None)

    async def delete(self, *names: str | bytes) -> int:
        return await self._delete(names, unlink=False)

    async def unlink(self, *names: str | bytes) -> int:
        return await self._delete(names, unlink=True)

    async def _delete(self, names: tuple[str | bytes, ...], *, unlink: bool) -> int:
        others = [n for n in names if object_ref(n) is None]
        count = 0
        if others:
            plain = self.client.unlink if unlink else self.client.delete
            count += int(await plain(*others))
        for name in names:
            ref = object_ref(name)
            if ref is not None:
                count += int(await self._write(ref, "delete"))
        return count

    def pipeline(
        self, transaction: bool = True, shard_hint: str | None = None
    ) -> AsyncEventedPipeline:
        """A pipeline that intercepts the same commands (MULTI/EXEC when ``transaction``)."""
        return AsyncEventedPipeline(self, self.client.pipeline(transaction, shard_hint))


class AsyncEventedPipeline:
    """Queues intercepted commands as calls of the write script; ``execute()`` returns what
    redis-py would.  Other commands are the wrapped pipeline's own."""

    def __init__(self, owner: AsyncEventedRedis, pipe: redis.asyncio.client.Pipeline) -> None:
        self.owner = owner
        self.pipe: Any = pipe
        self._queued = Intercepted(owner.store, pipe)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.pipe, name)
        if not callable(attr):
            return attr

        def queue(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self._queued.plain()
            return self if result is self.pipe else result

        return queue

    async def __aenter__(self) -> AsyncEventedPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reset()

    async def reset(self) -> None:
        self._queued.clear()
        await self.pipe.reset()

    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: dict[Any, Any] | None = None,
        items: list[Any] | None = None,
    ) -> Any:
        ref = object_ref(name)
        if ref is None:
            return self.__getattr__("hset")(name, key, value, mapping, items)
        entries = hset_entries(self.owner.client, key, value, mapping, items)
        return self._queued.write(self, ref, "upsert", entries=entries)

    def hsetnx(self, name: Any, key: Any, value: Any) -> Any:
        ref = object_ref(name)
        if ref is None:
            return self.__getattr__("hsetnx")(name, key, value)
        entries = hset_entries(self.owner.client, key, value, None, None)
        return self._queued.write(self, ref, "setnx", entries=entries)

    def hdel(self, name: Any, *keys: Any) -> Any:
        ref = object_ref(name)
        if ref is None:
            return self.__getattr__("hdel")(name, *keys)
        return self._queued.write(self, ref, "delete_fields", delete_keys=values_of(keys))

    def hincrby(self, name: Any, key: Any, amount: int = 1) -> Any:
        ref = object_ref(name)
        if ref is None:
            return self.__getattr__("hincrby")(name, key, amount)
        return self._queued.write(self, ref, "incr", entries={values_of([key])[0]: amount})

    def hincrbyfloat(self, name: Any, key: Any, amount: float = 1.0) -> Any:
        ref = object_ref(name)
        if ref is None:
            return self.__getattr__("hincrbyfloat")(name, key, amount)
        entries = {values_of([key])[0]: repr(float(amount))}
        return self._queued.write(self, ref, "incrfloat", entries=entries)

    def _expire(self, name: Any, command: str, when: Any, **flags: bool) -> Any:
        ref = object_ref(name)
        if ref is None:
            plain = self.__getattr__(command.lower())
            return plain(name) if command == "PERSIST" else plain(name, when, **flags)
        keys, args = expire_call(ref, command, when, **flags)
        return self._queued.expire(self, self.owner._expire_script, keys, args)

    def expire(self, name: Any, time: Any, **flags: bool) -> Any:
        return self._expire(name, "EXPIRE", time, **flags)

    def pexpire(self, name: Any, time: Any, **flags: bool) -> Any:
        return self._expire(name, "PEXPIRE", time, **flags)

    def expireat(self, name: Any, when: Any, **flags: bool) -> Any:
        return self._expire(name, "EXPIREAT", when, **flags)

    def pexpireat(self, name: Any, when: Any, **flags: bool) -> Any:
        return self._expire(name, "PEXPIREAT", when, **flags)

    def persist(self, name: Any) -> Any:
        return self._expire(name, "PERSIST", None)

    def delete(self, *names: Any) -> Any:
        return self._queued.delete(self, names, unlink=False)

    def unlink(self, *names: Any) -> Any:
        return self._queued.delete(self, names, unlink=True)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        replies = await self.pipe.execute(raise_on_error=raise_on_error)
        return self._queued.results(replies)
