"""The long-running commands of the CLI: ``worker`` and ``serve``."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import click

from .cli_base import F, configure_logging, redis_url_option
from .config import CAPTURE_MODES, PAYLOAD_FORMATS, ZENOH_MODES, Settings, env_hint
from .wire import DELIVERY_MODES

__all__ = ["serve", "settings_from_flags", "worker"]

log = logging.getLogger("oprc_redis_events.worker")

DELIVERY_HELP = (
    "How each trigger reaches its function. put: a Zenoh PUT on the seed's keys "
    "oprc/{cls}/{pid}[/objects/{oid}]/async/{fn}/{id} (subscribers, the function host); "
    "put-odgm: a PUT on ODGM's keys oprc/{cls}/{pid}[/objects/{oid}]/invokes/{fn}/async/{id} "
    "(functions behind a real ODGM); invoke: a Zenoh GET on "
    "oprc/{cls}/{pid}[/objects/{oid}]/invokes/{fn} that waits for the function's reply "
    "(functions served by the platform's SDK; no reply is a failed attempt). "
    "[env: OPRC_EVENTS_DELIVERY]"
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
    for name in ("zenoh_connect", "zenoh_listen"):
        if flags.get(name) == ():
            flags[name] = None
    return Settings.from_env(**flags)


def _log_level_option(default: str) -> Callable[[F], F]:
    return click.option(
        "--log-level",
        default=default,
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"]),
    )


_WORKER_OPTIONS = [
    redis_url_option("Redis to read the outbox from."),
    click.option(
        "--zenoh-connect",
        multiple=True,
        help=f"Zenoh endpoint to connect to, e.g. tcp/127.0.0.1:7447 (repeatable). "
        f"{env_hint('zenoh_connect')}",
    ),
    click.option(
        "--zenoh-listen",
        multiple=True,
        help=f"Zenoh endpoint to listen on, e.g. tcp/127.0.0.1:7447 (repeatable; none by "
        f"default). {env_hint('zenoh_listen')}",
    ),
    click.option(
        "--zenoh-mode",
        type=click.Choice(ZENOH_MODES),
        help=f"Zenoh session mode (default: client when --zenoh-connect is given, else peer). "
        f"{env_hint('zenoh_mode')}",
    ),
    click.option(
        "--zenoh-config",
        type=click.Path(exists=True, dir_okay=False),
        help=f"Zenoh JSON5 config file; the flags above override it. {env_hint('zenoh_config')}",
    ),
    click.option(
        "--payload-format",
        type=click.Choice(PAYLOAD_FORMATS),
        help=f"TriggerPayload encoding (default json, as the platform). "
        f"{env_hint('payload_format')}",
    ),
    click.option(
        "--delivery",
        type=click.Choice(DELIVERY_MODES),
        default="put",
        show_default=True,
        envvar="OPRC_EVENTS_DELIVERY",
        help=DELIVERY_HELP,
    ),
    click.option(
        "--max-trigger-depth",
        type=int,
        help=f"Events at this depth or deeper are not dispatched (default 10). "
        f"{env_hint('max_trigger_depth')}",
    ),
    click.option("--group", help=f"Consumer group name (default oprc-events). {env_hint('group')}"),
    click.option(
        "--from-now",
        is_flag=True,
        default=None,
        help="A consumer group this worker creates skips the entries written before the "
        "worker started (default: a new group reads the whole retained outbox). "
        f"{env_hint('from_now')}",
    ),
    click.option("--consumer", help=f"Consumer name (default host-pid). {env_hint('consumer')}"),
    click.option(
        "--batch-size",
        type=int,
        help=f"Entries read per XREADGROUP (default 500). {env_hint('batch_size')}",
    ),
    click.option(
        "--trigger-timeout-ms",
        type=int,
        help=f"A dispatch not completed in this time is a failed attempt (default 30000). "
        f"{env_hint('trigger_timeout_ms')}",
    ),
    click.option(
        "--max-deliveries",
        type=int,
        help=f"Attempts before an entry is dead-lettered (default 10). "
        f"{env_hint('max_deliveries')}",
    ),
    click.option(
        "--claim-idle-ms",
        type=int,
        help=f"Partition lease time, and idle time after which a dead worker's pending entries "
        f"are claimed (default 15000). {env_hint('claim_idle_ms')}",
    ),
    click.option(
        "--hold/--no-hold",
        default=None,
        help=f"Keep events whose target has no Zenoh subscriber pending until one appears "
        f"(default off). {env_hint('hold')}",
    ),
    click.option(
        "--hold-max-age-ms",
        type=int,
        help=f"In hold mode, dead-letter an event this long after its write (default 60000). "
        f"{env_hint('hold_max_age_ms')}",
    ),
    click.option(
        "--capture",
        type=click.Choice(CAPTURE_MODES),
        help=f"keyspace: also report writes that bypass the library (redis-cli, other apps), "
        f"from keyspace notifications (default off). {env_hint('capture')}",
    ),
    click.option(
        "--metrics-port",
        type=int,
        default=lambda: os.environ.get("OPRC_EVENTS_METRICS_PORT"),
        help="Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on this port "
        "(0: any free port; default: off). [env: OPRC_EVENTS_METRICS_PORT]",
    ),
    click.option(
        "--metrics-host",
        default=lambda: os.environ.get("OPRC_EVENTS_METRICS_HOST", "127.0.0.1"),
        show_default="127.0.0.1",
        help="Address the metrics server binds (0.0.0.0 in a container). "
        "[env: OPRC_EVENTS_METRICS_HOST]",
    ),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default=lambda: os.environ.get("OPRC_EVENTS_LOG_FORMAT", "text"),
        show_default="text",
        help="Log lines as text or as one JSON object per line. [env: OPRC_EVENTS_LOG_FORMAT]",
    ),
    _log_level_option("info"),
]


def _worker_options(fn: Any) -> Any:
    for decorator in reversed(_WORKER_OPTIONS):
        fn = decorator(fn)
    return fn


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
    from .worker import Worker
    from .zenoh_session import is_isolated

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
@click.option(
    "--zenoh-connect",
    multiple=True,
    help=f"Zenoh endpoint to connect to (repeatable). {env_hint('zenoh_connect')}",
)
@click.option(
    "--zenoh-listen", multiple=True, help=f"Zenoh endpoint to listen on. {env_hint('zenoh_listen')}"
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
    from .host import FunctionHost
    from .store import ObjectStore
    from .zenoh_session import open_session_waiting

    configure_logging(log_level)
    handler = _load(target)
    settings = settings_from_flags(**flags)
    stop = _stop_on_signals()
    session = open_session_waiting(settings, stop, logging.getLogger("oprc_redis_events.host"))
    if session is None:
        return
    store = ObjectStore.from_url(settings.redis_url, zenoh_session=session)
    try:
        with FunctionHost(store, session, cls_id, partitions, {fn_id: handler}, odgm=odgm):
            click.echo(
                f"serving {cls_id}.{fn_id} on partitions {', '.join(map(str, partitions))}",
                err=True,
            )
            stop.wait()
    finally:
        store.close()
        session.close()
    click.echo("stopped", err=True)


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _load(target: str) -> Any:
    import importlib

    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr or "main")
    except (ImportError, AttributeError, ValueError) as err:
        raise click.BadParameter(
            f"cannot load {target}: {err}; write MODULE:FUNC, e.g. "
            "oprc_redis_events.examples:send_notification",
            param_hint="MODULE:FUNC",
        ) from err
