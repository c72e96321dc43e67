"""The data API's pure part (protocol/objdata.py): keys, ObjData <-> store, the rate guard."""

from __future__ import annotations

import pytest

from oprc_redis_events import ObjData, ObjectEvent, TriggerTarget
from oprc_redis_events.errors import InvalidIdError, InvalidValueError
from oprc_redis_events.pb.oprc_data_pb2 import ValData
from oprc_redis_events.protocol import objdata
from oprc_redis_events.protocol.objdata import ObjectAddress, WriteRateGuard

pytestmark = pytest.mark.quick


def test_served_expressions_are_odgm_s() -> None:
    assert objdata.served_expressions("acct") == (
        "oprc/acct/*/objects/*",
        "oprc/acct/*/objects/*/set",
    )
    assert objdata.served_expressions("acct", 3)[1] == "oprc/acct/3/objects/*/set"
    with pytest.raises(InvalidIdError, match="'\\*'"):
        objdata.served_expressions("a*")


@pytest.mark.parametrize(
    ("key", "address"),
    [
        ("oprc/acct/0/objects/7", ObjectAddress("acct", 0, 7)),
        ("oprc/acct/12/objects/7/set", ObjectAddress("acct", 12, 7, True)),
        ("oprc/acct/0/objects/order-a", ObjectAddress("acct", 0, "order-a")),
        ("oprc/acct/0/objects/18446744073709551615", ObjectAddress("acct", 0, 2**64 - 1)),
    ],
)
def test_object_keys_parse(key: str, address: ObjectAddress) -> None:
    assert objdata.parse_object_key(key) == address


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("oprc/acct/0/objects/007", "leading zero"),
        ("oprc/acct/0/objects/18446744073709551616", "above"),
        ("oprc/acct/x/objects/7", "invalid partition id 'x'"),
        ("oprc/acct/4294967296/objects/7", "invalid partition id"),
        ("oprc/acct/0/objects/7/get", "not an object key"),
        ("oprc/acct/0/async/f/1", "not an object key"),
    ],
)
def test_bad_object_keys_are_named(key: str, named: str) -> None:
    with pytest.raises(InvalidIdError, match=named):
        objdata.parse_object_key(key)


def test_decode_refuses_missing_oversized_and_garbage() -> None:
    with pytest.raises(InvalidValueError, match="payload is required"):
        objdata.decode_obj_data(None)
    with pytest.raises(InvalidValueError, match=r"object too large: .* 11 bytes, more than the 10"):
        objdata.decode_obj_data(b"x" * 11, 10)
    with pytest.raises(InvalidValueError, match="not an ObjData"):
        objdata.decode_obj_data(b"\xff\xff\xff")
    assert objdata.decode_obj_data(b"") == ObjData()


def test_entries_and_triggers_of_an_obj_data() -> None:
    data = ObjData()
    data.entries[1].data = b"a"
    data.entries_str["name"].CopyFrom(ValData(data=b"b", type=1))
    assert objdata.entries_of(data) == {1: ValData(data=b"a"), "name": ValData(data=b"b", type=1)}
    assert objdata.event_of(data) is None  # no event: the object gets no triggers
    target = TriggerTarget(cls_id="n", partition_id=0, fn_id="f")
    data.event.data_trigger_str["name"].on_update.append(target)
    event = objdata.event_of(data)
    assert isinstance(event, ObjectEvent) and event.data_trigger_str["name"].on_update[0] == target
    round_trip = objdata.decode_obj_data(data.SerializeToString())
    assert objdata.entries_of(round_trip) == objdata.entries_of(data)


def test_rate_guard_counts_per_key_per_second() -> None:
    now = [100.2]
    guard = WriteRateGuard(2, clock=lambda: now[0])
    assert [guard.allow("a") for _ in range(3)] == [True, True, False]
    assert guard.allow("b")  # another object has its own budget
    now[0] = 101.0
    assert guard.allow("a")  # a new second
    assert WriteRateGuard(0).allow("a")  # 0: no limit
    with pytest.raises(InvalidValueError):
        WriteRateGuard(-1)


def test_rate_guard_stays_bounded() -> None:
    now = [1.0]
    guard = WriteRateGuard(5, clock=lambda: now[0], max_keys=10)
    for i in range(10):
        guard.allow(i)
    now[0] = 2.0
    for i in range(10, 30):
        assert guard.allow(i)
    assert len(guard._windows) <= 10


def test_in_flight_invocations_give_their_depth() -> None:
    from oprc_redis_events.pb.oprc_invoke_pb2 import ObjectInvocationRequest
    from oprc_redis_events.worker.inflight import Cause, InFlight

    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    body = ObjectInvocationRequest(options={"depth": "2", "traceparent": tp}).SerializeToString()
    shallow = ObjectInvocationRequest(options={"depth": "1"}).SerializeToString()
    inflight = InFlight()
    key = "oprc/svc/0/objects/5/invokes/bump"
    with inflight.invoking(key, body), inflight.invoking(key, shallow):
        assert inflight.cause("svc", 0, "5") == Cause(2, tp)  # the deepest
        assert inflight.cause("svc", 0, "6") is None
    assert inflight.cause("svc", 0, "5") is None  # over: writes are depth 0 again
    with inflight.invoking("oprc/svc/0/invokes/f", body):  # stateless: no object
        assert inflight._calls == {}
    with inflight.invoking(key, b"\xff\xff"):  # not a request: nothing recorded
        assert inflight._calls == {}


def test_serve_objects_setting_reads_its_environment() -> None:
    from oprc_redis_events import Settings
    from oprc_redis_events.config import ENV_VARS

    assert ENV_VARS["serve_objects"] == "OPRC_EVENTS_SERVE_OBJECTS"
    assert Settings.from_env({}).serve_objects == ()
    env = {"OPRC_EVENTS_SERVE_OBJECTS": "orders, counter"}
    assert Settings.from_env(env).serve_objects == ("orders", "counter")
