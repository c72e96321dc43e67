"""Key layout and id validation (pure)."""

from __future__ import annotations

import re

import pytest
import redis.cluster

from oprc_redis_events.errors import InvalidIdError
from oprc_redis_events.protocol.keys import (
    PartitionKeys,
    field_name,
    object_segment,
    parse_field_name,
    parse_object_segment,
    validate_id,
)

pytestmark = pytest.mark.quick  # no server: `make quick`


@pytest.mark.parametrize(
    "bad",
    [
        "a/b",
        "a*",
        "x$y",
        "#",
        "q?",
        "{x",
        "y}",
        "a b",
        "tab\t",
        "",
        "\x00",
        "o\x1b[31m",
        "c\x07",
        "d\x7f",
    ],
)
def test_ids_with_special_characters_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidIdError) as info:
        validate_id("cls_id", bad)
    assert "cls_id" in str(info.value)
    if bad:
        assert repr(bad) in str(info.value)


def test_error_names_the_character() -> None:
    with pytest.raises(InvalidIdError, match=r"'orders/eu' contains '/'"):
        PartitionKeys.of("orders/eu", 0)


@pytest.mark.parametrize("bad", [None, 1.5, b"x", ["a"]])
def test_non_string_ids_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidIdError, match="must be a string"):
        validate_id("fn_id", bad)


@pytest.mark.parametrize("bad", [-1, 2**32, True])
def test_partition_range(bad: object) -> None:
    with pytest.raises(InvalidIdError, match="partition_id"):
        PartitionKeys.of("c", bad)


def test_numeric_and_string_ids() -> None:
    assert object_segment(7) == "7"
    assert object_segment(2**64 - 1) == str(2**64 - 1)
    assert object_segment("user-7") == "user-7"
    assert parse_object_segment("7") == 7
    assert parse_object_segment("007") == "007"
    assert parse_object_segment("user-7") == "user-7"
    assert field_name(42) == "42"
    assert parse_field_name("42") == 42
    assert parse_field_name("name") == "name"
    with pytest.raises(InvalidIdError, match="outside"):
        object_segment(2**64)
    with pytest.raises(InvalidIdError, match="outside"):
        field_name(2**32)
    with pytest.raises(InvalidIdError, match="pass the int 42"):
        field_name("42")
    with pytest.raises(InvalidIdError, match="pass the int 7"):
        object_segment("7")


def test_all_keys_of_a_partition_share_one_slot() -> None:
    keys = PartitionKeys.of("orders", 3)
    names = [keys.obj("1"), keys.meta("1"), keys.outbox, keys.dead_letters, keys.obj("abc")]
    slots = {redis.cluster.key_slot(name.encode()) for name in names}
    assert len(slots) == 1
    assert keys.outbox == "oprc:{orders:3}:outbox"
    assert PartitionKeys.from_key(keys.obj("1")) == keys
    assert PartitionKeys.from_member(keys.member) == keys
    other = PartitionKeys.of("orders", 4)
    assert redis.cluster.key_slot(other.outbox.encode()) not in slots or other.tag != keys.tag


def test_class_ids_with_colons_round_trip() -> None:
    keys = PartitionKeys.of("shop:orders", 9)
    assert PartitionKeys.from_key(keys.outbox) == keys


@pytest.mark.parametrize(
    ("value", "message"),
    [("042", "leading zero"), ("00", "leading zero"), ("4294967296", "above 4294967295")],
)
def test_all_digit_field_names_must_be_canonical_numbers(value: str, message: str) -> None:
    with pytest.raises(InvalidIdError, match=message) as info:
        field_name(value)
    assert repr(value) in str(info.value)
    assert parse_field_name(value) == value  # what is stored can still be read


@pytest.mark.parametrize(
    ("value", "message"), [("007", "leading zero"), (str(2**64), f"above {2**64 - 1}")]
)
def test_all_digit_object_ids_must_be_canonical_numbers(value: str, message: str) -> None:
    with pytest.raises(InvalidIdError, match=message):
        object_segment(value)


@pytest.mark.parametrize("member", ["orders:x", "orders:01", "orders:+1", "orders: 1", "orders"])
def test_partition_members_must_end_in_a_canonical_number(member: str) -> None:
    with pytest.raises(InvalidIdError, match=re.escape(repr(member))):
        PartitionKeys.from_member(member)
