"""Example functions for ``oprc-redis-events serve`` (used by compose.yaml).

Each prints what it received and returns an output; run one with e.g.
``oprc-redis-events serve oprc_redis_events.functions.examples:send_notification --cls
notification_service --partition 0 --fn send_notification --zenoh-connect tcp/...``.
"""

from __future__ import annotations

import logging

from .host import InvocationContext

__all__ = ["record", "send_notification", "track"]

log = logging.getLogger("oprc_redis_events.functions.examples")


def _describe(ctx: InvocationContext) -> str:
    event = ctx.event
    if event is None:
        return f"direct invocation with {ctx.payload!r}"
    field = event.key if event.HasField("key") else event.key_str
    return (
        f"event {event.event_type} on {event.source_cls_id}/{event.source_partition_id}/"
        f"{event.source_object_id} field {field} = {ctx.value!r} (depth {ctx.depth})"
    )


def send_notification(ctx: InvocationContext) -> bytes:
    """Pretend to notify someone."""
    log.info("send_notification: %s", _describe(ctx))
    return b"notified"


def record(ctx: InvocationContext) -> bytes:
    """Append the change to the audit log object's ``entries`` counter."""
    log.info("record: %s", _describe(ctx))
    return b"recorded"


def track(ctx: InvocationContext) -> None:
    """Count the event for analytics."""
    log.info("track: %s", _describe(ctx))
