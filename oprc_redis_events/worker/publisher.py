"""The edge to Zenoh, behind a small interface.

:class:`Publisher` is what the worker needs: put bytes on a key.  :class:`ZenohPublisher`
does it on a Zenoh session with congestion control BLOCK (DROP, Zenoh's default, loses
messages under load); :class:`MemoryPublisher` records puts for tests of the layers above.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from ..client.invoke import InvokeResult, get_response
from ..errors import ZenohUnavailableError
from ..pb.oprc_invoke_pb2 import InvocationResponse, ResponseStatus

__all__ = ["MemoryPublisher", "Publisher", "ZenohPublisher"]


class Publisher(Protocol):
    def put(self, key: str, payload: bytes) -> None:
        """Hand one message to the transport (raise on failure)."""

    def matching(self, key: str) -> bool:
        """Whether some subscriber would receive a put on ``key`` (for hold mode)."""

    def invoke(self, key: str, payload: bytes, timeout: float) -> InvokeResult:
        """A GET on an invoke key, waiting at most ``timeout`` s for the response."""

    def close(self) -> None:
        """Release what the publisher holds."""


class ZenohPublisher:
    """Puts on a Zenoh session (which it closes only when it opened it)."""

    def __init__(self, session: Any, *, owned: bool = False) -> None:
        import zenoh

        self.session = session
        self._owned = owned
        self._block = zenoh.CongestionControl.BLOCK
        self._zerror = zenoh.ZError
        self._matchers: dict[str, Any] = {}

    def put(self, key: str, payload: bytes) -> None:
        try:
            self.session.put(key, payload, congestion_control=self._block)
        except self._zerror as err:
            raise ZenohUnavailableError(f"Zenoh put on {key!r} failed: {err}") from err

    def invoke(self, key: str, payload: bytes, timeout: float) -> InvokeResult:
        try:
            return get_response(self.session, key, payload, timeout)
        except self._zerror as err:
            raise ZenohUnavailableError(f"Zenoh get on {key!r} failed: {err}") from err

    def matching(self, key: str) -> bool:
        # A publisher on the key with its last chunk (the invocation id) as a wildcard
        # tells whether any subscriber matches; publishers are cached per prefix.
        pattern = key.rsplit("/", 1)[0] + "/*"
        publisher = self._matchers.get(pattern)
        if publisher is None:
            if len(self._matchers) >= 4096:
                self._matchers.pop(next(iter(self._matchers))).undeclare()
            publisher = self.session.declare_publisher(pattern)
            self._matchers[pattern] = publisher
        return bool(publisher.matching_status.matching)

    def close(self) -> None:
        for publisher in self._matchers.values():
            publisher.undeclare()
        self._matchers.clear()
        if self._owned:
            self.session.close()


class MemoryPublisher:
    """Records every put in :attr:`sent`, in order; thread-safe."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.subscribed = True  # what matching() answers
        self.invoked: list[tuple[str, bytes]] = []
        #: answers invoke(); the default answers OKAY with no output
        self.responder: Callable[[str, bytes], InvokeResult] = lambda key, body: InvokeResult(
            InvocationResponse(status=ResponseStatus.OKAY), True
        )
        self._lock = threading.Lock()

    def invoke(self, key: str, payload: bytes, timeout: float) -> InvokeResult:
        with self._lock:
            self.invoked.append((key, payload))
        return self.responder(key, payload)

    def matching(self, key: str) -> bool:
        return self.subscribed

    def put(self, key: str, payload: bytes) -> None:
        with self._lock:
            self.sent.append((key, payload))

    def close(self) -> None:
        pass
