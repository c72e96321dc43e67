"""What every trigger to one target shares, built once per target (pure).

A worker sends many triggers to the same targets: each :class:`Prepared` holds what does not
change from one to the next (the target checked, its delivery mode, its Zenoh key but the
invocation id, whether it wants the previous value or batches, and its invocation request
but the context and the payload, as protobuf bytes with a slot for each context value).
A trigger then only adds its own values (:meth:`Prepared.request`, :meth:`Prepared.key`).
The request's ``options`` are the context (:data:`CONTEXT_KEYS`) and the target's
``req_options`` (which win) without the ``oprc.*`` configuration keys, and for a target
named by a string object id, ``object_id_str``, as :func:`.encode.wrap` builds them with the
protobuf library; ``tests/test_pb_wire.py`` compares the two byte for byte.

Prepared targets are kept per target object (the worker decodes each distinct encoded
target list once, :mod:`.outbox`, so the same objects come back), at most
:data:`CACHE_SIZE` of them.
"""

from __future__ import annotations

from typing import Final

from ..errors import InvalidIdError
from . import pb_wire, zenoh_keys
from .batching import is_batched
from .conditions import includes_old
from .targets import Target
from .triggers import DELIVERY_MODES, DELIVERY_OPTION, check_target

__all__ = [
    "CONFIG_PREFIX",
    "CONTEXT_KEYS",
    "INVOCATION_HEAD",
    "PREPARED",
    "Prepared",
    "context_order",
    "delivery_mode",
    "prepared",
    "request_options",
]

#: the prefix of req_options that configure the event system (oprc.delivery, oprc.when,
#: oprc.include_old, ...): never passed on in the request's ``options``
CONFIG_PREFIX: Final = "oprc."
#: a trigger's context, in this order wherever it is passed as values (slots 0 to 3)
CONTEXT_KEYS: Final = ("depth", "event_id", "traceparent", "invocation_id")
CACHE_SIZE: Final = 4096


def delivery_mode(target: Target, default: str) -> str:
    """The delivery of one target: its ``req_options["oprc.delivery"]``, else ``default``."""
    mode = target.options.get(DELIVERY_OPTION, default)
    if mode not in DELIVERY_MODES:
        raise InvalidIdError(
            f"target {target.cls_id}.{target.fn_id}: req_options {DELIVERY_OPTION}={mode!r} "
            f"is not one of {', '.join(DELIVERY_MODES)}"
        )
    return mode


def request_options(target: Target, extra: dict[str, str]) -> dict[str, str]:
    """The ``options`` of a target's request: ``extra`` and its ``req_options`` (which win)
    without the ``oprc.*`` configuration keys."""
    if not any(k.startswith(CONFIG_PREFIX) for k in target.options):
        return {**extra, **target.options}
    own = {k: v for k, v in target.options.items() if not k.startswith(CONFIG_PREFIX)}
    return {**extra, **own}


def context_order(tag: int) -> tuple[int, ...]:
    """The slots of :data:`CONTEXT_KEYS` in the order a map field ``tag`` holds them."""
    return tuple(CONTEXT_KEYS.index(k) for k in pb_wire.map_order(tag, CONTEXT_KEYS))


class Prepared:
    """One target's share of every trigger to it (see the module docstring)."""

    __slots__ = ("batched", "joins", "key_head", "keyed", "mode", "old", "parts", "target")

    def __init__(self, target: Target, delivery: str) -> None:
        check_target(target)
        self.target = target
        self.mode = delivery_mode(target, delivery)
        oid = target.object_segment if target.stateful else None
        whole = zenoh_keys.key(
            self.mode, target.cls_id, target.partition_id, target.fn_id, oid, "\0"
        )
        self.key_head, sep, tail = whole.partition("\0")  # ids hold no NUL (check_target)
        self.keyed = bool(sep)  # the key ends with the invocation id (not an invoke key)
        assert not tail, "the invocation id ends a key"
        self.old = includes_old(target.options)
        self.batched = is_batched(target.options)
        self.parts = _request_parts(target)
        #: the request's bytes around a trigger's own (:func:`_joins`), or ``None``
        self.joins = _joins(self.parts)

    def key(self, invocation_id: str) -> str:
        """The Zenoh key of the trigger ``invocation_id``."""
        return self.key_head + invocation_id if self.keyed else self.key_head

    def request(self, context: tuple[bytes, bytes, bytes, bytes], payload: bytes) -> bytes:
        """The request carrying ``payload``; ``context``: the :data:`CONTEXT_KEYS` values
        as encoded ``options`` entries (:func:`~.pb_wire.map_entry`)."""
        out = [p if isinstance(p, bytes) else context[p] for p in self.parts]
        out.append(pb_wire.request_payload(payload))
        return b"".join(out)


def _request_parts(target: Target) -> tuple[bytes | int, ...]:
    """A target's request but its payload: bytes, and the slot of each context value."""
    constant = request_options(target, {})
    if target.object_id_str is not None:
        constant.setdefault("object_id_str", target.object_id_str)
    slots = {k: i for i, k in enumerate(CONTEXT_KEYS) if k not in constant}
    object_id = (target.object_id or 0) if target.stateful else None
    head = pb_wire.request_head(target.partition_id, object_id, target.cls_id, target.fn_id)
    parts: list[bytes | int] = [head]
    for name in pb_wire.map_order(pb_wire.OPTIONS_FIELD, [*constant, *slots]):
        if name in slots:
            parts.append(slots[name])
        elif isinstance(parts[-1], bytes):  # joined with the bytes before it
            parts[-1] += pb_wire.map_entry(pb_wire.OPTIONS_FIELD, name, constant[name])
        else:
            parts.append(pb_wire.map_entry(pb_wire.OPTIONS_FIELD, name, constant[name]))
    return tuple(parts)


#: the head of the ``options`` entry of an invocation id (a UUID: 36 characters)
INVOCATION_HEAD: Final = pb_wire.entry_head(pb_wire.OPTIONS_FIELD, "invocation_id", 36)


def _joins(parts: tuple[bytes | int, ...]) -> tuple[bytes, bytes, bytes, bytes, bytes] | None:
    """The request's bytes around the depth's and event id's ``options`` entries, the
    invocation id (36 characters, its head :data:`INVOCATION_HEAD` before it) and the
    traceparent's entry (head and value), the last ending with the payload's tag (a
    non-empty payload's length and bytes follow); ``None`` unless the four context values
    take their slots in that order (no ``req_options`` key overrides one, and the library
    orders the four keys so)."""
    if [p for p in parts if isinstance(p, int)] != [0, 1, 3, 2]:
        return None
    out: list[bytes] = [b""]
    for p in parts:
        if isinstance(p, bytes):
            out[-1] += p
        else:
            out[-1] += INVOCATION_HEAD if p == 3 else b""
            out.append(b"")
    c0, c1, c2, c3, c4 = out
    return c0, c1, c2, c3, c4 + b"\x32"  # field 6, the payload


#: (id(target), delivery) -> its Prepared (build_dispatch looks it up directly)
PREPARED: dict[tuple[int, str], Prepared] = {}


def prepared(target: Target, delivery: str) -> Prepared:
    """``target`` prepared for the worker's ``delivery`` (raises ``InvalidIdError`` as
    :func:`~.triggers.check_target` does, for a target that must not be sent)."""
    found = PREPARED.get((id(target), delivery))
    if found is not None and found.target is target:
        return found
    made = Prepared(target, delivery)
    if len(PREPARED) >= CACHE_SIZE:
        PREPARED.clear()
    PREPARED[(id(target), delivery)] = made  # holds ``target``: its id is not reused meanwhile
    return made
