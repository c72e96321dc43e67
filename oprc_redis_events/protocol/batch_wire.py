"""Building the one invocation of a batch of triggers (see :mod:`.batching`)."""

from __future__ import annotations

from collections.abc import Sequence

from .batching import batch_invocation_id, batch_payload
from .encode import Dispatch, trigger_key, wrap

__all__ = ["batch_dispatch", "batch_group"]


def batch_group(d: Dispatch) -> tuple[object, ...]:
    """What the triggers of one batch share: the delivery, the target (its key without the
    invocation id) and its options."""
    target = d.target
    return (d.mode, trigger_key(target, "", d.mode), tuple(sorted(target.options.items())))


def batch_dispatch(members: Sequence[Dispatch], payload_format: str) -> Dispatch:
    """One invocation carrying the triggers ``members`` (of one :func:`batch_group`)."""
    first, last = members[0], members[-1]
    inv_id = batch_invocation_id(first.invocation_id, last.invocation_id, len(members))
    trace = (first.traceparent or "00-" + "0" * 32 + "-x-01").split("-")
    traceparent = f"00-{trace[1]}-{inv_id.replace('-', '')[:16]}-{trace[3]}"
    context = {
        "depth": str(first.depth),
        "event_id": first.event_id,
        "traceparent": traceparent,
        "invocation_id": inv_id,
    }
    body = batch_payload([m.payload or b"" for m in members], payload_format)
    target = first.target
    return Dispatch(
        trigger_key(target, inv_id, first.mode),
        wrap(target, body, context),
        inv_id,
        first.event_id,
        target,
        first.event_type,
        first.mode,
        traceparent,
        first.depth,
    )
