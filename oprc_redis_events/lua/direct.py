"""Script calls on one Redis without redis-py's per-command machinery (sync and asyncio).

A command through redis-py's ``execute_command`` costs far more on the client than the
socket round trip it makes (here a raw ``HSET`` took about 130 us through it and 56 us sent
on the same connection directly: its retry wrapper, event dispatch, and a Python pass over
every argument before hiredis packs them).  A write is one ``EVALSHA`` with about fifteen
arguments, so :class:`DirectScript` (and :class:`AsyncDirectScript`) send it on a
connection of the client's own pool, packed by hiredis, and read the reply with the
connection's own parser: the same sockets, authentication, TLS, timeouts, health checks,
RESP version and reply decoding as every other command of the client.

They are redis-py ``Script`` objects (its pipelines and the wrapper load and call them as
any), used this way only where that is all the same: a plain ``redis.Redis`` or
``redis.asyncio.Redis`` (its ``execute_command`` not overridden) with a connection pool (not
one fixed connection, not client-side caching) whose encoding is UTF-8; anything else (a
cluster, a pipeline, another client) goes through redis-py as before.  A call that fails
after its send drops its connection (whatever the connection class would do), so a late
reply is never read by the next caller.  Two things differ, both on purpose:

* redis-py re-sends a command whose connection failed (its ``Retry``); a write sent here is
  sent once, so a write whose reply never came is reported as such
  (``WriteOutcomeUnknownError``) and never applied twice.  A stale pooled connection is
  still replaced before the send, as redis-py's pool does on every checkout.
* Tools that instrument ``execute_command`` (tracing), and redis-py's own command metrics,
  do not see these calls.

``NOSCRIPT`` (a restart, a failover, ``SCRIPT FLUSH``): the script did not run; it is
loaded and the calls it refused are sent again.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from hiredis import pack_command as _hiredis_pack  # redis[hiredis] is a dependency
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["AsyncDirectScript", "DirectScript", "NotSentError", "direct_usable", "pipeline_calls"]

#: one call: its keys and its arguments
Call = tuple[Sequence[Any], Sequence[Any]]


class NotSentError(redis.ConnectionError):
    """No connection could be had for a call (the pool was full, or connecting failed):
    nothing was sent."""


#: redis-py's own execute_command (a client with another sends commands its own way)
_PLAIN = (redis.Redis.execute_command, aredis.Redis.execute_command)


def direct_usable(client: Any) -> bool:
    """Whether ``client``'s script calls may go out directly (see the module docstring)."""
    if type(client).execute_command not in _PLAIN:
        return False  # a cluster, a pipeline, or a client that sends commands its own way
    if getattr(client, "connection", None) is not None or getattr(
        client, "single_connection_client", getattr(client, "_single_connection_client", False)
    ):
        return False  # one fixed connection (an asyncio one is made on first use)
    pool = client.connection_pool
    if getattr(pool, "cache", None) is not None:  # client-side caching
        return False
    encoding = str(pool.connection_kwargs.get("encoding", "utf-8")).lower().replace("_", "-")
    return encoding in ("utf-8", "utf8")


def pipeline_calls(pipe: Any, script: Any) -> list[Call] | None:
    """The commands queued in redis-py pipeline ``pipe`` as calls of ``script``, when they
    may go out through ``script.many`` instead: ``script`` is sent directly, ``pipe`` is of
    its client, not a transaction, not watching, and holds only calls of ``script``."""
    # redis.asyncio's pipelines name it is_transaction (their transaction is a method)
    transaction = getattr(pipe, "is_transaction", getattr(pipe, "transaction", None))
    if not hasattr(script, "many") or transaction is not False or pipe.explicit_transaction:
        return None
    if pipe.watching or pipe.connection_pool is not script.registered_client.connection_pool:
        return None
    if inspect.iscoroutinefunction(pipe.execute) != isinstance(script, AsyncDirectScript):
        return None  # redis.asyncio's json().pipeline() is a sync pipeline
    calls: list[Call] = []
    sha = script.sha
    for args, _options in pipe.command_stack:
        if len(args) < 3 or args[0] != "EVALSHA" or args[1] != sha:
            return None
        end = 3 + int(args[2])
        calls.append((args[3:end], args[end:]))
    return calls


