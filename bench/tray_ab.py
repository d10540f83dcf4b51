"""The app's story tray page executed by two or more variants in one process, interleaved request
by request, so the box's drift (this 2-core box's speed moves by half within minutes) hits every
variant alike: a ratio measured side by side, not two runs minutes apart.

Variants (`--variants`, comma-separated; `ours` always runs):
- `ours`: the schema as the server builds it (`schema.execution.TaogramExecutionContext`);
- `stock`: strawberry's own execution context (graphql-core's field machinery for every field);
- `file:PATH`: the `TaogramExecutionContext` of another copy of `schema/execution.py` (an older
  commit's, e.g. `git show REV:schema/execution.py > /tmp/old_execution.py`);
- `budget-in-memory`: `ours` with the cost budget counted in this process instead of Redis.

Every variant's answer must equal `ours`'s. Data: `bench/stories_bench.py`'s tray (1 000
followed, 200 live). Usage:
    PYTHONPATH=. .venv/bin/python bench/tray_ab.py --services-json /tmp/svc.json \\
        --reads 600 --variants stock,budget-in-memory
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

from bench import stories_bench
from bench.app_queries import TRAY_QUERY
from bench.common import drop_shards_and_close, log, run_on_services
from config.runtime import tune_gc
from resolvers.actor import acting_as
from resolvers.jobs import register_job_handlers
from resolvers.media import media_services
from schema import build_schema
from tao import open_tao


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--variants", default="stock")
    ours, rest = extra.parse_known_args(argv)
    a = stories_bench.parse_args(rest)
    a.variants = ["ours"] + [v for v in ours.variants.split(",") if v and v != "ours"]
    return a


def _context_class(variant: str, ours: type) -> type:
    if variant in ("ours", "budget-in-memory"):
        return ours
    if variant == "stock":
        return ours.__mro__[1]  # strawberry's StrawberryGraphQLCoreExecutionContext
    if variant.startswith("file:"):
        spec = importlib.util.spec_from_file_location("execution_under_test", variant[5:])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.TaogramExecutionContext
    raise SystemExit(f"unknown variant {variant!r}")


def _summary(cpu: list[float]) -> dict[str, float]:
    s = sorted(cpu)
    return {"cpu_p50_ms": round(s[len(s) // 2] * 1e3, 2), "cpu_p90_ms": round(s[int(len(s) * 0.9)] * 1e3, 2),
            "cpu_p99_ms": round(s[int(len(s) * 0.99)] * 1e3, 2), "cpu_mean_ms": round(statistics.mean(s) * 1e3, 2)}


async def run(a: argparse.Namespace, services: Any) -> dict[str, Any]:
    tao = await open_tao(stories_bench.make_settings(services, "trayab" + uuid.uuid4().hex[:6], a.shards),
                         migrate=True, start_worker=False)
    register_job_handlers(tao)
    try:
        viewer, _ = await stories_bench.setup_tray(tao, a)
        schema = build_schema(tao.settings.limits)
        ours = schema.execution_context_class
        classes = {v: _context_class(v, ours) for v in a.variants}
        shared_limiter = tao.rate_limits
        media_settings = tao.settings.media.model_copy(
            update={"cdn_base_url": stories_bench.CDN, "local_dir": tempfile.mkdtemp()})
        tune_gc()
        cpu: dict[str, list[float]] = {v: [] for v in classes}
        answers: dict[str, Any] = {}
        async with media_services(media_settings) as media:
            async def page(variant: str) -> float:
                schema.execution_context_class = classes[variant]
                tao.rate_limits = None if variant == "budget-in-memory" else shared_limiter
                try:
                    c0 = time.process_time()
                    result = await schema.execute(TRAY_QUERY, context_value=acting_as(tao, viewer, media=media))
                    spent = time.process_time() - c0
                finally:
                    tao.rate_limits = shared_limiter
                assert not result.errors, result.errors
                answers.setdefault(variant, result.data)
                return spent
            for _ in range(20):
                for v in classes:
                    await page(v)
            order = list(classes)
            for i in range(a.reads):
                for v in (order if i % 2 else order[::-1]):  # neither variant always first
                    cpu[v].append(await page(v))
        for v, data in answers.items():
            assert data == answers["ours"], f"{v} answered differently"
        out = {v: _summary(c) for v, c in cpu.items()}
        log(f"tray_ab: {out}")
        return out
    finally:
        await drop_shards_and_close(tao, a.shards)


def main(argv: list[str] | None = None) -> int:
    return run_on_services(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
