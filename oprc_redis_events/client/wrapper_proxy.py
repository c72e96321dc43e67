"""How the wrappers stand in for a redis-py client or pipeline (no I/O).

redis-py defines its command methods (``hset``, ``rename``, ``json().set``...) once, in
``redis.commands``, and each sends through ``self.execute_command``.  A wrapper runs those
same functions with itself as ``self``, so every command they build reaches the wrapper's
``execute_command``, which routes it, refuses it or passes it on: a method redis-py adds
later is covered the same way.  Everything else (the connection pool, ``pubsub()``,
``close()``...) is the wrapped client's own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import UnsupportedCommandError
from ..protocol.keys import PARTITIONS_KEY
from .batch_core import BATCH_MODES, MAX_WRITES_PER_CALL, batch_call, batch_replies
from .wrapper_core import Plan, Step

__all__ = ["Intercepted", "command_attribute", "module_pipeline"]

#: redis-py's module namespaces (``r.json()``...): their commands go through the wrapper
MODULES: Final = frozenset({"json", "ft", "ts", "bf", "cf", "cms", "topk", "tdigest", "vset"})
#: client methods, outside ``redis.commands``, that build their pipeline with ``self``
_ALSO: Final = frozenset({"transaction"})


_FUNCTIONS: dict[tuple[type, str], Callable[..., Any] | None] = {}


def _command_function(cls: type, name: str) -> Callable[..., Any] | None:
    """redis-py's command method ``name`` of ``cls``, or ``None`` (cached)."""
    try:
        return _FUNCTIONS[cls, name]
    except KeyError:
        pass
    attr = inspect.getattr_static(cls, name, None)
    ours = name in _ALSO or (getattr(attr, "__module__", None) or "").startswith("redis.commands.")
    found = attr if inspect.isfunction(attr) and ours and name not in MODULES else None
    if len(_FUNCTIONS) < 4096:
        _FUNCTIONS[cls, name] = found
    return found


def command_attribute(
    wrapper: Any, target: Any, name: str, wrap_pipeline: Callable[[Any], Any] | None = None
) -> Any:
    """``target``'s attribute ``name`` as the wrapper offers it: a command method runs
    with ``wrapper`` as ``self``; a module namespace sends through the wrapper, and its
    pipelines are wrapped by ``wrap_pipeline``; anything else is ``target``'s own."""
    if name in MODULES:
        return _module_factory(wrapper, getattr(target, name), wrap_pipeline)
    func = _command_function(type(target), name)
    return getattr(target, name) if func is None else func.__get__(wrapper)


def module_pipeline(pipe: Any, *, coroutines: bool) -> Any:
    """``pipe``, a module's pipeline (``r.json().pipeline()``...), refused with a clear
    error when it is not of the client's kind: redis.asyncio's module pipelines are sync
    ones on the asyncio pool (redis-py), which fail once sent."""
    if inspect.iscoroutinefunction(getattr(pipe, "execute", None)) != coroutines:
        kind = "an asyncio" if coroutines else "a sync"
        raise UnsupportedCommandError(
            f"{type(pipe).__module__}.{type(pipe).__name__} is not {kind} pipeline, as this "
            "client is (redis-py's module pipelines, such as json().pipeline(), are sync "
            "ones even on redis.asyncio): use pipe = r.pipeline(), then pipe.json().set(...)"
        )
    return pipe


def _module_factory(
    wrapper: Any, factory: Callable[..., Any], wrap_pipeline: Callable[[Any], Any] | None
) -> Callable[..., Any]:
    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Any:
        module = factory(*args, **kwargs)
        module.execute_command = wrapper.execute_command
        plain = getattr(module, "pipeline", None)
        if wrap_pipeline is not None and plain is not None:
            module.pipeline = lambda *a, **kw: wrap_pipeline(plain(*a, **kw))
        return module

    return make


def _first(replies: list[Any]) -> list[Any]:
    return replies[:1]


