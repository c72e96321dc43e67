"""The bench's write-path rows: single writes, pipelines, events disabled, payload building,
Redis time per event, and growth with triggers configured and targets matched.

Latency rows interleave the baseline and the measured side in rounds and keep the median
round of each, so that a burst of other work on the machine hits both alike."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import redis

from ..client.sync_generated.store import ObjectStore
from ..client.sync_generated.wrapper import EventedRedis
from ..config import Settings
from ..pb.oprc_data_pb2 import TriggerPayload
from ..pb.oprc_invoke_pb2 import InvocationRequest
from ..protocol.encode import build_dispatch
from ..protocol.keys import PartitionKeys
from ..protocol.outbox import decode_entry
from .bench import CLASSES, RAW, Result, Sizes, config, per_op_us, rate, step

__all__ = ["write_rows"]

ROUNDS = 5


def _paired(
    n: int, raw: Callable[[int], object], ours: Callable[[int], object]
) -> tuple[float, float]:
    """(raw us/op, ours us/op): the medians of :data:`ROUNDS` interleaved rounds of ``n``."""
    raws, mine = [], []
    for _ in range(ROUNDS):
        raws.append(per_op_us(n, raw))
        mine.append(per_op_us(n, ours))
    return statistics.median(raws), statistics.median(mine)


def _store(client: redis.Redis, **settings: Any) -> ObjectStore:
    return ObjectStore(client, Settings.from_env({}, **settings))


def bench_write(client: redis.Redis, n: int) -> list[Result]:
    store, cls = _store(client), CLASSES["write"]
    store.create(cls, 0, 1, {1: b"0"}, event=config())
    off = _store(client, events_enabled=False)
    off.create(cls, 0, 2, {1: b"0"})
    raw, ours = _paired(
        n,
        lambda i: client.hset(RAW["write"], "1", str(i)),
        lambda i: store.update(cls, 0, 1, {1: str(i).encode()}),
    )
    raw2, disabled = _paired(
        n,
        lambda i: client.hset(RAW["write"], "1", str(i)),
        lambda i: off.update(cls, 0, 2, {1: str(i).encode()}),
    )
    return [
        Result(
            "write",
            "us/write",
            raw,
            ours,
            "redis-py HSET, one per call",
            "store.update of one field, one matching trigger",
            "lower",
            "<= 1.3",
        ),
        Result(
            "write_events_disabled",
            "us/write",
            raw2,
            disabled,
            "redis-py HSET, one per call",
            "store.update with events_enabled=False",
            "lower",
            "<= 1.05",
        ),
    ]


def bench_write_pipelined(client: redis.Redis, batches: int) -> list[Result]:
    wrapped = EventedRedis(client, Settings.from_env({}))  # not the user's environment
    cls = CLASSES["pipelined"]
    store = _store(client)
    store.create(cls, 0, 2, {1: b"0"}, event=config())

    def run(target: Any, key: str) -> None:
        for b in range(batches):
            pipe = target.pipeline(transaction=False)
            for i in range(100):
                pipe.hset(key, "1", f"{b}-{i}")
            pipe.execute()

    def batched() -> None:
        for b in range(batches):
            with store.batch() as batch:
                for i in range(100):
                    batch.update(cls, 0, 2, {1: f"{b}-{i}".encode()})

    raw = rate(batches * 100, lambda: run(client, RAW["pipelined"]))
    ours = rate(batches * 100, lambda: run(wrapped, PartitionKeys.of(cls, 0).obj("2")))
    batch_rate = rate(batches * 100, batched)
    return [
        Result(name, "writes/s", raw, measured, "HSET x100 pipelined", what, "higher", ">= 0.5")
        for name, measured, what in (
            ("write_pipelined", ours, "EventedRedis pipeline of 100 hset (one trigger each)"),
            ("write_batch", batch_rate, "store.batch() of 100 updates (one trigger each)"),
        )
    ]


def _floor(entry: Any, event: Any, fmt: str) -> Callable[[], bytes]:
    """Serialization alone of the same payload and wrapper, built beforehand."""
    wrapper = InvocationRequest.FromString(build_dispatch(entry, event, 0, payload_format=fmt).body)
    if fmt == "json":
        import msgspec

        doc = msgspec.json.decode(wrapper.payload)
        encode = msgspec.json.Encoder().encode
        return lambda: _wrapped(wrapper, encode(doc))
    message = TriggerPayload.FromString(wrapper.payload)
    return lambda: _wrapped(wrapper, message.SerializeToString(deterministic=True))


def _wrapped(wrapper: InvocationRequest, payload: bytes) -> bytes:
    wrapper.payload = payload
    return wrapper.SerializeToString(deterministic=True)


#: distinct entries the payload rows cycle through (a new event per trigger, as a worker
#: in steady state builds them)
PAYLOAD_ENTRIES = 2000
#: distinct objects the ``payload_*_new_objects`` rows cycle through: more than the places
#: a worker keeps (protocol.places.FRAMES), so each event is of a place not kept
NEW_OBJECTS = 10_000


def _entries(client: redis.Redis, count: int, *, objects: bool = False) -> list[Any]:
    """``count`` copies of a real outbox entry (one event, one target) under distinct ids,
    decoded as the worker decodes them: each its own event, their targets one shared list
    (``objects``: each of another object, too)."""
    keys = PartitionKeys.of(CLASSES["write"], 0)
    last: Any = client.xrevrange(keys.outbox, count=1)
    ms = int(last[0][0].split(b"-")[0])
    fields = last[0][1]
    return [
        decode_entry(keys, f"{ms + i}-0", {**fields, b"o": b"%d" % (i + 10)} if objects else fields)
        for i in range(count)
    ]


def bench_payload(client: redis.Redis, n: int) -> list[Result]:
    rows = []
    for objects in (False, True):
        # always more objects than the places kept, even for a run of few triggers (--quick)
        count = NEW_OBJECTS if objects else min(n, PAYLOAD_ENTRIES)
        entries = _entries(client, count, objects=objects)
        entry = entries[0]
        event = entry.events[0]
        for fmt in ("json", "protobuf"):
            floor = _floor(entry, event, fmt)

            def build(i: int, fmt: str = fmt, entries: list[Any] = entries) -> object:
                e = entries[i % len(entries)]
                return build_dispatch(e, e.events[0], 0, payload_format=fmt)

            raw, ours = _paired(n, lambda _, f=floor: f(), build)  # type: ignore[misc]
            rows.append(
                Result(
                    f"payload_{fmt}_new_objects" if objects else f"payload_{fmt}",
                    "us/trigger",
                    raw,
                    ours,
                    f"serializing the same {fmt} payload + wrapper, built beforehand",
                    f"protocol.encode.build_dispatch ({fmt}) as the worker calls it: a new event "
                    "per trigger (one target, the target's parts cached), payload build + "
                    "serialize + wrapper + invocation id + key"
                    + (
                        ", each event of another object (beyond the places kept)" if objects else ""
                    ),
                    "lower",
                    "measured <= 5 us",
                )
            )
    return rows


def _commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """(calls, usec) by command, from INFO commandstats (summed over a cluster's primaries)."""
    if isinstance(client, redis.RedisCluster):
        info: Any = client.info("commandstats", target_nodes=redis.RedisCluster.PRIMARIES)
        flat = any(isinstance(v, dict) and "calls" in v for v in info.values())
        by_node = [info] if flat else list(info.values())
    else:
        by_node = [client.info("commandstats")]
    found: dict[str, tuple[int, int]] = {}
    for stats in by_node:
        for k, v in stats.items():
            if isinstance(v, dict) and "calls" in v:
                calls, usec = found.get(k.removeprefix("cmdstat_"), (0, 0))
                found[k.removeprefix("cmdstat_")] = (calls + v["calls"], usec + v["usec"])
    return found


def _usec(client: redis.Redis, names: list[str], fn: Callable[[], object]) -> float:
    """Redis time per call (usec) of ``names`` (summed) while ``fn`` runs."""
    before = _commandstats(client)
    fn()
    after = _commandstats(client)
    total = 0.0
    for name in names:
        calls = after.get(name, (0, 0))[0] - before.get(name, (0, 0))[0]
        usec = after.get(name, (0, 0))[1] - before.get(name, (0, 0))[1]
        total += usec / calls if calls else 0.0
    return total


def bench_match(client: redis.Redis, n: int) -> Result:
    store, cls = _store(client), CLASSES["write"]
    entry: Any = client.xrevrange(PartitionKeys.of(cls, 0).outbox, count=1)
    fields = entry[0][1]

    def raw() -> None:
        for i in range(n):
            client.hset(RAW["write"], "1", str(i))
            client.xadd(RAW["stream"], fields, maxlen=1000)

    base = _usec(client, ["hset", "xadd"], raw)
    ours = _usec(
        client,
        ["evalsha", "eval", "fcall"],
        lambda: [store.update(cls, 0, 1, {1: str(i).encode()}) for i in range(n)],
    )
    client.delete(RAW["stream"])
    return Result(
        "match_redis_time",
        "us/event",
        base,
        ours,
        "Redis time of HSET + XADD of a same-size entry (INFO commandstats)",
        "Redis time of the write script, one matching trigger (INFO commandstats)",
        "lower",
        "measured - baseline <= 1 us",
    )


def bench_growth(client: redis.Redis, n: int) -> list[Result]:
    store, cls = _store(client), CLASSES["growth"]
    rows = []
    for kind in ("triggers", "targets"):
        for count in (1, 10, 100):
            oid = f"{kind}{count}"
            ev = config(triggers=count) if kind == "triggers" else config(targets=count)
            store.create(cls, 0, oid, {1: b"0"}, event=ev)
            raw, ours = _paired(
                n,
                lambda i: client.hset(RAW["write"], "1", str(i)),
                lambda i, oid=oid: store.update(cls, 0, oid, {1: str(i).encode()}),  # type: ignore[misc]
            )
            what = (
                f"{count} trigger(s) configured, one matching"
                if kind == "triggers"
                else f"one matching trigger with {count} target(s)"
            )
            rows.append(
                Result(
                    f"write_{kind}_{count}",
                    "us/write",
                    raw,
                    ours,
                    "redis-py HSET, one per call",
                    f"store.update, {what}",
                    "lower",
                    "flat in triggers; linear in targets",
                )
            )
        client.delete(PartitionKeys.of(cls, 0).outbox)
    return rows


def write_rows(client: redis.Redis, sizes: Sizes) -> list[Result]:
    """The write path's rows, each announced on stderr."""
    rows: list[Result] = []
    with step("write, write_events_disabled"):
        rows += bench_write(client, sizes.writes)
    with step("write_pipelined, write_batch"):
        rows += bench_write_pipelined(client, 10 * sizes.scale)
    with step("payload_json, payload_protobuf"):
        rows += bench_payload(client, sizes.writes * 10)
    with step("match_redis_time"):
        rows.append(bench_match(client, sizes.writes))
    with step("write_triggers_*, write_targets_*"):
        rows += bench_growth(client, max(20, sizes.writes // 5))
    with step("write_condition, condition_eval"):
        from .bench_conditions import condition_rows

        rows += condition_rows(client, max(20, sizes.writes // 5))
    return rows
