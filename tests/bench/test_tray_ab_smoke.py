"""Smoke test of `bench/tray_ab.py`: a tiny interleaved run of every kind of variant on the
session's servers, so the benchmark cannot rot. It asserts what the run did (each variant ran
every page, and answered as `ours` did: the bench checks that), never how fast it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.tray_ab import parse_args, run
from tests.harness import Services


@pytest.mark.allow_blocking(reason="a bench's setup: it builds the schema and registers the job handlers "
                                   "on the loop, as a process does before it serves")
async def test_every_variant_runs_every_page_and_answers_alike(services: Services) -> None:
    older = Path(__file__).resolve().parents[2] / "schema" / "execution.py"
    args = parse_args(["--following", "30", "--live", "6", "--fans", "10", "--reads", "4", "--shards", "2",
                       "--variants", f"stock,file:{older},budget-in-memory"])
    out = await run(args, services)
    assert set(out) == {"ours", "stock", f"file:{older}", "budget-in-memory"}
    for summary in out.values():
        assert summary["cpu_p99_ms"] >= summary["cpu_p50_ms"] > 0
