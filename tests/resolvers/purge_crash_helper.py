"""Run the outbox (a purge among its jobs) and die in the middle of the purge, for the crash test.

    python -m tests.resolvers.purge_crash_helper CONFIG DELETES

Opens the store `CONFIG` names (a TOML file, `tests.tao.procs.write_config`), registers the
domain's handlers and runs jobs; after the DELETES-th edge delete commits it SIGKILLs itself (no
`finally`, no cache install after the point, as when a worker process is killed). Exits 0 only
if it was not killed (the test then fails).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from config import load_settings
from resolvers.jobs import register_job_handlers
from tao import open_tao


async def main(config: Path, deletes: int) -> None:
    tao = await open_tao(load_settings(config, env={}), migrate=False, start_worker=False)
    register_job_handlers(tao)
    delete = tao.assoc_delete
    done = 0

    async def assoc_delete(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal done
        result = await delete(*args, **kwargs)
        done += 1
        if done >= deletes:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    tao.assoc_delete = assoc_delete  # type: ignore[method-assign]
    await tao.run_jobs_until_idle()
    await tao.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
