"""Commands that write through the domain (the store's own commands are `python -m tao`):

    python -m resolvers load-graph --users 1000   load a synthetic social graph (resolvers/synthetic.py)
    python -m resolvers search-rebuild --partition N   re-index search partition N from the store
    python -m resolvers search-indexer --partitions 0-3   be the one writer of these search partitions
    python -m resolvers residue --user ID         prove nothing about a purged user remains (every shard,
                                                  every cache server, the object store); exit 1 if anything does
    python -m resolvers deletion --user ID        a deletion's progress (kind being purged, items removed)
    python -m resolvers username-skeletons        claim the look-alike skeleton of every existing username
                                                  (resolvers/usernames.py; once, after upgrading); lists
                                                  accounts whose name looks like another's
    python -m resolvers dormant-resync            tally the engagements of every account pending deletion
                                                  again (resolvers/dormant.py; once, after an upgrade that
                                                  tallies more: follows, sixteenth session)
    python -m resolvers hashtags-renormalize      move the posts of tags stored under an old normal form
                                                  (a full-width name, say) onto the NFKC case-folded tag
                                                  (resolvers/hashtag_names.py; once, after upgrading)
    python -m resolvers highlights-audience       record on each highlight made before the seventeenth
                                                  session which of its stories are for close friends
                                                  (resolvers/stories/highlights.py; once, after upgrading)

Settings come from `--config FILE` / `TAOGRAM_CONFIG` and `TAOGRAM_*` variables, as for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from config import Settings, load_settings_or_exit
from tao import Tao, open_tao

T = TypeVar("T")


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


async def _search_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from resolvers.search.engine import WriterBusyError, indexes_for
    from resolvers.search.indexer import rebuild_partition
    from tao.__main__ import parse_shards

    tao = await open_tao(settings, start_worker=False)
    try:
        parts = parse_shards(args.partition, settings.search.partitions) if args.partition != "all" else \
            list(range(settings.search.partitions))
        for p in parts:
            bar = tqdm(total=tao.n_shards, desc=f"partition {p}", unit="shard")
            state = {"shard": 0}

            def tick(shard: int, scanned: int, bar: tqdm = bar, state: dict = state) -> None:
                if shard != state["shard"]:
                    bar.update(shard - state["shard"])
                    state["shard"] = shard
                bar.set_postfix(objects=scanned, refresh=False)
            try:
                n = await rebuild_partition(tao, p, progress=tick)
            except WriterBusyError as exc:
                bar.close()
                print(f"search-rebuild: {exc}: stop its indexer (`search-indexer`, or the server that writes it) "
                      "and run this again; its jobs wait in the outbox meanwhile", file=sys.stderr)
                return 1
            bar.update(tao.n_shards - state["shard"])
            bar.close()
            print(f"partition {p}: {n} documents")
        indexes_for(tao).close()
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


async def _search_indexer(settings: Settings, args: argparse.Namespace) -> int:
    """The one writer of some partitions: runs their index jobs and nothing else."""
    import signal

    from resolvers.jobs import register_job_handlers
    from resolvers.search.engine import indexes_for
    from resolvers.search.indexer import job_name
    from tao.__main__ import parse_shards

    parts = parse_shards(args.partitions, settings.search.partitions)
    settings.search.writer_partitions = ",".join(map(str, parts))
    tao = await open_tao(settings, start_worker=False)
    register_job_handlers(tao)
    tao.outbox.only = {job_name(p) for p in parts}
    for p in parts:  # take the locks now: a second indexer of the same partition fails here, loudly
        await indexes_for(tao).partitions[p].take_writer()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Index jobs are written by other processes (no nudge reaches this one): poll each shard at
    # least every `search.indexer_max_idle` seconds, which bounds the index's lag behind a write.
    work = asyncio.create_task(tao.outbox.work(max_idle=settings.search.indexer_max_idle))
    logging.getLogger("resolvers.search").info("search indexer of partitions %s", parts)
    await stop.wait()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    indexes_for(tao).close()
    await tao.close()
    return 0


async def _deletion(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.account_data.deletion import purge_progress

    tao = await open_tao(settings, start_worker=False)
    try:
        state = await purge_progress(tao, args.user)
        print(state if state is not None else f"user {args.user}: no deletion pending (or already purged)")
        return 0
    finally:
        await tao.close()


async def _username_skeletons(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.usernames import claim_existing_skeletons

    return await _print_each(
        settings, claim_existing_skeletons,
        lambda found: f"user {found[0]} ({found[1]!r}) looks like user {found[2]}'s name: both keep working",
        lambda n: f"username skeletons claimed; {n} account(s) whose name looks like another's")


async def _dormant_resync(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.dormant import resync_pending

    tao = await open_tao(settings, start_worker=False)
    try:
        n = 0
        async for user_id in resync_pending(tao):
            n += 1
            print(f"user {user_id}: pending deletion, tallies synced")
        print(f"{n} account(s) pending deletion resynced")
        return 0
    finally:
        await tao.close()


async def _hashtags_renormalize(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.hashtag_names import renormalize_hashtags

    return await _print_each(  # the renames commit the posts' edge and index jobs, as an edit does
        settings, renormalize_hashtags, lambda found: f"#{found[0]}: {found[1]} post(s) moved onto its normal form",
        lambda n: f"{n} tag(s) stored under an old normal form; their posts' jobs are queued for the workers",
        jobs=True)


async def _highlights_audience(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.stories.highlights import record_audiences

    return await _print_each(  # the change commits the highlight's edge sync, as any change does
        settings, record_audiences, lambda found: f"highlight {found}: its close-friends stories recorded",
        lambda n: f"{n} highlight(s) from before the audience was kept on them", jobs=True)


async def _print_each(settings: Settings, walk: Callable[[Tao], AsyncIterator[T]], line: Callable[[T], str],
                      summary: Callable[[int], str], *, jobs: bool = False) -> int:
    """A one-off upgrade command: open the store (with the domain's job handlers when its writes
    commit jobs), print a line for each thing `walk` reports, then `summary` of how many."""
    from resolvers.jobs import register_job_handlers

    tao = await open_tao(settings, start_worker=False)
    if jobs:
        register_job_handlers(tao)
    try:
        n = 0
        async for found in walk(tao):
            n += 1
            print(line(found))
        print(summary(n))
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
    r = sub.add_parser("search-rebuild", help="re-index search partitions from the store, with a progress bar")
    r.add_argument("--partition", default="all", help="N, N-M, a list (0,2) or all (default)")
    ix = sub.add_parser("search-indexer", help="run the one writer of these search partitions")
    ix.add_argument("--partitions", default=None, help="N, N-M or a list (default: all)")
    rs = sub.add_parser("residue", help="prove nothing about a purged user remains")
    rs.add_argument("--user", type=int, required=True)
    rs.add_argument("--ids", type=int, nargs="*", help="ids of what the user created, when known")
    d = sub.add_parser("deletion", help="a deletion's progress")
    d.add_argument("--user", type=int, required=True)
    sub.add_parser("username-skeletons", help="claim the look-alike skeleton of every existing username")
    sub.add_parser("hashtags-renormalize", help="move posts of tags stored under an old normal form onto it")
    sub.add_parser("highlights-audience", help="record on each older highlight which of its stories are close friends'")
    sub.add_parser("dormant-resync", help="tally again what every account pending deletion counts toward")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings_or_exit(args.config)
    run = {"load-graph": _load_graph, "residue": _residue, "deletion": _deletion, "search-rebuild": _search_rebuild,
           "search-indexer": _search_indexer, "username-skeletons": _username_skeletons,
           "hashtags-renormalize": _hashtags_renormalize, "dormant-resync": _dormant_resync,
           "highlights-audience": _highlights_audience}[args.command]
    return asyncio.run(run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
