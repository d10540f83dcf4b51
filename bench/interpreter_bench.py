"""The interpreter's own speed on the kind of Python a server runs: coroutines gathered in
rounds, dataclasses built and turned into dicts, JSON written, a regex. No server, no store.

    <python> bench/interpreter_bench.py

Prints the CPU seconds of the run (less is faster). Run it with two interpreters to compare
them: the box's pyenv CPython against `make python`'s PGO + LTO build (docs/operations.md,
"The interpreter"; docs/BENCHMARKS.md, "Nineteenth session").
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import platform
import re
import time


@dataclasses.dataclass
class Obj:
    id: int
    kind: str
    data: dict


async def leaf(i: int) -> str:
    await asyncio.sleep(0)
    return json.dumps(dataclasses.asdict(Obj(i, "MESSAGE", {"a": i, "b": str(i)})))


async def request(i: int) -> int:
    parts = await asyncio.gather(*(leaf(i * 10 + k) for k in range(5)))
    return sum(len(p) for p in parts) + len(re.findall(r"\d+", "".join(parts)))


async def main() -> None:
    start = time.process_time()
    for j in range(400):
        await asyncio.gather(*(request(j * 50 + i) for i in range(50)))
    print(f"{platform.python_implementation()} {platform.python_version()}: {time.process_time() - start:.3f} CPU s")


if __name__ == "__main__":
    asyncio.run(main())
