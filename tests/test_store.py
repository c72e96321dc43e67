"""ObjectStore through the real Lua write path on a real redis-server."""

from __future__ import annotations

import pytest
import redis

from oprc_redis_events import (
    InvalidIdError,
    InvalidTriggerError,
    InvalidValueError,
    ObjectEvent,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    Settings,
    TriggerTarget,
    ValData,
    ValType,
)
from oprc_redis_events.dev.servers import RedisServer

from .helpers import events, outbox, watch_all


def test_issue_example(store: ObjectStore, client: redis.Redis) -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(
        TriggerTarget(cls_id="notification_service", partition_id=0, fn_id="send_notification")
    )
    created = store.create("orders", 0, 1001, {42: b"pending"}, event=ev)
    assert created.entry_id is None and created.version == 1
    result = store.update("orders", 0, 1001, {42: b"paid"})
    assert result.events == 1 and result.entry_id is not None and result.version == 2
    assert events(client) == [("UPDATE", "42", b"paid")]
    [entry] = outbox(client)
    assert entry.object_segment == "1001" and entry.version == 2 and entry.depth == 0
    assert entry.events[0].targets[0].fn_id == "send_notification"
    assert client.smembers("oprc:partitions") == {b"orders:0"}


def test_semantics_table(store: ObjectStore, client: redis.Redis) -> None:
    store.create("orders", 0, 1, {1: b"a", "name": b"x"}, event=watch_all([1, 2, "name"]))
    store.update("orders", 0, 1, {1: b"a"})  # unchanged: nothing
    store.update("orders", 0, 1, {1: b"b", 2: b"new"})  # UPDATE 1, CREATE 2
    store.update("orders", 0, 1, {1: ValData(data=b"b", type=ValType.VAL_TYPE_CRDT_MAP)})
    store.delete_fields("orders", 0, 1, [2, 3])  # DELETE 2 (3 is absent)
    store.replace("orders", 0, 1, {1: b"c"})  # UPDATE 1, DELETE name
    assert store.delete("orders", 0, 1) is True  # DELETE 1
    assert store.delete("orders", 0, 1) is False
    assert events(client) == [
        ("CREATE", "1", b"a"),
        ("CREATE", "name", b"x"),
        ("UPDATE", "1", b"b"),
        ("CREATE", "2", b"new"),
        ("UPDATE", "1", b"b"),
        ("DELETE", "2", None),
        ("UPDATE", "1", b"c"),
        ("DELETE", "name", None),
        ("DELETE", "1", None),
    ]
    assert store.get("orders", 0, 1) is None
    assert client.keys("oprc:{orders:0}:obj:*") == []
    assert client.keys("oprc:{orders:0}:meta:*") == []


def test_only_matching_events_are_queued(store: ObjectStore, client: redis.Redis) -> None:
    ev = ObjectEvent()
    ev.data_trigger[1].on_delete.append(TriggerTarget(cls_id="s", partition_id=0, fn_id="f"))
    store.create("orders", 0, 2, {1: b"a", 2: b"b"}, event=ev)
    assert store.update("orders", 0, 2, {1: b"z", 2: b"y"}).entry_id is None
    assert client.xlen("oprc:{orders:0}:outbox") == 0
    store.delete_fields("orders", 0, 2, [1, 2])
    assert events(client) == [("DELETE", "1", None)]


def test_get_and_triggers(store: ObjectStore) -> None:
    ev = watch_all(["name"])
    store.create("orders", 0, "user-1", {"name": "Ann", 5: b"\x00\xff"}, event=ev)
    record = store.get("orders", 0, "user-1")
    assert record is not None
    assert record.object_id == "user-1" and record.version == 1
    assert record.entries == {"name": b"Ann", 5: b"\x00\xff"}
    assert record.event == ev
    assert record.metadata.cls_id == "orders" and record.metadata.object_id_str == "user-1"
    data = record.to_obj_data()
    assert data.metadata.object_id_str == "user-1"
    assert data.entries[5].data == b"\x00\xff" and data.entries_str["name"].data == b"Ann"
    assert store.get_triggers("orders", 0, "user-1") == ev
    store.set_triggers("orders", 0, "user-1", None)
    assert store.get_triggers("orders", 0, "user-1") == ObjectEvent()
    assert store.get("orders", 0, "missing") is None
    with pytest.raises(ObjectNotFoundError, match="orders/0/missing does not exist"):
        store.get_triggers("orders", 0, "missing")


def test_set_triggers_replaces_the_index(store: ObjectStore, client: redis.Redis) -> None:
    store.create("orders", 0, 3, {1: b"a"}, event=watch_all([1], fn="old"))
    store.set_triggers("orders", 0, 3, watch_all([2], fn="new"))
    store.update("orders", 0, 3, {1: b"b", 2: b"c"})
    assert events(client) == [("CREATE", "1", b"a"), ("CREATE", "2", b"c")]
    meta = client.hkeys("oprc:{orders:0}:meta:3")
    assert not any(k.startswith(b"t:") and k.endswith(b":1") for k in meta)


