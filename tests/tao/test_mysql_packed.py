"""The MySQL backend's packed read (`fetch_packed`): a few rows read as one JSON document built
by the server, for the locked reads of every list write. What must hold: the rows come back
exactly as a plain read gives them (text byte for byte, integers at 64 bits, NULLs), and a
document the server cut short is read again as rows, never half-parsed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tao import Tao
from tao.testing import TaoTestHooks as hooks
from tests.tao.conftest import open_store

TEXTS = ['{"a": 1}', 'quote " and \\ backslash', "new\nline\ttab\r\x00nul\x1actrl", "é ü 中文 \U0001f600",
         "'single' %s %%", ""]
SELECT = ("SELECT ns AS kind, k AS text, id AS n, NULL AS nothing FROM {unique_keys} WHERE ns = 'pk' UNION ALL "
          "SELECT 'tail', NULL, 9223372036854775807, NULL")
COLUMNS = ("kind", "text", "n", "nothing")


@pytest.fixture
async def store(mysql_settings) -> AsyncIterator[Tao]:
    tao = await open_store(mysql_settings)
    try:
        yield tao
    finally:
        await tao.close()


async def _write_texts(store: Tao) -> None:
    async def body(conn):
        for i, text in enumerate(TEXTS):
            await conn.queue("INSERT INTO {unique_keys} (ns, k, id, version) VALUES ('pk', %s, %s, 1)",
                             (text, i + 1))
    await hooks(store).write(0, body)


async def _both(store: Tao, round_trips: list[list[str]]) -> tuple[list[tuple], list[tuple]]:
    backend = store._shards.backend
    async with hooks(store).read(0) as conn:
        plain = [tuple(r) for r in await conn.fetchall(SELECT)]
        round_trips.clear()
        packed = await backend.fetch_packed(conn, SELECT, (), COLUMNS, text=("kind", "text"))
    return sorted(plain, key=repr), sorted(packed, key=repr)


async def test_packed_rows_are_the_plain_rows(store, round_trips):
    await _write_texts(store)
    plain, packed = await _both(store, round_trips)
    assert round_trips == [["SELECT GROUP_CONCAT(CONCAT('[',"]]  # one packed read: no fallback to rows
    assert len(plain) == len(TEXTS) + 1
    assert packed == plain
    assert {r[1] for r in packed if r[0] == "pk"} == set(TEXTS)
    assert ("tail", None, 2**63 - 1, None) in packed


async def test_no_rows_is_an_empty_list(store):
    async with hooks(store).read(0) as conn:
        assert await store._shards.backend.fetch_packed(
            conn, "SELECT ns AS kind FROM {unique_keys} WHERE ns = 'none'", (), ("kind",), text=("kind",)) == []


async def test_a_document_cut_short_is_read_as_rows(store, round_trips):
    await _write_texts(store)
    backend = store._shards.backend
    async with hooks(store).read(0) as conn:
        plain = sorted([tuple(r) for r in await conn.fetchall(SELECT)], key=repr)
        await conn.execute("SET SESSION group_concat_max_len = 40")  # shorter than the document
        try:
            cut = await conn.fetchall(
                "SELECT GROUP_CONCAT(k) FROM {unique_keys} WHERE ns = 'pk'")  # the server does cut it
            assert len(cut[0][0]) == 40
            round_trips.clear()
            packed = await backend.fetch_packed(conn, SELECT, (), COLUMNS, text=("kind", "text"))
            assert [t[0] for t in round_trips] == ["SELECT GROUP_CONCAT(CONCAT('[',", "SELECT ns"]  # then as rows
        finally:
            await conn.execute("SET SESSION group_concat_max_len = 16777216")
    assert sorted(packed, key=repr) == plain
