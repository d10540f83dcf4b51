"""One list's page read from MariaDB as rows or as one JSON document: client and MariaDB CPU a
read, by page size, through the store's own backend and driver (`MySQLBackend.fetch_edges`).

    PYTHONPATH=. .venv/bin/python bench/page_form_bench.py [--services-json /tmp/svc.json] [--reads 300]
        [--driver aiomysql]

On the harness's MariaDB (started here, or attached with `--services-json`, the JSON of
`python -m tests.harness up`), a store with one list of 600 edges (data like a feed edge's), then
for each page size the same page read `--reads` times as rows and as a document, alternated in
rounds so the box's speed moves both alike. Reports this process's CPU (`time.process_time`)
and the MariaDB server's (/proc) a read, and the sum: where the document form stops paying
(`DOCUMENT_PAGES_FROM` in tao/backends/mysql.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, drop_shards_and_close, harness_settings, run_on_services, service_arguments
from config import MySQLServer
from tao import open_tao
from tao.testing import TaoTestHooks

SIZES = (10, 20, 30, 40, 60, 100, 200, 500)
FORMS = {"rows": None, "document": 0}  # the backend's `document_pages_from` that makes every page that form


async def run(args, services) -> dict:
    s = harness_settings(services, "pf" + os.urandom(3).hex(), 1)
    s.store.mysql_driver = args.driver
    m = services.mysql[0]  # shard 0's server; over its unix socket, as the servers talk to it
    s.store.mysql_servers = [MySQLServer(host=m.host, port=m.port, unix_socket=m.unix_socket)]
    tao = await open_tao(s, migrate=True, start_worker=False)
    mariadb = services._mysql[0].pid
    try:
        owner = await tao.obj_add("TEST_NODE", {})
        ids = [tao.ids.next_id(0) for _ in range(600)]
        for start in range(0, 600, 200):
            await tao.assoc_append_many([(owner, "TEST_PLAIN", i, {"a": 123456789, "k": "p", "s": 0.75})
                                         for i in ids[start:start + 200]])
        hooks = TaoTestHooks(tao)
        backend: Any = hooks.backend  # MySQLBackend: its `document_pages_from` is set below
        page = "{assocs} WHERE id1 = %s AND atype = %s ORDER BY time DESC, id2 DESC LIMIT %s"
        code = hooks.atype("TEST_PLAIN").code
        results: dict[tuple[int, str], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for size in SIZES:
                for form, threshold in FORMS.items():
                    backend.document_pages_from = threshold
                    async with hooks.read(0) as conn:
                        got = await backend.fetch_edges(conn, page, [owner, code, size], size)
                        assert len(got) == size
                        cpu, db = time.process_time(), cpu_seconds(mariadb)
                        for _ in range(args.reads):
                            await backend.fetch_edges(conn, page, [owner, code, size], size)
                        cpu, db = time.process_time() - cpu, cpu_seconds(mariadb) - db
                    results.setdefault((size, form), []).append((cpu / args.reads * 1e6, db / args.reads * 1e6))
    finally:
        await drop_shards_and_close(tao, 1)
    print(f"{'edges':>5} {'form':>9} {'client us':>10} {'MariaDB us':>11} {'sum us':>7}"
          f"   (best of {args.rounds} rounds, by sum)")
    out = {}
    for size in SIZES:
        for form in FORMS:
            client, db = min(results[(size, form)], key=sum)
            print(f"{size:5d} {form:>9} {client:10.0f} {db:11.0f} {client + db:7.0f}")
            out[f"{size}_{form}"] = {"client_us": round(client), "mariadb_us": round(db)}
    return {"driver": args.driver, "reads": args.reads, "per_read": out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(parser)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--driver", default="asyncmy", choices=("asyncmy", "aiomysql"), help="store.mysql_driver")
    return run_on_services(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
