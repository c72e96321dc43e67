"""No forged targets: trigger targets read back from Redis (the trigger index written by
hand, a configuration ``ev`` copied into it, the ``t<i>`` of an outbox entry) are checked
again by the worker with the API's own rule; a forged one is dead-lettered with its reason,
counted, and never published, while the good targets of the same event are delivered."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
import redis
import redis.asyncio

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.errors import InvalidIdError, InvalidTriggerError
from oprc_redis_events.protocol.encode import build_dispatch
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.limits import Limits
from oprc_redis_events.protocol.outbox import decode_entry
from oprc_redis_events.protocol.triggers import (
    Target,
    UnreadableTarget,
    build_index,
    check_target,
    coerce_event,
    decode_targets,
    encode_targets,
)
from oprc_redis_events.worker.deadletters import replay
from oprc_redis_events.worker.dispatch import Plan, forged_letters, screened
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.metrics import WorkerCollector
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher
from oprc_redis_events.worker.stats import WorkerStats

from .conftest import ZenohHub
from .helpers import RunningWorker

GOOD = Target("svc", 0, None, None, "good", {})

#: (target written by hand, a word its reason names)
FORGED: list[tuple[Target, str]] = [
    (Target("svc", 0, None, None, "**", {}), "'*'"),
    (Target("a/b", 0, None, None, "f", {}), "'/'"),
    (Target("svc", 0, None, None, "$*", {}), "'$'"),
    (Target("svc", 0, None, None, "f?", {}), "'?'"),
    (Target("svc", 0, None, None, "f#", {}), "'#'"),
    (Target("svc", 0, None, None, "", {}), "must not be empty"),
    (Target("svc", 0, None, None, "f" * 300, {}), "longer than"),
    (Target("svc", 0, None, "a*", "f", {}), "'*'"),
    (Target("svc", 2**40, None, None, "f", {}), "partition_id"),
    (Target("svc", 0, None, None, "f", {"oprc.delivery": "smtp"}), "oprc.delivery"),
]

#: a target whose fn_id is not UTF-8 (msgpack written by hand): array of 6, fn_id b"f\xff"
NOT_UTF8 = b"\x96\xa3svc\x00\xc0\xc0\xa2f\xff\x80"


def _forged_blob() -> bytes:
    """GOOD, every FORGED target, a non-UTF-8 one, GOOD again: as a hand-written index."""
    items = [GOOD, *[t for t, _ in FORGED]]
    raw = [msgspec.Raw(msgspec.msgpack.encode(t)) for t in items]
    return msgspec.msgpack.encode([*raw, msgspec.Raw(NOT_UTF8), raw[0]])


@pytest.mark.quick
@pytest.mark.parametrize(("target", "word"), FORGED, ids=lambda v: repr(v)[:30])
def test_the_worker_applies_the_api_rule(target: Target, word: str) -> None:
    with pytest.raises(InvalidIdError, match=word.replace("$", r"\$").replace("?", r"\?")):
        check_target(target)


@pytest.mark.quick
def test_a_target_that_does_not_decode_keeps_its_place() -> None:
    targets = decode_targets(_forged_blob())
    assert targets[0] == targets[-1] == GOOD and len(targets) == len(FORGED) + 3
    assert isinstance(targets[-2], UnreadableTarget)
    with pytest.raises(InvalidIdError, match="not UTF-8"):
        check_target(targets[-2])


@pytest.mark.quick
def test_only_forged_targets_are_dead_lettered_and_counted() -> None:
    keys = PartitionKeys.of("orders", 0)
    blob = _forged_blob()
    fields = {b"o": b"1", b"v": b"2", b"d": b"0", b"ts": b"1", b"n": b"2"}
    fields |= {b"e1": b"4", b"k1": b"42", b"p1": b"x", b"t1": blob}
    fields |= {b"e2": b"4", b"k2": b"n", b"p2": b"y", b"t2": encode_targets([GOOD])}
    entry = decode_entry(keys, "5-0", fields)
    dispatches, forged = screened(entry, lambda event, i: build_dispatch(entry, event, i), Limits())
    assert [(d.event_id[-1], d.target) for d in dispatches] == [
        ("1", GOOD),
        ("1", GOOD),
        ("2", GOOD),
    ]
    assert [i for _, i, _ in forged] == list(range(1, len(FORGED) + 2))
    stats = WorkerStats()
    plan = Plan("5-0", fields, entry, [], forged)
    earlier = ("4-0", {}, "earlier", "", 1)
    [first, (entry_id, letter, reason, _, _)] = forged_letters([earlier], [plan], stats)
    assert first == earlier and entry_id == "5-0" and stats.forged_targets == len(FORGED) + 1
    assert reason.startswith("cannot be dispatched: forged target: event 1 target 1 ")
    for _, word in FORGED:
        assert word in reason
    kept = decode_targets(letter[b"t1"])  # only the forged ones, byte for byte
    assert len(kept) == len(FORGED) + 1 and GOOD not in kept
    assert letter[b"t2"] == encode_targets([])


@pytest.mark.quick
def test_the_api_refuses_what_the_worker_refuses() -> None:
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(TriggerTarget(cls_id="svc", fn_id="**"))
    with pytest.raises(InvalidTriggerError, match=r"fn_id '\*\*' contains"):
        coerce_event(ev)


def _forged_config() -> ObjectEvent:
    """A configuration no API accepts: a redis-cli user's copy of a real one."""
    ev = ObjectEvent()
    on_update = ev.data_trigger_str["n"].on_update
    on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="good"))
    on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="**"))
    on_update.append(TriggerTarget(cls_id="a/b", partition_id=0, fn_id="f"))
    return ev


