"""Every command of the CLI with ``--cluster`` against the 3-primary cluster.

The commands are enumerated from the click group (as in test_cli_errors), so a new command
that takes ``--redis-url`` must be taught here, or this test fails."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from oprc_redis_events import ObjectStore
from oprc_redis_events.cli import main
from oprc_redis_events.dev.cluster import RedisCluster
from oprc_redis_events.dev.servers import free_port
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.deadletters import dead_letter_fields

from .helpers import watch_all
from .test_cli import children
from .test_cli_errors import COMMANDS, options, sample_args
from .test_dev_tools_keys import cluster_dump

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]

#: command -> (arguments, text its output must hold), run in this order
RUNS: list[tuple[tuple[str, ...], list[str], str]] = [
    (("get",), ["orders", "P0", "1"], "version 1"),
    (("put",), ["orders", "P0", "1", "1=b"], "1 event(s) queued"),
    (("triggers", "list"), ["orders", "P0", "1"], "on_update"),
    (("triggers", "add"), ["orders", "P0", "1", "on_update", "1", "svc/0/g"], "added"),
    (("triggers", "remove"), ["orders", "P0", "1", "on_update", "1", "svc/0/g"], "removed"),
    (("explain",), ["orders", "P0", "1", "1=c"], "svc"),
    (("dlq", "list"), [], "3 dead letter(s)"),
    (("dlq", "replay"), ["--cls", "orders", "--partition", "P0"], "replayed 1"),
    (("dlq", "purge"), ["--yes"], "purged 2"),
    (("groups", "list"), [], "PARTITION"),
    (("groups", "drop"), ["g", "--yes"], "from 3 outbox(es)"),
    (("trim",), [], "acknowledged entries"),
    (("delete",), ["orders", "P0", "1", "1"], "event(s) queued"),
    (("events", "off"), ["--cls", "orders"], "events for class orders: off"),
    (("events", "status"), [], "events: off for class orders; on for the others"),
    (("events", "on"), [], "events: on"),
]
DAEMONS = {("worker",), ("serve",), ("objects",)}  # long-running: --cluster checked by parsing
ELSEWHERE = {("bench",), ("demo",)}  # bench: test_bench and test_dev_tools_keys; demo: below


def one_partition_per_primary(cluster: RedisCluster) -> list[int]:
    """Partitions of class orders whose slots are on three different primaries."""
    with cluster.client(cluster.primary_ports()[0]) as c:
        found: dict[int, int] = {}
        for pid in range(64):
            slot = int(c.execute_command("CLUSTER KEYSLOT", PartitionKeys.of("orders", pid).obj(1)))
            found.setdefault(slot * 3 // 16384, pid)
    assert len(found) == 3
    return sorted(found.values())


@pytest.fixture
def data(cluster_url: str, redis_cluster_server: RedisCluster) -> Iterator[list[int]]:
    """An object with triggers, a consumer group and a dead letter in a partition on each
    primary."""
    pids = one_partition_per_primary(redis_cluster_server)
    store = ObjectStore.from_url(cluster_url, cluster=True)
    for pid in pids:
        store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1], fn="f"))
        keys = PartitionKeys.of("orders", pid)
        entry_id = store.client.xadd(keys.outbox, {b"x": b"1"})
        store.client.xgroup_create(keys.outbox, "g", id="0")
        store.client.xreadgroup("g", "c", {keys.outbox: ">"})
        store.client.xack(keys.outbox, "g", entry_id)
        fields = dead_letter_fields({b"x": b"1"}, source_id="1-0", reason="r", failed_at=1)
        store.client.xadd(keys.dead_letters, fields)  # type: ignore[arg-type]
    store.close()
    yield pids


def test_every_command_that_takes_redis_url_takes_cluster() -> None:
    for path, command in COMMANDS.items():
        if "--redis-url" in options(command):
            assert "--cluster" in options(command), " ".join(path)
    taught = {path for path, _, _ in RUNS} | DAEMONS | ELSEWHERE
    untaught = {p for p, c in COMMANDS.items() if "--redis-url" in options(c)} - taught
    assert not untaught, f"teach test_cluster_cli these commands: {sorted(untaught)}"


@pytest.mark.parametrize(
    "seed", ["unreachable", "not a cluster"], ids=["unreachable", "not-a-cluster"]
)
def test_a_seed_that_is_no_cluster_is_one_error_line(seed: str, redis_url: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0" if seed == "unreachable" else redis_url
    runner = CliRunner()
    for path, command in sorted(COMMANDS.items()):
        if "--cluster" not in options(command) or path in DAEMONS | ELSEWHERE:
            continue
        args = [*path, *sample_args(command), "--redis-url", url, "--cluster"]
        result = runner.invoke(main, [*args, *(["--yes"] if "--yes" in options(command) else [])])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (path, result)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "Redis Cluster" in errors[0], (path, result.output)


def test_every_command_works_on_the_cluster(cluster_url: str, data: list[int]) -> None:
    runner = CliRunner()
    for path, args, expected in RUNS:
        argv = [*path, *[str(data[0]) if a == "P0" else a for a in args]]
        out = runner.invoke(main, [*argv, "--cluster", "--redis-url", cluster_url])
        assert out.exit_code == 0 and expected in out.output, (argv, out.output, out.exception)


def test_the_environment_turns_the_cluster_on(cluster_url: str, data: list[int]) -> None:
    env = {"OPRC_EVENTS_CLUSTER": "true", "OPRC_EVENTS_REDIS_URL": cluster_url}
    out = CliRunner().invoke(main, ["groups", "list"], env=env)
    assert out.exit_code == 0 and len(out.output.splitlines()) == 4, out.output  # 3 rows


@pytest.mark.parametrize("path", sorted(DAEMONS), ids=" ".join)
def test_the_daemons_pass_cluster_into_their_settings(path: tuple[str, ...]) -> None:
    from oprc_redis_events.cli.worker import settings_from_flags

    command = COMMANDS[path]
    args = {
        ("serve",): ["MODULE:FUNC", "--cls", "c", "--partition", "0", "--fn", "f"],
        ("objects",): ["--serve", "c"],
    }.get(path, [])
    ctx = command.make_context(path[-1], [*args, "--cluster"])
    assert ctx.params["cluster"] is True
    assert settings_from_flags(cluster=ctx.params["cluster"]).cluster is True
    assert command.make_context(path[-1], args).params["cluster"] is None  # env decides


def test_headless_demo_on_a_private_cluster_delivers_everything_and_stops_it() -> None:
    before = children()
    out = subprocess.run(
        [*CLI, "demo", "--cluster", "--events", "30"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Redis Cluster: started 3 primaries" in out.stdout
    assert "summary: 30/30 invocations arrived" in out.stdout and "all arrived" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr  # (the new-outbox listener's, once)
    assert children() == before  # the cluster's nodes, the router, the worker: all stopped


def test_demo_on_a_users_cluster_touches_only_what_it_made(
    cluster_url: str, redis_cluster_server: RedisCluster
) -> None:
    with ObjectStore.from_url(cluster_url, cluster=True) as store:
        for pid in range(6):  # the user's partitions, on every primary
            store.create("orders", pid, 1001, {42: b"pending"}, event=watch_all([42]))
            store.update("orders", pid, 1001, {42: b"paid"})  # waiting for the real worker
    before = cluster_dump(redis_cluster_server)
    out = subprocess.run(
        [*CLI, "demo", "--cluster", "--events", "20", "--redis-url", cluster_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "summary: 20/20 invocations arrived" in out.stdout and "demo-orders" in out.stdout
    assert cluster_dump(redis_cluster_server) == before


def test_the_demo_writer_on_a_cluster(cluster_url: str) -> None:
    argv = ["demo", "--write-only", "--cluster", "--redis-url", cluster_url]
    out = CliRunner().invoke(main, [*argv, "--events", "2", "--interval", "0"])
    assert out.exit_code == 0 and out.output.count("writer: status = ") == 2, out.output
    with ObjectStore.from_url(cluster_url, cluster=True) as store:
        written = store.get("demo-orders", 0, 1001)
        assert written is not None and written.version == 3  # upsert, then two updates
