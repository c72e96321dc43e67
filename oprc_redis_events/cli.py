"""The ``oprc-redis-events`` command line: thin, and the only place logging is configured.

Every option falls back to its environment variable (shown in ``--help``), then to the
platform's default.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from . import cli_dlq, cli_objects
from .config import CAPTURE_MODES, PAYLOAD_FORMATS, ZENOH_MODES, Settings, env_hint
from .errors import OprcEventsError
from .wire import DELIVERY_MODES

__all__ = ["main"]


def _settings(**flags: Any) -> Settings:
    for name in ("zenoh_connect", "zenoh_listen"):
        if flags.get(name) == ():
            flags[name] = None
    return Settings.from_env(**flags)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (and exc when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def _logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = _JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("redis").setLevel(max(logging.WARNING, logging.getLogger().level))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oprc-redis-events")
def main() -> None:
    """Object events for Redis: triggers on object changes become OPRC invocations on Zenoh."""


@main.command()
@click.option("--redis-url", help=f"Redis to read the outbox from. {env_hint('redis_url')}")
@click.option(
    "--zenoh-connect",
    multiple=True,
    help=f"Zenoh endpoint to connect to, e.g. tcp/127.0.0.1:7447 (repeatable). "
    f"{env_hint('zenoh_connect')}",
)
@click.option(
    "--zenoh-listen",
    multiple=True,
    help=f"Zenoh endpoint to listen on (repeatable; none by default). {env_hint('zenoh_listen')}",
)
@click.option(
    "--zenoh-mode",
    type=click.Choice(ZENOH_MODES),
    help=f"Zenoh session mode (default: client when --zenoh-connect is given, else peer). "
    f"{env_hint('zenoh_mode')}",
)
@click.option(
    "--zenoh-config",
    type=click.Path(exists=True, dir_okay=False),
    help=f"Zenoh JSON5 config file; the flags above override it. {env_hint('zenoh_config')}",
)
@click.option(
    "--payload-format",
    type=click.Choice(PAYLOAD_FORMATS),
    help=f"TriggerPayload encoding (default json, as the platform). {env_hint('payload_format')}",
)
@click.option(
    "--delivery",
    type=click.Choice(DELIVERY_MODES),
    default="put",
    show_default=True,
    help="put: the seed's oprc/{cls}/{pid}/async/{fn}/{id} keys; put-odgm: ODGM's "
    "oprc/{cls}/{pid}/invokes/{fn}/async/{id} keys.",
)
@click.option(
    "--max-trigger-depth",
    type=int,
    help=f"Events at this depth or deeper are not dispatched (default 10). "
    f"{env_hint('max_trigger_depth')}",
)
@click.option("--group", help=f"Consumer group name (default oprc-events). {env_hint('group')}")
@click.option("--consumer", help=f"Consumer name (default host-pid). {env_hint('consumer')}")
@click.option(
    "--batch-size",
    type=int,
    help=f"Entries read per XREADGROUP (default 500). {env_hint('batch_size')}",
)
@click.option(
    "--trigger-timeout-ms",
    type=int,
    help=f"A dispatch not completed in this time is a failed attempt (default 30000). "
    f"{env_hint('trigger_timeout_ms')}",
)
@click.option(
    "--max-deliveries",
    type=int,
    help=f"Attempts before an entry is dead-lettered (default 10). {env_hint('max_deliveries')}",
)
@click.option(
    "--claim-idle-ms",
    type=int,
    help=f"Partition lease time, and idle time after which a dead worker's pending entries "
    f"are claimed (default 15000). {env_hint('claim_idle_ms')}",
)
@click.option(
    "--hold/--no-hold",
    default=None,
    help=f"Keep events whose target has no Zenoh subscriber pending until one appears "
    f"(default off). {env_hint('hold')}",
)
@click.option(
    "--hold-max-age-ms",
    type=int,
    help=f"In hold mode, dead-letter an event this long after its write (default 60000). "
    f"{env_hint('hold_max_age_ms')}",
)
@click.option(
    "--capture",
    type=click.Choice(CAPTURE_MODES),
    help=f"keyspace: also report writes that bypass the library (redis-cli, other apps), "
    f"from keyspace notifications (default off). {env_hint('capture')}",
)
@click.option(
    "--metrics-port",
    type=int,
    default=lambda: os.environ.get("OPRC_EVENTS_METRICS_PORT"),
    help="Serve Prometheus metrics (/metrics) and health (/healthz, /readyz) on this port "
    "(0: any free port; default: off). [env: OPRC_EVENTS_METRICS_PORT]",
)
@click.option(
    "--metrics-host",
    default=lambda: os.environ.get("OPRC_EVENTS_METRICS_HOST", "127.0.0.1"),
    show_default="127.0.0.1",
    help="Address the metrics server binds (0.0.0.0 in a container). "
    "[env: OPRC_EVENTS_METRICS_HOST]",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=lambda: os.environ.get("OPRC_EVENTS_LOG_FORMAT", "text"),
    show_default="text",
    help="Log lines as text or as one JSON object per line. [env: OPRC_EVENTS_LOG_FORMAT]",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
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

    _logging(log_level, log_format)
    try:
        Worker(
            _settings(**flags),
            delivery=delivery,  # type: ignore[arg-type]
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        ).run()
    except OprcEventsError as err:
        raise click.ClickException(str(err)) from err


@main.command()
@click.option("--redis-url", help="Use this Redis instead of starting a private redis-server.")
@click.option(
    "--events",
    type=int,
    help="Headless: make N updates, wait for their N invocations, print a summary; "
    "exit 0 only if all arrived.",
)
@click.option(
    "--duration",
    type=float,
    help="Headless: make updates for this many seconds, then the same summary.",
)
@click.option(
    "--payload-format", type=click.Choice(PAYLOAD_FORMATS), default="json", show_default=True
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for the invocations to arrive.",
)
@click.option(
    "--write-only",
    is_flag=True,
    help="Only keep updating the demo order in --redis-url (compose's writer).",
)
@click.option(
    "--interval",
    type=float,
    default=1.0,
    show_default=True,
    help="With --write-only: seconds between updates.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def demo(
    redis_url: str | None,
    events: int | None,
    duration: float | None,
    payload_format: str,
    timeout: float,
    write_only: bool,
    interval: float,
    log_level: str,
) -> None:
    """Run Redis, a Zenoh router, a worker and demo functions locally, and show triggers
    flowing. Without --events/--duration it plays a short scripted story."""
    from .demo import run_demo, run_writer

    _logging(log_level)
    if write_only:
        if not redis_url:
            raise click.UsageError("--write-only needs --redis-url")
        try:
            run_writer(redis_url, interval=interval, count=events, echo=click.echo)
        except OprcEventsError as err:
            raise click.ClickException(str(err)) from err
        except KeyboardInterrupt:
            pass
        return
    if events is not None and events < 1:
        raise click.BadParameter("must be >= 1", param_hint="--events")
    if duration is not None and duration <= 0:
        raise click.BadParameter("must be > 0", param_hint="--duration")
    try:
        ok = run_demo(
            redis_url=redis_url,
            events=events,
            duration=duration,
            payload_format=payload_format,
            timeout=timeout,
            echo=click.echo,
        )
    except OprcEventsError as err:
        raise click.ClickException(str(err)) from err
    except KeyboardInterrupt:
        click.echo("interrupted: everything started was stopped", err=True)
        sys.exit(130)
    sys.exit(0 if ok else 1)


@main.command()
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
@click.option(
    "--redis-url", help=f"Redis of the objects the function writes. {env_hint('redis_url')}"
)
@click.option(
    "--zenoh-connect",
    multiple=True,
    help=f"Zenoh endpoint to connect to (repeatable). {env_hint('zenoh_connect')}",
)
@click.option(
    "--zenoh-listen", multiple=True, help=f"Zenoh endpoint to listen on. {env_hint('zenoh_listen')}"
)
@click.option("--odgm", is_flag=True, help="Also serve ODGM's .../invokes/{fn}/async/* keys.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
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
    import importlib
    import signal
    import threading

    from .host import FunctionHost
    from .store import ObjectStore

    _logging(log_level)
    module_name, _, attr = target.partition(":")
    try:
        handler = getattr(importlib.import_module(module_name), attr or "main")
    except (ImportError, AttributeError) as err:
        raise click.BadParameter(f"cannot load {target}: {err}", param_hint="MODULE:FUNC") from err
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        settings = _settings(**flags)
        session = _open_retrying(settings, stop)
        if session is None:
            return
        store = ObjectStore.from_url(settings.redis_url, zenoh_session=session)
        host = FunctionHost(store, session, cls_id, partitions, {fn_id: handler}, odgm=odgm)
    except OprcEventsError as err:
        raise click.ClickException(str(err)) from err
    with host:
        click.echo(
            f"serving {cls_id}.{fn_id} on partitions {', '.join(map(str, partitions))}", err=True
        )
        stop.wait()
    store.close()
    session.close()
    click.echo("stopped", err=True)


def _open_retrying(settings: Settings, stop: Any) -> Any:
    """A Zenoh session, retried with backoff while its endpoints are unreachable; ``None``
    when ``stop`` (a threading.Event) is set first."""
    from .errors import ZenohUnavailableError
    from .zenoh_session import open_session

    backoff = 0.5
    while not stop.is_set():
        try:
            return open_session(settings)
        except ZenohUnavailableError as err:
            logging.getLogger("oprc_redis_events.host").warning(
                "Zenoh unavailable (%s); retrying in %.1fs", err, backoff
            )
        stop.wait(backoff)
        backoff = min(backoff * 2, 10.0)
    return None


@main.command()
@click.option("--redis-url", help="Benchmark this Redis instead of a private redis-server.")
@click.option("--quick", is_flag=True, help="Smaller runs (about 5 s).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    help="Also write the results as JSON to this file ('-': standard output).",
)
def bench(redis_url: str | None, quick: bool, json_path: str | None) -> None:
    """Measure the write path and the worker as ratios against raw redis-py and Zenoh,
    measured in the same run, and print a table (and JSON)."""
    from .bench import run_benchmarks, table, to_json

    _logging("warning")
    try:
        results = run_benchmarks(redis_url, quick=quick)
    except OprcEventsError as err:
        raise click.ClickException(str(err)) from err
    click.echo(table(results))
    if json_path == "-":
        click.echo(to_json(results))
    elif json_path:
        Path(json_path).write_text(to_json(results) + "\n")


for _command in (
    cli_dlq.dlq,
    cli_dlq.trim,
    cli_objects.get,
    cli_objects.put,
    cli_objects.delete,
    cli_objects.triggers,
    cli_objects.explain,
    cli_objects.tail,
):
    main.add_command(_command)


if __name__ == "__main__":
    main()
