"""The ``oprc-redis-events`` command line: thin, and the only place logging is configured.

Every option falls back to its environment variable (shown in ``--help``), then to the
platform's default.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .config import ENV_VARS, PAYLOAD_FORMATS, ZENOH_MODES, Settings
from .errors import OprcEventsError
from .wire import DELIVERY_MODES

__all__ = ["main"]


def _env(name: str) -> str:
    return f"[env: {ENV_VARS[name]}]"


def _settings(**flags: Any) -> Settings:
    for name in ("zenoh_connect", "zenoh_listen"):
        if flags.get(name) == ():
            flags[name] = None
    return Settings.from_env(**flags)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="oprc-redis-events")
def main() -> None:
    """Object events for Redis: triggers on object changes become OPRC invocations on Zenoh."""


@main.command()
@click.option("--redis-url", help=f"Redis to read the outbox from. {_env('redis_url')}")
@click.option(
    "--zenoh-connect",
    multiple=True,
    help=f"Zenoh endpoint to connect to, e.g. tcp/127.0.0.1:7447 (repeatable). "
    f"{_env('zenoh_connect')}",
)
@click.option(
    "--zenoh-listen",
    multiple=True,
    help=f"Zenoh endpoint to listen on (repeatable; none by default). {_env('zenoh_listen')}",
)
@click.option(
    "--zenoh-mode",
    type=click.Choice(ZENOH_MODES),
    help=f"Zenoh session mode (default: client when --zenoh-connect is given, else peer). "
    f"{_env('zenoh_mode')}",
)
@click.option(
    "--zenoh-config",
    type=click.Path(exists=True, dir_okay=False),
    help=f"Zenoh JSON5 config file; the flags above override it. {_env('zenoh_config')}",
)
@click.option(
    "--payload-format",
    type=click.Choice(PAYLOAD_FORMATS),
    help=f"TriggerPayload encoding (default json, as the platform). {_env('payload_format')}",
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
    f"{_env('max_trigger_depth')}",
)
@click.option("--group", help=f"Consumer group name (default oprc-events). {_env('group')}")
@click.option("--consumer", help=f"Consumer name (default host-pid). {_env('consumer')}")
@click.option(
    "--batch-size",
    type=int,
    help=f"Entries read per XREADGROUP (default 500). {_env('batch_size')}",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def worker(delivery: str, log_level: str, **flags: Any) -> None:
    """Dispatch outbox entries to Zenoh until SIGTERM or Ctrl-C."""
    from .worker import Worker

    _logging(log_level)
    try:
        Worker(_settings(**flags), delivery=delivery).run()  # type: ignore[arg-type]
    except OprcEventsError as err:
        raise click.ClickException(str(err)) from err


@main.command()
@click.option("--redis-url", help="Use this Redis instead of starting a private redis-server.")
@click.option(
    "--events",
    type=int,
    help="Headless: make N updates, wait for their N triggers, print a summary; "
    "exit 0 only if all arrived.",
)
@click.option(
    "--payload-format", type=click.Choice(PAYLOAD_FORMATS), default="json", show_default=True
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for the triggers to arrive.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def demo(
    redis_url: str | None, events: int | None, payload_format: str, timeout: float, log_level: str
) -> None:
    """Run Redis, a Zenoh router, a worker and a subscriber locally and show triggers flowing."""
    from .demo import run_demo

    _logging(log_level)
    if events is not None and events < 1:
        raise click.BadParameter("must be >= 1", param_hint="--events")
    try:
        ok = run_demo(
            redis_url=redis_url,
            events=events,
            payload_format=payload_format,
            timeout=timeout,
            echo=click.echo,
        )
    except OprcEventsError as err:
        raise click.ClickException(str(err)) from err
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
