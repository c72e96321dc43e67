"""write.lua's quick path (updates and upserts of an existing object) does exactly what its
general path does: the same replies, errors, object, meta hash and outbox entries, for
random writes (one field or several, value types, targets that need the old value, events
disabled, the runtime switch off, a traceparent, batches), compared with the script with its
quick path turned off."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oprc_redis_events import ObjectStore, Settings, ValData
from oprc_redis_events.client.core import WriteResult
from oprc_redis_events.lua.loader import source
from oprc_redis_events.pb.oprc_data_pb2 import ObjectEvent, TriggerTarget
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.switch import SWITCH_KEY

QUICK_LINE = "local quick_on = not capturing"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
KEYS = PartitionKeys.of("orders", 0)
FIELD_KEYS: list[int | str] = [1, 2, "a", "b"]
VALUES = st.sampled_from(
    [b"x", b"y", b"", ValData(data=b"x", type=1), ValData(data=b"y", type=0)]  # type: ignore[arg-type]
)
FIELDS = st.dictionaries(st.sampled_from(FIELD_KEYS), VALUES, max_size=4)
WRITERS = st.sampled_from(["events", "disabled", "traced", "switched"])
OPS = st.one_of(
    st.tuples(WRITERS, st.sampled_from(["update", "upsert", "batch"]), FIELDS),
    st.tuples(WRITERS, st.sampled_from(["create", "replace"]), FIELDS),
    st.tuples(WRITERS, st.just("delete_fields"), st.lists(st.sampled_from(FIELD_KEYS))),
)


def config() -> ObjectEvent:
    """Field 1: plain targets; "a": targets that need the old value; "b": its creation
    (plain) and its updates (the old value); field 2: none."""
    ev = ObjectEvent()
    old = {"oprc.include_old": "true"}
    for name in ("on_create", "on_update"):
        getattr(ev.data_trigger[1], name).append(TriggerTarget(cls_id="svc", fn_id="f"))
        target = TriggerTarget(cls_id="svc", fn_id="g", req_options=old)
        getattr(ev.data_trigger_str["a"], name).append(target)
    ev.data_trigger_str["b"].on_create.append(TriggerTarget(cls_id="svc", fn_id="h"))
    later = TriggerTarget(cls_id="svc", fn_id="i", req_options=old)
    ev.data_trigger_str["b"].on_update.append(later)
    return ev


def writers(client: redis.Redis, general: bool) -> dict[str, ObjectStore]:
    out = {
        "events": ObjectStore(client, Settings.from_env({})),
        "disabled": ObjectStore(client, Settings.from_env({}, events_enabled=False)),
    }
    out["traced"] = out["events"].with_context(depth=1, traceparent=TRACEPARENT)
    out["switched"] = out["events"]  # with the runtime switch off for the class (see run)
    if general:
        text = source("write")
        assert QUICK_LINE in text
        script = client.register_script(text.replace(QUICK_LINE, "local quick_on = false"))
        for store in out.values():
            store._write = script  # type: ignore[attr-defined]
    return out


@pytest.fixture
def pair(redis_url: str) -> Iterator[list[dict[str, ObjectStore]]]:
    base = redis_url.rsplit("/", 1)[0]
    clients = [redis.Redis.from_url(f"{base}/{db}") for db in (0, 1)]
    yield [writers(clients[0], general=False), writers(clients[1], general=True)]
    for c in clients:
        c.close()


def outcome(result: Any) -> Any:
    """A write's result, its entry id (which differs between the two sides) as a bool."""
    if isinstance(result, WriteResult):
        return dataclasses.replace(result, entry_id=str(result.entry_id is not None))
    return type(result).__name__, str(result)


def run(store: ObjectStore, op: str, arg: Any, *, switched: bool = False) -> Any:
    if switched:
        store.client.hset(SWITCH_KEY, "orders", "off")
    try:
        return _run(store, op, arg)
    finally:
        if switched:
            store.client.delete(SWITCH_KEY)


def _run(store: ObjectStore, op: str, arg: Any) -> Any:
    try:
        if op == "create":
            return outcome(store.create("orders", 0, 1, arg, event=config()))
        if op == "delete_fields":
            return outcome(store.delete_fields("orders", 0, 1, arg))
        if op == "batch":  # two writes in one script call
            batch = store.batch()
            batch.update("orders", 0, 1, arg)
            batch.upsert("orders", 0, 1, {**arg, "b": b"z"})
            return [outcome(r) for r in batch.execute(raise_on_error=False)]
        return outcome(getattr(store, op)("orders", 0, 1, arg))
    except Exception as err:  # the same error on both sides
        return outcome(err)


def state(client: redis.Redis) -> Any:
    entries = [  # the fields in their order, but the time
        [(k, v) for k, v in fields.items() if k != b"ts"]
        for _, fields in client.xrange(KEYS.outbox)  # type: ignore[union-attr]
    ]
    return client.hgetall(KEYS.obj("1")), client.hgetall(KEYS.meta("1")), entries


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(OPS, min_size=1, max_size=10))
@example(  # several events in one entry, the later ones with the old value
    [
        ("events", "create", {1: b"x", "a": b"x", "b": b"x"}),
        ("traced", "update", {1: b"y", "a": b"y", "b": b"y", 2: b"y"}),
        ("events", "batch", {"b": ValData(data=b"y", type=1), "a": b"x"}),  # type: ignore[arg-type]
    ]
)
def test_the_quick_path_writes_what_the_general_path_writes(
    pair: list[dict[str, ObjectStore]], ops: list[tuple[str, str, Any]]
) -> None:
    quick, general = pair
    for stores in pair:
        stores["events"].client.flushdb()
    for writer, op, arg in ops:
        switched = writer == "switched"
        got = run(quick[writer], op, arg, switched=switched)
        assert got == run(general[writer], op, arg, switched=switched), (writer, op, arg)
        assert state(quick[writer].client) == state(general[writer].client), (writer, op, arg)
