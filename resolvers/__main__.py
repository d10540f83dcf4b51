"""Commands that write through the domain (the store's own commands are `python -m tao`):

    python -m resolvers load-graph --users 1000   load a synthetic social graph (resolvers/synthetic.py)
    python -m resolvers residue --user ID         prove nothing about a purged user remains (every shard,
                                                  every cache server, the object store); exit 1 if anything does
    python -m resolvers deletion --user ID        a deletion's progress (kind being purged, items removed)

Settings come from `--config FILE` / `TAOGRAM_CONFIG` and `TAOGRAM_*` variables, as for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from config import Settings, load_settings_or_exit
from tao import open_tao


async def _load_graph(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.jobs import register_job_handlers
    from resolvers.synthetic import GraphSpec, UsernamesTakenError, load_graph

    tao = await open_tao(settings, start_worker=False)
    register_job_handlers(tao)  # the writes commit the domain's jobs (feed fan-out), as the server's do
    try:
        spec = GraphSpec(users=args.users, posts_per_user=args.posts_per_user, mean_follows=args.mean_follows,
                         likes_per_user=args.likes_per_user, seed=args.seed, username_prefix=args.username_prefix)
        try:
            made = await load_graph(tao, spec, progress=True)
        except UsernamesTakenError as exc:
            print(f"load-graph: {exc}", file=sys.stderr)
            return 1
        print(made.summary())
        print("the posts' feed fan-out jobs are queued: a running server or `python -m tao worker` runs them")
        return 0
    finally:
        await tao.close()


async def _residue(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.account_data.residue import find_residue
    from resolvers.media import media_services

    tao = await open_tao(settings, start_worker=False)
    try:
        async with media_services(settings.media) as media:
            report = await find_residue(tao, settings, media, args.user, [int(i) for i in args.ids or []])
        for shard, table, row in report.rows:
            print(f"row: shard {shard} {table} {row}")
        for server, key in report.cache_keys:
            print(f"cache key: {server} {key}")
        for key in report.stored_objects:
            print(f"stored object: {key}")
        print(f"user {args.user}: {report.summary()}")
        return 0 if report.counts == (0, 0, 0) else 1
    finally:
        await tao.close()


async def _deletion(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.account_data.deletion import purge_progress

    tao = await open_tao(settings, start_worker=False)
    try:
        state = await purge_progress(tao, args.user)
        print(state if state is not None else f"user {args.user}: no deletion pending (or already purged)")
        return 0
    finally:
        await tao.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resolvers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML settings file (default: $TAOGRAM_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("load-graph", help="load a synthetic social graph")
    g.add_argument("--users", type=int, default=1000)
    g.add_argument("--posts-per-user", type=float, default=3.0)
    g.add_argument("--mean-follows", type=float, default=20.0)
    g.add_argument("--likes-per-user", type=float, default=10.0)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--username-prefix", default="user", help="users are <prefix>0, <prefix>1, ... (default: user)")
    r = sub.add_parser("residue", help="prove nothing about a purged user remains")
    r.add_argument("--user", type=int, required=True)
    r.add_argument("--ids", type=int, nargs="*", help="ids of what the user created, when known")
    d = sub.add_parser("deletion", help="a deletion's progress")
    d.add_argument("--user", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings_or_exit(args.config)
    run = {"load-graph": _load_graph, "residue": _residue, "deletion": _deletion}[args.command]
    return asyncio.run(run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