def _hand_write(client: redis.Redis, store: ObjectStore) -> None:
    """Object 1 with a good trigger, then its index (field 42) and its configuration and
    index (field n) forged with raw HSETs."""
    ev = ObjectEvent()
    ev.data_trigger[42].on_update.append(TriggerTarget(cls_id="svc", fn_id="good"))
    store.create("orders", 0, 1, {42: b"a", "n": b"a"}, event=ev)
    meta = PartitionKeys.of("orders", 0).meta("1")
    client.hset(meta, "t:u:42", _forged_blob())
    forged = _forged_config()
    client.hset(meta, mapping={"ev": forged.SerializeToString(), **build_index(forged)})


def test_forged_targets_are_never_published(
    settings: Settings, store: ObjectStore, client: redis.Redis, zenoh_hub: ZenohHub
) -> None:
    _hand_write(client, store)
    inbox = zenoh_hub.subscribe("**")
    worker = Worker(settings, publisher=ZenohPublisher(zenoh_hub.session()), block_ms=20)
    running = RunningWorker(worker)
    keys = PartitionKeys.of("orders", 0)
    try:
        store.update("orders", 0, 1, {42: b"b", "n": b"b"})
        got = inbox.wait_for(3)
        deadline = time.monotonic() + 15
        while not client.xlen(keys.dead_letters) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # anything else would arrive by now
    finally:
        running.stop()
    assert len(inbox.raw) == len(got) == 3  # GOOD twice for 42, good once for n
    assert all(key.startswith("oprc/svc/0/async/good/") for key, _ in inbox.raw)
    [(_, letter)] = client.xrange(keys.dead_letters)
    reason = letter[b"dlq:reason"].decode()
    assert reason.startswith("cannot be dispatched: forged target: ")
    for word in ("'**'", "'a/b'", "longer than", "must not be empty", "; and 3 more"):
        assert word in reason  # 10 named, the rest counted
    kept = [t for i in (1, 2) for t in decode_targets(letter[b"t%d" % i])]
    assert len(kept) == len(FORGED) + 3 and GOOD not in kept  # the letter holds every one
    assert sum(isinstance(t, UnreadableTarget) for t in kept) == 1  # the non-UTF-8 one
    assert worker.stats.forged_targets == len(FORGED) + 1 + 2
    assert worker.stats.dead_letters == 1
    [metric] = [m for m in WorkerCollector(worker).collect() if m.name.endswith("forged_targets")]
    assert metric.samples[0].value == len(FORGED) + 3
    assert client.xpending(keys.outbox, "oprc-events")["pending"] == 0
    with pytest.raises(InvalidTriggerError, match="'\\*\\*'"):  # the API refuses to edit it
        store.add_trigger("orders", 0, 1, "on_update", "n", TriggerTarget(cls_id="x", fn_id="g"))


def test_a_forged_outbox_entry_replays_only_its_forged_targets(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    """An entry XADDed by hand; after the fix (the letter edited), replay sends only the
    target that was forged, not the good one again."""
    keys = PartitionKeys.of("orders", 0)
    ev = ObjectEvent()
    ev.data_trigger[42].on_create.append(TriggerTarget(cls_id="svc", fn_id="good"))
    store.create("orders", 0, 1, {42: b"a"}, event=ev)
    [(_, fields)] = client.xrange(keys.outbox)
    forged = {**fields, b"e1": b"4", b"t1": encode_targets([GOOD, FORGED[0][0]])}
    client.xadd(keys.outbox, forged)  # type: ignore[arg-type]
    publisher = MemoryPublisher()
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert [k.split("/")[4] for k, _ in publisher.sent] == ["good", "good"]
    assert stats.forged_targets == 1
    [(letter_id, letter)] = client.xrange(keys.dead_letters)
    assert decode_targets(letter[b"t1"]) == [FORGED[0][0]]
    fixed = Target("svc", 0, None, None, "fixed", {})
    client.xadd(keys.dead_letters, {**letter, b"t1": encode_targets([fixed])})  # type: ignore[arg-type]
    client.xdel(keys.dead_letters, letter_id)
    assert asyncio.run(_replay(client)) == 1
    publisher.sent.clear()
    asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert [k.split("/")[4] for k, _ in publisher.sent] == ["fixed"]
    assert not client.xlen(keys.dead_letters)


async def _replay(client: redis.Redis) -> int:
    kwargs = client.connection_pool.connection_kwargs
    async with redis.asyncio.Redis(host=kwargs["host"], port=kwargs["port"]) as aio:
        return await replay(aio, PartitionKeys.of("orders", 0))
