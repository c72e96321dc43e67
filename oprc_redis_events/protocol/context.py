"""The cause of a write, checked where a store is given it: its depth and W3C trace context.

A write carries its depth (``d`` in the outbox entry; 0 for a user's own write) and an
optional W3C ``traceparent`` (``tp``).  The worker dead-letters an entry whose depth is not
a u63 and ignores a malformed traceparent, so both are refused up front, naming the value.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import InvalidValueError

__all__ = ["MAX_DEPTH", "check_depth", "check_traceparent", "valid_traceparent"]

#: depths are 0 <= depth < 2**63 (a signed 64-bit integer, as the platform counts them)
MAX_DEPTH: Final = 2**63 - 1

_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_EXAMPLE: Final = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def check_depth(depth: object) -> int:
    """``depth`` when it is an int in ``0..MAX_DEPTH``, else :class:`InvalidValueError`."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise InvalidValueError(f"depth must be an int, got {type(depth).__name__} {depth!r}")
    if not 0 <= depth <= MAX_DEPTH:
        raise InvalidValueError(f"depth {depth} is outside 0..{MAX_DEPTH} (2**63 - 1)")
    return depth


def check_traceparent(traceparent: object) -> str | None:
    """``traceparent`` when it is ``None`` or a valid W3C traceparent (lower-case hex
    ``version-traceid-parentid-flags``, version not ``ff``, ids not all zeros)."""
    if traceparent is None:
        return None
    if not isinstance(traceparent, str):
        raise InvalidValueError(
            f"traceparent must be a str or None, got {type(traceparent).__name__} {traceparent!r}"
        )
    match = _TRACEPARENT.fullmatch(traceparent)
    if (
        match is None
        or match.group(1) == "ff"
        or not match.group(2).strip("0")
        or not match.group(3).strip("0")
    ):
        raise InvalidValueError(
            f"traceparent {traceparent[:80]!r} is not a W3C traceparent; write e.g. {_EXAMPLE!r}"
            " (or None)"
        )
    return traceparent


def valid_traceparent(text: str | None) -> str | None:
    """``text`` when it is a valid W3C traceparent, else ``None``: a malformed one that
    arrives with a request is ignored, as W3C Trace Context says."""
    try:
        return check_traceparent(text)
    except InvalidValueError:
        return None
