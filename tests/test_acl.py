"""Least privilege: the store and the worker run as Redis ACL users with exactly the rules
``oprc-redis-events acl --role ...`` prints, applied with redis-cli as the README shows."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from click.testing import CliRunner

from oprc_redis_events import EventedRedis, ObjectStore, PermissionDeniedError, Settings
from oprc_redis_events.cli.main import main
from oprc_redis_events.connect.permissions import check_access, dryruns, verdict
from oprc_redis_events.dev.servers import RedisServer
from oprc_redis_events.protocol.acl import checks, rules
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.switch import SWITCH_KEY
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import RunningWorker, events, watch_all

Users = Callable[[str], str]


@pytest.fixture
def acl_user(redis_server: RedisServer, redis_url: str) -> Iterator[Users]:
    """Creates user ``<role>-user`` (password ``pw-<role>``) with the printed rules, through
    the shell line of the README (``worker+writer``: both roles); gives its URL."""
    made: list[str] = []

    def create(role: str, drop: str = "") -> str:
        """``drop``: a rule (``+xack``) taken out of the printed ones (``sed``)."""
        cli = shutil.which("redis-cli")
        assert cli is not None
        edit = f" | sed 's/ {drop}\\b//g'" if drop else ""
        flags = " ".join(f"--role {r}" for r in role.split("+"))  # worker+writer: both
        line = (
            f"{cli} -p {redis_server.port} ACL SETUSER {role}-user on '>pw-{role}' "
            f'$("{sys.executable}" -m oprc_redis_events.cli acl {flags}{edit})'
        )
        out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "OK", out
        made.append(f"{role}-user")
        return f"redis://{role}-user:pw-{role}@127.0.0.1:{redis_server.port}/0"

    yield create
    with redis.Redis(port=redis_server.port) as admin:
        for name in made:
            admin.acl_deluser(name)


def test_the_store_runs_as_the_writer(acl_user: Users, client: redis.Redis) -> None:
    store = ObjectStore.from_url(acl_user("writer"))
    try:
        store.create("orders", 0, 1, {42: b"a", "n": b"x"}, event=watch_all([42, "n"]))
        store.update("orders", 0, 1, {42: b"b"})
        record = store.get("orders", 0, 1)
        assert record is not None and record.entries[42] == b"b"
        store.set_triggers("orders", 0, 1, watch_all([42]))
        assert len(store.get_triggers("orders", 0, 1).data_trigger_str) == 0
        assert store.delete("orders", 0, 1)
        assert store.get("orders", 0, 1) is None
    finally:
        store.close()
    assert [e[0] for e in events(client)] == ["CREATE", "CREATE", "UPDATE", "DELETE"]


def test_an_increment_with_a_trigger_runs_as_the_writer(
    acl_user: Users, client: redis.Redis
) -> None:
    """The write script's outbox check reads the stream, which the writer may not: skipped."""
    url = acl_user("writer")
    store = ObjectStore.from_url(url)
    wrapped = EventedRedis(redis.Redis.from_url(url))
    try:
        store.create("orders", 0, 1, {42: b"1"}, event=watch_all([42]))
        assert wrapped.hincrby(PartitionKeys.of("orders", 0).obj("1"), "42", 2) == 3
    finally:
        wrapped.close()
        store.close()
    assert events(client)[-1] == ("UPDATE", "42", b"3")


@pytest.mark.parametrize(
    "command",
    [("XACK", "outbox", "oprc-events", "0-1"), ("XRANGE", "outbox", "-", "+"),
     ("XTRIM", "outbox", "MAXLEN", "0"), ("XINFO", "STREAM", "outbox"),
     ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "outbox", ">")],
    ids=lambda c: c[0],
)  # fmt: skip
def test_the_writer_cannot_read_or_trim_the_outbox(
    acl_user: Users, command: tuple[str, ...]
) -> None:
    outbox = PartitionKeys.of("orders", 0).outbox
    with (
        redis.Redis.from_url(acl_user("writer")) as writer,
        pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"),
    ):
        writer.execute_command(*(outbox if a == "outbox" else a for a in command))


