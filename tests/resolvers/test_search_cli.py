"""`python -m resolvers search-rebuild` as an operator runs it, against the real store: it refuses
while another process writes the partition (exit 1, says what to do), and otherwise re-indexes
every partition from the store, with a progress bar, for every server process to read."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from resolvers.search.engine import close_indexes, indexes_for
from tests.resolvers.test_search import found, sign_up
from tests.tao.procs import write_config
from tests.tao.test_cli import cli_env

pytestmark = pytest.mark.slow  # a fresh interpreter and a store to open

REPO = Path(__file__).resolve().parents[2]


async def rebuild(config: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "resolvers", "--config", str(config), "search-rebuild", "--partition", "all",
        cwd=REPO, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode()


async def test_search_rebuild_refuses_a_held_partition_then_reindexes_everything(gql, gql_settings, tmp_path):
    names = [f"cli{i}" for i in range(5)]
    for n in names:
        token, _ = await sign_up(gql, n)
    assert sorted(await found(gql, "cli", token, ["USER"])) == names  # this process now writes them
    config = await asyncio.to_thread(write_config, gql_settings, tmp_path / "taogram.toml")
    code, out = await rebuild(config)
    assert code == 1 and "another process writes it" in out and "stop its indexer" in out, out
    for p in indexes_for(gql.tao).partitions:  # lose everything, and let go of the writers
        await asyncio.to_thread(p.clear)
        await asyncio.to_thread(p.commit)
    await asyncio.to_thread(close_indexes, gql.tao)
    assert await found(gql, "cli", token, ["USER"], drain=False) == []
    code, out = await rebuild(config)
    assert code == 0, out
    assert "partition 0:" in out and "shard" in out  # the summary, and tqdm's bar
    assert sorted(await found(gql, "cli", token, ["USER"], drain=False)) == names