@dataclass
class Intercepted:
    """The commands queued in one pipeline: per call sent, how many replies it takes and
    how to read them into results.  Consecutive writes of one partition (``batch_core``)
    wait in ``pending`` and go out as one script call when something else is queued, the
    partition changes, or the pipeline is sent (:meth:`flush`)."""

    store: Any
    pipe: Any
    expire_script: Any
    slots: list[tuple[int, Callable[[list[Any]], list[Any]]]] = field(default_factory=list)
    pending: list[tuple[Plan, Any]] = field(default_factory=list)
    size: int = 0  # commands queued (each gives one result)
    named: dict[int, tuple[str, str]] = field(default_factory=dict)  # routed: name, key
    #: partitions marked known when their registration (SADD) was queued: unmarked again if
    #: the pipeline is dropped or fails before its replies are read
    registering: list[str] = field(default_factory=list)

    def plain(self) -> None:
        """Note a plain command the caller queued (after :meth:`flush`)."""
        self.slots.append((1, _first))
        self.size += 1

    def queue(self, plan: Plan) -> None:
        call = self._groupable(plan)
        if call is not None:
            if self.pending and (
                self.pending[0][1].target.keys != call.target.keys
                or len(self.pending) >= MAX_WRITES_PER_CALL
            ):
                self.flush()
            self.pending.append((plan, call))
            self.size += 1
            self.named[self.size] = (plan.name, call.target.obj)
            return
        self.flush()
        visible: list[int] = []
        count = 0
        for step in plan.steps:
            visible.append(count)
            count += self._queue(step)
        callbacks = self.pipe.response_callbacks

        def read(replies: list[Any]) -> list[Any]:
            return [plan.finish([replies[i] for i in visible], callbacks)]

        self.slots.append((count, read))
        self.size += 1
        ref = next((step.ref for step in plan.steps if step.ref is not None), None)
        if ref is not None:  # its error is raised named as the command queued
            self.named[self.size] = (plan.name, ref.obj)

    def _groupable(self, plan: Plan) -> Any:
        if len(plan.steps) != 1 or plan.steps[0].kind != "write":
            return None
        step = plan.steps[0]
        if step.mode not in BATCH_MODES:
            return None
        return self.store.build(step.target, step.mode, **step.kw)

    def flush(self) -> None:
        """Queue the pending writes: one script call (alone: as it would be sent alone)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        calls = [call for _, call in pending]
        if len(calls) == 1:
            keys, args = calls[0].keys, calls[0].args
        else:
            keys, args = batch_call(calls)
        self._evalsha(self.store._write, keys, args)
        count = 1 + self._register(calls[0])
        callbacks = self.pipe.response_callbacks

        def read(replies: list[Any]) -> list[Any]:
            raw = batch_replies(replies[0], len(pending)) if len(pending) > 1 else replies[:1]
            return [plan.finish([r], callbacks) for (plan, _), r in zip(pending, raw, strict=True)]

        self.slots.append((count, read))

    def _register(self, call: Any) -> int:
        """Queue SADD of the call's partition to ``oprc:partitions`` the first time."""
        member = call.target.keys.member
        if member in self.store.known_partitions:
            return 0
        self.pipe.execute_command("SADD", PARTITIONS_KEY, member)
        self.store.known_partitions.add(member)
        self.registering.append(member)
        return 1

    def _queue(self, step: Step) -> int:
        if step.kind == "plain":
            self.pipe.execute_command(*step.args)
            return 1
        if step.kind == "expire":
            self._evalsha(self.expire_script, step.keys, list(step.args))
            return 1
        call = self.store.build(step.target, step.mode, **step.kw)
        self._evalsha(self.store._write, call.keys, call.args)
        return 1 + self._register(call)

    def _evalsha(self, script: Any, keys: list[str], args: list[Any]) -> None:
        self.pipe.scripts.add(script)
        self.pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def results(self, replies: list[Any], raise_on_error: bool = False) -> list[Any]:
        """The results of the queued commands from the pipeline's ``replies``; with
        ``raise_on_error`` the first error among them is raised (see :meth:`first_error`)."""
        out: list[Any] = []
        pos = 0
        for count, read in self.slots:
            out += read(replies[pos : pos + count])
            pos += count
        error = self.first_error(out) if raise_on_error else None
        self.registering.clear()  # sent and answered
        self.clear()
        if error is not None:
            raise error
        return out

    def clear(self) -> None:
        """Forget what was queued (a reset, a failed execute): the partitions whose
        registration was not sent are registered by the next write that queues an entry."""
        for member in self.registering:
            self.store.known_partitions.discard(member)
        self.registering.clear()
        self.slots.clear()
        self.pending.clear()
        self.named.clear()
        self.size = 0

    def first_error(self, results: list[Any]) -> Exception | None:
        """The first error among a pipeline's ``results`` (a write of a batch call reports
        its refusal inside the call's reply, which redis-py does not raise), annotated as
        redis-py annotates a pipeline's error when ``pipe`` can."""
        for number, result in enumerate(results, 1):
            if isinstance(result, Exception):
                annotate = getattr(self.pipe, "annotate_exception", None)
                if annotate is not None and number in self.named:
                    annotate(result, number, self.named[number])
                return result
        return None