def test_the_writer_cannot_read_the_outbox_from_a_script(acl_user: Users) -> None:
    outbox = PartitionKeys.of("orders", 0).outbox
    with redis.Redis.from_url(acl_user("writer")) as writer:
        script = writer.register_script("return redis.call('XRANGE', KEYS[1], '-', '+')")
        with pytest.raises(redis.exceptions.ResponseError, match=r"can\'t run this command"):
            script(keys=[outbox])


def test_the_worker_cannot_write_objects(acl_user: Users) -> None:
    obj = PartitionKeys.of("orders", 0).obj("1")
    with redis.Redis.from_url(acl_user("worker")) as worker:
        for command in (("HSET", obj, "42", "x"), ("DEL", obj), ("HGETALL", obj)):
            with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
                worker.execute_command(*command)


def test_the_worker_runs_as_the_worker(
    acl_user: Users, redis_url: str, client: redis.Redis
) -> None:
    writer = ObjectStore.from_url(acl_user("writer"))
    publisher = MemoryPublisher()
    settings = Settings.from_env({}, redis_url=acl_user("worker"))
    running = RunningWorker(
        Worker(settings, publisher=publisher, block_ms=20, discover_interval=0.05)
    )
    try:
        writer.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
        writer.update("orders", 0, 1, {42: b"b"})
        deadline = time.monotonic() + 15
        while len(publisher.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(publisher.sent) == 2
        outbox = PartitionKeys.of("orders", 0).outbox
        deadline = time.monotonic() + 15
        while client.xpending(outbox, "oprc-events")["pending"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.xpending(outbox, "oprc-events")["pending"] == 0
    finally:
        running.stop()
        writer.close()


def test_capture_runs_as_the_capture_role(acl_user: Users, client: redis.Redis) -> None:
    """With notify-keyspace-events set beforehand (CONFIG SET is not in the role)."""
    client.config_set("notify-keyspace-events", "KEA")
    store = ObjectStore.from_url(acl_user("writer"))
    store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
    store.close()
    publisher = MemoryPublisher()
    settings = Settings.from_env({}, redis_url=acl_user("capture"), capture="keyspace")
    worker = Worker(settings, publisher=publisher, block_ms=20, discover_interval=0.05)
    running = RunningWorker(worker)
    try:
        deadline = time.monotonic() + 15
        while (worker.capture is None or worker.capture.stats.reconciles == 0) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.02)
        client.hset(PartitionKeys.of("orders", 0).obj("1"), "42", "by-hand")
        while len(publisher.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(publisher.sent) == 2, client.acl_log()  # the CREATE and the UPDATE
    finally:
        running.stop()
    assert events(client)[-1] == ("UPDATE", "42", b"by-hand")


def test_the_store_names_a_missing_permission_before_writing(
    acl_user: Users, client: redis.Redis
) -> None:
    store = ObjectStore.from_url(acl_user("writer", drop="+xadd"))
    batching = ObjectStore.from_url(store.settings.redis_url)
    try:
        with pytest.raises(PermissionDeniedError) as info:
            store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
        with pytest.raises(PermissionDeniedError), batching.batch() as batch:
            batch.create("orders", 0, 2, {42: b"a"}, event=watch_all([42]))
    finally:
        store.close()
        batching.close()
    message = str(info.value)
    assert "may not run XADD on oprc:{*}:outbox" in message, message
    assert "$(oprc-redis-events acl --role writer)" in message and "writer-user" in message
    assert "pw-writer" not in message
    assert not client.keys("oprc:*")  # nothing was written


def test_the_check_is_skipped_where_acl_dryrun_is_refused(acl_user: Users) -> None:
    store = ObjectStore.from_url(acl_user("writer", drop="+acl|dryrun"))
    try:
        store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
    finally:
        store.close()


def one_error_line(*args: str, secret: str) -> str:
    """Run the CLI with ``args``: it must exit 1 with one ``Error:`` line (returned), no
    traceback, and never show ``secret``."""
    out = subprocess.run(
        [sys.executable, "-m", "oprc_redis_events.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert out.returncode == 1 and len(errors) == 1, out.stderr
    assert "Traceback" not in out.stderr and secret not in out.stderr, out.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("role", "drop", "named"),
    [("worker", "+xack", "XACK on oprc:{*}:outbox"),
     ("capture", "+psubscribe", "PSUBSCRIBE on __keyspace@0__:oprc:{*}:obj:*")],
)  # fmt: skip
def test_the_worker_exits_with_one_error_line_naming_what_is_missing(
    acl_user: Users, role: str, drop: str, named: str
) -> None:
    url = acl_user(role, drop=drop)
    capture = ["--capture", "keyspace"] if role == "capture" else []
    error = one_error_line("worker", "--redis-url", url, *capture, secret=f"pw-{role}")
    assert named in error and f"acl --role {role}" in error, error


def test_serving_objects_as_the_worker_role_names_the_writers_rights(acl_user: Users) -> None:
    url = acl_user("worker")
    error = one_error_line("objects", "--serve", "c", "--redis-url", url, secret="pw-worker")
    assert "may not run" in error and "acl --role writer" in error, error


def test_a_user_with_two_roles_has_the_rights_of_both(acl_user: Users) -> None:
    both = redis.Redis.from_url(acl_user("worker+writer"))
    try:
        check_access(both, "writer")  # raises PermissionDeniedError naming what is missing
        check_access(both, "worker")
        dryrun = ("ACL", "DRYRUN", "worker+writer-user", "HSET", "oprc:{c:0}:obj:1", "f", "v")
        assert both.execute_command(*dryrun) == b"OK"  # the writer's right, the worker lacks
    finally:
        both.close()


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--serve-objects", "c"], "acl --role worker --role writer"),
     (["--wrong-password"], "Redis refused the connection")],
    ids=["serving-objects", "wrong-password"],
)  # fmt: skip
def test_the_worker_names_a_missing_role_or_refused_credentials(
    acl_user: Users, flags: list[str], named: str
) -> None:
    url = acl_user("worker")
    if flags == ["--wrong-password"]:
        url, flags = url.replace(":pw-worker@", ":not-the-password@"), []
    secret = url.split(":")[2].split("@")[0]  # the password the URL carries
    error = one_error_line("worker", "--redis-url", url, *flags, secret=secret)
    assert named in error, error


def test_a_worker_whose_credentials_redis_refuses_is_not_ready(acl_user: Users) -> None:
    url = acl_user("worker").replace(":pw-worker@", ":not-the-password@")
    settings = Settings.from_env({}, redis_url=url, check_permissions=False)
    running = RunningWorker(Worker(settings, publisher=MemoryPublisher()))
    try:
        time.sleep(2.0)  # the loop turns (nothing to read) while maintenance is refused
        assert running.worker.live() and not running.worker.ready()
    finally:
        running.stop()


def _cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args[:2], "--redis-url", url, *args[2:]])
    return result.exit_code, result.output


