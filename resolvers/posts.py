"""Posts: create, edit, publish, delete, and the lists they are read from.

A POST lives on its author's shard (`obj_add(..., owner=author)`) with data
  author, caption, status (`PostStatus`), hashtags (names), hashtag_ids,
  mentions (user ids), location (id | None), media (ordered ids), kind (`PostKind`), published_at (ms, once visible)
read as a `resolvers.records.Post`
and edges, all derived from that data by `sync_post_edges` (the one place that writes them):
  author -AUTHORED-> post (⇄ AUTHORED_BY; the author's posts, newest first; `postCount`)
  post -TAGGED_WITH-> hashtag (⇄ TAGS)     post -MENTIONS-> user (⇄ MENTIONED_IN)
  post -AT_LOCATION-> location (⇄ LOCATION_OF)     post -HAS_MEDIA-> media (⇄ MEDIA_OF)
  and, only while the post is public (visible, and its author's account is public):
  post -PUBLIC_TAGGED_WITH-> hashtag (⇄ PUBLIC_TAGS)  post -PUBLIC_AT_LOCATION-> location (⇄ PUBLIC_LOCATION_OF)
  whose counts are a hashtag's and a location's `postCount` (the same for every viewer).

Invariants:
- The edges follow the data: the write that changes a post's data (or adds its AUTHORED edge)
  commits a `posts.sync_edges` job in the same transaction, and the writer then syncs at once;
  the job is the repair if the process dies in between. A crash between `obj_add` and the
  AUTHORED edge leaves an unlisted post whose id no client ever saw.
- A post is PROCESSING until every one of its media is READY;
  `do_publish_post` flips it to VISIBLE and commits the `ON_PUBLISH` hooks' jobs (feed
  fan-out) in that same write, so a published post is always fanned out. A post without media
  is visible at once, and its AUTHORED write carries the hooks' jobs.
- The public edges follow the author's privacy too: `do_update_profile` commits
  `posts.sync_author_edges` with a change of `is_private`, which re-syncs every post of theirs;
  so do a deletion request and its cancellation (resolvers.account_data.deletion): an account
  pending deletion has no public post.
  `sync_post_edges` reads the author after the post's AUTHORED edge exists, so a post created
  while its author changes privacy is synced by one or the other.
- A media is in at most one post or story: `createPost` (and `createStory`) claims each of its media with the unique key
  `("post_media", media id) -> post` after adding the (still unlisted) post and before the
  AUTHORED edge lists it; a lost claim deletes the post and answers MEDIA_INVALID. (The check of
  MEDIA_OF alone let concurrent `createPost`s with one upload, a double tap on Share, all pass:
  one photo in several posts, or in a post and a story whose deletion then deleted the photo:
  found by probe4.) A claim held by a post or story that no longer exists, or that was never
  listed and is older than STALE_CLAIM_MS (a create that failed or died mid-way), is stale and
  taken over; deleting a post releases its claims (the cleanup job again, idempotent).
- Deleting a post commits `posts.cleanup` (and the `ON_DELETE` hooks' jobs) with the delete; the
  writer removes the counted edges (AUTHORED, tags, mentions, location) at once, the job removes
  likes and comments, which can be many.
Who may see a post is `resolvers.privacy.post_visible`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from resolvers import locations, privacy
from resolvers.accounts import normalize_username
from resolvers.actor import acting_as
from resolvers.edge_data import authored_data
from resolvers.errors import UserError
from resolvers.hashtags import (
    HASHTAG_MAX_LEN,
    HASHTAGS_MAX,
    MENTIONS_MAX,
    hashtag_ids_for,
    is_hashtag_name,
    parse_hashtags,
    parse_mentions,
)
from resolvers.job_context import JobContext
from resolvers.loaders import load_each
from resolvers.notifications import causes
from resolvers.pagination import Cursor, Page, load_assoc_page, make_page
from resolvers.records import Location, Media, MediaKind, MediaStatus, Post, PostKind, PostStatus, User, record_of
from resolvers.search.indexer import enqueue_index, post_jobs
from resolvers.text_rules import text_has_controls
from tao import Assoc, Tao, time_of
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

CAPTION_MAX = 2200
MEDIA_MAX = 10
VISIBLE, PROCESSING, FAILED = PostStatus.VISIBLE.value, PostStatus.PROCESSING.value, PostStatus.FAILED.value
SYNC_EDGES_JOB = "posts.sync_edges"
SYNC_AUTHOR_EDGES_JOB = "posts.sync_author_edges"
CLEANUP_JOB = "posts.cleanup"
DRAIN_PAGE = 200
MEDIA_KEYS = "post_media"  # media id -> the post it is in (see the module's invariants)
# A claim's holder not listed this long after it was made is a create that failed or died.
STALE_CLAIM_MS = 10 * 60 * 1000
# A claim's holder that does not exist is gone, unless its id was made this recently: a message
# claims its media under its planned id, and its delivery stores it after (resolvers/messages/send.py).
IN_FLIGHT_MS = 60 * 1000

Hook = Callable[[Post], list[tuple[str, dict]]]
# Jobs to commit with the write that makes a post visible (the feed appends its fan-out hook).
ON_PUBLISH: list[Hook] = []
# Jobs to commit with the write that deletes a post (the feed appends its retraction hook).
ON_DELETE: list[Hook] = []

# The edges a post's data determines: atype -> the wanted id2s.
_DERIVED: dict[str, Callable[[Post], list[int]]] = {
    "TAGGED_WITH": lambda p: list(p.hashtag_ids),
    "MENTIONS": lambda p: list(p.mentions),
    "AT_LOCATION": lambda p: [p.location] if p.location else [],
    "HAS_MEDIA": lambda p: list(p.media),
}
# The edges a post has only while it is public (see `_is_public`).
_PUBLIC_DERIVED: dict[str, Callable[[Post], list[int]]] = {
    "PUBLIC_TAGGED_WITH": _DERIVED["TAGGED_WITH"],
    "PUBLIC_AT_LOCATION": _DERIVED["AT_LOCATION"],
}


class PostErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    NOT_AUTHOR = "NOT_AUTHOR"
    CAPTION_TOO_LONG = "CAPTION_TOO_LONG"
    CAPTION_INVALID = "CAPTION_INVALID"
    HASHTAG_INVALID = "HASHTAG_INVALID"
    TOO_MANY_HASHTAGS = "TOO_MANY_HASHTAGS"
    TOO_MANY_MENTIONS = "TOO_MANY_MENTIONS"
    TOO_MANY_MEDIA = "TOO_MANY_MEDIA"
    MEDIA_INVALID = "MEDIA_INVALID"
    LOCATION_INVALID = "LOCATION_INVALID"


def not_found(field: str = "postId") -> UserError:
    return UserError(PostErrorCode.NOT_FOUND, "No such post: it was deleted, or you cannot see it. Check the id.",
                     field)


def _hooks(hooks: list[Hook], post: Post) -> list[tuple[str, dict]]:
    return [job for hook in hooks for job in hook(post)]


def publish_jobs(post: Post) -> list[tuple[str, dict]]:
    """The jobs to commit with the write that makes `post` visible (bulk loads commit them too)."""
    return _hooks(ON_PUBLISH, post)


def post_data(author: int, caption: str, *, hashtags: dict[str, int] | None = None, mentions: list[int] | None = None,
              location: int | None = None, media: list[int] | None = None, kind: str = PostKind.PHOTO.value,
              status: str = VISIBLE, published_at: int | None = None) -> dict[str, Any]:
    """A POST's data (also for bulk loaders such as the GraphQL benchmark, which bypass the API)."""
    hashtags = hashtags or {}
    data: dict[str, Any] = {
        "author": author, "caption": caption, "status": status, "hashtags": list(hashtags),
        "hashtag_ids": list(hashtags.values()), "mentions": list(mentions or []), "location": location,
        "media": list(media or []), "kind": kind,
    }
    if status == VISIBLE:
        data["published_at"] = published_at or now_ms()
    return data


