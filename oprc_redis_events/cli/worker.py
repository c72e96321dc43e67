"""The long-running commands of the CLI: ``worker`` and ``serve``."""

from __future__ import annotations

import _thread
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

import click

from ..config import CAPTURE_MODES, ENV_VARS, PAYLOAD_FORMATS, ZENOH_MODES, Settings
from ..errors import ConfigError, InvalidIdError
from ..protocol.encode import DELIVERY_MODES
from ..protocol.keys import validate_id
from .base import (
    F,
    apply,
    class_ids,
    configure_logging,
    env_option,
    redis_url_option,
    setting_option,
    zenoh_endpoint_options,
)

__all__ = ["serve", "settings_from_flags", "worker"]

log = logging.getLogger("oprc_redis_events.worker.loop")

DELIVERY_HELP = (
    "How each trigger reaches its function. put: a Zenoh PUT on the seed's keys "
    "oprc/{cls}/{pid}[/objects/{oid}]/async/{fn}/{id} (subscribers, the function host); "
    "put-odgm: a PUT on ODGM's keys oprc/{cls}/{pid}[/objects/{oid}]/invokes/{fn}/async/{id} "
    "(functions behind a real ODGM); invoke: a Zenoh GET on "
    "oprc/{cls}/{pid}[/objects/{oid}]/invokes/{fn} that waits for the function's reply "
    "(functions served by the platform's SDK; no reply is a failed attempt)."
)
WORKER_ALONE = (
    "no Zenoh endpoint: this worker is a Zenoh peer with no --zenoh-connect, no "
    "--zenoh-listen and multicast scouting off, so nothing can receive its triggers: they are "
    "acknowledged and go nowhere. Connect it to a router (--zenoh-connect tcp/HOST:7447), or "
    "let subscribers connect to it (--zenoh-listen tcp/127.0.0.1:7447, then "
    "`oprc-redis-events tail --zenoh-connect tcp/127.0.0.1:7447`)"
)


def settings_from_flags(**flags: Any) -> Settings:
    """Settings from the environment with the CLI flags that were given on top."""
    for name in ("zenoh_connect", "zenoh_listen", "serve_objects"):
        if flags.get(name) == ():
            flags[name] = None
    settings = Settings.from_env(**flags)
    for cls_id in settings.serve_objects:  # from the environment: named before starting
        try:
            validate_id("cls_id", cls_id)
        except InvalidIdError as err:
            raise ConfigError(f"{ENV_VARS['serve_objects']}: {err}") from None
    return settings


def _log_level_option(default: str) -> Callable[[F], F]:
    return click.option(
        "--log-level",
        default=default,
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"]),
    )


_WORKER_OPTIONS = [
    redis_url_option("Redis to read the outbox from."),
    zenoh_endpoint_options(
        "Zenoh endpoint to connect to, e.g. tcp/127.0.0.1:7447 (repeatable).",
        "Zenoh endpoint to listen on, e.g. tcp/127.0.0.1:7447 (repeatable; none by default).",
        config=False,
    ),
    setting_option(
        "zenoh_mode",
        "--zenoh-mode",
        type=click.Choice(ZENOH_MODES),
        help="Zenoh session mode (default: client when --zenoh-connect is given, else peer).",
    ),
    setting_option(
        "zenoh_config",
        "--zenoh-config",
        type=click.Path(exists=True, dir_okay=False),
        help="Zenoh JSON5 config file; the flags above override it.",
    ),
    setting_option(
        "payload_format",
        "--payload-format",
        type=click.Choice(PAYLOAD_FORMATS),
        help="TriggerPayload encoding (default json, as the platform).",
    ),
    env_option(
        "OPRC_EVENTS_DELIVERY",
        "--delivery",
        type=click.Choice(DELIVERY_MODES),
        default="put",
        show_default=True,
        help=DELIVERY_HELP,
    ),
    setting_option(
        "max_trigger_depth",
        "--max-trigger-depth",
        type=int,
        help="Events at this depth or deeper are not dispatched (default 10).",
    ),
    setting_option("group", "--group", help="Consumer group name (default oprc-events)."),
    setting_option(
        "from_now",
        "--from-now",
        is_flag=True,
        default=None,
        help="A consumer group this worker creates skips the entries written before the "
        "worker started (default: a new group reads the whole retained outbox).",
    ),
    setting_option("consumer", "--consumer", help="Consumer name (default host-pid)."),
    setting_option(
        "batch_size", "--batch-size", type=int, help="Entries read per XREADGROUP (default 500)."
    ),
    setting_option(
        "trigger_timeout_ms",
        "--trigger-timeout-ms",
        type=int,
        help="A dispatch not completed in this time is a failed attempt (default 30000).",
    ),
    setting_option(
        "max_deliveries",
        "--max-deliveries",
        type=int,
        help="Attempts before an entry is dead-lettered (default 10).",
    ),
    setting_option(
        "claim_idle_ms",
        "--claim-idle-ms",
        type=int,
        help="Partition lease time, and idle time after which a dead worker's pending entries "
        "are claimed (default 15000).",
    ),
    setting_option(
        "hold",
        "--hold/--no-hold",
        default=None,
        help="Keep events whose target has no Zenoh subscriber pending until one appears "
        "(default off).",
    ),
    setting_option(
        "hold_max_age_ms",
        "--hold-max-age-ms",
        type=int,
        help="In hold mode, dead-letter an event this long after its write (default 60000).",
    ),
    setting_option(
        "capture",
        "--capture",
        type=click.Choice(CAPTURE_MODES),
        help="keyspace: also report writes that bypass the library (redis-cli, other apps), "
        "from keyspace notifications (default off).",
    ),
    setting_option(
        "serve_objects",
        "--serve-objects",
        multiple=True,
        metavar="CLS",
        callback=class_ids,
        help="Also serve the ODGM data API (Zenoh GET, set, DELETE on "
        "oprc/{cls}/*/objects/*) of this class from Redis, every partition (repeatable; "
        "env: comma-separated).",
    ),
    env_option(
        "OPRC_EVENTS_METRICS_PORT",
        "--metrics-port",
        type=int,
        help="Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on this port "
        "(0: any free port; default: off).",
    ),
    env_option(
        "OPRC_EVENTS_METRICS_HOST",
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address the metrics server binds (0.0.0.0 in a container).",
    ),
    env_option(
        "OPRC_EVENTS_LOG_FORMAT",
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Log lines as text or as one JSON object per line.",
    ),
    _log_level_option("info"),
]


