"""Bulk forms of the domain's writes, for batch loads (`resolvers.synthetic`, benchmarks, imports).

They write what the one-at-a-time actions write — the same records (`accounts.user_data`,
`posts.post_data`, `edge_data.like_data`), unique keys and jobs — through the store's bulk verbs
(`obj_add_many`, `assoc_add_many`), so data loaded in bulk is data the API serves:

- users hold their `username` claim and its look-alike skeleton (`resolvers.usernames`; found
  by `user(username:)`, and a later sign-up of the name or a look-alike is USERNAME_TAKEN; a
  name that looks like one already taken is left out, as a taken one); an account loaded
  without a password cannot log in;
- posts are VISIBLE with `published_at`, listed by AUTHORED edges (time = creation, data = kind)
  committed with their `ON_PUBLISH` jobs (feed fan-out), as `do_create_post` commits them;
  captions are stored as given (hashtags and mentions in them are not linked: use
  `do_create_post` for that);
- follows are FOLLOWS edges between public accounts with their feed backfill jobs (a private
  account is followed through a request: `do_follow_user`); likes are LIKES edges carrying the
  post's author and kind.

Bulk loads skip per-request checks the API makes (privacy between the accounts, blocks): they
are for data a batch job creates, not for acting on behalf of users.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from resolvers import posts
from resolvers.accounts import USERNAME_KEYS, normalize_username, user_data, validate_full_name, validate_username
from resolvers.edge_data import authored_data, like_data
from resolvers.feed.backfill import on_relationship_added
from resolvers.records import Post, PostKind, record_of
from resolvers.usernames import claim_skeleton
from tao import Tao

CLAIMS_AT_ONCE = 64  # concurrent key claims (each a small transaction on the key's shard)


async def do_add_users_bulk(tao: Tao, users: list[tuple[str, str]]) -> list[int | None]:
    """USER objects for (username, full name) pairs, in order; None where the name (or a look-alike) was taken
    (that account is removed again, as `do_sign_up` does when it loses the race for a name)."""
    records = [user_data(validate_username(u), validate_full_name(f), None) for u, f in users]
    ids: list[int | None] = list(await tao.obj_add_many([("USER", data, None) for data in records]))

    async def claim(i: int) -> None:
        user_id = ids[i]
        assert user_id is not None
        if not await tao.key_claim(USERNAME_KEYS, normalize_username(users[i][0]), user_id):
            await tao.obj_delete(user_id)
            ids[i] = None
        elif not await claim_skeleton(tao, users[i][0], user_id):  # looks like another's name
            await tao.key_release(USERNAME_KEYS, normalize_username(users[i][0]), user_id)
            await tao.obj_delete(user_id)
            ids[i] = None

    for start in range(0, len(users), CLAIMS_AT_ONCE):
        await asyncio.gather(*(claim(i) for i in range(start, min(start + CLAIMS_AT_ONCE, len(users)))))
    return ids


async def do_add_posts_bulk(tao: Tao, items: list[tuple[int, str]], *, kind: str = PostKind.PHOTO.value) -> list[int]:
    """Visible posts without media for (author, caption) pairs, in order, each listed on its
    author's AUTHORED list with its publish jobs (feed fan-out) committed alongside."""
    for _, caption in items:
        if len(caption) > posts.CAPTION_MAX:
            raise ValueError(f"a caption is at most {posts.CAPTION_MAX} characters")
    ids = await tao.obj_add_many([("POST", posts.post_data(author, caption, kind=kind), author)
                                  for author, caption in items])
    made = await tao.obj_get(ids)
    edges: list[tuple] = []
    jobs_by_shard: defaultdict[int, list] = defaultdict(list)
    for post_id in ids:
        post: Post = record_of(made[post_id])
        author = post.author
        edges.append((author, "AUTHORED", post_id, post.created, authored_data(post)))
        jobs_by_shard[tao.shard(author)] += posts.publish_jobs(post)
    await tao.assoc_add_many(edges, jobs_by_shard=dict(jobs_by_shard))
    return ids


async def do_add_follows_bulk(tao: Tao, pairs: list[tuple[int, int]], *, backfill: bool = True) -> int:
    """FOLLOWS edges (follower, followed) between public accounts; how many were new. Each
    commits its feed backfill job, as `do_follow_user` does; `backfill=False` skips them where the
    followed accounts have no posts yet (a loader that adds follows before posts)."""
    followed = await tao.obj_get(list({b for _, b in pairs}))
    private = [u for u, obj in followed.items() if getattr(record_of(obj), "is_private", False)]
    if private:
        raise ValueError(f"accounts {private[:5]} are private: follow them with a request (do_follow_user)")
    pairs = [(a, b) for a, b in pairs if a != b]
    jobs_by_shard: dict[int, list] = defaultdict(list)
    if backfill:
        for a, b in pairs:
            jobs_by_shard[tao.shard(a)] += on_relationship_added(a, b)
    return await tao.assoc_add_many([(a, "FOLLOWS", b) for a, b in pairs], jobs_by_shard=dict(jobs_by_shard))


async def do_add_likes_bulk(tao: Tao, pairs: list[tuple[int, int]]) -> int:
    """LIKES edges (user, post), each carrying the post's author and kind; how many were new."""
    liked = {p: record_of(o) for p, o in (await tao.obj_get(list({p for _, p in pairs}))).items()}
    return await tao.assoc_add_many([(u, "LIKES", p, None, like_data(liked[p])) for u, p in pairs if p in liked])
