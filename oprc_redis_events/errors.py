"""One exception root, a subclass per failure area.

Foreign errors (redis-py, zenoh, protobuf) are converted at the boundary with
``raise ... from err`` so callers only need to catch :class:`OprcEventsError`.
"""

from __future__ import annotations

__all__ = [
    "CaptureError",
    "ConfigError",
    "CorruptedStateError",
    "InvalidIdError",
    "InvalidTriggerError",
    "InvalidValueError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "OprcEventsError",
    "PermissionDeniedError",
    "RedisUnavailableError",
    "UnsupportedCommandError",
    "WriteOutcomeUnknownError",
    "ZenohUnavailableError",
]


class OprcEventsError(Exception):
    """Root of every error this package raises."""


class InvalidIdError(OprcEventsError, ValueError):
    """An id or field key cannot be used (empty, a special character, out of range)."""


class InvalidValueError(OprcEventsError, TypeError):
    """A field value has a type the store cannot keep."""


class InvalidTriggerError(OprcEventsError, ValueError):
    """A trigger configuration is malformed, names an invalid target or is too large."""


class ObjectExistsError(OprcEventsError):
    """``create`` was asked for an object that already exists."""


class ObjectNotFoundError(OprcEventsError, KeyError):
    """An operation that needs an existing object found none."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(OprcEventsError, ValueError):
    """A setting has a value that cannot be used."""


class PermissionDeniedError(OprcEventsError, PermissionError):
    """The Redis user lacks a permission its role needs (found by ``ACL DRYRUN`` before
    anything is done); the message names each command and key, and the rules to give."""


class CaptureError(OprcEventsError):
    """Keyspace capture failed again and again and stopped (the cause is chained)."""


class UnsupportedCommandError(OprcEventsError):
    """``EventedRedis`` refused a command that would change an object behind its events."""


class RedisUnavailableError(OprcEventsError, ConnectionError):
    """Redis could not be reached or refused the operation."""


class WriteOutcomeUnknownError(RedisUnavailableError):
    """A write got no reply from Redis (a timeout, a lost connection): it may or may not
    have been applied, with its triggers; read the object's version to find out."""


class CorruptedStateError(OprcEventsError):
    """Redis holds something unusable where an object's keys or its partition's outbox
    should be (a key of another type, a version that is not a number, an undecodable
    trigger configuration, an outbox out of stream ids).  A write is refused whole."""


class ZenohUnavailableError(OprcEventsError, ConnectionError):
    """A Zenoh session could not be opened or used."""