# Validation (everything is checked before the first write) ----------------------------------

async def _parse_caption(ctx: RequestContext, caption: str) -> tuple[list[str], list[int]]:
    """(hashtag names, visible mentioned user ids) of a caption, or a UserError."""
    if len(caption) > CAPTION_MAX:
        raise UserError(PostErrorCode.CAPTION_TOO_LONG, f"A caption is at most {CAPTION_MAX} characters.", "caption")
    if text_has_controls(caption):  # a bell or a terminal escape was taken (counts probe)
        raise UserError(PostErrorCode.CAPTION_INVALID,
                        "A caption cannot hold control characters (line breaks and tabs are fine): remove them.",
                        "caption")
    tags = parse_hashtags(caption)
    bad = [t for t in tags if not is_hashtag_name(t)]
    if bad:
        raise UserError(PostErrorCode.HASHTAG_INVALID,
                        f"A hashtag is at most {HASHTAG_MAX_LEN} letters, digits or underscores: "
                        f"shorten #{bad[0][:20]}….",
                        "caption")
    if len(tags) > HASHTAGS_MAX:
        raise UserError(PostErrorCode.TOO_MANY_HASHTAGS, f"A caption holds at most {HASHTAGS_MAX} hashtags.", "caption")
    return tags, await mention_ids(ctx, parse_mentions(caption), "caption", PostErrorCode.TOO_MANY_MENTIONS)


