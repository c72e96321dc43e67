"""``tail``: print the triggers put on Zenoh, decoded, as a receiving function sees them."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import Any

import click

from ..config import Settings
from ..errors import OprcEventsError, ZenohUnavailableError
from .base import configure_logging, json_bytes, zenoh_endpoint_options

__all__ = ["tail"]

log = logging.getLogger("oprc_redis_events.tail")

TAIL_ALONE = (
    "no Zenoh endpoint: tail is a Zenoh peer with no --zenoh-connect, no --zenoh-listen and "
    "multicast scouting off, so it will receive nothing. Connect it to the worker or a router, "
    "e.g. --zenoh-connect tcp/127.0.0.1:7447 (with `worker --zenoh-listen tcp/127.0.0.1:7447`)"
)


def _key_expr(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import zenoh

    from ..connect.zenoh_session import zenoh_message

    try:
        zenoh.KeyExpr(value)
    except zenoh.ZError as err:
        raise click.BadParameter(
            f"{value!r} is not a Zenoh key expression ({zenoh_message(err)}); write e.g. "
            "oprc/** or oprc/orders/**",
            ctx,
            param,
        ) from None
    return value


def as_json(key: str, t: Any) -> str:
    """One received trigger as a JSON line (values: text if UTF-8, else byte values)."""
    info = t.payload.event_info
    payload = t.payload.original_payload if t.payload.HasField("original_payload") else None
    old = t.payload.previous_payload if t.payload.HasField("previous_payload") else None
    return json.dumps(
        {
            "key": key,
            "target": f"{t.request.cls_id}.{t.request.fn_id}",
            "target_object_id": t.target_object_id,
            "event": t.event_name,
            "source": f"{info.source_cls_id}/{info.source_partition_id}/"
            f"{info.source_object_id_str or info.source_object_id}",
            "field": t.field,
            "fn_id": info.fn_id if info.HasField("fn_id") else None,
            "payload": json_bytes(payload) if payload is not None else None,
            "previous_payload": json_bytes(old) if old is not None else None,
            "depth": t.depth,
            "invocation_id": t.invocation_id,
            "event_id": info.context.get("event_id"),
            "format": t.payload_format,
        }
    )


def received(key: str, body: bytes) -> list[Any]:
    """The triggers of one message: a trigger, or each trigger of a JSON ``TriggerBatch``
    (a batched target's; a protobuf batch cannot be told from a trigger by its bytes)."""
    from ..protocol.decode import ReceivedTrigger, decode_batch, decode_trigger

    try:
        return [decode_trigger(key, body)]
    except OprcEventsError as err:
        try:
            batch = decode_batch(key, body)
        except OprcEventsError:
            raise err from None
        fmt = batch.payload_format
        return [ReceivedTrigger(key, batch.request, t, fmt) for t in batch.triggers]


def _printer(lines: queue.Queue[str], json_lines: bool) -> Any:
    def on_sample(sample: Any) -> None:
        key = str(sample.key_expr)
        try:
            triggers = received(key, sample.payload.to_bytes())
        except OprcEventsError as err:
            lines.put(
                json.dumps({"key": key, "error": str(err)}) if json_lines else f"{key}: {err}"
            )
            return
        for t in triggers:
            lines.put(as_json(key, t) if json_lines else f"{key}\n  {t.describe()}")

    return on_sample


def _open(settings: Settings, deadline: float | None) -> Any:
    """A session, retried with backoff until it opens (or the deadline passes)."""
    from ..connect.zenoh_session import is_isolated, open_session_waiting

    if is_isolated(settings):
        log.warning(TAIL_ALONE)
    stop = threading.Event()
    try:
        session = open_session_waiting(settings, stop, log, deadline=deadline)
    except KeyboardInterrupt:
        return None
    if session is None and deadline is not None:
        endpoints = ", ".join(settings.zenoh_connect + settings.zenoh_listen)
        raise ZenohUnavailableError(
            f"could not open a Zenoh session ({endpoints}) within --timeout; start the "
            "worker or router it connects to, or connect elsewhere"
        )
    return session


@click.command()
@click.option(
    "--key",
    "key_expr",
    default="oprc/**",
    show_default=True,
    callback=_key_expr,
    help="Zenoh key expression to subscribe to.",
)
@zenoh_endpoint_options(
    "Zenoh endpoint to connect to, e.g. tcp/127.0.0.1:7447 (repeatable; retried until it answers).",
    "Zenoh endpoint to listen on (repeatable).",
)
@click.option("--count", type=click.IntRange(min=1), help="Exit after this many invocations.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Exit after this many seconds.")
@click.option("--json", "json_lines", is_flag=True, help="One JSON object per invocation.")
def tail(
    key_expr: str,
    zenoh_connect: tuple[str, ...],
    zenoh_listen: tuple[str, ...],
    count: int | None,
    timeout: float | None,
    json_lines: bool,
) -> None:
    """Print every trigger PUT on Zenoh, decoded: key, target (and its object), event, field,
    payload, depth, invocation id. (GET invocations are queries: a subscriber does not see
    them.)"""
    configure_logging("warning")
    settings = Settings.from_env(
        zenoh_connect=zenoh_connect or None, zenoh_listen=zenoh_listen or None
    )
    deadline = (time.monotonic() + timeout) if timeout is not None else None
    session = _open(settings, deadline)
    if session is None:
        return
    lines: queue.Queue[str] = queue.Queue()
    try:
        subscriber = session.declare_subscriber(key_expr, _printer(lines, json_lines))
        click.echo(f"listening on {key_expr}", err=True)
        _print(lines, count, deadline)
        subscriber.undeclare()
    finally:
        session.close()


def _print(lines: queue.Queue[str], count: int | None, deadline: float | None) -> None:
    seen = 0
    try:
        while (count is None or seen < count) and (deadline is None or time.monotonic() < deadline):
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            click.echo(line)
            seen += 1
    except KeyboardInterrupt:
        pass
