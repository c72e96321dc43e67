"""Which objects have a function running on them, invoked by this worker, at which depth.

The ODGM data API carries no trigger depth (the platform's SDK sends no attachment and no
source info with its GET, set and DELETE), so a function served by the SDK that writes the
object it runs on would loop past ``max_trigger_depth``.  But when the worker serving the
data API is the one that invoked the function (``invoke`` delivery), it knows: a GET on
``oprc/{cls}/{pid}/objects/{oid}/invokes/{fn}`` is in flight, carrying the event's depth
and traceparent in its options.  :class:`TrackingPublisher` records those while they last;
the data API gives a write to such an object that depth + 1 and that trace, as the
function host does for its functions' writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from ..client.invoke import InvokeResult
from ..pb.oprc_invoke_pb2 import ObjectInvocationRequest
from ..protocol import zenoh_keys
from ..protocol.context import valid_traceparent

__all__ = ["Cause", "InFlight", "TrackingPublisher"]

ObjectKey = tuple[str, int, str]  # (cls, partition, object id as spelled in keys)


@dataclass(frozen=True, slots=True)
class Cause:
    """The invocation a write is assumed to come from: its depth and trace."""

    depth: int
    traceparent: str | None


class InFlight:
    """Stateful invocations in flight, per object (thread-safe: GETs run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[ObjectKey, list[Cause]] = {}

    @contextmanager
    def invoking(self, key: str, body: bytes) -> Iterator[None]:
        """Record the invocation GET on ``key`` (with request ``body``) while it runs."""
        found = _parse(key, body)
        if found is None:
            yield
            return
        obj, cause = found
        with self._lock:
            self._calls.setdefault(obj, []).append(cause)
        try:
            yield
        finally:
            with self._lock:
                calls = self._calls[obj]
                calls.remove(cause)
                if not calls:
                    del self._calls[obj]

    def cause(self, cls_id: str, partition_id: int, segment: str) -> Cause | None:
        """The deepest invocation running on that object, if any."""
        with self._lock:
            calls = self._calls.get((cls_id, partition_id, segment))
            return max(calls, key=lambda c: c.depth) if calls else None


def _parse(key: str, body: bytes) -> tuple[ObjectKey, Cause] | None:
    parts = zenoh_keys.parse_key(key)
    if parts is None or parts.object_segment is None or not parts.partition.isdecimal():
        return None
    try:
        options = ObjectInvocationRequest.FromString(body).options
        depth = int(options.get("depth", "0"))
    except (DecodeError, ValueError):
        return None
    obj = (parts.cls_id, int(parts.partition), parts.object_segment)
    return obj, Cause(max(depth, 0), valid_traceparent(options.get("traceparent")))


class TrackingPublisher:
    """A publisher whose invocation GETs are recorded in an :class:`InFlight`."""

    def __init__(self, inner: Any, inflight: InFlight) -> None:
        self.inner = inner
        self.inflight = inflight

    def invoke(self, key: str, payload: bytes, timeout: float) -> InvokeResult:
        with self.inflight.invoking(key, payload):
            result: InvokeResult = self.inner.invoke(key, payload, timeout)
            return result

    def put(self, key: str, payload: bytes) -> None:
        self.inner.put(key, payload)

    def matching(self, key: str) -> bool:
        return bool(self.inner.matching(key))

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # session, sent, ...: the inner publisher's
        return getattr(self.inner, name)
