"""`batches._get_many`: one `get` whose reply is read in large chunks and parsed in one pass,
against a real memcached: every value byte for byte, whatever it holds and however the reply is
cut into reads."""

from __future__ import annotations

import os

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheUnknownError

from tao.cache.batches import _RECV_BYTES, _get_many
from tao.cache.memcached import _BytesSerde


@pytest.fixture
def client(services, test_id):
    host, port = services.memcached[0].rsplit(":", 1)
    c = Client((host, int(port)), serde=_BytesSerde(), key_prefix=f"{test_id}:".encode(), no_delay=True)
    yield c
    c.close()


def test_every_value_comes_back_byte_for_byte(client):
    values = {
        "plain": b'{"v":1}',
        "empty": b"",
        "looks_like_the_end": b"x\r\nEND\r\nVALUE k 0 3\r\nabc\r\n",  # protocol text inside a value
        "big": os.urandom(3 * _RECV_BYTES + 17),  # spans several reads
        "after_big": b"tail",
    }
    for k, v in values.items():
        client.set(k, v)
    keys = list(values) + ["missing", "plain"]  # a miss, and a key asked twice
    assert _get_many(client, keys) == values
    assert _get_many(client, ["missing"]) == {}
    assert _get_many(client, []) == {}


def test_a_server_error_raises_and_closes_the_socket(client):
    client.set("k", b"v")
    assert _get_many(client, ["k"]) == {"k": b"v"}
    with pytest.raises(MemcacheUnknownError):
        _get_many(client, ["x" * 300])  # over memcached's key length: it answers CLIENT_ERROR
    assert client.sock is None  # closed: the next call reconnects
    assert _get_many(client, ["k"]) == {"k": b"v"}