def test_the_operator_commands_run_as_the_admin(acl_user: Users, client: redis.Redis) -> None:
    """Every operator command as the admin user; dead letters made by a worker-role worker."""
    admin = acl_user("admin")
    steps = [
        ("put", "orders", "0", "1", "42=a", "--create"),
        ("triggers", "add", "orders", "0", "1", "on_update", "42", "svc/0/f"),
        ("put", "orders", "0", "1", "42=b"),
        ("events", "off", "--cls", "other"),
        ("events", "status"),
        ("get", "orders", "0", "1"),
        ("explain", "orders", "0", "1", "42=c"),
        ("triggers", "list", "orders", "0", "1"),
    ]
    for step in steps:
        code, output = _cli(admin, *step)
        assert code == 0, (step, output)
    outbox = PartitionKeys.of("orders", 0).outbox
    client.xadd(outbox, {"n": "x"})  # a poison entry
    settings = Settings.from_env({}, redis_url=acl_user("worker"))
    stats = asyncio.run(Worker(settings, publisher=MemoryPublisher()).run_async(burst=True))
    assert stats.dead_letters == 1 and stats.triggers_sent == 1
    for step in [
        ("dlq", "list"),
        ("dlq", "replay"),
        ("groups", "list"),
        ("trim",),
        ("dlq", "purge", "--yes"),
        ("groups", "drop", "oprc-events", "--yes"),
        ("triggers", "remove", "orders", "0", "1", "on_update", "42", "svc/0/f"),
        ("delete", "orders", "0", "1"),
    ]:
        code, output = _cli(admin, *step)
        assert code == 0, (step, output)
    assert not client.exists(PartitionKeys.of("orders", 0).obj("1"))
    assert not client.xlen(PartitionKeys.of("orders", 0).dead_letters)


