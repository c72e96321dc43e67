"""The runtime switch (``events off|on|status [--cls C]``): event production turned off and
on for every writer at once, read by the write script in the same call as the write."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from oprc_redis_events import CorruptedStateError, EventedRedis, ObjectStore, Settings
from oprc_redis_events.cli.main import main
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.switch import (
    SLOTS,
    SWITCH_KEY,
    SwitchState,
    generate_slot_tags,
    slot_tag,
    switch_key,
    switch_keys,
)
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, events, watch_all
from .test_capture import KEY, received, redis_cli


def cli(url: str, *args: str, cluster: bool = False) -> Result:
    more = ["--cluster"] if cluster else []
    return CliRunner().invoke(main, ["events", *args, "--redis-url", url, *more])


@pytest.mark.quick
def test_the_slot_tags_file_is_the_generated_table() -> None:
    from importlib import resources

    shipped = resources.files("oprc_redis_events.protocol").joinpath("slot_tags.txt")
    assert shipped.read_text("ascii").strip() == generate_slot_tags()
    assert all(key_slot(switch_key_of_slot(s).encode()) == s for s in range(SLOTS))


def switch_key_of_slot(slot: int) -> str:
    return f"{SWITCH_KEY}:{{{slot_tag(slot)}}}"


@pytest.mark.quick
@given(
    st.text(st.characters(codec="utf-8", exclude_characters="/*$#?{}"), min_size=1),
    st.integers(0, 2**32 - 1),
)
def test_a_partition_reads_the_copy_of_its_own_slot(cls_id: str, pid: int) -> None:
    try:
        keys = PartitionKeys.of(cls_id, pid)
    except Exception:
        return  # not a valid class id (whitespace, control characters)
    copy = switch_key(keys, cluster=True)
    assert key_slot(copy.encode()) == key_slot(keys.outbox.encode())
    assert copy in switch_keys(cluster=True)
    assert switch_key(keys, cluster=False) == SWITCH_KEY == switch_keys(cluster=False)[0]


@pytest.mark.quick
def test_the_state_of_the_copies() -> None:
    state = SwitchState.read([{b"*": b"off"}, {"*": "off"}])
    assert state.is_off() and state.is_off("a") and state.disagreeing == 0
    state = SwitchState.read([{}, {b"a": b"off"}, {b"a": b"off"}])
    assert not state.is_off() and state.is_off("a") and not state.is_off("b")
    assert state.disagreeing == 1 and state.copies == 3
    assert not SwitchState.read([]).is_off("a")
    assert SwitchState.read([{b"a": b"on"}]).off == frozenset()


def test_off_on_and_status_for_writers(
    store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    store.create("orders", 0, 1, {"s": b"a"}, event=watch_all(["s"]))
    store.create("users", 0, 1, {"s": b"a"}, event=watch_all(["s"]))
    before = len(events(client))
    assert cli(redis_url, "status").output == "events: on\n"
    assert cli(redis_url, "off", "--cls", "orders").output == "events for class orders: off\n"
    assert cli(redis_url, "status").output == "events: off for class orders; on for the others\n"
    assert cli(redis_url, "status", "--cls", "orders,users").output == (
        "events for class orders: off\nevents for class users: on\n"
    )
    off = store.update("orders", 0, 1, {"s": b"b"})
    assert off.entry_id is None and off.version == 2  # written, no event
    assert store.update("orders", 0, 1, {"s": b"b2", "t": b"x"}).entry_id is None  # several
    assert store.update("users", 0, 1, {"s": b"b"}).entry_id is not None
    wrapped = EventedRedis(client)
    with wrapped.pipeline() as pipe:  # one batch call of the write script
        pipe.hset(KEY, "s", "c")
        pipe.hset(KEY, "t", "d")
        pipe.execute()
    assert client.hgetall(KEY) == {b"s": b"c", b"t": b"d"}
    assert len(events(client)) == before  # orders queued nothing
    assert cli(redis_url, "off").output == "events: off\n"
    explained = CliRunner().invoke(
        main, ["explain", "orders", "0", "1", "s=z", "--redis-url", redis_url]
    )
    assert "events are off for class orders" in explained.output
    assert store.update("users", 0, 1, {"s": b"c"}).entry_id is None
    result = cli(redis_url, "on", "--cls", "users")
    assert result.output.startswith("events for class users: off\n")  # all are off
    assert "still off for every class" in result.output
    assert cli(redis_url, "on").output == "events: on\n"
    assert not client.exists(SWITCH_KEY)  # the common path costs nothing again
    assert store.update("orders", 0, 1, {"s": b"e"}).entry_id is not None
    assert events(client)[-1] == ("UPDATE", "s", b"e")


def test_a_switch_of_the_wrong_type_refuses_writes(
    store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    store.create("orders", 0, 1, {"s": b"a"})
    client.set(SWITCH_KEY, "off")
    with pytest.raises(CorruptedStateError, match="oprc:switch"):
        store.update("orders", 0, 1, {"s": b"b"})
    assert client.hgetall(KEY) == {b"s": b"a"}  # nothing written
    status = cli(redis_url, "status")
    assert status.exit_code == 1
    message = "Error: oprc:switch (the runtime switch) is not a hash: fix or delete it\n"
    assert status.output == message
    explained = CliRunner().invoke(
        main, ["explain", "orders", "0", "1", "s=z", "--redis-url", redis_url]
    )
    assert explained.exit_code == 1 and explained.output.endswith(message), explained.output
    client.delete(SWITCH_KEY)


def test_cls_given_empty_is_refused_and_repeats_count_once(redis_url: str) -> None:
    for empty in ("", ",", " "):
        result = cli(redis_url, "off", "--cls", empty)
        assert result.exit_code == 2 and "no class given" in result.output, result.output
    assert cli(redis_url, "status").output == "events: on\n"  # nothing was turned off
    assert cli(redis_url, "off", "--cls", "a,b", "--cls", "a").output == (
        "events for class a: off\nevents for class b: off\n"
    )
    assert cli(redis_url, "status").output == "events: off for classes a, b; on for the others\n"
    assert cli(redis_url, "on").exit_code == 0


def test_capture_reports_nothing_while_off(
    store: ObjectStore, settings: Settings, client: redis.Redis, redis_url: str
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1, 2]))
    capture = settings.replace(capture="keyspace")

    def burst() -> list[object]:
        publisher = MemoryPublisher()
        asyncio.run(Worker(capture, publisher=publisher).run_async(burst=True))
        return received(publisher)

    burst()  # the baseline: the shadows exist
    assert cli(redis_url, "off").exit_code == 0
    redis_cli(redis_url, "HSET", KEY, "1", "changed-while-off")
    assert burst() == []
    assert cli(redis_url, "on").exit_code == 0
    assert burst() == []  # what changed while off is not reported later
    redis_cli(redis_url, "HSET", KEY, "2", "new")
    assert burst() == [("DATA_CREATE", 2, b"new")]


def test_nothing_reaches_zenoh_while_off(
    store: ObjectStore, settings: Settings, zenoh_hub: ZenohHub, redis_url: str
) -> None:
    store.create("orders", 0, 1, {"s": b"0"}, event=watch_all(["s"]))
    inbox = zenoh_hub.subscribe("oprc/svc/**")
    worker = Worker(
        settings, publisher=ZenohPublisher(zenoh_hub.session()), block_ms=20, discover_interval=0.05
    )
    running = RunningWorker(worker)
    try:
        assert cli(redis_url, "off").exit_code == 0
        for i in range(1, 4):
            store.update("orders", 0, 1, {"s": str(i).encode()})
        assert cli(redis_url, "on").exit_code == 0
        store.update("orders", 0, 1, {"s": b"on"})
        got = inbox.wait_for(2)
        time.sleep(0.3)  # anything else would arrive by now
    finally:
        running.stop()
    assert [t.payload.original_payload for t in got] == [b"0", b"on"]  # the create, then "on"


def test_cluster_every_slot_has_its_copy(cluster_url: str) -> None:
    store = ObjectStore.from_url(cluster_url, cluster=True)
    try:
        for pid in range(6):  # partitions on every primary
            store.create("orders", pid, 1, {"s": b"a"}, event=watch_all(["s"]))
        assert cli(cluster_url, "off", "--cls", "orders", cluster=True).exit_code == 0
        for pid in range(6):
            assert store.update("orders", pid, 1, {"s": b"b"}).entry_id is None
        assert store.create("orders", 99, 1, {"s": b"a"}, event=watch_all(["s"])).entry_id is None
        seed = store.client
        seed.delete(switch_key_of_slot(0))  # an interrupted command leaves copies that disagree
        plain = cli(cluster_url, "off")  # without --cluster
        assert plain.exit_code == 1 and "pass --cluster" in plain.output
        result = cli(cluster_url, "status", cluster=True)
        assert result.exit_code == 1 and "1 of 16384 slots differ" in result.output
        assert "with the same --cls" in result.output
        assert cli(cluster_url, "on", cluster=True).output == "events: on\n"
        assert store.update("orders", 0, 1, {"s": b"c"}).entry_id is not None
    finally:
        store.close()
