"""Block a user, and die between `do_block_user`'s steps, for the block crash test.

    python -m tests.resolvers.block_crash_helper CONFIG BLOCKER BLOCKED CRASH_POINT

Opens the store `CONFIG` (a TOML file, `tests.tao.procs.write_config`) names, then calls
`follows.do_block_user(tao, BLOCKER, BLOCKED)` and SIGKILLs itself at CRASH_POINT:
- `after_commit`: the BLOCKS edge and its jobs are committed; nothing after it ran;
- `mid_sever`: the first of the six edge deletes that sever the pair committed; the rest did not.
SIGKILL, not an exception: no `finally`, no cleanup, no cache install after the point, as when a
server process is killed. Exits 0 only if it was not killed (the test then fails).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from config import load_settings
from resolvers import follows
from resolvers.jobs import register_job_handlers
from tao import open_tao


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(config: Path, blocker: int, blocked: int, crash_point: str) -> None:
    tao = await open_tao(load_settings(config, env={}), migrate=False, start_worker=False)
    register_job_handlers(tao)
    if crash_point == "after_commit":
        async def sever_blocked(*args: object) -> None:
            _die()
        follows.sever_blocked = sever_blocked  # type: ignore[assignment]  # the step right after the commit
    elif crash_point == "mid_sever":
        delete = tao.assoc_delete

        async def assoc_delete(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = await delete(*args, **kwargs)
            _die()  # after the first severing delete committed
            return result
        tao.assoc_delete = assoc_delete  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown crash point {crash_point!r}")
    await follows.do_block_user(tao, blocker, blocked)
    await tao.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
