"""``objects --serve CLS``: the ODGM data API served from Redis, without a worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import click

from ..config import ENV_VARS, ZENOH_MODES, Settings
from ..protocol.objdata import (
    DEFAULT_MAX_OBJECT_BYTES,
    DEFAULT_MAX_WRITES_PER_S,
    served_expressions,
)
from .base import class_ids, configure_logging, env_option, redis_url_option, setting_option
from .base import zenoh_endpoint_options as _zenoh_endpoints
from .worker import settings_from_flags

__all__ = ["objects"]

log = logging.getLogger("oprc_redis_events.worker.objects_api")


@click.command("objects")
@env_option(
    ENV_VARS["serve_objects"],
    "--serve",
    "serve_objects",
    multiple=True,
    required=True,
    metavar="CLS",
    callback=class_ids,
    help="Class whose objects to serve, every partition (repeatable; env: comma-separated).",
)
@click.option(
    "--partition",
    "partitions",
    type=click.IntRange(0, 2**32 - 1),
    multiple=True,
    help="Serve only this partition of each class (repeatable; default: every partition).",
)
@redis_url_option("Redis holding the objects.")
@_zenoh_endpoints(
    "Zenoh endpoint to connect to (repeatable).", "Zenoh endpoint to listen on.", config=False
)
@setting_option(
    "zenoh_mode",
    "--zenoh-mode",
    type=click.Choice(ZENOH_MODES),
    help="Zenoh session mode (default: client when --zenoh-connect is given, else peer).",
)
@setting_option(
    "zenoh_config",
    "--zenoh-config",
    type=click.Path(exists=True, dir_okay=False),
    help="Zenoh JSON5 config file; the flags above override it.",
)
@env_option(
    "OPRC_EVENTS_OBJECTS_MAX_WRITES_PER_S",
    "--max-writes-per-s",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_WRITES_PER_S,
    show_default=True,
    help="Writes per object per second through the data API before they are refused "
    "(0: no limit): the data API carries no trigger depth, this ends fast loops.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def objects(
    partitions: tuple[int, ...], max_writes_per_s: int, log_level: str, **flags: Any
) -> None:
    """Serve OPRC's object data API (ODGM's Zenoh GET, set and DELETE on
    oprc/{cls}/{pid}/objects/{oid}) from Redis until SIGTERM or Ctrl-C.

    Writes go through the write path, so they fire the objects' triggers (a worker
    dispatches them)."""
    configure_logging(log_level)
    settings = settings_from_flags(**flags)
    if not settings.serve_objects:
        raise click.UsageError(f"give at least one --serve CLS (or {ENV_VARS['serve_objects']})")
    for cls_id in settings.serve_objects:
        served_expressions(cls_id)  # an invalid class id: an Error line before connecting
    asyncio.run(_serve(settings, partitions or None, max_writes_per_s))


async def _serve(settings: Settings, partitions: tuple[int, ...] | None, max_writes: int) -> None:
    from ..client.aio.store import AsyncObjectStore
    from ..connect.permissions import check_worker_async
    from ..connect.redis_client import async_redis_client
    from ..connect.zenoh_session import is_isolated, open_session_retrying
    from ..worker.objects_api import ObjectsApi

    if is_isolated(settings):
        log.warning(
            "no Zenoh endpoint: a peer with no --zenoh-connect, no --zenoh-listen and "
            "multicast scouting off, which no function can reach"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as resources:
        store = AsyncObjectStore(async_redis_client(settings), settings)
        resources.push_async_callback(store.close)
        if settings.check_permissions:  # its writes need the writer's rights: named at once
            await check_worker_async(store.client, ("writer",))
        session = await open_session_retrying(settings, stop, log)
        if session is None:
            return
        resources.callback(session.close)
        api = ObjectsApi(
            store,
            session,
            settings.serve_objects,
            partitions=partitions,
            max_writes_per_s=max_writes,
            max_object_bytes=DEFAULT_MAX_OBJECT_BYTES,
        )
        await resources.enter_async_context(api)
        click.echo(f"serving the objects of {', '.join(api.classes)}", err=True)
        await stop.wait()
    click.echo("stopped", err=True)
