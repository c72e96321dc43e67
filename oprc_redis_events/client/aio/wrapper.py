"""``AsyncEventedRedis``: a drop-in wrapper around a redis-py client (asyncio).

Every command the wrapper sends, whichever redis-py method builds it (or
``execute_command``), is classified by name (``wrapper_core.plan_command``):

=========================================  ==============================================
on an object key ``oprc:{cls:pid}:obj:<oid>``  what the wrapper does
=========================================  ==============================================
HSET, HMSET                                merge fields (creating the object) via write.lua
HSETNX                                     set a field only when absent
HDEL                                       delete fields
HINCRBY, HINCRBYFLOAT                      increment a field
DEL, UNLINK                                delete the object and its triggers
EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT,      expire.lua: the object's expiry, and its
PERSIST                                    triggers' too unless keyspace capture is on
any other command that may write it        :class:`UnsupportedCommandError`
(RENAME, COPY, SET, HSETEX, JSON.SET...),
in any key position, or that may write an
``obj``, ``meta`` or ``shadow`` key
commands that only read                    sent unchanged
=========================================  ==============================================

Each routed command returns what redis-py returns for it (the raw reply goes through the
client's response callback).  ``pipeline()`` and ``transaction()`` work the same way.

Its synchronous twin (``client/sync_generated/wrapper.py``) is generated from this file by
``scripts/unasync.py``: edit the asyncio file, then run ``make unasync``.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from ...config import Settings
from ...connect.cluster import is_cluster, response_callbacks
from ...errors import UnsupportedCommandError
from ...lua.direct import pipeline_calls
from ...lua.loader import register
from ..cluster_batch import NodeScripts
from ..wrapper_core import Plan, Step, plan_command
from ..wrapper_proxy import Intercepted, command_attribute, module_pipeline
from .cluster_pipeline import AsyncEventedClusterPipeline
from .store import AsyncObjectStore

__all__ = ["AsyncEventedPipeline", "AsyncEventedRedis"]


class AsyncEventedRedis:
    """Wraps ``client``: redis-py's command methods (``r.hset``, ``r.get``, ``r.json()``...)
    send through :meth:`execute_command`; other attributes are the client's own."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        settings: Settings | None = None,
        *,
        depth: int = 0,
        traceparent: str | None = None,
    ) -> None:
        self.client = client
        self._raw: Any = client  # redis-py's execute_command is untyped
        self.store = AsyncObjectStore(client, settings, depth=depth, traceparent=traceparent)
        self._expire_script = register(client, "expire")
        self.cluster = is_cluster(client)
        self.node_scripts = NodeScripts()  # on a cluster: scripts each node has loaded

    def __getattr__(self, name: str) -> Any:
        return command_attribute(self, self.client, name, self._wrap_pipeline)

    def __repr__(self) -> str:
        return f"AsyncEventedRedis({self.client!r})"

    async def __aenter__(self) -> AsyncEventedRedis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def __getitem__(self, name: Any) -> Any:
        return self.__getattr__("__getitem__")(name)

    def __setitem__(self, name: Any, value: Any) -> None:
        self.__getattr__("__setitem__")(name, value)

    def __delitem__(self, name: Any) -> None:
        self.__getattr__("__delitem__")(name)

    def __contains__(self, name: Any) -> Any:
        return self.__getattr__("__contains__")(name)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Send one command: routed through the write path, refused, or passed on."""
        plan = plan_command(args, self.client)
        if plan is None:
            return await self._raw.execute_command(*args, **options)
        return await self.run(plan)

    async def run(self, plan: Plan) -> Any:
        """Make the calls of ``plan`` and answer as redis-py would."""
        replies = [await self._step(step) for step in plan.steps]
        return plan.finish(replies, response_callbacks(self.client))

    async def _step(self, step: Step) -> Any:
        if step.kind == "write":
            return await self.store.call(self.store.build(step.target, step.mode, **step.kw))
        if step.kind == "expire":
            return await self._expire_script(keys=step.keys, args=list(step.args))
        return await self._raw.execute_command(*step.args)

    def pipeline(
        self, transaction: bool | None = None, shard_hint: str | None = None
    ) -> AsyncEventedPipeline | AsyncEventedClusterPipeline:
        """A pipeline whose commands are classified the same way: MULTI/EXEC when
        ``transaction`` (the default on one Redis).  On a cluster client, as redis-py's
        cluster pipeline, it is not a transaction; its commands go out grouped per node."""
        if self.cluster:
            if transaction:
                raise UnsupportedCommandError(
                    "EventedRedis on a Redis Cluster has no transactions (MULTI/EXEC): use "
                    "pipeline(transaction=False), whose commands are grouped per node; each "
                    "write through the wrapper is atomic on its own"
                )
            return AsyncEventedClusterPipeline(self)
        pipe = self.client.pipeline(True if transaction is None else transaction, shard_hint)
        return AsyncEventedPipeline(self, pipe)

    def _wrap_pipeline(self, pipe: Any) -> AsyncEventedPipeline:
        return AsyncEventedPipeline(self, module_pipeline(pipe, coroutines=True))


class AsyncEventedPipeline:
    """Queues routed commands as calls of the Lua scripts; ``execute()`` returns what
    redis-py would.  Other attributes are the wrapped pipeline's own."""

    def __init__(self, owner: AsyncEventedRedis, pipe: redis.asyncio.client.Pipeline) -> None:
        self.owner = owner
        self.pipe: Any = pipe
        self._queued = Intercepted(owner.store, pipe, owner._expire_script)

    def __getattr__(self, name: str) -> Any:
        return command_attribute(self, self.pipe, name)

    def __len__(self) -> int:
        return self._queued.size

    def __bool__(self) -> bool:
        return True

    async def __aenter__(self) -> AsyncEventedPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reset()

    async def reset(self) -> None:
        self._queued.clear()
        await self.pipe.reset()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue one command (routed, refused or plain); after WATCH and before MULTI it
        runs at once, as in redis-py."""
        plan = plan_command(args, self.pipe)
        if plan is not None:
            if self.pipe.watching and not self.pipe.explicit_transaction:
                return self.owner.run(plan)
            self._queued.queue(plan)
            return self
        self._queued.flush()
        result = self.pipe.execute_command(*args, **options)
        if result is not self.pipe:
            return result  # ran at once (immediate mode after WATCH)
        self._queued.plain()
        return self

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self._queued.flush()
        script = self.owner.store._write
        calls = pipeline_calls(self.pipe, script)
        try:
            if calls is None:
                replies = await self.pipe.execute(raise_on_error=raise_on_error)
            else:  # only writes, no transaction: in one buffer, as store.batch() sends them
                try:
                    replies = await script.many(calls)
                finally:
                    await self.pipe.reset()
        except BaseException:
            self._queued.clear()  # empty after a failed execute, as redis-py's pipeline
            raise
        return self._queued.results(replies, raise_on_error)