async def mention_ids(ctx: RequestContext, usernames: list[str], field: str, code: enum.Enum) -> list[int]:
    """The ids of the mentioned accounts that exist and the viewer may see, minus the viewer,
    each once (a name given twice, or in another case, is one mention: one edge, one
    notification; a story's sticker names came here as typed, and "bob", "@bob" listed bob twice).

    Unknown names are plain text (as on Instagram), not errors."""
    if len(usernames) > MENTIONS_MAX:  # the names as given (a story's list of stickers): bounded input
        raise UserError(code, f"A text holds at most {MENTIONS_MAX} @mentions.", field)
    usernames = list(dict.fromkeys(normalize_username(u) for u in usernames))
    ids = [i for i in await ctx.loaders.user_id_by_username.load_many(usernames) if i is not None]
    return [i for i in await privacy.visible_user_ids(ctx, ids) if i != ctx.viewer_id]


async def _check_media(ctx: RequestContext, viewer: int, media_ids: list[int]) -> list[Media]:
    if len(media_ids) > MEDIA_MAX:
        raise UserError(PostErrorCode.TOO_MANY_MEDIA, f"A post holds at most {MEDIA_MAX} photos or videos.", "mediaIds")
    if len(set(media_ids)) != len(media_ids):
        raise UserError(PostErrorCode.MEDIA_INVALID, "A photo or video appears twice in `mediaIds`.", "mediaIds")
    objs = await ctx.loaders.object_by_id.load_many(media_ids)
    mine = await ctx.loaders.assoc_by_key.load_many([(viewer, "UPLOADED", m) for m in media_ids])
    used = await ctx.loaders.assoc_count_by_key.load_many([(m, "MEDIA_OF") for m in media_ids])
    for o, edge, n in zip(objs, mine, used):
        # Voice notes and a direct message's media belong to their message (resolvers.messages).
        if not isinstance(o, Media) or edge is None or n or o.kind is MediaKind.AUDIO or o.dm:
            raise UserError(PostErrorCode.MEDIA_INVALID,
                            "Each of `mediaIds` must be a photo or video upload of yours not used in another post or "
                            "a direct message: upload it first.",
                            "mediaIds")
        if o.status not in (MediaStatus.PROCESSING, MediaStatus.READY):  # still uploading, or failed
            raise UserError(PostErrorCode.MEDIA_INVALID,
                            "Each of `mediaIds` must be a completed upload that did not fail: call `completeUpload` "
                            "first, or upload a failed one again.", "mediaIds")
    return list(objs)


def _kind(media: list[Media]) -> PostKind:
    if len(media) > 1:
        return PostKind.CAROUSEL
    return PostKind.VIDEO if media and media[0].kind is MediaKind.VIDEO else PostKind.PHOTO


# Writes ------------------------------------------------------------------------------------

