"""Conditions on trigger targets (``req_options["oprc.when"]``) and the previous value
they see: the CEL evaluation (pure), the refusal of an expression that does not compile,
and, through Redis and a worker with an in-memory publisher, which targets fire."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.cli.main import main
from oprc_redis_events.errors import InvalidTriggerError
from oprc_redis_events.lua.loader import register
from oprc_redis_events.protocol.conditions import ConditionFailed, holds, variables
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.switch import SWITCH_KEY
from oprc_redis_events.protocol.triggers import OLD_MARK, build_index, coerce_event
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.metrics import WorkerCollector
from oprc_redis_events.worker.publisher import MemoryPublisher

WHEN = "oprc.when"


def values(old: str | None, new: str | None, event: int = 4) -> dict[str, object]:
    enc = [None if v is None else v.encode() for v in (old, new)]
    return variables(
        old=enc[0], new=enc[1], event_type=event, key="status", object_id="7", cls="orders",
        partition=3, depth=1,
    )  # fmt: skip


EXAMPLES = [  # the examples: (expression, old, new, expected)
    ('old == "pending" && new == "paid"', "pending", "paid", True),
    ('old == "pending" && new == "paid"', "paid", "paid", False),
    ('old == "pending" && new == "paid"', None, "paid", False),
    ("double(new) > 100.0", "1", "150.5", True),
    ("double(new) > 100.0", "1", "99", False),
    ('new in ["a", "b"]', None, "b", True),
    ('new in ["a", "b"]', None, "c", False),
    ('new.startsWith("err")', None, "error: x", True),
    ('new.startsWith("err")', None, "ok", False),
    ("old != null && new == null", "x", None, True),
    ("old != null && new == null", None, "x", False),
    ('event == "update" && key == "status" && object_id == "7" && cls == "orders"', "", "", True),
    ("partition == 3 && depth == 1", None, None, True),
    ('old_bytes == b"a" && new_bytes == b"b"', "a", "b", True),
]


@pytest.mark.quick
@pytest.mark.parametrize(("expression", "old", "new", "expected"), EXAMPLES)
def test_the_examples(expression: str, old: str | None, new: str | None, expected: bool) -> None:
    assert holds(expression, values(old, new)) is expected


@pytest.mark.quick
@pytest.mark.parametrize(
    ("expression", "new"),
    [("double(new) > 100.0", "abc"), ('new.startsWith("e")', None), ("new", "x"), ("1/0 == 1", "")],
)
def test_a_runtime_error_or_a_non_boolean_fails(expression: str, new: str | None) -> None:
    with pytest.raises(ConditionFailed):
        holds(expression, values("a", new))


def _event(when: str, **extra: str) -> ObjectEvent:
    ev = ObjectEvent()
    options = {WHEN: when, **extra}
    ev.data_trigger_str["status"].on_update.append(
        TriggerTarget(cls_id="svc", fn_id="paid", req_options=options)
    )
    return ev


@pytest.mark.quick
@pytest.mark.parametrize(
    ("expression", "where"), [("old ==", "column 7"), ('new = "x"', "column 5")]
)
def test_an_expression_that_does_not_compile_is_refused(expression: str, where: str) -> None:
    with pytest.raises(InvalidTriggerError) as err:
        coerce_event(_event(expression))
    text = str(err.value)
    for word in ("oprc.when", "data_trigger_str['status'].on_update[0]", "svc.paid", where):
        assert word in text


@pytest.mark.quick
@pytest.mark.parametrize(
    ("expression", "unknown"),
    [
        ('nwe == "paid"', "nwe"),
        ("size(value) > 1", "value"),
        ("[1].all(v, v > o)", "o"),
        ("[1].exists(e, e == 1) && e == 1", "e"),  # read outside the macro that binds it
        ("x > 1 || [1].exists(x, x > 1)", "x"),
        ("lower(new) == 'a'", "lower"),  # no such function
        ("cel.bind(n, 2, n > depth)", "cel, n"),  # a macro the library does not have
    ],
)
def test_a_typo_in_a_variable_is_refused(expression: str, unknown: str) -> None:
    with pytest.raises(InvalidTriggerError) as err:
        coerce_event(_event(expression))
    text = str(err.value)
    assert f"unknown variable(s) or function(s) {unknown};" in text, text
    assert "svc.paid" in text and "old_bytes" in text


@pytest.mark.quick
@pytest.mark.parametrize(
    "expression",
    [
        "[1, 2].exists(x, x > 1) && new == 'a'",
        "new.map(c, c)",
        "type(new) == string && type(depth) == int && type(old) != null_type",
        "double(new) > 100.0 && new.startsWith('1') && size(new_bytes) > 2",  # fail on nulls
        "int(new) / 0 > 1",  # an error at run time, not a typo
    ],
)
def test_names_bound_by_macros_and_type_names_are_not_typos(expression: str) -> None:
    coerce_event(_event(expression))


@pytest.mark.quick
def test_include_old_is_true_or_false() -> None:
    ev = _event("true")
    ev.data_trigger_str["status"].on_update[0].req_options["oprc.include_old"] = "yes"
    with pytest.raises(InvalidTriggerError, match=r"oprc\.include_old='yes' is neither"):
        coerce_event(ev)


@pytest.mark.quick
def test_only_targets_that_need_the_old_value_mark_their_index() -> None:
    ev = _event('new == "x"')
    ev.data_trigger_str["status"].on_create.append(TriggerTarget(cls_id="svc", fn_id="plain"))
    ev.data_trigger_str["n"].on_update.append(
        TriggerTarget(cls_id="svc", fn_id="o", req_options={"oprc.include_old": "true"})
    )
    index = build_index(ev)
    assert index["t:u:status"].startswith(OLD_MARK) and index["t:u:n"].startswith(OLD_MARK)
    assert not index["t:c:status"].startswith(OLD_MARK)


# -- hypothesis: random comparisons against Python's own evaluation of the same condition

TEXT = st.text(alphabet="abcxyz019 .", max_size=6)
OPS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
       ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}  # fmt: skip


@st.composite
def comparison(draw: st.DrawFn) -> tuple[str, object]:
    """(CEL text, a function of (old, new) giving Python's answer)."""
    var = draw(st.sampled_from(["old", "new"]))
    kind = draw(st.sampled_from(["op", "prefix", "in", "null", "size"]))
    if kind == "op":
        op, lit = draw(st.sampled_from(sorted(OPS))), draw(TEXT)
        return f"{var} {op} {json.dumps(lit)}", lambda o, n: OPS[op](dict(old=o, new=n)[var], lit)
    if kind == "prefix":
        lit = draw(TEXT)
        return f"{var}.startsWith({json.dumps(lit)})", lambda o, n: dict(old=o, new=n)[
            var
        ].startswith(lit)
    if kind == "in":
        lits = draw(st.lists(TEXT, max_size=3))
        return f"{var} in {json.dumps(lits)}", lambda o, n: dict(old=o, new=n)[var] in lits
    if kind == "size":
        k = draw(st.integers(0, 6))
        return f"size({var}) >= {k}", lambda o, n: len(dict(old=o, new=n)[var]) >= k
    return f"{var} != null", lambda o, n: dict(old=o, new=n)[var] is not None


@st.composite
def condition(draw: st.DrawFn) -> tuple[str, object]:
    left = draw(comparison())
    join = draw(st.sampled_from(["", "&&", "||"]))
    if not join:
        return left
    right = draw(comparison())
    py = {"&&": lambda a, b: a and b, "||": lambda a, b: a or b}[join]
    return f"({left[0]}) {join} ({right[0]})", lambda o, n: py(left[1](o, n), right[1](o, n))  # type: ignore[operator]


@pytest.mark.quick
@settings(max_examples=300, deadline=None)
@given(condition(), TEXT, TEXT)
def test_conditions_agree_with_python(cond: tuple[str, object], old: str, new: str) -> None:
    expression, python = cond
    assert holds(expression, values(old, new)) is python(old, new)  # type: ignore[operator]


# -- through Redis: the write path adds the old value only where needed; the worker decides


def _run(settings: Settings) -> tuple[MemoryPublisher, Worker]:
    publisher = MemoryPublisher()
    worker = Worker(settings, publisher=publisher)
    asyncio.run(worker.run_async(burst=True))
    return publisher, worker


def _fired(publisher: MemoryPublisher) -> list[str]:
    return [key.split("/")[4] for key, _ in publisher.sent]


def test_a_condition_fires_only_on_its_transition(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    ev = _event('old == "pending" && new == "paid"')
    ev.data_trigger_str["status"].on_update.append(TriggerTarget(cls_id="svc", fn_id="all"))
    ev.data_trigger_str["note"].on_update.append(TriggerTarget(cls_id="svc", fn_id="note"))
    store.create("orders", 0, 1, {"status": b"new", "note": b"a"}, event=ev)
    for status in (b"pending", b"paid", b"pending", b"shipped"):
        store.update("orders", 0, 1, {"status": status, "note": status})
    entries = client.xrange(PartitionKeys.of("orders", 0).outbox)
    olds = [f.get(b"q1") for _, f in entries]
    assert olds == [b"new", b"pending", b"paid", b"pending"]  # status carries q1 ...
    assert not any(b"q2" in f for _, f in entries)  # ... note (no condition) does not
    publisher, worker = _run(settings)
    stats = worker.stats
    assert _fired(publisher).count("paid") == 1 and _fired(publisher).count("all") == 4
    assert stats.condition_skips == 3 and stats.condition_errors == 0


def test_a_failing_condition_is_false_counted_and_logged_once(
    settings: Settings, store: ObjectStore, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ev = ObjectEvent()
    for slot in ("on_update", "on_delete"):
        getattr(ev.data_trigger_str["amount"], slot).append(
            TriggerTarget(cls_id="svc", fn_id=slot, req_options={WHEN: "double(new) > 100.0"})
        )
    ev.data_trigger_str["amount"].on_delete.append(
        TriggerTarget(cls_id="svc", fn_id="gone", req_options={WHEN: "old != null && new == null"})
    )
    store.create("orders", 0, 2, {"amount": b"1"}, event=ev)
    for amount in (b"abc", b"def", b"150"):
        store.update("orders", 0, 2, {"amount": amount})
    store.delete_field("orders", 0, 2, "amount")
    with caplog.at_level(logging.WARNING, logger="oprc_redis_events"):
        publisher, worker = _run(settings)
    stats = worker.stats
    assert _fired(publisher) == ["on_update", "gone"]  # 150 > 100; the delete saw old 150
    assert stats.condition_errors == 3 and stats.dead_letters == 0  # abc, def, null
    assert sum("double(new) > 100.0" in r.getMessage() for r in caplog.records) == 2  # per key
    assert not client.xlen(PartitionKeys.of("orders", 0).dead_letters)
    [metric] = [m for m in WorkerCollector(worker).collect() if m.name.endswith("condition_errors")]
    assert metric.samples[0].value == 3


def test_set_triggers_refuses_a_bad_condition_and_keeps_the_old_triggers(
    store: ObjectStore,
) -> None:
    good = _event('new == "paid"')
    store.create("orders", 0, 3, {"status": b"a"}, event=good)
    with pytest.raises(InvalidTriggerError, match=r"oprc\.when .* column 7"):
        store.set_triggers("orders", 0, 3, _event("old =="))
    with pytest.raises(InvalidTriggerError, match=r"oprc\.when"):
        bad = TriggerTarget(cls_id="svc", fn_id="x", req_options={WHEN: "new.startsWith("})
        store.add_trigger("orders", 0, 3, "on_update", "status", bad)
    assert store.get_triggers("orders", 0, 3) == good


def test_the_cli_adds_a_condition_and_explain_shows_its_verdict(
    store: ObjectStore, redis_url: str
) -> None:
    store.create("orders", 0, 4, {"status": b"pending"})
    runner = CliRunner()
    base = ["orders", "0", "4", "--redis-url", redis_url]
    when = 'old == "pending" && new == "paid"'
    added = runner.invoke(
        main,
        ["triggers", "add", *base, "on_update", "status", "billing/0/on_paid", "--when", when,
         "--include-old"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    [target] = store.get_triggers("orders", 0, 4).data_trigger_str["status"].on_update
    assert dict(target.req_options) == {WHEN: when, "oprc.include_old": "true"}
    paid = runner.invoke(main, ["explain", *base, "status=paid"]).output
    assert "dispatched: condition " + when + ' is true; old="pending", new="paid"' in paid
    other = runner.invoke(main, ["explain", *base, "status=shipped"]).output
    assert (
        "NOT dispatched: condition" in other and 'is false; old="pending", new="shipped"' in other
    )
    bad = runner.invoke(
        main, ["triggers", "add", *base, "on_update", "status", "billing/0/x", "--when", "old =="]
    )
    assert bad.exit_code != 0 and "oprc.when" in bad.output and "column 7" in bad.output
    assert len(store.get_triggers("orders", 0, 4).data_trigger_str["status"].on_update) == 1


def test_keyspace_capture_adds_the_old_value_from_its_shadow(
    store: ObjectStore, client: redis.Redis
) -> None:
    keys = PartitionKeys.of("orders", 0)
    ev = _event("old != null")
    ev.data_trigger_str["status"].on_delete.append(
        TriggerTarget(cls_id="svc", fn_id="gone", req_options={"oprc.include_old": "true"})
    )
    ev.data_trigger_str["plain"].on_update.append(TriggerTarget(cls_id="svc", fn_id="p"))
    store.create("orders", 0, 5, {"status": b"a", "plain": b"x"}, event=ev)
    capture = register(client, "capture")
    args = [keys.obj("5"), keys.meta("5"), keys.outbox, keys.shadow("5"), SWITCH_KEY]
    capture(keys=args, args=["5", "keep", "1"])  # first sight: the shadow is made
    client.hset(keys.obj("5"), mapping={"status": "b", "plain": "y"})  # behind the library
    capture(keys=args, args=["5", "keep", "1"])
    client.hdel(keys.obj("5"), "status")
    capture(keys=args, args=["5", "keep", "1"])
    entries = [f for _, f in client.xrange(keys.outbox)]
    found = [(f[b"k%d" % i], f.get(b"q%d" % i)) for f in entries for i in (1, 2) if b"k%d" % i in f]
    assert sorted(found) == [(b"plain", None), (b"status", b"a"), (b"status", b"b")]


def test_a_condition_on_a_function_event_sees_its_output(
    settings: Settings, store: ObjectStore
) -> None:
    ev = ObjectEvent()
    for slot, when in (("on_complete", 'event == "complete" && new == "ok" && old == null'),
                       ("on_error", 'new.startsWith("timeout")')):  # fmt: skip
        getattr(ev.func_trigger["pay"], slot).append(
            TriggerTarget(cls_id="svc", fn_id=slot, req_options={WHEN: when})
        )
    store.create("orders", 0, 6, {"status": b"a"}, event=ev)
    store.report_function_result("orders", 0, 6, "pay", ok=True, output=b"ok")
    store.report_function_result("orders", 0, 6, "pay", ok=True, output=b"other")
    store.report_function_result("orders", 0, 6, "pay", error="timeout after 5 s")
    store.report_function_result("orders", 0, 6, "pay", error="refused")
    publisher, worker = _run(settings)
    assert _fired(publisher) == ["on_complete", "on_error"]
    assert worker.stats.condition_skips == 2
