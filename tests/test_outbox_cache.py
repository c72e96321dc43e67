"""decode_entry checks each distinct value once (protocol/outbox.py caches): a value that
failed is refused again, with the same reason, every time; one that passed decodes the same
way every time; the caches stay bounded (pure)."""

from __future__ import annotations

import pytest

from oprc_redis_events.protocol import outbox
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import PoisonEntryError, decode_entry
from oprc_redis_events.protocol.targets import Target, encode_targets

pytestmark = pytest.mark.quick

KEYS = PartitionKeys.of("c", 0)
BLOB = encode_targets([Target("svc", 0, None, None, "f", {})])


def fields(**changes: bytes) -> dict[bytes, bytes]:
    base = {b"o": b"7", b"v": b"1", b"d": b"0", b"ts": b"5", b"n": b"1", b"e1": b"4"}
    base.update({b"k1": b"1", b"p1": b"x", b"t1": BLOB})
    base.update({k.encode(): v for k, v in changes.items()})
    return base


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"o": b"bad/id"}, "field 'o' is not usable"),
        ({"k1": b"bad key"}, "field 'k1' is not usable"),
        ({"t1": b"junk"}, "targets of event 1 cannot be decoded"),
        ({"v": b"1_0"}, "field 'v' is not an integer"),
        ({"ts": b"\xff"}, "field 'ts' is not UTF-8"),
    ],
)
def test_a_refused_value_is_refused_every_time(changes: dict[str, bytes], reason: str) -> None:
    good = decode_entry(KEYS, "1-0", fields())
    for _ in range(3):
        with pytest.raises(PoisonEntryError, match=reason):
            decode_entry(KEYS, "2-0", fields(**changes))
    assert decode_entry(KEYS, "1-0", fields()) == good


def test_the_caches_stay_bounded() -> None:
    for n in range(outbox._CACHE_SIZE + 10):
        decode_entry(KEYS, f"{n}-0", fields(o=b"o%d" % n))
    assert len(outbox._objects) <= outbox._CACHE_SIZE
    assert decode_entry(KEYS, "1-0", fields(o=b"o3")).object_segment == "o3"