async def do_create_post(tao: Tao, actor_id: int, caption: str, media_ids: list[int], *, location_id: int | None = None,
                         location_name: str | None = None, latitude: float | None = None,
                         longitude: float | None = None) -> Post:
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    tags, mentions = await _parse_caption(ctx, caption)
    media = await _check_media(ctx, viewer, media_ids)
    try:
        location = await locations.location_for_input(ctx, location_id, location_name, latitude, longitude)
    except UserError as e:
        raise UserError(PostErrorCode.LOCATION_INVALID, e.message, e.field) from None
    ready = all(m.status is MediaStatus.READY for m in media)
    data = post_data(viewer, caption, hashtags=await hashtag_ids_for(tao, tags), mentions=mentions,
                     location=location, media=media_ids, kind=_kind(media).value,
                     status=VISIBLE if ready else PROCESSING)
    post_id = await tao.obj_add("POST", data, owner=viewer)
    if not await claim_media(tao, post_id, media_ids):
        await tao.obj_delete(post_id)  # never listed: nothing else of it exists
        raise UserError(PostErrorCode.MEDIA_INVALID,
                        "A photo or video of `mediaIds` is already in another post or story (was this shared "
                        "twice?).", "mediaIds")
    post = record_of((await tao.obj_get([post_id]))[post_id])
    jobs = [(SYNC_EDGES_JOB, {"post": post_id})] + (_hooks(ON_PUBLISH, post) if ready else []) + post_jobs(tao, post,
                                                                                                       post_id)
    # Same shard as the post: the job commits with the edge that lists the post.
    # The edge carries the post's kind, so feed ranking need not load pulled posts.
    await tao.assoc_add(viewer, "AUTHORED", post_id, time=post.created, data=authored_data(post), jobs=jobs)
    await sync_post_edges(tao, post)
    # A media may have become ready before the HAS_MEDIA edges existed (its job found no post to
    # publish): check again now that they do.
    if not ready and await do_publish_post(tao, post_id):
        post = record_of((await tao.obj_get([post_id]))[post_id])
    return post


async def claim_media(tao: Tao, holder: int, media_ids: list[int]) -> bool:
    """Claim each media for `holder`, a new post or story not yet listed (MEDIA_KEYS: a media is in
    one post or story). False if another holds one: what this call claimed is released again,
    and the caller deletes its object and refuses."""
    claimed: list[int] = []
    for m in media_ids:
        if not (await tao.key_claim(MEDIA_KEYS, str(m), holder) or await _take_over_stale(tao, m, holder)):
            await release_media(tao, holder, claimed)
            return False
        claimed.append(m)
    return True


async def _take_over_stale(tao: Tao, media_id: int, holder: int) -> bool:
    """Claim the media for `holder` if the post or story holding it is stale: gone, or never
    listed and older than STALE_CLAIM_MS (its create failed or died between the claim and the
    edge that lists it; a create still under way is younger, and keeps its claim)."""
    current = (await tao.key_get_many(MEDIA_KEYS, [str(media_id)])).get(str(media_id))
    if current is not None:
        obj = (await tao.obj_get([current])).get(current)
        if obj is None and now_ms() - time_of(current) < IN_FLIGHT_MS:
            return False  # a message under way: its id claims the media before its delivery stores it
        if obj is not None and (now_ms() - obj.created < STALE_CLAIM_MS or await _listed(tao, obj)):
            return False
        await tao.key_release(MEDIA_KEYS, str(media_id), current)
    return await tao.key_claim(MEDIA_KEYS, str(media_id), holder)


async def _listed(tao: Tao, obj: Any) -> bool:
    """Whether a post or story that holds a media claim was ever listed by its author."""
    author = obj.data.get("author")
    lists = ("AUTHORED",) if obj.otype == "POST" else ("STORY_LIVE", "STORY_ARCHIVE")
    if not isinstance(author, int):
        return True  # not a post or story of ours: never take its claim
    for atype in lists:
        if await tao.assoc_get(author, atype, [obj.id]):
            return True
    return False


async def release_media(tao: Tao, holder: int, media_ids: list[int]) -> None:
    """Free the media `holder` (a deleted post or story) claimed. Idempotent."""
    for m in media_ids:
        await tao.key_release(MEDIA_KEYS, str(m), holder)


