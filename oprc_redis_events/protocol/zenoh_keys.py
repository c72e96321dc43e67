"""The Zenoh key layout (WIRE.md), in one table, built and parsed here only.

==========  ====================================  =====================================
delivery    key (``{base}`` = ``oprc/{cls}/{pid}``, or ``oprc/{cls}/{pid}/objects/{oid}``
            for a function on an object)          used by
==========  ====================================  =====================================
put         ``{base}/async/{fn}/{id}``            the seed's async PUT; the function host
put-odgm    ``{base}/invokes/{fn}/async/{id}``    the PUT a real ODGM serves
invoke      ``{base}/invokes/{fn}``               a GET answered with an InvocationResponse
==========  ====================================  =====================================

``id`` is the invocation id.  The function id sits at the same place in every layout, and
``objects`` right after the partition says the target has an object id.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LAYOUTS", "KeyParts", "base", "key", "parse_key", "served_keys"]

PREFIX = "oprc"
OBJECTS = "objects"

#: delivery mode -> the key after ``{base}``
LAYOUTS = {
    "put": "async/{fn}/{id}",
    "put-odgm": "invokes/{fn}/async/{id}",
    "invoke": "invokes/{fn}",
}


def base(cls_id: str, partition_id: int, object_segment: str | None = None) -> str:
    """``oprc/{cls}/{pid}``, or ``oprc/{cls}/{pid}/objects/{oid}``."""
    head = f"{PREFIX}/{cls_id}/{partition_id}"
    return head if object_segment is None else f"{head}/{OBJECTS}/{object_segment}"


def key(
    delivery: str,
    cls_id: str,
    partition_id: int,
    fn_id: str,
    object_segment: str | None = None,
    invocation_id: str = "*",
) -> str:
    """The key of ``delivery`` for a function (``*`` as the id: every invocation)."""
    tail = LAYOUTS[delivery].format(fn=fn_id, id=invocation_id)
    return f"{base(cls_id, partition_id, object_segment)}/{tail}"


def served_keys(cls_id: str, partition_id: int, fn_id: str, *, odgm: bool) -> list[tuple[str, str]]:
    """(put | get, key expression) a function host declares for one function, for
    stateless and stateful invocations (``*`` for any object)."""
    deliveries = ["put", "put-odgm"] if odgm else ["put"]
    out = [
        ("put", key(d, cls_id, partition_id, fn_id, oid)) for d in deliveries for oid in (None, "*")
    ]
    return out + [("get", key("invoke", cls_id, partition_id, fn_id, oid)) for oid in (None, "*")]


@dataclass(frozen=True, slots=True)
class KeyParts:
    cls_id: str
    partition: str
    object_segment: str | None
    fn_id: str
    invocation_id: str | None  # None for an invoke (GET) key


def parse_key(text: str) -> KeyParts | None:
    """The parts of a key of this layout; ``None`` when it is not one."""
    chunks = text.split("/")
    if len(chunks) < 5 or chunks[0] != PREFIX:
        return None
    stateful = chunks[3] == OBJECTS
    oid = chunks[4] if stateful else None
    rest = chunks[5:] if stateful else chunks[3:]
    for tail in LAYOUTS.values():
        shape = tail.split("/")
        if len(rest) == len(shape) and all(
            s == r or s.startswith("{") for s, r in zip(shape, rest, strict=True)
        ):
            named = dict(zip(shape, rest, strict=True))
            return KeyParts(chunks[1], chunks[2], oid, named["{fn}"], named.get("{id}"))
    return None
