"""The tool commands of the CLI: ``demo`` and ``bench``."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import click

from ..config import PAYLOAD_FORMATS
from .base import configure_logging, redis_url_option

__all__ = ["bench", "demo"]


@click.command()
@redis_url_option(
    "Use this Redis instead of starting a private redis-server: the demo then uses "
    "class names and a consumer group of its own (demo-*, oprc-demo), refuses to start if "
    "any of their keys exists, and deletes exactly the keys it made.  With --cluster: "
    "this Redis Cluster (a seed node), or without --redis-url a private 3-primary cluster.",
    env=False,
)
@click.option(
    "--events",
    type=click.IntRange(min=1),
    help="Headless: make N updates, wait for their N invocations, print a summary; "
    "exit 0 only if all arrived.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
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
    help="Only keep updating the demo order demo-orders/0/1001 in --redis-url (compose's writer).",
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
    cluster: bool | None,
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
    from ..dev.demo import run_demo
    from ..dev.demo_writer import run_writer

    configure_logging(log_level)
    if write_only:
        if not redis_url:
            raise click.UsageError("--write-only needs --redis-url")
        signal.signal(signal.SIGTERM, _interrupt)  # compose stops it so: clean up as on Ctrl-C
        with contextlib.suppress(KeyboardInterrupt):
            run_writer(
                redis_url, interval=interval, count=events, echo=click.echo, cluster=bool(cluster)
            )
        return
    try:
        ok = run_demo(
            redis_url=redis_url,
            events=events,
            duration=duration,
            payload_format=payload_format,
            timeout=timeout,
            echo=click.echo,
            cluster=bool(cluster),
        )
    except KeyboardInterrupt:
        click.echo("interrupted: everything started was stopped", err=True)
        sys.exit(130)
    sys.exit(0 if ok else 1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command()
@redis_url_option(
    "Benchmark this Redis instead of a private redis-server (with --cluster: this Redis "
    "Cluster, through a seed node).",
    env=False,
)
@click.option("--quick", is_flag=True, help="A smoke run of tiny sizes (seconds; not figures).")
@click.option(
    "--full",
    is_flag=True,
    help="The long run: the worker's RSS over 1,000,000 triggers (default 100,000).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=1000.0,
    show_default=True,
    help="Writes per second of the latency rows (write -> subscriber receipt).",
)
@click.option(
    "--rss-triggers",
    type=click.IntRange(min=1),
    help="Triggers the worker delivers for the worker_rss row (overrides --quick/--full).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the results as JSON to this file ('-': standard output).",
)
def bench(
    redis_url: str | None,
    cluster: bool | None,
    quick: bool,
    full: bool,
    rate: float,
    rss_triggers: int | None,
    json_path: str | None,
) -> None:
    """Measure the write path, the worker, latency and memory as ratios against raw redis-py,
    raw Redis Streams and raw Zenoh, measured in the same run, and print a table (and JSON).
    A progress line per benchmark goes to stderr; Ctrl-C or SIGTERM stops every process it
    started and deletes its keys.  With --cluster and no --redis-url, also
    write and dispatch on a private 3-primary cluster against the same work on the private
    single Redis."""
    from ..dev.bench import Sizes, run_benchmarks
    from ..dev.bench_run import table, to_json

    configure_logging("warning")
    sizes = Sizes(quick=quick, full=full, rate=rate, rss_triggers=rss_triggers)
    signal.signal(signal.SIGTERM, _interrupt)  # stop what it started, as on Ctrl-C
    try:
        results = run_benchmarks(redis_url, cluster=bool(cluster), sizes=sizes)
    except KeyboardInterrupt:
        click.echo("interrupted: everything started was stopped", err=True)
        sys.exit(130)
    click.echo(table(results))
    if json_path == "-":
        click.echo(to_json(results))
    elif json_path:
        Path(json_path).write_text(to_json(results) + "\n")