async def _own_post(ctx: RequestContext, post_id: int) -> Post:
    viewer = ctx.require_viewer()
    post = await get_post(ctx, post_id)
    if post is None:
        raise not_found()
    if post.author != viewer:
        raise UserError(PostErrorCode.NOT_AUTHOR, "Only the author of a post can change or delete it.", "postId")
    return post


async def do_edit_post(tao: Tao, actor_id: int, post_id: int, caption: str) -> Post:
    """Change the caption; hashtags and mentions are re-parsed and their edges follow."""
    ctx = acting_as(tao, actor_id)
    before = await _own_post(ctx, post_id)
    tags, mentions = await _parse_caption(ctx, caption)
    hashtags = await hashtag_ids_for(tao, tags)
    # Search: the caption, and the hashtags it gains or loses (their counts).
    index = post_jobs(tao, dataclasses.replace(before, hashtag_ids=tuple({*before.hashtag_ids, *hashtags.values()})),
                      post_id)
    updated = record_of(await tao.obj_update(post_id, {
        "caption": caption, "hashtags": list(hashtags), "hashtag_ids": list(hashtags.values()), "mentions": mentions,
    }, jobs=[(SYNC_EDGES_JOB, {"post": post_id}), *index, *_mention_changes(before, mentions)]))
    await sync_post_edges(tao, updated)
    return updated


def _mention_changes(before: Post, mentions: list[int]) -> list[tuple[str, dict]]:
    """A published post's caption edit tells the accounts it now mentions and takes the
    notification back from those it no longer does (an edit used to tell nobody: found by
    probe4). A post still processing tells its mentions when it is published."""
    if not before.is_visible:
        return []
    at = now_ms()
    added = [u for u in mentions if u not in before.mentions]
    gone = [u for u in before.mentions if u not in mentions]
    return (causes.caption_mentions(before.author, before.id, added, at)
            + causes.caption_mentions(before.author, before.id, gone, at, undo=True))


async def do_delete_post(tao: Tao, actor_id: int, post_id: int) -> None:
    ctx = acting_as(tao, actor_id)
    post = await _own_post(ctx, post_id)
    cleanup = (CLEANUP_JOB, {"post": post_id, "author": post.author, "media": list(post.media)})
    jobs = [cleanup, *_hooks(ON_DELETE, post), *post_jobs(tao, post, post_id)]
    await tao.obj_delete(post_id, jobs=jobs)
    # The counted edges go now (postCount, a hashtag's postCount); likes and comments by the job.
    await tao.assoc_delete(post.author, "AUTHORED", post_id)
    await sync_post_edges(tao, None, post_id)
    await release_media(tao, post_id, list(post.media))


async def do_publish_post(tao: Tao, post_id: int) -> bool:
    """Settle a processing post once its media have: visible if every one is ready, FAILED if
    one failed (for the media pipeline to call when a media item becomes ready or fails).
    Commits the ON_PUBLISH hooks' jobs with the write that publishes. Returns whether this call
    published it; idempotent (a visible, failed or deleted post is left alone)."""
    post = await _read_post(tao, post_id)
    if post is None or post.status is not PostStatus.PROCESSING:
        return False
    media_ids = list(post.media)
    media = {m: record_of(o) for m, o in (await tao.obj_get(media_ids) if media_ids else {}).items()}
    if any(isinstance(media.get(m), Media) and media[m].status is MediaStatus.FAILED for m in media_ids):
        # Never published, so nothing was fanned out: only the status changes (author-only, as
        # while processing). The failed media carries the reason the author sees.
        await tao.obj_update(post_id, {"status": FAILED})
        return False
    if any(not isinstance(media.get(m), Media) or media[m].status is not MediaStatus.READY for m in media_ids):
        return False
    now = now_ms()
    changes = {"status": VISIBLE, "published_at": now}
    preview = dataclasses.replace(post, version=post.version + 1, updated=now, status=PostStatus.VISIBLE,
                                  published_at=now)
    # Published, it may now be public: its public edges follow (the job is the repair).
    updated = record_of(await tao.obj_update(post_id, changes,
                                             jobs=[(SYNC_EDGES_JOB, {"post": post_id})] + _hooks(ON_PUBLISH, preview)
                                             + post_jobs(tao, preview, post_id)))
    await sync_post_edges(tao, updated)
    return True


