"""Run a script (server.py) with cProfile switched on and off by signals, for the benchmarks:
SIGUSR1 starts profiling the main thread (the event loop's), SIGUSR2 stops it and writes the
stats to $BENCH_PROFILE_DIR/server-<pid>.prof (pstats). So a bench profiles its measured phase only,
not its set-up.

    python bench/profiled_server.py server.py
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys

_profile = cProfile.Profile()


def _start(_signum, _frame) -> None:
    _profile.enable()


def _stop(_signum, _frame) -> None:
    _profile.disable()
    _profile.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"server-{os.getpid()}.prof"))


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
