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

from ..protocol.keys import PARTITIONS_KEY
from .wrapper_core import Plan, Step

__all__ = ["Intercepted", "command_attribute"]

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


def _first(replies: list[Any]) -> Any:
    return replies[0]


@dataclass
class Intercepted:
    """The commands queued in one pipeline: per result, how many replies it takes and
    how to read them."""

    store: Any
    pipe: Any
    expire_script: Any
    slots: list[tuple[int, Callable[[list[Any]], Any]]] = field(default_factory=list)

    def plain(self) -> None:
        self.slots.append((1, _first))

    def queue(self, plan: Plan) -> None:
        visible: list[int] = []
        count = 0
        for step in plan.steps:
            visible.append(count)
            count += self._queue(step)
        callbacks = self.pipe.response_callbacks

        def read(replies: list[Any]) -> Any:
            return plan.finish([replies[i] for i in visible], callbacks)

        self.slots.append((count, read))

    def _queue(self, step: Step) -> int:
        if step.kind == "plain":
            self.pipe.execute_command(*step.args)
            return 1
        if step.kind == "expire":
            self._evalsha(self.expire_script, step.keys, list(step.args))
            return 1
        call = self.store.build(step.target, step.mode, **step.kw)
        self._evalsha(self.store._write, call.keys, call.args)
        member = call.target.keys.member
        if member in self.store.known_partitions:
            return 1
        self.pipe.execute_command("SADD", PARTITIONS_KEY, member)
        self.store.known_partitions.add(member)
        return 2

    def _evalsha(self, script: Any, keys: list[str], args: list[Any]) -> None:
        self.pipe.scripts.add(script)
        self.pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def results(self, replies: list[Any]) -> list[Any]:
        out: list[Any] = []
        pos = 0
        for count, read in self.slots:
            out.append(read(replies[pos : pos + count]))
            pos += count
        self.clear()
        return out

    def clear(self) -> None:
        self.slots.clear()
