"""What the demo owns in a Redis: its class names, its consumer group, and its keys.

In its private Redis the demo uses the plain names of the seed's example (``orders``,
``notification_service``, ...).  In a Redis it is given it uses names of its own
(``demo-orders``, ...) and the consumer group ``oprc-demo``: it refuses to start when any key
of those classes (or of that group) exists, and at the end deletes exactly the keys it made,
so an application's objects, outboxes and consumer groups are never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import redis

from ..connect.redis_client import redis_client
from ..errors import OprcEventsError
from ..pb.oprc_data_pb2 import ObjectEvent, TriggerTarget
from ..protocol.keys import PARTITIONS_KEY, PREFIX, PartitionKeys, workers_key

__all__ = ["DEMO_GROUP", "SHARED_PREFIX", "DemoNames", "owned_keys", "written_keys"]

DEMO_GROUP = "oprc-demo"
SHARED_PREFIX = "demo-"


@dataclass(frozen=True)
class DemoNames:
    """The demo's class names (every object and function of the demo is in partition 0)."""

    orders: str = "orders"
    counter: str = "counter"
    notify: str = "notification_service"
    audit: str = "audit_log"
    analytics: str = "analytics"

    @classmethod
    def prefixed(cls, prefix: str) -> DemoNames:
        plain = cls()
        return cls(*(prefix + getattr(plain, f.name) for f in fields(cls)))

    def classes(self) -> list[str]:
        return [getattr(self, f.name) for f in fields(self)]

    @property
    def send_notification(self) -> TriggerTarget:
        return TriggerTarget(cls_id=self.notify, partition_id=0, fn_id="send_notification")

    @property
    def record(self) -> TriggerTarget:
        return TriggerTarget(cls_id=self.audit, partition_id=0, object_id=1, fn_id="record")

    @property
    def track(self) -> TriggerTarget:
        return TriggerTarget(cls_id=self.analytics, partition_id=0, fn_id="track")

    @property
    def bump(self) -> TriggerTarget:
        return TriggerTarget(cls_id=self.counter, partition_id=0, object_id=1, fn_id="bump")

    def order_triggers(self) -> ObjectEvent:
        """Status (field 42) updates notify and are audited; a new or removed amount is
        tracked."""
        ev = ObjectEvent()
        ev.data_trigger[42].on_update.extend([self.send_notification, self.record])
        ev.data_trigger[42].on_create.append(self.record)
        ev.data_trigger_str["amount"].on_create.append(self.track)
        ev.data_trigger_str["amount"].on_delete.append(self.track)
        return ev


def _keys_of(client: redis.Redis, classes: list[str]) -> list[bytes]:
    found: list[bytes] = []
    for cls_id in classes:
        found += client.scan_iter(match=f"{PREFIX}:{PartitionKeys.of(cls_id, 0).tag}:*")
    return found


@contextlib.contextmanager
def owned_keys(
    url: str,
    classes: list[str],
    group: str,
    extra: Sequence[str] = (),
    *,
    tool: str = "demo",
    cluster: bool = False,
) -> Iterator[None]:
    """Refuse to start when a key of ``classes`` (partition 0), of ``group`` or one of the
    ``extra`` keys exists; at the end delete exactly those keys, and the classes' entries of
    the registry that were not there before.  With ``cluster`` the URL is a seed node of a
    Redis Cluster (the SCAN covers every primary)."""
    client = redis_client(url, cluster=cluster)
    try:
        taken = _keys_of(client, classes)
        taken += [k.encode() for k in (workers_key(group), *extra) if client.exists(k)]
        if taken:
            shown = ", ".join(k.decode(errors="replace") for k in sorted(taken)[:3])
            raise OprcEventsError(
                f"this Redis already has keys of the {tool}'s classes, consumer group or own "
                f"keys ({shown}{', ...' if len(taken) > 3 else ''}) and the {tool} touches "
                f"nothing it did not create: delete them (e.g. with redis-cli) if they are a "
                f"{tool}'s leftovers"
            )
        members = [PartitionKeys.of(c, 0).member for c in classes]
        registered = {m for m in members if client.sismember(PARTITIONS_KEY, m)}
        try:
            yield
        finally:
            client.unlink(*_keys_of(client, classes), workers_key(group), *extra)
            new = [m for m in members if m not in registered]
            if new:
                client.srem(PARTITIONS_KEY, *new)
    finally:
        client.close()


@contextlib.contextmanager
def written_keys(url: str, cls_id: str, *, cluster: bool = False) -> Iterator[None]:
    """The demo writer's keys: when it is interrupted (Ctrl-C, or SIGTERM made one) delete
    every key of its own class ``cls_id`` (partition 0) and its entry in the registry, so
    that the next demo finds none of them.  A writer that ends by itself (its count
    reached) leaves them for a worker to deliver its entries."""
    try:
        yield
    except KeyboardInterrupt:
        client = redis_client(url, cluster=cluster)
        try:
            keys = _keys_of(client, [cls_id])
            if keys:
                client.unlink(*keys)
            client.srem(PARTITIONS_KEY, PartitionKeys.of(cls_id, 0).member)
        finally:
            client.close()
        raise
