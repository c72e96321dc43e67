"""A trigger's invocation request as the worker builds it, from the template of its target
(protocol/prepared.py, hand-encoded in protocol/pb_wire.py), equals the protobuf library's
``SerializeToString(deterministic=True)`` of the whole request (``encode.wrap``), byte for
byte, for many random targets, contexts and payloads; and its key is ``trigger_key``'s
(pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oprc_redis_events.protocol import pb_wire
from oprc_redis_events.protocol.encode import trigger_key, wrap
from oprc_redis_events.protocol.prepared import CONTEXT_KEYS, Prepared, prepared
from oprc_redis_events.protocol.triggers import Target

pytestmark = pytest.mark.quick

TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
LONG = st.text(st.characters(blacklist_categories=["Cs"]), min_size=100, max_size=300)
IDS = st.text(st.sampled_from("abcXYZ09-_.é€"), min_size=1, max_size=12).map(lambda s: "i" + s)
#: option names: the context's own (a target's option wins over them), names that are
#: prefixes of each other (upb orders them its own way), configuration keys (stripped)
NAMES = st.sampled_from(
    [*CONTEXT_KEYS, "object_id_str", "a", "ab", "", "é", "oprc.include_old", "oprc.batch_max"]
)
CONFIG = {"oprc.include_old": "true", "oprc.batch_max": "5"}


@st.composite
def targets(draw: st.DrawFn) -> Target:
    options = draw(st.dictionaries(NAMES | TEXT, TEXT | LONG, max_size=6))
    options.update({k: v for k, v in CONFIG.items() if k in options})  # valid values
    kind = draw(st.sampled_from(["stateless", "numeric", "string"]))
    oid = draw(st.integers(0, 2**64 - 1)) if kind == "numeric" else None
    oid_str = draw(IDS) if kind == "string" else None
    pid = draw(st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1)))
    return Target(draw(IDS), pid, oid, oid_str, draw(IDS), options)


def encoded(context: dict[str, str]) -> tuple[bytes, bytes, bytes, bytes]:
    tag = pb_wire.OPTIONS_FIELD
    e = [pb_wire.map_entry(tag, k, context[k]) for k in CONTEXT_KEYS]
    return e[0], e[1], e[2], e[3]


@settings(max_examples=400)
@given(
    targets(),
    st.fixed_dictionaries({k: TEXT | LONG for k in CONTEXT_KEYS}),
    st.binary(max_size=300),
    st.sampled_from(["put", "put-odgm", "invoke"]),
)
def test_requests_equal_the_librarys(
    target: Target, context: dict[str, str], payload: bytes, delivery: str
) -> None:
    prep = Prepared(target, delivery)
    assert prep.request(encoded(context), payload) == wrap(target, payload, context)
    assert prep.key(context["invocation_id"]) == trigger_key(
        target, context["invocation_id"], prep.mode
    )


def test_map_entries_with_long_and_empty_values_equal_the_librarys() -> None:
    from oprc_redis_events.pb.oprc_data_pb2 import EventInfo

    context = {"a": "x" * 200, "ab": "", "": "é" * 70, "b": "y"}
    expected = EventInfo(context=context).SerializeToString(deterministic=True)
    assert pb_wire.map_entries(pb_wire.CONTEXT_FIELD, context) == expected


def test_a_target_is_prepared_once_per_delivery() -> None:
    target = Target("svc", 0, None, None, "f", {})
    assert prepared(target, "put") is prepared(target, "put")
    assert prepared(target, "put-odgm").key("x") == "oprc/svc/0/invokes/f/async/x"
    equal = Target("svc", 0, None, None, "f", {})  # another object: prepared apart
    assert prepared(equal, "put") is not prepared(target, "put")