def _packed(sha: str, calls: Sequence[Call]) -> list[bytes]:
    """The EVALSHA commands of ``calls``, as one buffer (arguments as redis-py takes them:
    a ``bytearray`` or ``memoryview`` as its bytes; another type is a ``DataError``)."""
    try:
        return [b"".join(_hiredis_pack(("EVALSHA", sha, len(k), *k, *a)) for k, a in calls)]
    except TypeError:  # hiredis takes str, bytes, int and float only: convert, then retry
        pass
    try:
        return [
            b"".join(_hiredis_pack(("EVALSHA", sha, len(k), *k, *map(_arg, a))) for k, a in calls)
        ]
    except TypeError as err:
        raise redis.DataError(str(err)) from err


def _arg(arg: Any) -> Any:
    return bytes(arg) if isinstance(arg, (bytearray, memoryview)) else arg


def _text(sha: bytes | str) -> str:
    return sha if isinstance(sha, str) else sha.decode()


class DirectScript(Script):
    """A redis-py ``Script`` whose calls on its own client go out directly."""

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if client is not None and client is not self.registered_client:
            return super().__call__(keys or [], args or [], client)
        reply = self.many([(keys or (), args or ())])[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def many(self, calls: Sequence[Call]) -> list[Any]:
        """Send ``calls`` together (one buffer) and read their replies in order; a call
        Redis refused has its ``ResponseError`` in its place."""
        if not calls:
            return []
        own: Any = self.registered_client  # a plain client (direct_usable)
        pool = own.connection_pool
        try:
            conn = pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise NotSentError(str(err)) from err
        try:
            replies = self._round(conn, calls)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                conn.send_command("SCRIPT", "LOAD", self.script)
                try:
                    self.sha = _text(conn.read_response())
                except ResponseError as err:  # the others' replies stand
                    return [err if i in missing else r for i, r in enumerate(replies)]
                again = self._round(conn, [calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
            return replies
        except BaseException:
            conn.disconnect()  # a reply may still be on its way: never for the next caller
            raise
        finally:
            pool.release(conn)

    def _round(self, conn: Any, calls: Sequence[Call]) -> list[Any]:
        conn.send_packed_command(_packed(self.sha, calls))
        replies: list[Any] = []
        for _ in calls:  # a failed read: many() drops the connection
            try:
                replies.append(conn.read_response())
            except ResponseError as err:
                replies.append(err)
        return replies


class AsyncDirectScript(AsyncScript):
    """:class:`DirectScript` for ``redis.asyncio``."""

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if client is not None and client is not self.registered_client:
            return await super().__call__(keys or [], args or [], client)
        reply = (await self.many([(keys or (), args or ())]))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def many(self, calls: Sequence[Call]) -> list[Any]:
        """:meth:`DirectScript.many`."""
        if not calls:
            return []
        own: Any = self.registered_client  # a plain client (direct_usable)
        pool = own.connection_pool
        try:
            conn = await pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise NotSentError(str(err)) from err
        try:
            replies = await self._round(conn, calls)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                await conn.send_command("SCRIPT", "LOAD", self.script)
                try:
                    self.sha = _text(await conn.read_response())
                except ResponseError as err:  # the others' replies stand
                    return [err if i in missing else r for i, r in enumerate(replies)]
                again = await self._round(conn, [calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
            return replies
        except BaseException:
            await conn.disconnect(nowait=True)  # never a pending reply for the next caller
            raise
        finally:
            # not shielded, as redis-py's own execute_command: a shield's task cost 70-80 us
            # a call here, and the release waits only on a contended pool lock
            await pool.release(conn)

    async def _round(self, conn: Any, calls: Sequence[Call]) -> list[Any]:
        await conn.send_packed_command(_packed(self.sha, calls))
        replies: list[Any] = []
        for _ in calls:
            try:
                replies.append(await conn.read_response())
            except ResponseError as err:
                replies.append(err)
        return replies
