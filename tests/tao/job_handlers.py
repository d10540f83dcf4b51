"""Outbox job handlers for the store's worker tests; `python -m tao worker` loads them through
`jobs.handler_modules = ["tests.tao.job_handlers"]`.

`tests.link`: adds the edge the payload names (an upsert: running it twice has the effect of
running it once), then appends this process's pid to the payload's `log` file, so a test can
see which workers ran it. With `TAO_TEST_JOB_HANG=1` in its environment, a worker then hangs
instead of finishing: the stand-in for a worker that dies mid-job, after its effect and before
it could report the job done.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

HANG_ENV = "TAO_TEST_JOB_HANG"


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


async def link(tao, payload: dict) -> None:
    await tao.assoc_add(payload["id1"], "TEST_LINK", payload["id2"], time=payload["time"],
                        data={"job": payload["job"]})
    await asyncio.to_thread(_append, payload["log"], str(os.getpid()))
    if os.environ.get(HANG_ENV):
        await asyncio.sleep(3600)


def register(tao) -> None:
    tao.outbox.register("tests.link", link)


def runs(log: Path) -> list[int]:
    """The pids that started the job, in order."""
    return [int(x) for x in log.read_text().split()] if log.exists() else []
