"""Smoke test of `bench/tao_bench.py`: a tiny run of both mixes against both configurations on
the session's servers, so the benchmark cannot rot. It asserts what the run did (every verb ran,
the baseline never touched the cache, the cached store did), never how fast it was."""

from __future__ import annotations

import pytest

from bench._tao_graph import StoreSpec, open_store
from bench._tao_mixes import MIXES
from bench.tao_bench import parse_args, run_bench
from tao import TaoError
from tests.harness import Services

ARGS = ["--quick", "--nodes", "300", "--concurrency", "2", "--measure", "1", "--warmup-min", "1",
        "--warmup-max", "1", "--shards", "4"]


async def test_quick_run_measures_both_mixes_on_both_configurations_and_cleans_up(services: Services) -> None:
    out = await run_bench(parse_args(ARGS), services)

    assert out["graph"]["nodes"] == 300 and out["load"]["edges"] == out["graph"]["edges"] > 0
    for mix, weights in MIXES.items():
        res = out["results"][mix]
        assert set(res) == {"tao", "nocache"}
        for config, r in res.items():
            assert r["ops"] > 0 and r["ops_s"] > 0, (mix, config)
            assert r["errors"] == 0, (mix, config, r["verbs"])
            assert set(r["verbs"]) <= set(weights)
            # The frequent verbs of the mix all ran (rare writes may not in one second).
            assert {v for v, w in weights.items() if w >= 10} <= set(r["verbs"]), (mix, config)
            assert (
                r["verbs"][max(weights, key=weights.get)]["p99_ms"]
                >= r["verbs"][max(weights, key=weights.get)]["p50_ms"]
                > 0
            )
        # The baseline reads SQL for every lookup and never hits; the store went through memcached.
        assert res["nocache"]["stats"]["cache_hits"] == 0 and res["nocache"]["stats"]["cache_misses"] > 0
        assert res["nocache"]["sql_per_op"] > 0.5
        assert res["tao"]["stats"]["cache_hits"] + res["tao"]["stats"]["cache_misses"] > 0
        assert res["tao"]["stats"]["cache_round_trips"] > 0

    # On shared servers the run drops its databases: its store no longer opens.
    spec = StoreSpec([(m.host, m.port, m.unix_socket) for m in services.mysql[:2]], list(services.memcached[:2]),
                     4, out["run_id"], out["run_id"], 2)
    with pytest.raises(TaoError):
        await open_store(spec, "nocache")
