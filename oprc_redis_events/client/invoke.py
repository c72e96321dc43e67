"""Synchronous invocation over Zenoh, and function events (FUNC_COMPLETE / FUNC_ERROR).

An invocation is a Zenoh GET on the platform's invoke key (``WIRE.md``):

* stateless: ``oprc/{cls}/{pid}/invokes/{fn}``
* stateful:  ``oprc/{cls}/{pid}/objects/{oid}/invokes/{fn}``

carrying an ``InvocationRequest`` / ``ObjectInvocationRequest``; the reply is an
``InvocationResponse``.  The status decides the function event: ``OKAY`` is
FUNC_COMPLETE with the output as payload; any other status, a timeout or no function
answering is FUNC_ERROR with the error text as payload.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError

from ..pb.oprc_invoke_pb2 import (
    InvocationRequest,
    InvocationResponse,
    ObjectInvocationRequest,
    ResponseStatus,
)
from ..protocol import zenoh_keys
from ..protocol.keys import ObjectId, object_segment, validate_id, validate_partition

__all__ = [
    "InvokeResult",
    "build_request",
    "function_event",
    "get_response",
    "invoke_key",
    "response_of",
    "run_blocking",
    "run_now",
]

T = TypeVar("T")


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (a Zenoh GET) off the event loop."""
    return await asyncio.to_thread(fn, *args)


def run_now(fn: Callable[..., T], *args: Any) -> T:
    """The sync twin of :func:`run_blocking`."""
    return fn(*args)


def invoke_key(
    cls_id: str, partition_id: int, fn_id: str, object_id: ObjectId | None = None
) -> str:
    """The key a function of the platform answers invocations on."""
    validate_id("cls_id", cls_id)
    validate_id("fn_id", fn_id)
    validate_partition(partition_id)
    oid = None if object_id is None else object_segment(object_id)
    return zenoh_keys.key("invoke", cls_id, partition_id, fn_id, oid)


def build_request(
    cls_id: str,
    partition_id: int,
    fn_id: str,
    payload: bytes,
    object_id: ObjectId | None = None,
    options: Mapping[str, str] | None = None,
) -> bytes:
    """The serialized (Object)InvocationRequest of an invocation."""
    opts = dict(options or {})
    if object_id is None:
        return InvocationRequest(
            partition_id=partition_id, cls_id=cls_id, fn_id=fn_id, options=opts, payload=payload
        ).SerializeToString(deterministic=True)
    if isinstance(object_id, str):
        opts.setdefault("object_id_str", object_id)
    return ObjectInvocationRequest(
        partition_id=partition_id,
        object_id=object_id if isinstance(object_id, int) else 0,
        cls_id=cls_id,
        fn_id=fn_id,
        options=opts,
        payload=payload,
    ).SerializeToString(deterministic=True)


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """The response, and whether a function answered at all (``False``: timeout, no
    function, undecodable reply; ``response`` then says why, as SYSTEM_ERROR)."""

    response: InvocationResponse
    answered: bool


def _failure(text: str) -> InvokeResult:
    return InvokeResult(
        InvocationResponse(status=ResponseStatus.SYSTEM_ERROR, payload=text.encode()), False
    )


def get_response(session: Any, key: str, body: bytes, timeout: float) -> InvokeResult:
    """Zenoh GET on ``key`` (blocking, at most ``timeout`` seconds)."""
    errors: list[str] = []
    for reply in session.get(key, payload=body, timeout=timeout):
        if reply.ok is not None:
            response = InvocationResponse()
            try:
                response.ParseFromString(reply.ok.payload.to_bytes())
            except DecodeError as err:
                return _failure(f"the reply on {key} is not an InvocationResponse: {err}")
            return InvokeResult(response, True)
        errors.append(reply.err.payload.to_bytes().decode(errors="replace"))
    if errors:
        return _failure(f"{'; '.join(errors)} after {timeout:g}s waiting for {key}")
    return _failure(f"no function answered on {key}")


def function_event(response: InvocationResponse) -> tuple[str, bytes | None]:
    """(index code, payload) of the function event a response stands for: ``fc`` with the
    output for OKAY, ``fe`` with the error text for anything else."""
    if response.status == ResponseStatus.OKAY:
        return "fc", response.payload if response.HasField("payload") else None
    if response.HasField("payload") and response.payload:
        return "fe", response.payload
    name = ResponseStatus.Name(response.status)
    return "fe", (response.headers.get("error") or name).encode()


def response_of(
    *, ok: bool | None, output: bytes | str | None, error: str | None
) -> InvocationResponse:
    """An ``InvocationResponse`` from the plain outcome of a function."""
    if ok is None:
        ok = error is None
    if isinstance(output, str):
        output = output.encode()
    if ok:
        response = InvocationResponse(status=ResponseStatus.OKAY)
        if output is not None:
            response.payload = output
        return response
    text = error or (output.decode(errors="replace") if output else "APP_ERROR")
    return InvocationResponse(
        status=ResponseStatus.APP_ERROR, payload=text.encode(), headers={"error": text}
    )


def new_invocation_id() -> str:
    return str(uuid.uuid4())
