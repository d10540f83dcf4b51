"""The two MySQL drivers side by side: client CPU per transaction, as the store's send path
makes them (`store.mysql_driver`: asyncmy, aiomysql).

    PYTHONPATH=. .venv/bin/python bench/mysql_driver_bench.py [--services /tmp/svc.json] [--rounds 3]

On one of the harness's MariaDB servers (started here, or attached with `--services`, the JSON
of `python -m tests.harness up`), 8 tasks on one uvloop loop run, through each driver's pool,
the shape of a message's delivery transaction: BEGIN, an upsert and a 9-column read of ~10 rows
in one multi-statement round trip, then two inserts, an update and COMMIT in a second, then a
one-row read (3 round trips). Reports this process's CPU (`time.process_time`) and wall time
per transaction, the drivers alternated `--rounds` times so the box's speed moves both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import attach_services, start_services

DRIVERS = ("aiomysql", "asyncmy")
NEXT_ID = [1_000_000]  # the rows each transaction inserts: new ids over every round


async def transactions(driver: str, unix_socket: str, n: int, tasks: int, table: str) -> tuple[float, float]:
    if driver == "aiomysql":
        import aiomysql as module
    else:
        import asyncmy as module  # type: ignore[no-redef]
    from pymysql.constants import CLIENT

    pool = await module.create_pool(minsize=0, maxsize=tasks, unix_socket=unix_socket, user="root", autocommit=True,
                                    client_flag=CLIENT.MULTI_STATEMENTS, charset="utf8mb4")

    async def worker() -> None:
        for i in range(n // tasks):
            NEXT_ID[0] += 3
            j = NEXT_ID[0]
            conn = await pool.acquire()
            try:
                async with conn.cursor() as cur:
                    await cur.execute(
                        f"BEGIN;\nINSERT INTO {table} VALUES ({j}, 1, 2, 3, '{{\"m\":1}}') "
                        "ON DUPLICATE KEY UPDATE c = c + 1;\n"
                        f"(SELECT id, a, b, c, data, NULL, NULL, 1, 2 FROM {table} WHERE id < 8) UNION ALL "
                        f"(SELECT id, a, b, c, data, NULL, NULL, 1, 2 FROM {table} WHERE id BETWEEN 10 AND 11)")
                    await cur.nextset()
                    await cur.nextset()
                    await cur.fetchall()
                    await cur.execute(f"INSERT INTO {table} VALUES ({j + 1}, 1, 2, 3, '{{}}'), "
                                      f"({j + 2}, 1, 2, 3, '{{}}');\nUPDATE {table} SET c = c + 1 WHERE id = 5;\n"
                                      "COMMIT")
                    await cur.nextset()
                    await cur.nextset()
                    await cur.execute(f"SELECT id, a, b, c, data FROM {table} WHERE id = {i % 1000}")
                    await cur.fetchall()
            finally:
                pool.release(conn)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pool.close()
    await pool.wait_closed()
    return cpu / n * 1e6, wall / n * 1e6


async def run(args) -> None:
    services = attach_services(args.services) if args.services else start_services(1, 0, s3=False, redis=False)
    try:
        sock = services.mysql[0].unix_socket
        import pymysql
        setup = pymysql.connect(unix_socket=sock, user="root", autocommit=True)
        with setup.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS driver_bench")
            cur.execute("DROP TABLE IF EXISTS driver_bench.t")
            cur.execute("CREATE TABLE driver_bench.t (id BIGINT PRIMARY KEY, a BIGINT, b BIGINT, c INT, data TEXT)")
            cur.execute("INSERT INTO driver_bench.t VALUES " +
                        ", ".join(f"({i}, {i * 7}, {i * 11}, {i % 5}, '{{\"x\":{i}}}')" for i in range(1000)))
        results: dict[str, list[float]] = {d: [] for d in DRIVERS}
        for _ in range(args.rounds):
            for driver in DRIVERS:
                cpu, wall = await transactions(driver, sock, args.transactions, 8, "driver_bench.t")
                results[driver].append(cpu)
                print(f"{driver:9s} {cpu:7.1f} us CPU, {wall:7.1f} us wall a transaction (3 round trips)")
        with setup.cursor() as cur:
            cur.execute("DROP DATABASE driver_bench")
        best = {d: min(v) for d, v in results.items()}
        print(f"asyncmy / aiomysql, client CPU a transaction (best of {args.rounds}): "
              f"{best['asyncmy'] / best['aiomysql']:.2f}")
    finally:
        if not args.services:
            services.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", help="attach to these services (tests.harness up's JSON)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transactions", type=int, default=3000)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