async def _read_post(tao: Tao, post_id: int) -> Post | None:
    """The post straight from the store (jobs have no loaders), or None if it is gone."""
    obj = (await tao.obj_get([post_id])).get(post_id)
    post = record_of(obj) if obj is not None else None
    return post if isinstance(post, Post) else None


async def _is_public(tao: Tao, post: Post) -> bool:
    """Whether anyone (not blocked) may see the post: published, by an existing public account
    that is not pending deletion (hidden with its posts: its tags and places must not count them)."""
    if not post.is_visible:
        return False
    author = (await tao.obj_get([post.author])).get(post.author)
    return (author is not None and isinstance(user := record_of(author), User) and not user.is_private
            and not user.deactivated)


async def sync_post_edges(tao: Tao, post: Post | None, post_id: int | None = None) -> bool:
    """Make the post's derived edges match its data and whether it is public (all removed if
    `post` is None: deleted). Idempotent; the edge time is the post's creation, so a tag's list
    stays in post order. Returns whether a public edge (a tag's or a place's count) changed."""
    pid = post.id if post is not None else post_id
    assert pid is not None
    derived = _DERIVED | _PUBLIC_DERIVED
    public = post is not None and await _is_public(tao, post)
    current = await tao.assoc_range_many([(pid, atype) for atype in derived], 0, 100)
    adds: list[tuple] = []
    public_changed = False
    for atype, wanted_of in derived.items():
        wanted = wanted_of(post) if post is not None and (public or atype in _DERIVED) else []
        have = {a.id2 for a in current[(pid, atype)]}
        added = [(pid, atype, i, post.created) for i in wanted if i not in have]  # type: ignore[union-attr]
        adds += added
        extras = have - set(wanted)
        public_changed |= atype in _PUBLIC_DERIVED and bool(added or extras)
        for extra in extras:
            await tao.assoc_delete(pid, atype, extra)
    if adds:
        await tao.assoc_add_many(adds)
    return public_changed


# Reads -------------------------------------------------------------------------------------

async def get_post(ctx: RequestContext, post_id: int) -> Post | None:
    """The post if it exists and the viewer may see it, else None."""
    obj = await privacy.load_visible_object(ctx, post_id)
    return obj if isinstance(obj, Post) else None


async def user_posts(ctx: RequestContext, user_id: int, first: int, after: Cursor | None) -> Page[Post]:
    """The user's posts, newest first (FORBIDDEN for a private account the viewer does not follow)."""
    await privacy.require_full_access(ctx, user_id, "posts")
    return await _post_page(ctx, user_id, "AUTHORED", first, after)


async def _post_page(ctx: RequestContext, id1: int, atype: str, first: int, after: Cursor | None) -> Page[Post]:
    assocs, has_next = await load_assoc_page(ctx, id1, atype, first, after)
    posts = await privacy.visible_posts(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {p.id: p for p in posts}, after)


async def post_author(ctx: RequestContext, post: Post) -> User | None:
    user = await ctx.loaders.object_by_id.load(post.author)
    return user if isinstance(user, User) else None


def authors_of(loaded: list[Any]) -> list[User | None | BaseException]:
    """Authors as loaded by id: a user, None (the id is no user's any more), or the load's error."""
    return [u if isinstance(u, User | BaseException) else None for u in loaded]


async def post_authors(ctx: RequestContext, posts: list[Post]) -> list[User | None | BaseException]:
    """`post_author` for a page of posts at once (schema/prefetch.py)."""
    return authors_of(await load_each(ctx.loaders.object_by_id, [p.author for p in posts]))


async def post_mentions(ctx: RequestContext, post: Post) -> list[User]:
    return await privacy.visible_users(ctx, post.mentions)


