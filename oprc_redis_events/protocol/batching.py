"""Batched delivery: ``req_options["oprc.batch_max"]`` and ``"oprc.batch_ms"`` (pure).

A target with either option receives its triggers in batches: up to ``batch_max`` of them,
or those that gathered within ``batch_ms`` of the first, in one invocation whose payload is
a ``TriggerBatch`` (``repeated TriggerPayload triggers = 1``; JSON ``{"triggers": [...]}``),
each element exactly the ``TriggerPayload`` the target would get alone, in event order.

The batch's invocation id is derived from the invocation ids of its first and last
triggers and its size (:func:`batch_invocation_id`), so a batch formed again from the same
entries (a worker stopped before acknowledging them) carries the same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Final

from .pb_wire import varint

__all__ = [
    "BATCH_MAX_OPTION",
    "BATCH_MS_OPTION",
    "MAX_BATCH_MAX",
    "MAX_BATCH_MS",
    "batch_invocation_id",
    "batch_payload",
    "batch_settings",
    "check_batch",
    "is_batched",
]

BATCH_MAX_OPTION: Final = "oprc.batch_max"
BATCH_MS_OPTION: Final = "oprc.batch_ms"
#: the largest ``oprc.batch_max`` accepted (triggers in one invocation)
MAX_BATCH_MAX: Final = 10_000
#: the largest ``oprc.batch_ms`` accepted (a batch's entries stay unacknowledged that long)
MAX_BATCH_MS: Final = 60_000


def _positive(option: str, value: str, most: int) -> int:
    if not value.isascii() or not value.isdigit() or int(value) < 1 or int(value) > most:
        raise ValueError(f"req_options {option}={value!r} is not an integer from 1 to {most}")
    return int(value)


def check_batch(batch_max: str | None, batch_ms: str | None) -> None:
    """Raise ``ValueError`` naming the option when one is not an integer in its range."""
    if batch_max is not None:
        _positive(BATCH_MAX_OPTION, batch_max, MAX_BATCH_MAX)
    if batch_ms is not None:
        _positive(BATCH_MS_OPTION, batch_ms, MAX_BATCH_MS)


def is_batched(options: Mapping[str, str]) -> bool:
    """Whether a target's triggers are delivered in batches."""
    return BATCH_MAX_OPTION in options or BATCH_MS_OPTION in options


def batch_settings(options: Mapping[str, str]) -> tuple[int | None, int | None] | None:
    """``(batch_max, batch_ms)`` of a batched target (either may be ``None``), or ``None``
    for a target without batching (the options were checked by ``check_target``)."""
    size = options.get(BATCH_MAX_OPTION)
    window = options.get(BATCH_MS_OPTION)
    if size is None and window is None:
        return None
    return (None if size is None else int(size)), (None if window is None else int(window))


def batch_invocation_id(first: str, last: str, size: int) -> str:
    """The invocation id of a batch: from its first and last triggers' ids and its size
    (formatted as a UUID, as every invocation id)."""
    h = hashlib.blake2b(f"batch/{first}/{last}/{size}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def batch_payload(payloads: Sequence[bytes], payload_format: str) -> bytes:
    """A ``TriggerBatch`` of the ``TriggerPayload`` bytes ``payloads`` (JSON or protobuf)."""
    if payload_format == "protobuf":
        return b"".join(b"\x0a" + varint(len(p)) + p for p in payloads)
    return b'{"triggers":[' + b",".join(payloads) + b"]}"
