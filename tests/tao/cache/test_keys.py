"""Key building and value encoding."""

from __future__ import annotations

import pytest

from tao.cache import codec
from tao.cache.keys import MAX_KEY_LENGTH, edge_key, list_key, obj_key, unique_key


def test_key_layout():
    assert obj_key("tg", 42) == "tg:o:42"
    assert list_key("tg", 42, "FOLLOWS") == "tg:l:42:FOLLOWS"
    assert edge_key("tg", 42, "FOLLOWS", 7) == "tg:e:42:FOLLOWS:7"
    assert obj_key("", 42) == "o:42"
    assert unique_key("tg", "username", "ab12" * 10) == "tg:u:username:" + "ab12" * 10


def test_longest_keys_fit_memcached_with_room_for_a_tier_prefix():
    assert len(edge_key("p" * 64, 2**64 - 1, "A" * 64, 2**64 - 1)) <= MAX_KEY_LENGTH
    assert len(unique_key("p" * 64, "n" * 32, "f" * 64)) <= MAX_KEY_LENGTH


@pytest.mark.parametrize(
    "build",
    [
        lambda: obj_key("has space", 1),
        lambda: obj_key("tab\t", 1),
        lambda: obj_key("p" * 65, 1),
        lambda: obj_key("tg", -1),
        lambda: obj_key("tg", 2**64),
        lambda: obj_key("tg", True),
        lambda: list_key("tg", 1, "follows"),
        lambda: list_key("tg", 1, "FOLLOWS\n"),
        lambda: edge_key("tg", 1, "FOLLOWS", "2"),
        lambda: unique_key("tg", "User", "ab12ab12"),
        lambda: unique_key("tg", "user", "not hex!"),
    ],
)
def test_bad_key_parts_are_rejected(build):
    with pytest.raises(ValueError):
        build()


def test_codec_roundtrip_and_garbage():
    value = {"v": 3, "name": "zoë", "ids": [1, 2]}
    data = codec.encode(value)
    assert b" " not in data  # compact
    assert codec.decode(data) == value
    for junk in (b"not json", b"[1]", b'{"v": "3"}', b'{"v": true}', b"\xff"):
        assert codec.decode(junk) is None


def test_plan_install_rule():
    assert codec.plan_install(2, lambda old: {"x": 1}, codec.encode({"v": 2})) is None
    assert codec.decode(codec.plan_install(3, lambda old: {"old": old}, codec.encode({"v": 2}))) == {
        "old": {"v": 2}, "v": 3}
    # Tombstones are present at their version, but `make` sees None; garbage is overwritten.
    tomb2 = codec.encode({"v": 2, "stale": True})
    assert codec.plan_install(1, lambda old: {}, tomb2) is None
    # A value read at the tombstone's own version replaces it (same SQL state); a second
    # tombstone at that version changes nothing.
    assert codec.decode(codec.plan_install(2, lambda old: {"old": old}, tomb2)) == {"old": None, "v": 2}
    assert codec.plan_install(2, lambda old: {"stale": True}, tomb2) is None
    assert codec.decode(codec.plan_install(3, lambda old: {"old": old}, codec.encode({"v": 2, "stale": True}))) == {
        "old": None, "v": 3}
    assert codec.decode(codec.plan_install(0, lambda old: {}, b"garbage")) == {"v": 0}


def test_ring_placement_is_stable_balanced_and_consistent():
    from collections import Counter

    from tao.cache.ring import FastRendezvousHash

    def ring(nodes):
        r = FastRendezvousHash()
        for n in nodes:
            r.add_node(n)
        return r

    nodes = [f"10.0.0.{i}:11211" for i in range(3)]
    keys = [obj_key("", i) for i in range(3000)]
    before = [ring(nodes).get_node(k) for k in keys]
    assert before == [ring(list(reversed(nodes))).get_node(k) for k in keys]  # order-free
    assert min(Counter(before).values()) > 800  # roughly a third each
    after = [ring([*nodes, "10.0.0.9:11211"]).get_node(k) for k in keys]
    moved = [(a, b) for a, b in zip(before, after) if a != b]
    assert moved and all(b == "10.0.0.9:11211" for _, b in moved)  # only keys to the new node
