"""A small function host: Python functions serving OPRC invocations on Zenoh.

For a class and its partitions, each function ``fn`` is served on

* the seed's trigger keys (async PUT): ``oprc/{cls}/{pid}/async/{fn}/*`` and
  ``oprc/{cls}/{pid}/objects/*/async/{fn}/*``;
* optionally ODGM's async keys: ``oprc/{cls}/{pid}[/objects/*]/invokes/{fn}/async/*``;
* the invoke keys (sync GET, answered with an ``InvocationResponse``):
  ``oprc/{cls}/{pid}/invokes/{fn}`` and ``oprc/{cls}/{pid}/objects/*/invokes/{fn}``.

The handler gets an :class:`InvocationContext` (the request, the trigger's event when it is
one, depth, invocation id, traceparent and a store bound to them, so its writes carry
depth + 1 and the same trace).  What it returns (bytes, str or None) is the output; an
exception is an APP_ERROR reply, never a crashed host.  The outcome of an async
invocation on an object is reported as FUNC_COMPLETE / FUNC_ERROR on that object (for a
GET, whoever invoked records it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..client.invoke import new_invocation_id
from ..client.sync_generated.store import ObjectStore
from ..errors import ObjectNotFoundError, OprcEventsError
from ..pb.oprc_data_pb2 import EventInfo, TriggerPayload
from ..pb.oprc_invoke_pb2 import (
    InvocationRequest,
    InvocationResponse,
    ObjectInvocationRequest,
    ResponseStatus,
)
from ..protocol import zenoh_keys
from ..protocol.context import valid_traceparent
from ..protocol.decode import parse_trigger_payload
from ..protocol.keys import ObjectId, parse_object_segment, validate_id, validate_partition

__all__ = ["FunctionHost", "Handler", "InvocationContext"]

log = logging.getLogger("oprc_redis_events.functions.host")


@dataclass
class InvocationContext:
    """One invocation as the handler sees it."""

    key: str
    cls_id: str
    partition_id: int
    fn_id: str
    object_id: ObjectId | None
    payload: bytes
    options: dict[str, str]
    invocation_id: str
    depth: int
    traceparent: str | None
    store: ObjectStore
    trigger: TriggerPayload | None = None
    sync: bool = False  # a GET waiting for the reply

    @property
    def event(self) -> EventInfo | None:
        """The event that triggered this invocation (``None`` for a direct invocation)."""
        return self.trigger.event_info if self.trigger is not None else None

    @property
    def value(self) -> bytes | None:
        """The trigger's ``original_payload`` (the new value, or a function's output)."""
        if self.trigger is not None and self.trigger.HasField("original_payload"):
            return self.trigger.original_payload
        return None


Handler = Callable[[InvocationContext], Any]  # returns bytes | str | None, or awaits to one


@dataclass
class HostStats:
    invocations: int = 0
    errors: int = 0
    by_fn: dict[str, int] = field(default_factory=dict)


class FunctionHost:
    """Serves ``functions`` ({fn_id: handler}) of ``cls_id`` on ``session`` (see module doc)."""

    def __init__(
        self,
        store: ObjectStore,
        session: Any,
        cls_id: str,
        partitions: Iterable[int],
        functions: Mapping[str, Handler],
        *,
        odgm: bool = False,
        workers: int = 8,
    ) -> None:
        self.store = store
        self.session = session
        self.cls_id = validate_id("cls_id", cls_id)
        self.partitions = [validate_partition(p) for p in partitions]
        self.functions = {validate_id("fn_id", fn): h for fn, h in functions.items()}
        self.odgm = odgm
        self.stats = HostStats()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="oprc-fn")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._declared: list[Any] = []

    def keys(self) -> list[tuple[str, str, str]]:
        """(kind, key expression, fn_id) of everything served: kind is put or get."""
        return [
            (kind, expr, fn)
            for pid in self.partitions
            for fn in self.functions
            for kind, expr in zenoh_keys.served_keys(self.cls_id, pid, fn, odgm=self.odgm)
        ]

    def start(self) -> FunctionHost:
        self._loop_thread.start()
        for kind, key, _ in self.keys():
            if kind == "put":
                self._declared.append(self.session.declare_subscriber(key, self._on_sample))
            else:
                self._declared.append(self.session.declare_queryable(key, self._on_query))
        log.info("serving %s on %d key expressions", ", ".join(self.functions), len(self._declared))
        return self

    def close(self) -> None:
        for entity in self._declared:
            entity.undeclare()
        self._declared.clear()
        self._pool.shutdown(wait=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(5)
        self._loop.close()

    def __enter__(self) -> FunctionHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- receiving --------------------------------------------------------------------------

    def _on_sample(self, sample: Any) -> None:
        key, body = str(sample.key_expr), sample.payload.to_bytes()
        self._pool.submit(self._serve, key, body, None)

    def _on_query(self, query: Any) -> None:
        body = query.payload.to_bytes() if query.payload is not None else b""
        self._pool.submit(self._serve, str(query.key_expr), body, query)

    def _context(self, key: str, body: bytes, sync: bool) -> tuple[InvocationContext, Handler]:
        parts = zenoh_keys.parse_key(key)
        if parts is None:
            raise OprcEventsError(f"{key!r} is not an invocation key")
        request = _request(parts, body)
        options = dict(request.options)
        object_id = None
        if parts.object_segment is not None:
            object_id = options.get("object_id_str") or parse_object_segment(parts.object_segment)
        trigger = None
        if not sync or "event_id" in options:
            trigger = parse_trigger_payload(request.payload)
        context = dict(trigger.event_info.context) if trigger is not None else options
        depth = int(context.get("depth", options.get("depth", "0")))
        traceparent = valid_traceparent(context.get("traceparent") or options.get("traceparent"))
        ctx = InvocationContext(
            key=key,
            cls_id=parts.cls_id,
            partition_id=int(parts.partition),
            fn_id=parts.fn_id,
            object_id=object_id,
            payload=request.payload,
            options=options,
            invocation_id=_invocation_id(parts, options, sync),
            depth=depth,
            traceparent=traceparent,
            store=self.store.with_context(depth=depth + 1, traceparent=traceparent),
            trigger=trigger,
            sync=sync,
        )
        return ctx, self.functions[parts.fn_id]

    def _serve(self, key: str, body: bytes, query: Any) -> None:
        try:
            ctx, handler = self._context(key, body, sync=query is not None)
        except Exception as err:  # an unusable request: answer it, never crash
            log.error("cannot serve %s: %s", key, err)
            self.stats.errors += 1
            if query is not None:
                self._reply(
                    query,
                    key,
                    InvocationResponse(
                        status=ResponseStatus.INVALID_REQUEST, payload=str(err).encode()
                    ),
                )
            return
        response = self._run(ctx, handler)
        self.stats.invocations += 1
        self.stats.by_fn[ctx.fn_id] = self.stats.by_fn.get(ctx.fn_id, 0) + 1
        if query is not None:
            self._reply(query, key, response)
        elif ctx.object_id is not None:
            try:
                ctx.store.report_function_result(
                    ctx.cls_id, ctx.partition_id, ctx.object_id, ctx.fn_id, response
                )
            except ObjectNotFoundError:
                pass
            except OprcEventsError as err:
                log.error("could not record the outcome of %s: %s", key, err)

    def _run(self, ctx: InvocationContext, handler: Handler) -> InvocationResponse:
        try:
            result: Any = handler(ctx)
            if inspect.isawaitable(result):
                result = asyncio.run_coroutine_threadsafe(_await(result), self._loop).result()
            output = _output(result)
        except Exception as err:
            self.stats.errors += 1
            log.error(
                "function %s failed on %s: %s\n%s",
                ctx.fn_id,
                ctx.key,
                err,
                traceback.format_exc(limit=5),
            )
            text = f"{type(err).__name__}: {err}"
            return InvocationResponse(
                status=ResponseStatus.APP_ERROR,
                payload=text.encode(),
                headers={"error": text},
                invocation_id=ctx.invocation_id,
            )
        response = InvocationResponse(status=ResponseStatus.OKAY, invocation_id=ctx.invocation_id)
        if output is not None:
            response.payload = output
        return response

    def _reply(self, query: Any, key: str, response: InvocationResponse) -> None:
        try:
            query.reply(key, response.SerializeToString(deterministic=True))
        except Exception as err:
            log.error("could not reply on %s: %s", key, err)
        finally:
            query.drop()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _output(result: Any) -> bytes | None:
    if result is None or isinstance(result, bytes):
        return result
    if isinstance(result, (bytearray, memoryview)):
        return bytes(result)
    if isinstance(result, str):
        return result.encode()
    raise TypeError(f"a function returns bytes, str or None, not {type(result).__name__}")


def _request(
    parts: zenoh_keys.KeyParts, body: bytes
) -> InvocationRequest | ObjectInvocationRequest:
    request: InvocationRequest | ObjectInvocationRequest = (
        InvocationRequest() if parts.object_segment is None else ObjectInvocationRequest()
    )
    request.ParseFromString(body)
    return request


def _invocation_id(parts: zenoh_keys.KeyParts, options: dict[str, str], sync: bool) -> str:
    """The id in an async key; a GET carries it in its options (or gets a new one)."""
    if not sync and parts.invocation_id:
        return parts.invocation_id
    return options.get("invocation_id") or new_invocation_id()