def test_the_worker_role_dead_letters_and_replays(acl_user: Users, client: redis.Redis) -> None:
    """Dead-lettering (a MULTI under WATCH) and ``dlq replay`` work as the worker role."""
    keys = PartitionKeys.of("orders", 0)
    store = ObjectStore.from_url(acl_user("writer"))
    client.hset(SWITCH_KEY, "other", "off")  # the writer reads the switch (another class)
    store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
    store.close()
    client.delete(SWITCH_KEY)
    client.xadd(keys.outbox, {"n": "x"})  # a poison entry
    worker = acl_user("worker")
    settings = Settings.from_env({}, redis_url=worker)
    stats = asyncio.run(Worker(settings, publisher=MemoryPublisher()).run_async(burst=True))
    assert stats.dead_letters == 1 and client.xlen(keys.dead_letters) == 1
    code, output = _cli(worker, "dlq", "replay")
    assert code == 0 and client.xlen(keys.dead_letters) == 0, output
    stats = asyncio.run(Worker(settings, publisher=MemoryPublisher()).run_async(burst=True))
    assert stats.dead_letters == 1 and client.xlen(keys.dead_letters) == 1  # still poison


@pytest.mark.quick
@pytest.mark.parametrize(
    "refusal",
    [redis.ResponseError("ERR Unknown subcommand or wrong number of arguments for 'DRYRUN'"),
     redis.exceptions.NoPermissionError("this user has no permissions to run the 'acl|dryrun' "
                                        "command")],
    ids=["redis-6.2", "not-allowed"],
)  # fmt: skip
def test_the_check_is_skipped_without_acl_dryrun(refusal: Exception) -> None:
    replies = [refusal] * len(checks("writer"))
    assert verdict("writer", "u", replies) is False


@pytest.mark.quick
def test_a_verdict_names_every_missing_command_and_key() -> None:
    denied = "This user has no permissions to run the 'xack' command"
    replies = [denied if c[0] in ("XACK", "XTRIM") else b"OK" for c in checks("capture", 2)]
    with pytest.raises(PermissionDeniedError) as info:
        verdict("capture", "cap", replies, 2)
    message = str(info.value)
    assert "XACK on oprc:{*}:outbox; XTRIM on oprc:{*}:outbox (ACL DRYRUN: " + denied in message
    assert "$(oprc-redis-events acl --role capture --db 2)" in message
    assert [c[-1] for c in checks("capture", 2) if c[0] == "PSUBSCRIBE"] == [
        "__keyspace@2__:oprc:{*}:obj:*"
    ]
    assert dryruns("worker", "u")[0][:3] == ("ACL", "DRYRUN", "u")
    assert "oprc:{x}:outbox" in dryruns("worker", "u")[3]


def test_an_operator_command_refused_to_the_writer_names_the_admin_role(acl_user: Users) -> None:
    code, output = _cli(acl_user("writer"), "dlq", "list")
    assert code == 1 and output.count("Error:") == 1, output
    assert "Redis refused the command" in output and "acl --role admin" in output, output
    assert "pw-writer" not in output


@pytest.mark.quick
@pytest.mark.parametrize("role", ["writer", "worker", "capture", "admin"])
def test_every_role_that_runs_the_write_script_may_announce_a_new_outbox(role: str) -> None:
    printed = rules(role)
    assert "&oprc:new-outbox" in printed
    assert "+publish" in printed or "+@all" in printed  # write.lua PUBLISHes a new outbox
