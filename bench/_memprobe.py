"""Where a bench worker's peak memory comes from (`BENCH_MEMPROBE=1`; `=tracemalloc` adds Python's view).

What it reports, as a dict the worker adds to its JSON line:
- `timeline`: (seconds, VmRSS MB) sampled every 0.2 s on a thread, thinned to ~24 points, and
  when VmHWM was reached (`hwm_at_s`), so a peak can be matched to a phase of the job;
- `by_handler`: how much each job handler raised VmHWM (MB), summed over its runs (and the
  erasure verbs `watch`ed: concurrent calls share the growth, so read it as a hint);
- `malloc`: glibc's own accounting at the end (`mallinfo2`): bytes in use by the program
  (`in_use_mb`) against bytes the allocator holds free in its arenas (`free_in_arenas_mb`) and
  in mmapped chunks, and the number of arenas (`malloc_info`: one per thread that allocated,
  up to 8 x cores) with what each holds;
- with `tracemalloc`: the peak of Python's own allocations and the top lines at that peak
  (tracemalloc sees every thread; it slows the run, so times are not comparable); with
  `tracemalloc-end`, the top lines of what is still alive when the jobs are done (cheaper: one
  snapshot, one frame), which is what accumulated across batches.
Only VmHWM/VmRSS are the process's memory; the rest says who holds it.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any


def status_kb() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_view() -> dict[str, Any]:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    m = libc.mallinfo2()
    mb = 1 / 2**20
    ptr, size = ctypes.c_char_p(), ctypes.c_size_t()
    libc.open_memstream.restype = ctypes.c_void_p
    fp = libc.open_memstream(ctypes.byref(ptr), ctypes.byref(size))
    libc.malloc_info(0, ctypes.c_void_p(fp))
    libc.fclose(ctypes.c_void_p(fp))
    xml = ctypes.string_at(ptr, size.value).decode()
    libc.free(ptr)
    heaps = re.findall(r'<heap nr="(\d+)">(.*?)</heap>', xml, re.S)
    held = [int(m2.group(1)) for _, body in heaps
            if (m2 := re.search(r'<system type="current" size="(\d+)"/>', body))]
    return {"in_use_mb": round(m.uordblks * mb, 1), "free_in_arenas_mb": round(m.fordblks * mb, 1),
            "arena_bytes_mb": round(m.arena * mb, 1), "mmapped_mb": round(m.hblkhd * mb, 1),
            "mmapped_chunks": m.hblks, "arenas": len(heaps), "held_per_arena_mb": [round(h * mb, 1) for h in held]}


def obmalloc_view() -> dict[str, Any]:
    """CPython's small-object allocator (`sys._debugmallocstats`, written to fd 2): its arenas
    (1 MiB each, mmapped, returned only when wholly empty) against the bytes of live objects."""
    import sys
    import tempfile
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")

    def num(label: str) -> int:
        m = re.search(rf"{re.escape(label)}\s*=\s*([\d,]+)", text)
        return int(m.group(1).replace(",", "")) if m else -1
    mb = 1 / 2**20
    return {"arenas_current": num("# arenas allocated current"), "arenas_highwater": num("# arenas highwater mark"),
            "in_blocks_mb": round(num("# bytes in allocated blocks") * mb, 1),
            "free_in_pools_mb": round(num("# bytes in available blocks") * mb, 1)}


class MemProbe:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, int]] = []
        self.hwm_at = 0.0
        self.by_handler: dict[str, float] = {}
        self.py_peak = 0
        self.py_top: list[str] = []
        self._stop = threading.Event()
        if mode.startswith("tracemalloc"):
            tracemalloc.start(8 if mode == "tracemalloc" else 1)
        self._thread = threading.Thread(target=self._sample, daemon=True, name="memprobe")
        self._thread.start()

    def _sample(self) -> None:
        last_hwm = 0
        while not self._stop.wait(0.2):
            s = status_kb()
            now = round(time.monotonic() - self.t0, 1)
            self.samples.append((now, s["VmRSS"]))
            if s["VmHWM"] > last_hwm:
                last_hwm, self.hwm_at = s["VmHWM"], now
            if self.mode == "tracemalloc":
                current, _ = tracemalloc.get_traced_memory()
                if current > self.py_peak * 1.02:  # a new peak: what holds it
                    self.py_peak = current
                    snap = tracemalloc.take_snapshot()
                    self.py_top = [f"{st.size / 2**20:.1f} MB {st.traceback.format()[-1].strip()}"
                                   for st in snap.statistics("lineno")[:12]]

    def handler_ran(self, name: str, hwm_before_kb: int) -> None:
        grew = status_kb()["VmHWM"] - hwm_before_kb
        self.by_handler[name] = round(self.by_handler.get(name, 0.0) + grew / 1024, 1)

    def watch(self, obj: Any, names: tuple[str, ...]) -> None:
        """Wrap these async methods of `obj` so their VmHWM growth is reported like a handler's."""
        for name in names:
            fn = getattr(obj, name)

            async def wrapped(*args: Any, fn: Any = fn, name: str = name, **kwargs: Any) -> Any:
                hwm = status_kb()["VmHWM"]
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.handler_ran(f"tao.{name}", hwm)
            setattr(obj, name, wrapped)

    def report(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        step = max(1, len(self.samples) // 24)
        out: dict[str, Any] = {"timeline": [(t, round(kb / 1024)) for t, kb in self.samples[::step]],
                               "hwm_at_s": self.hwm_at, "by_handler_hwm_mb": self.by_handler,
                               "malloc": malloc_view(), "obmalloc": obmalloc_view(),
                               "env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}
        if self.mode == "tracemalloc-end":  # what is still alive when the jobs are done
            snap = tracemalloc.take_snapshot()
            self.py_top = [f"{st.size / 2**20:.1f} MB {st.traceback.format()[-1].strip()}"
                           for st in snap.statistics("lineno")[:15]]
        if self.mode.startswith("tracemalloc"):
            out["python_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
            out["python_live_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            out["python_top"] = self.py_top
            tracemalloc.stop()
        return out