def test_create_existing_and_update_missing_change_nothing(
    store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 4, {1: b"a"}, event=watch_all([1]))
    before = store.get("orders", 0, 4)
    with pytest.raises(ObjectExistsError, match="orders/0/4 already exists"):
        store.create("orders", 0, 4, {1: b"b"}, event=watch_all([2]))
    assert store.get("orders", 0, 4) == before
    with pytest.raises(ObjectNotFoundError, match="does not exist"):
        store.update("orders", 0, 5, {1: b"a"})
    with pytest.raises(ObjectNotFoundError):
        store.delete_fields("orders", 0, 5, [1])
    with pytest.raises(ObjectNotFoundError):
        store.set_triggers("orders", 0, 5, watch_all([1]))
    assert not client.exists("oprc:{orders:0}:obj:5", "oprc:{orders:0}:meta:5")
    assert events(client) == [("CREATE", "1", b"a")]
    store.upsert("orders", 0, 5, {1: b"u"})
    assert store.get("orders", 0, 5).entries == {1: b"u"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.update("orders", 0, 6, {1: 5}), InvalidValueError, "field 1 must be bytes"),
        (lambda s: s.update("orders", 0, 6, {1: None}), InvalidValueError, "got NoneType"),
        (lambda s: s.update("orders", 0, 6, {-1: b"x"}), InvalidIdError, "outside"),
        (lambda s: s.update("orders", 0, 6, {"a b": b"x"}), InvalidIdError, "contains ' '"),
        (lambda s: s.update("orders", 0, 6, [b"x"]), InvalidValueError, "mapping"),
        (lambda s: s.update("orders/x", 0, 6, {1: b"x"}), InvalidIdError, "'orders/x'"),
        (lambda s: s.update("orders", 0, "a*", {1: b"x"}), InvalidIdError, "'a\\*'"),
        (lambda s: s.update("orders", 0, 6.0, {1: b"x"}), InvalidIdError, "float"),
        (
            lambda s: s.set_triggers("orders", 0, 6, b"\xff\xff"),
            InvalidTriggerError,
            "not an ObjectEvent",
        ),
        (
            lambda s: s.set_triggers("orders", 0, 6, {"x": 1}),
            InvalidTriggerError,
            "must be an ObjectEvent",
        ),
        (lambda s: s.delete_fields("orders", 0, 6, 1), InvalidIdError, "list of keys"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(
    store: ObjectStore, call, error, message
) -> None:  # type: ignore[no-untyped-def]
    store.create("orders", 0, 6, {1: b"keep"}, event=watch_all([1]))
    before = store.get("orders", 0, 6)
    with pytest.raises(error, match=message):
        call(store)
    assert store.get("orders", 0, 6) == before


def test_invalid_trigger_on_create_creates_nothing(store: ObjectStore, client: redis.Redis) -> None:
    ev = ObjectEvent()
    ev.data_trigger[1].on_create.append(TriggerTarget(cls_id="bad/cls", partition_id=0, fn_id="f"))
    with pytest.raises(InvalidTriggerError, match="'bad/cls' contains '/'"):
        store.create("orders", 0, 7, {1: b"x"}, event=ev)
    assert store.get("orders", 0, 7) is None
    assert client.dbsize() == 0


def test_events_disabled_means_plain_writes(redis_url: str, client: redis.Redis) -> None:
    store = ObjectStore(
        redis.Redis.from_url(redis_url),
        Settings.from_env({"ODGM_EVENTS_ENABLED": "false"}, redis_url=redis_url),
    )
    store.create("orders", 0, 8, {1: b"a"}, event=watch_all([1]))
    store.update("orders", 0, 8, {1: b"b"})
    store.delete("orders", 0, 8)
    store.close()
    assert client.exists("oprc:{orders:0}:outbox") == 0


def test_large_writes(store: ObjectStore, client: redis.Redis) -> None:
    ev = ObjectEvent()
    target = TriggerTarget(cls_id="s", partition_id=0, fn_id="f")
    for key in range(600):
        ev.data_trigger[key].on_create.append(target)
    for key in range(400):
        ev.data_trigger[key].on_delete.append(target)
    result = store.create("orders", 0, 9, {k: b"v" for k in range(3000)}, event=ev)
    assert result.events == 600
    assert client.xlen("oprc:{orders:0}:outbox") == 2  # split 500 + 100
    assert len(store.get("orders", 0, 9).entries) == 3000  # type: ignore[union-attr]
    assert store.delete("orders", 0, 9)
    found = events(client)
    assert len(found) == 1000
    assert sorted(int(k) for t, k, _ in found if t == "DELETE") == list(range(400))


def test_script_flush_and_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with RedisServer(extra=["--appendonly", "yes"], directory=str(tmp_path)) as server:
        store = ObjectStore.from_url(server.url)
        store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
        store.client.script_flush()
        assert store.update("orders", 0, 1, {1: b"b"}).events == 1
        server.kill()
        server.start()
        assert store.update("orders", 0, 1, {1: b"c"}).events == 1
        assert [e[2] for e in events(store.client)] == [b"a", b"b", b"c"]
        store.close()


def test_existed_says_whether_the_object_was_there_before(store: ObjectStore) -> None:
    assert store.create("orders", 0, 10, {1: b"a"}).existed is False
    assert store.update("orders", 0, 10, {1: b"b"}).existed is True
    assert store.upsert("orders", 0, 11, {1: b"a"}).existed is False  # the upsert created it
    assert store.upsert("orders", 0, 11, {1: b"b"}).existed is True
    assert store.replace("orders", 0, 12, {1: b"a"}).existed is False
    assert store.replace("orders", 0, 12, {2: b"a"}).existed is True
    assert store.set_triggers("orders", 0, 12, watch_all([1])).existed is True
    assert store.delete_fields("orders", 0, 12, [2]).existed is True
    assert store.delete("orders", 0, 12) is True and store.delete("orders", 0, 12) is False