def _worker_options(fn: Any) -> Any:
    return apply(_WORKER_OPTIONS, fn)


@click.command()
@_worker_options
def worker(
    delivery: str,
    log_level: str,
    log_format: str,
    metrics_port: int | None,
    metrics_host: str,
    **flags: Any,
) -> None:
    """Dispatch outbox entries to Zenoh until SIGTERM or Ctrl-C."""
    from ..connect.zenoh_session import is_isolated
    from ..worker.loop import Worker

    configure_logging(log_level, log_format)
    settings = settings_from_flags(**flags)
    if is_isolated(settings):
        log.warning(WORKER_ALONE)
    Worker(
        settings,
        delivery=delivery,  # type: ignore[arg-type]
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    ).run()


@click.command()
@click.argument("target", metavar="MODULE:FUNC")
@click.option("--cls", "cls_id", required=True, help="Class whose function this is.")
@click.option(
    "--partition",
    "partitions",
    type=int,
    multiple=True,
    required=True,
    help="Partition to serve (repeatable).",
)
@click.option("--fn", "fn_id", required=True, help="Function id, as in triggers and invocations.")
@redis_url_option("Redis of the objects the function writes.")
@zenoh_endpoint_options(
    "Zenoh endpoint to connect to (repeatable).", "Zenoh endpoint to listen on."
)
@click.option("--odgm", is_flag=True, help="Also serve ODGM's .../invokes/{fn}/async/* keys.")
@_log_level_option("info")
def serve(
    target: str,
    cls_id: str,
    partitions: tuple[int, ...],
    fn_id: str,
    odgm: bool,
    log_level: str,
    **flags: Any,
) -> None:
    """Serve a Python function FUNC(ctx) from MODULE on Zenoh until SIGTERM or Ctrl-C.

    It answers async invocations (PUTs on the trigger keys) and sync ones (GETs on
    oprc/{cls}/{pid}[/objects/{oid}]/invokes/{fn}). ctx has .store (bound to the
    invocation: its writes carry depth + 1 and the trace), .object_id, .depth, .event,
    .value, .payload, .invocation_id, .traceparent; what FUNC returns (bytes, str or None)
    is the output, and an exception is an APP_ERROR.
    """
    from ..connect.zenoh_session import open_session_waiting

    configure_logging(log_level)
    handler = _load(target)
    settings = settings_from_flags(**flags)
    stop = _stop_on_signals()
    session = open_session_waiting(
        settings, stop, logging.getLogger("oprc_redis_events.functions.host")
    )
    if session is not None:
        _host_until(stop, settings, session, cls_id, partitions, {fn_id: handler}, odgm)
        click.echo("stopped", err=True)


def _host_until(
    stop: threading.Event,
    settings: Settings,
    session: Any,
    cls_id: str,
    partitions: tuple[int, ...],
    handlers: dict[str, Any],
    odgm: bool,
) -> None:
    """Serve ``handlers`` until ``stop``; the store and the session are closed either way."""
    from ..client.sync_generated.store import ObjectStore
    from ..connect.redis_client import redis_client
    from ..functions.host import FunctionHost

    with contextlib.ExitStack() as resources:
        resources.callback(session.close)
        store = resources.enter_context(
            ObjectStore(redis_client(settings), settings, zenoh_session=session)
        )
        resources.enter_context(
            FunctionHost(store, session, cls_id, partitions, handlers, odgm=odgm)
        )
        where = ", ".join(map(str, partitions))
        click.echo(f"serving {cls_id}.{', '.join(handlers)} on partitions {where}", err=True)
        stop.wait()


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT.  Set from a thread of its own: a handler runs
    between two bytecodes of the main thread, which may be inside ``stop.wait()`` holding
    the event's lock, and setting it there would wait for that lock forever."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        _thread.start_new_thread(stop.set, ())  # no lock of threading's taken here

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    return stop


def _load(target: str) -> Any:
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr or "main")
    except (ImportError, AttributeError, ValueError) as err:
        raise click.BadParameter(
            f"cannot load {target}: {err}; write MODULE:FUNC, e.g. "
            "oprc_redis_events.functions.examples:send_notification",
            param_hint="MODULE:FUNC",
        ) from err