async def post_location(ctx: RequestContext, post: Post) -> Location | None:
    """The place of a post the viewer may see: part of the post, so shown with it (the location
    may have no other post the viewer can see, which would hide it from `location(id:)`)."""
    loc = await ctx.loaders.object_by_id.load(post.location) if post.location else None
    return loc if isinstance(loc, Location) else None


# Jobs --------------------------------------------------------------------------------------

async def sync_edges_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    post_id = int(payload["post"])
    await sync_post_edges(tao, await _read_post(tao, post_id), post_id)


async def sync_author_edges_job(job: JobContext, payload: dict) -> None:
    """After an author's privacy changed (or a deletion request, or its cancellation): re-sync
    every post of theirs (its public edges follow), and re-index the hashtags and places whose
    public posts that changed, since the search index keeps their count (their popularity, and
    whether they are findable at all; docs/search.md). Keyset pages, so posts created or deleted
    meanwhile shift nothing; idempotent (a re-run finds nothing changed and indexes nothing)."""
    tao = job.tao
    author = int(payload["author"])
    after: tuple[int, int] | None = None
    while True:
        page = await tao.assoc_time_range(author, "AUTHORED", limit=DRAIN_PAGE, after=after)
        if not page:
            return
        found = await tao.obj_get([a.id2 for a in page])
        listings: set[tuple[str, int]] = set()
        for a in page:
            post = record_of(found[a.id2]) if a.id2 in found else None
            if isinstance(post, Post) and await sync_post_edges(tao, post):
                listings |= {("hashtag", h) for h in post.hashtag_ids}
                if post.location:
                    listings.add(("place", post.location))
        if listings:  # the counts are synced already: the jobs need not wait for them
            await enqueue_index(tao, author, sorted(listings))
        after = (page[-1].time, page[-1].id2)


async def cleanup_job(job: JobContext, payload: dict) -> None:
    """After a delete: every edge of the post goes, its comments (and their replies) too."""
    from resolvers.comments import delete_comment_tree  # comments build on posts

    tao = job.tao
    post_id, author = int(payload["post"]), int(payload["author"])
    if (await tao.obj_get([post_id])).get(post_id) is not None:
        return  # not deleted (a stale job): nothing to clean
    await tao.assoc_delete(author, "AUTHORED", post_id)
    await sync_post_edges(tao, None, post_id)
    await release_media(tao, post_id, [int(m) for m in payload.get("media", [])])
    await drain(tao, post_id, "LIKED_BY", lambda a: tao.assoc_delete(a.id2, "LIKES", post_id))
    await drain(tao, post_id, "HAS_COMMENT", lambda a: delete_comment_tree(tao, a.id2, post_id, "HAS_COMMENT"))
    await drain(tao, post_id, "PENDING_COMMENT",
                lambda a: delete_comment_tree(tao, a.id2, post_id, "PENDING_COMMENT"))
    for tally in ("DORMANT_LIKER", "DORMANT_COMMENT"):  # tallies on it (resolvers.dormant)
        await drain(tao, post_id, tally, functools.partial(drop_edge, tao))


async def drop_edge(tao: Tao, edge: Assoc) -> bool:
    return await tao.assoc_delete(edge.id1, edge.atype, edge.id2)


async def drain(tao: Tao, id1: int, atype: str, remove: Callable[[Assoc], Awaitable[Any]]) -> None:
    """Call `remove` on every edge of (id1, atype) until the list is empty; `remove` must take the
    edge out of this list (directly, or through its inverse). Raises (so the job is retried
    later) when a pass makes no progress, e.g. while an inverse is waiting for its repair."""
    last: list[int] | None = None
    while True:
        page = await tao.assoc_range(id1, atype, 0, DRAIN_PAGE)
        if not page:
            return
        ids = [a.id2 for a in page]
        if ids == last:
            raise RuntimeError(f"{atype} list of {id1} does not shrink; retrying later")
        last = ids
        for a in page:
            await remove(a)


def _register_feed_hooks() -> None:
    # The feed's fan-out and retraction jobs commit with the writes that publish or delete a post.
    from resolvers.feed.fanout import on_publish
    from resolvers.feed.removal import on_post_removed

    ON_PUBLISH.append(on_publish)
    ON_DELETE.append(on_post_removed)


_register_feed_hooks()
