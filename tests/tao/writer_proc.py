"""A writer process for the concurrency tests:

    python -m tests.tao.writer_proc CONFIG SPEC_JSON LOG_JSON

Opens its own `Tao` from CONFIG, prints "ready", waits for a line on stdin (so every process
starts writing at once), then runs the writers SPEC names concurrently. Each writer owns some
id2s of the one hot list (SPEC["hot"], SPEC["atype"]) and one data key of the hot object: it adds
and deletes its edges at random and sets its key to increasing numbers. Every call and whether
it was acknowledged goes to LOG_JSON (see tests.tao.procs.Op), written when all writers are done.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from config import load_settings
from tao import open_tao
from tests.tao.procs import Writer


async def one_writer(tao, spec: dict, w: dict, rnd: random.Random) -> Writer:
    writer = Writer(w["name"])
    hot, atype = spec["hot"], spec["atype"]
    for seq in range(spec["ops"]):
        id2 = rnd.choice(w["id2s"])
        roll = rnd.random()
        if roll < spec["obj_share"]:
            await writer.obj_set(tao, spec["hot_obj"], w["name"], seq)
        elif roll < 0.65:
            await writer.add(tao, hot, atype, id2, {"w": w["name"], "seq": seq})
        else:
            await writer.delete(tao, hot, atype, id2)
    return writer


async def main(config: str, spec_path: str, log_path: str) -> int:
    spec = json.loads(open(spec_path).read())
    tao = await open_tao(load_settings(config, env={}), migrate=False, start_worker=False)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        rnd = random.Random(spec["seed"])
        writers = await asyncio.gather(*(one_writer(tao, spec, w, random.Random(rnd.random()))
                                         for w in spec["writers"]))
    finally:
        await tao.close()
    log = [op.to_json() for w in writers for op in w.log]
    with open(log_path, "w") as f:
        json.dump(log, f)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
