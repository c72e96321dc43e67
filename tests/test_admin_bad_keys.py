"""The admin commands (groups, dlq, trim) skip a bad key with one warning naming it, serve
the rest, and exit non-zero at the end when they skipped something; run as an operator would."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from oprc_redis_events.protocol.keys import PARTITIONS_KEY, PartitionKeys
from oprc_redis_events.worker.deadletters import dead_letter_fields

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
GOOD = PartitionKeys.of("orders", 0)
MAX = "18446744073709551615"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, input="")


def good_partition(client: redis.Redis) -> None:
    client.xadd(GOOD.outbox, {"o": "1", "v": "1", "d": "0", "ts": "1", "n": "1"})
    client.xgroup_create(GOOD.outbox, "g", id="0")
    fields = dead_letter_fields({b"o": b"1"}, source_id="1-0", reason="poison", failed_at=1)
    client.xadd(GOOD.dead_letters, fields)  # type: ignore[arg-type]
    client.sadd(PARTITIONS_KEY, GOOD.member)


def bad_keys(client: redis.Redis) -> list[str]:
    """Bad keys of every kind; returns how each is named in the warnings."""
    client.sadd(PARTITIONS_KEY, b"\xff:0", "a/b:0", "orders:x", "strbox:0", "strdlq:0")
    client.set("oprc:{strbox:0}:outbox", "x")
    client.set("oprc:{strdlq:0}:dlq", "x")
    return ["\\xff:0", "'a/b:0'", "'orders:x'"]


def assert_skipped(out: subprocess.CompletedProcess[str], named: list[str]) -> None:
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "Traceback" not in text, text
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: skipping")]
    for name in named:
        assert sum(name in line for line in warnings) == 1, (name, text)
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "skipped" in errors[0], text
    assert out.stderr.splitlines()[-1] == errors[0], text


@pytest.mark.parametrize(
    ("args", "served", "also_named"),
    [
        (["groups", "list"], "orders:0   g ", ["oprc:{strbox:0}:outbox"]),
        (["dlq", "list"], "orders:0 ", ["oprc:{strdlq:0}:dlq"]),
        (["dlq", "replay"], "replayed 1 dead letter(s)", ["oprc:{strdlq:0}:dlq"]),
        (["dlq", "purge", "--yes"], "purged 1 dead letter(s)", ["oprc:{strdlq:0}:dlq"]),
        (["groups", "drop", "g", "--yes"], "from 1 outbox(es)", ["oprc:{strbox:0}:outbox"]),
    ],
    ids=["groups-list", "dlq-list", "dlq-replay", "dlq-purge", "groups-drop"],
)
def test_a_bad_key_is_skipped_and_the_rest_served(
    client: redis.Redis, redis_url: str, args: list[str], served: str, also_named: list[str]
) -> None:
    good_partition(client)
    named = bad_keys(client) + also_named
    out = cli(*args, "--redis-url", redis_url)
    assert_skipped(out, named)
    assert served in out.stdout, out.stdout + out.stderr


def test_a_registry_of_the_wrong_type_is_skipped(client: redis.Redis, redis_url: str) -> None:
    good_partition(client)
    client.delete(PARTITIONS_KEY)
    client.set(PARTITIONS_KEY, "x")
    out = cli("groups", "list", "--redis-url", redis_url)
    assert_skipped(out, [f"{PARTITIONS_KEY}: it is a string, not a set"])
    assert "orders:0   g " in out.stdout  # found by SCAN


def test_trim_empties_an_outbox_acknowledged_up_to_the_largest_id(
    client: redis.Redis, redis_url: str
) -> None:
    full = "oprc:{full:0}:outbox"
    client.xadd(full, {"x": "1"}, id=f"{MAX}-{MAX}")
    client.xgroup_create(full, "g", id="$")  # delivered (and acknowledged) up to the end
    out = cli("trim", "--redis-url", redis_url)
    assert out.returncode == 0 and "removed 1 acknowledged entries" in out.stdout, out.stderr
    assert client.xlen(full) == 0
