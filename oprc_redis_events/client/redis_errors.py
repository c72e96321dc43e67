"""redis-py's errors turned into this package's, at the store's boundary (sync and asyncio).

A read that fails failed; a write that got no reply is different: Redis may have applied it
(and queued its triggers) before the timeout or the lost connection (and where redis-py sends
it, a client with a ``Retry`` re-sends a command that timed out, so it may even have run more
than once; the store's own calls on a plain client go out once: :mod:`..lua.direct`).  The
error says so, and how to find out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import redis

from ..errors import (
    CorruptedStateError,
    OprcEventsError,
    RedisUnavailableError,
    WriteOutcomeUnknownError,
)
from ..lua.direct import NotSentError
from ..lua.loader import locate, refusal

__all__ = ["WriteErrors", "redis_errors", "refused", "write_error", "write_errors"]


def refused(what: str, err: redis.ResponseError) -> OprcEventsError:
    """The error for a command Redis refused: a script's refusal names the broken key."""
    text = str(err)
    wrong = refusal(text)
    if wrong is not None:
        return CorruptedStateError(f"{what} refused, nothing was changed: {wrong}")
    return OprcEventsError(f"{what}: Redis refused the command ({locate(text)})")


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Convert redis-py's errors during a read into :class:`OprcEventsError` subclasses."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as err:
        raise RedisUnavailableError(f"{what}: Redis is unavailable ({err})") from err
    except redis.ResponseError as err:
        raise refused(what, err) from err


def _not_sent(err: redis.RedisError) -> bool:
    # redis-py could not connect (refused, timed out, authentication), or a direct call got
    # no connection from the pool: this attempt sent nothing.  redis-py's messages for the
    # first say "connecting to".
    if isinstance(err, (redis.AuthenticationError, NotSentError)):
        return True
    return "connecting to" in str(err)


def write_error(what: str, err: redis.RedisError) -> Exception:
    """The error a write raises for ``err`` (``err`` itself when it is none of ours): no
    reply means the outcome is unknown."""
    if isinstance(err, (redis.ConnectionError, redis.TimeoutError)):
        if _not_sent(err):
            return RedisUnavailableError(f"{what}: Redis is unavailable ({err})")
        return WriteOutcomeUnknownError(
            f"{what}: no reply from Redis ({err}), so the write may or may not have been "
            "applied, with its triggers: read the object's version (get) before writing again"
        )
    if isinstance(err, redis.ResponseError):
        return refused(what, err)
    return err


class WriteErrors:
    """:func:`write_errors` for one write of ``mode`` on ``ref`` (an ``ObjectRef``), whose
    text is spelled only when there is an error (the common case needs none)."""

    __slots__ = ("mode", "ref")

    def __init__(self, mode: str, ref: Any) -> None:
        self.mode, self.ref = mode, ref

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, err: BaseException | None, tb: object) -> Literal[False]:
        if not isinstance(err, redis.RedisError):
            return False
        mapped = write_error(f"{self.mode} {self.ref.describe()}", err)
        if mapped is err:
            return False
        raise mapped from err


@contextmanager
def write_errors(what: str) -> Iterator[None]:
    """Like :func:`redis_errors`, for a write (see :func:`write_error`)."""
    try:
        yield
    except redis.RedisError as err:
        mapped = write_error(what, err)
        if mapped is err:
            raise
        raise mapped from err
