"""Tags stored under a name that is not their normal form, moved onto the tag of that form.

A tag's name is `hashtags.normalize_hashtag(name)` (NFKC case fold) since the fifteenth session;
before, it was NFC and lower case, so a full-width `#ｃａｔ` made a tag of its own named `ｃａｔ`,
and `#Straße` one named `straße` (now `strasse`). Those tags and their posts stay as they were
stored until `python -m resolvers hashtags-renormalize` runs (once, after upgrading; idempotent):

- every HASHTAG object on every shard whose name is not its normal form is *stale*;
- each post on a stale tag's TAGS list gets its tags renamed (`do_renormalize_post_tags`): the
  names normalised (and deduplicated: `#ｃａｔ #cat` is one tag), their ids found or created as a
  caption's are (`hashtags.hashtag_ids_for`), the post's edges synced (TAGGED_WITH and, for a
  public post, PUBLIC_TAGGED_WITH: the tags' `postCount`s follow) and the search documents of
  the post and of its old and new tags re-indexed, as an edit of its caption does;
- the stale tag object stays, with no post: nothing lists a tag without a post the viewer may
  see (`privacy.listing_visible`), and its name is never looked up again (every look-up
  normalises first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from resolvers.hashtags import hashtag_ids_for, normalize_hashtag
from resolvers.posts import SYNC_EDGES_JOB, sync_post_edges
from resolvers.records import Hashtag, Post, record_of
from resolvers.search.indexer import post_jobs
from tao import Tao

PAGE = 200


async def do_renormalize_post_tags(tao: Tao, post_id: int) -> bool:
    """Rename the post's tags to their normal forms; whether anything changed."""
    obj = (await tao.obj_get([post_id])).get(post_id)
    post = record_of(obj) if obj is not None else None
    if not isinstance(post, Post):
        return False
    names = list(dict.fromkeys(normalize_hashtag(n) for n in post.hashtags))
    hashtags = await hashtag_ids_for(tao, names)
    if names == list(post.hashtags) and list(hashtags.values()) == list(post.hashtag_ids):
        return False
    index = post_jobs(
        tao, dataclasses.replace(post, hashtag_ids=tuple({*post.hashtag_ids, *hashtags.values()})), post_id
    )
    updated = record_of(
        await tao.obj_update(
            post_id,
            {"hashtags": names, "hashtag_ids": list(hashtags.values())},
            jobs=[(SYNC_EDGES_JOB, {"post": post_id}), *index],
        )
    )
    await sync_post_edges(tao, updated)
    return True


async def renormalize_hashtags(tao: Tao) -> AsyncIterator[tuple[str, int]]:
    """Every stale tag's posts moved onto the normal form's tag; yields (stale name, posts moved)."""
    for shard in range(tao.n_shards):
        after = 0
        while objs := await tao.obj_scan(shard, "HASHTAG", after, PAGE):
            after = objs[-1].id
            for obj in objs:
                tag = record_of(obj)
                if not isinstance(tag, Hashtag) or normalize_hashtag(tag.name) == tag.name:
                    continue
                moved, cursor = 0, None
                # A keyset over the tag's posts: each leaves the list as it is renamed (at once, or
                # once its inverse is synced), so an offset would skip some.
                while page := await tao.assoc_time_range(tag.id, "TAGS", limit=PAGE, after=cursor):
                    for a in page:
                        moved += await do_renormalize_post_tags(tao, a.id2)
                    if len(page) < PAGE:
                        break
                    cursor = (page[-1].time, page[-1].id2)
                yield tag.name, moved
