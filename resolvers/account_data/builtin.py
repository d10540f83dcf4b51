"""The kinds of user data that exist today, registered with `resolvers.account_data.registry`.

Each purger removes one bounded batch and returns how many items it removed (0: done). They
read what is left from the store every time, so a crash anywhere is resumed by calling again.
What happens to the user's traces in others' content (docs/accounts.md, "Deletion"):
- their likes (of posts and comments) go, and the liked objects' counts drop with them;
- their comments and replies anywhere go with everything hanging off them (replies by others
  to a deleted comment go too, as when a comment is deleted), and comment counts drop;
- follows, requests, blocks, mutes and close-friend edges go in both directions;
- a direct thread with them is deleted for both members (its pair names them); in a group they
  leave, their messages and reactions go, and a group they created names another member;
- notifications they caused lose them as an actor; their own notifications go.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from resolvers import privacy
from resolvers.account_data.registry import DataContext, DataKind, ExportFile, register_kind, register_scheduled_handler
from resolvers.accounts import USERNAME_KEYS, end_session, normalize_username
from resolvers.actor import acting_as
from resolvers.comments import delete_comment_tree
from resolvers.edge_data import reaction_emoji
from resolvers.media import UPLOAD_KEYS
from resolvers.messages.model import PAIR_KEYS
from resolvers.notifications import push
from resolvers.notifications.causes import leave_notification_groups
from resolvers.records import Comment, Media, Message, Post, Thread, User, record_of
from resolvers.usernames import HOLD_JOB, holds_of, release_skeleton
from tao import Assoc, Tao


async def pages(tao: Tao, id1: int, atype: str, page: int = 200) -> AsyncIterator[list[Assoc]]:
    """Every edge of (id1, atype), newest first, a keyset page at a time."""
    after: tuple[int, int] | None = None
    while True:
        got: list[Assoc] = await tao.assoc_time_range(id1, atype, limit=page, after=after)
        if not got:
            return
        yield got
        if len(got) < page:
            return
        after = (got[-1].time, got[-1].id2)


CONCURRENCY = 16  # independent removals of one batch run this many at a time


async def each(items: list, fn: Callable[[Any], Awaitable[Any]]) -> None:
    """`fn(item)` for every item, CONCURRENCY at a time (a batch's removals are independent)."""
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Any) -> None:
        async with sem:
            await fn(item)
    await asyncio.gather(*(one(i) for i in items))


async def remove_edge(tao: Tao, id1: int, atype: str, id2: int) -> None:
    """Delete an edge of any type: a derived inverse through its primary (the store mirrors it)."""
    t = tao.registry.atype(atype)
    if t.derived_from is not None:
        await tao.assoc_delete(id2, t.derived_from, id1)
    else:
        await tao.assoc_delete(id1, atype, id2)


async def _record(tao: Tao, id_: int) -> object | None:
    obj = (await tao.obj_get([id_])).get(id_)
    return record_of(obj) if obj is not None else None


async def _records(tao: Tao, ids: list[int]) -> dict[int, object]:
    objs = await tao.obj_get(ids)
    return {i: record_of(o) for i, o in objs.items()}


async def visible_user_ids(ctx: DataContext, user: int, ids: list[int]) -> set[int]:
    """Those of `ids` the user may see now (`resolvers.privacy`, as the user): an export names
    other accounts it only mentions (a story's mention stickers) only when the app would show
    them to its user, never one who blocks them, whom they block, or one pending deletion."""
    if not ids:
        return set()
    return set(await privacy.visible_user_ids(acting_as(ctx.tao, user), ids))


async def visible_object_ids(ctx: DataContext, user: int, ids: list[int]) -> set[int]:
    """Those of `ids` (others' posts, comments, stories) the user may see now, as every surface
    decides (`privacy.can_see_object`, as the user): one page's worth, through loaders of its own."""
    if not ids:
        return set()
    as_user = acting_as(ctx.tao, user)
    objs = [o for o in await as_user.loaders.object_by_id.load_many(ids) if o is not None]
    seen = await asyncio.gather(*(privacy.can_see_object(as_user, o) for o in objs))
    return {o.id for o, ok in zip(objs, seen) if ok}


async def by_visible_authors(ctx: DataContext, user: int, ids: list[int]) -> set[int]:
    """Those of `ids` (posts, comments, stories the user acted on) whose author the user may see
    now, or that have no author (gone): the user's own record of liking or viewing them stays,
    but not one that names a hidden account's content (an expired story of a visible account
    stays: the user saw it)."""
    if not ids:
        return set()
    objs = await ctx.tao.obj_get(ids)
    authors = {i: a for i, o in objs.items() if isinstance(a := o.data.get("author"), int)}
    shown = await visible_user_ids(ctx, user, list(set(authors.values())))
    return {i for i in ids if i not in authors or authors[i] in shown or authors[i] == user}


def edge_kind(name: str, title: str, order: int, atypes: tuple[str, ...], what: str,
              *, secret: tuple[str, ...] = (), shown: tuple[str, ...] = (), accounts: tuple[str, ...] = (),
              authored: tuple[str, ...] = (),
              purge: Callable[[DataContext, int], Awaitable[int]] | None = None,
              before_purge: Callable[[Tao, int, str, list[Assoc]], Awaitable[None]] | None = None) -> DataKind:
    """A kind that is only the user's edges of `atypes` (both directions where the type has an
    inverse): exported as {type, user (the other end), time}, purged edge by edge (or by `purge`). The `secret`
    types are purged but never exported: others' edges to the user that the product keeps from
    them (who blocked or muted them, whose close friends they are). The `shown` types point at
    others' objects (a post that mentions the user): an edge is exported only while the user may
    see its object (`visible_object_ids`). The `accounts` types point at accounts: an edge is
    exported only while the user may see that account (`visible_user_ids`: not one who blocks
    them, whom they block, or pending deletion), as the app's lists show them. The `authored`
    types point at content the user acted on: exported unless its author is hidden from them
    (`by_visible_authors`). `before_purge(tao, user, atype, page)` runs on each page of edges
    before they go."""
    async def export(ctx: DataContext, user: int) -> AsyncIterator[dict]:
        for atype in (t for t in atypes if t not in secret):
            async for page in pages(ctx.tao, user, atype, ctx.settings.account_data.export_page):
                ids = [a.id2 for a in page]
                if atype in shown:
                    keep = await visible_object_ids(ctx, user, ids)
                elif atype in accounts:
                    keep = await visible_user_ids(ctx, user, ids)
                elif atype in authored:
                    keep = await by_visible_authors(ctx, user, ids)
                else:
                    keep = set(ids)
                for a in page:
                    if a.id2 in keep:
                        yield {"type": atype, "id": str(a.id2), "time": a.time}

    async def purge_edges(ctx: DataContext, user: int) -> int:
        removed = 0
        for atype in atypes:
            page = await ctx.tao.assoc_range(user, atype, 0, ctx.batch - removed)
            if before_purge is not None and page:
                await before_purge(ctx.tao, user, atype, page)
            await each([a.id2 for a in page], functools.partial(remove_edge, ctx.tao, user, atype))
            removed += len(page)
            if removed >= ctx.batch:
                break
        return removed

    return register_kind(DataKind(name, title, order, {"type": f"the edge ({what})", "id": "the other end's id",
                                                       "time": "when (ms since the epoch)"}, export,
                                  purge if purge is not None else purge_edges))


async def _purge_mentions(ctx: DataContext, user: int) -> int:
    """Others' posts and comments that mention the user: the id leaves their `mentions` list
    (it stayed in their data, residue naming the user, before probe3), then the edge goes."""
    tao = ctx.tao
    page = await tao.assoc_range(user, "MENTIONED_IN", 0, ctx.batch)
    objs = await tao.obj_get([a.id2 for a in page]) if page else {}

    async def one(a: Assoc) -> None:
        obj = objs.get(a.id2)
        listed = obj.data.get("mentions") if obj is not None else None
        if isinstance(listed, list) and user in listed:
            await tao.obj_update(a.id2, {"mentions": [m for m in listed if m != user]})
        await remove_edge(tao, user, "MENTIONED_IN", a.id2)
    await each(page, one)
    return len(page)


# Sessions, push subscriptions, notification settings -----------------------------------------

async def _export_sessions(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    async for page in pages(ctx.tao, user, "HAS_SESSION"):
        recs = await _records(ctx.tao, [a.id2 for a in page])
        for a in page:
            s = recs.get(a.id2)
            yield {"id": str(a.id2), "created": a.time, "expires_at": getattr(s, "expires_at", None),
                   "device": getattr(s, "device", ""), "ip": getattr(s, "ip", ""),
                   "last_used": getattr(s, "last_used", None)}  # never the token's hash


async def _purge_sessions(ctx: DataContext, user: int) -> int:
    page = await ctx.tao.assoc_range(user, "HAS_SESSION", 0, ctx.batch)
    for a in page:
        await end_session(ctx.tao, user, a.id2)
    return len(page)


async def _export_push(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    for sub in await push.subscriptions(ctx.tao, user):
        yield {"id": str(sub.id), "endpoint": sub.endpoint}


async def _purge_push(ctx: DataContext, user: int) -> int:
    subs = (await push.subscriptions(ctx.tao, user))[:ctx.batch]
    for sub in subs:
        await push._remove(ctx.tao, user, sub)
    page = await ctx.tao.assoc_range(user, push.LIST, 0, ctx.batch)  # edges whose object is gone
    for a in page:
        await ctx.tao.assoc_delete(user, push.LIST, a.id2)
    return len(subs) + len(page)


async def _export_settings(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    found = await ctx.tao.assoc_get_many([(user, t, user) for t in ("NOTIF_PREFS", "NOTIF_READ")])
    for (_, atype, _), edge in found.items():
        if edge is not None:
            yield {"setting": atype, "value": edge.data}


async def _purge_settings(ctx: DataContext, user: int) -> int:
    n = 0
    for atype in ("NOTIF_PREFS", "NOTIF_READ"):
        n += bool(await ctx.tao.assoc_delete(user, atype, user))
    return n


# Notifications the user received ----------------------------------------------------------------

async def _export_notifications(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    """The notifications the app shows the user (`reads.shown_views`, as the user): one whose
    every actor is hidden from them (blocked either way, pending deletion) was exported with its
    target, which for the follow types is an account (the first follower): an id of someone the
    user may not see. A shown group's account target that is hidden is null (the app shows the
    visible actors instead)."""
    from resolvers.notifications.model import ACTOR_IS_TARGET
    from resolvers.notifications.reads import shown_views
    async for page in pages(ctx.tao, user, "NOTIFIED"):
        views = await shown_views(acting_as(ctx.tao, user), page)
        accounts = [v.notification.target for v in views.values() if v.notification.type in ACTOR_IS_TARGET]
        as_user = acting_as(ctx.tao, user)
        objs = await as_user.loaders.object_by_id.load_many(accounts)
        hidden = {o.id for o in objs if isinstance(o, User)} - await visible_user_ids(ctx, user, accounts)
        for a in page:
            v = views.get(a.id2)
            if v is not None:
                n = v.notification
                yield {"id": str(a.id2), "time": a.time, "type": n.type.value,
                       "target": None if n.target in hidden else str(n.target)}


async def _purge_notifications(ctx: DataContext, user: int) -> int:
    removed = 0
    for a in await ctx.tao.assoc_range(user, "NOTIFIED", 0, ctx.batch):
        actors = await ctx.tao.assoc_range(a.id2, "NOTIF_ACTOR", 0, ctx.batch)
        for actor in actors:
            await ctx.tao.assoc_delete(a.id2, "NOTIF_ACTOR", actor.id2)
        removed += len(actors)
        if len(actors) == ctx.batch:
            return removed  # a notification with many actors: its edges over several batches
        await ctx.tao.obj_delete(a.id2)
        await ctx.tao.assoc_delete(user, "NOTIFIED", a.id2)
        removed += 1
    return removed


# Posts (captions, hashtags, locations, mentions, media links, likes and comments on them) -----

POST_FIELDS = {"id": "the post's id", "created": "ms since the epoch", "caption": "its caption",
               "hashtags": "hashtags in the caption", "location": "its location's id, or null",
               "media": "ids of its media (files in media/)", "like_count": "likes", "comment_count": "comments"}


async def _export_posts(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    async for page in pages(ctx.tao, user, "AUTHORED", ctx.settings.account_data.export_page):
        ids = [a.id2 for a in page]
        recs = await _records(ctx.tao, ids)
        media = await ctx.tao.assoc_range_many([(i, "HAS_MEDIA") for i in ids], 0, 20)
        counts = await ctx.tao.assoc_count_many([(i, t) for i in ids for t in ("LIKED_BY", "HAS_COMMENT")])
        for i in ids:
            p = recs.get(i)
            if not isinstance(p, Post):
                continue
            yield {"id": str(i), "created": p.created, "caption": p.caption,
                   "hashtags": list(getattr(p, "hashtags", None) or []),
                   "location": str(p.location) if getattr(p, "location", None) else None,
                   "media": [str(m.id2) for m in media[(i, "HAS_MEDIA")]],
                   "like_count": counts[(i, "LIKED_BY")], "comment_count": counts[(i, "HAS_COMMENT")]}


async def _purge_posts(ctx: DataContext, user: int) -> int:
    """A batch of the user's posts, each with everything hanging off it. The AUTHORED edge goes
    last: while it stands the post is still listed, so a crash anywhere is redone by the next
    batch. No `ON_DELETE` hooks: feed entries of the posts (which name their author) are removed
    by the `inbound` kind's scan, proportional to the entries that exist, not to followers x posts."""
    from resolvers.posts import drain, sync_post_edges
    tao = ctx.tao
    page = await tao.assoc_range(user, "AUTHORED", 0, ctx.batch)

    async def one(a: Assoc) -> None:
        pid = a.id2
        await tao.obj_delete(pid)
        await drain(tao, pid, "HAS_MEDIA", lambda e: tao.assoc_delete(e.id1, "HAS_MEDIA", e.id2))
        await drain(tao, pid, "MENTIONS", lambda e: tao.assoc_delete(e.id1, "MENTIONS", e.id2))
        await sync_post_edges(tao, None, pid)
        await drain(tao, pid, "LIKED_BY", lambda e: tao.assoc_delete(e.id2, "LIKES", pid))
        await drain(tao, pid, "HAS_COMMENT", lambda e: delete_comment_tree(tao, e.id2, pid, "HAS_COMMENT"))
        await tao.assoc_delete(user, "AUTHORED", pid)
    await each(page, one)
    await ctx.erase([a.id2 for a in page])
    return len(page)


# Comments the user wrote on anyone's posts (COMMENT objects name their author) --------------

async def _purge_comments(ctx: DataContext, user: int) -> int:
    """The user's comments anywhere (a COMMENT names its author), with what hangs off them.
    Found by their `author` field: a scan for the id anywhere found others' comments that
    mention the user first, and a page of those (or of texts holding the id's digits) ended the
    kind with the user's own comments left behind (probe3)."""
    tao = ctx.tao
    removed: list[int] = []
    for cid in await tao.obj_scan_naming(user, "COMMENT", ctx.batch, field="author"):
        c = await _record(tao, cid)
        if isinstance(c, Comment) and c.author == user:
            parent, atype = (c.reply_to, "HAS_REPLY") if c.reply_to else (c.post, "HAS_COMMENT")
            await delete_comment_tree(tao, c.id, parent, atype)
            removed.append(c.id)
    await ctx.erase(removed)
    return len(removed)


async def _export_comments(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    """The user's comments, oldest first, a page of ids (`export_page`) and their records at a
    time: it read every id of theirs in one scan (up to a million) and then each record alone."""
    page, after = ctx.settings.account_data.export_page, 0
    while True:
        ids = await ctx.tao.obj_scan_naming(user, "COMMENT", page, field="author", after=after)
        recs = await _records(ctx.tao, ids)
        for i in ids:
            c = recs.get(i)
            if isinstance(c, Comment) and c.author == user:
                yield {"id": str(c.id), "created": c.created, "post": str(c.post),
                       "reply_to": str(c.reply_to) if c.reply_to else None, "text": c.text}
        if len(ids) < page:
            return
        after = ids[-1]


# Media: MEDIA objects and every stored object (source, variants) -----------------------------

async def _media_keys(ctx: DataContext, m: Media) -> list[str]:
    if ctx.media is None:
        return []
    store = ctx.media.store
    keys: list[str] = []
    if m.upload_id:
        keys += await store.list_keys(f"media/{m.upload_id}/")
    if m.media_key:
        prefix = m.media_key.rsplit("/", 1)[0] + "/"
        keys += [k for k in await store.list_keys(prefix) if k not in keys]
    keys += [v["key"] for v in (m.variants or []) if v.get("key") and v["key"] not in keys]
    return keys


async def _export_media(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    async for page in pages(ctx.tao, user, "UPLOADED"):
        objs = await ctx.tao.obj_get([a.id2 for a in page])
        for a in page:
            o = objs.get(a.id2)
            m = record_of(o) if o is not None else None
            if isinstance(m, Media) and o is not None:
                ct = o.data.get("content_type")
                yield {"id": str(m.id), "created": m.created, "kind": m.kind.value, "status": m.status.value,
                       "content_type": ct, "byte_size": o.data.get("byte_size"),
                       "file": f"media/{m.id}{_ext(ct)}" if m.media_key else None}


def _ext(content_type: str | None) -> str:
    return {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/heic": ".heic",
            "video/mp4": ".mp4", "video/quicktime": ".mov", "audio/mp4": ".m4a"}.get(content_type or "", "")


async def _media_files(ctx: DataContext, user: int) -> AsyncIterator[ExportFile]:
    async for page in pages(ctx.tao, user, "UPLOADED"):
        objs = await ctx.tao.obj_get([a.id2 for a in page])
        for a in page:
            o = objs.get(a.id2)
            m = record_of(o) if o is not None else None
            if isinstance(m, Media) and o is not None and m.media_key:
                yield ExportFile(f"{m.id}{_ext(o.data.get('content_type'))}", m.media_key)


async def _purge_media(ctx: DataContext, user: int) -> int:
    tao = ctx.tao
    page = await tao.assoc_range(user, "UPLOADED", 0, ctx.batch)
    recs = await _records(tao, [a.id2 for a in page])
    for a in page:
        m = recs.get(a.id2)
        if isinstance(m, Media):
            keys = await _media_keys(ctx, m)
            if keys:
                await ctx.media.store.delete(keys)  # stored objects first: the record is how we find them
            for e in await tao.assoc_range(m.id, "MEDIA_OF", 0, 100):
                await tao.assoc_delete(e.id2, "HAS_MEDIA", m.id)
            if m.upload_id:
                await tao.key_release(UPLOAD_KEYS, m.upload_id, m.id)
            await tao.obj_delete(m.id)
        await tao.assoc_delete(user, "UPLOADED", a.id2)
    await ctx.erase([a.id2 for a in page])
    return len(page)


async def _media_residue(ctx: DataContext, user: int) -> list[str]:
    """Stored objects with no MEDIA record left behind them (orphans are residue of someone)."""
    if ctx.media is None:
        return []
    keys = await ctx.media.store.list_keys("media/")
    uploads = sorted({k.split("/")[1] for k in keys if k.count("/") >= 2})
    if not uploads:
        return []
    owners = await tao_keys(ctx.tao, UPLOAD_KEYS, uploads)
    return [k for k in keys if owners.get(k.split("/")[1]) is None]


async def tao_keys(tao: Tao, ns: str, keys: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for i in range(0, len(keys), 500):
        got = await tao.key_get_many(ns, keys[i:i + 500])
        out.update({k: got.get(k) for k in keys[i:i + 500]})
    return out


# Messages: threads, messages, reactions, read markers, folders -----------------------------

async def _export_messages(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    """The user's own messages, and others' messages the app shows them: not those of a member
    who blocks them (or whom they block) in a group, of a deactivated account, or in a thread
    hidden from them (resolvers.messages.access). The export listed every message of every thread
    they were in, so a group's messages from someone who blocked them told them of the block."""
    from resolvers.messages.access import visible_messages
    from resolvers.messages.model import cipher
    seal = cipher(ctx.settings.messages)
    async for page in pages(ctx.tao, user, "MEMBER_OF"):
        for a in page:
            async for mpage in pages(ctx.tao, a.id2, "HAS_MESSAGE"):
                recs = await _records(ctx.tao, [m.id2 for m in mpage])
                others = [i for i, r in recs.items() if isinstance(r, Message) and r.sender != user]
                # A reader's context per page: its loaders hold one page, never the whole export.
                shown = {m.id for m in await visible_messages(acting_as(ctx.tao, user), others)} if others else set()
                kept = [i for i, r in recs.items() if isinstance(r, Message) and (r.sender == user or i in shown)]
                # The user's own reactions are theirs too (the export left them out before probe3).
                exported = set(kept)
                reacted = await ctx.tao.assoc_get_many([(i, "REACTED_BY", user) for i in kept]) if kept else {}
                for m in mpage:
                    msg = recs.get(m.id2)
                    if isinstance(msg, Message) and m.id2 in exported:
                        text = seal.open(msg.body, msg.thread, msg.sender) if msg.body else None
                        mine = reacted.get((msg.id, "REACTED_BY", user))
                        yield {"thread": str(a.id2), "id": str(msg.id), "sent": msg.created, "sender": str(msg.sender),
                               "mine": msg.sender == user, "kind": msg.kind, "text": text,
                               "media": str(msg.media) if msg.media else None,
                               "reaction": reaction_emoji(mine.data) if mine is not None else None}


async def _delete_message(tao: Tao, thread_id: int, msg_id: int) -> None:
    for r in await tao.assoc_range(msg_id, "REACTED_BY", 0, 1000):
        await tao.assoc_delete(msg_id, "REACTED_BY", r.id2)
    await tao.obj_delete(msg_id)
    await tao.assoc_delete(thread_id, "HAS_MESSAGE", msg_id)


async def _purge_messages(ctx: DataContext, user: int) -> int:
    tao = ctx.tao
    member_of = await tao.assoc_range(user, "MEMBER_OF", 0, 1)
    if not member_of:
        return 0
    tid = member_of[0].id2
    thread = await _record(tao, tid)
    direct = not isinstance(thread, Thread) or not thread.is_group
    removed = 0
    for m in await tao.assoc_range(tid, "HAS_MESSAGE", 0, ctx.batch):
        msg = await _record(tao, m.id2)
        if direct or not isinstance(msg, Message) or msg.sender == user:
            await _delete_message(tao, tid, m.id2)
            removed += 1
        elif await tao.assoc_get(m.id2, "REACTED_BY", [user]):
            await tao.assoc_delete(m.id2, "REACTED_BY", user)
    if removed or (not direct and removed == ctx.batch):
        return removed
    # The messages are done: the memberships and folders go.
    members = [a.id2 for a in await tao.assoc_range(tid, "HAS_MEMBER", 0, 1024)]
    leaving = members if direct else [user]
    for member in leaving:
        for atype in ("INBOX", "DM_REQUESTS", "UNREAD_THREAD", "MUTED_THREAD"):
            await tao.assoc_delete(member, atype, tid)
        await tao.assoc_delete(tid, "HAS_MEMBER", member)
    if direct:
        if isinstance(thread, Thread) and thread.pair:
            await tao.key_release(PAIR_KEYS, ":".join(map(str, sorted(thread.pair))), tid)
        await tao.obj_delete(tid)
        await ctx.erase([tid])
    elif isinstance(thread, Thread) and thread.creator == user:
        rest = [m for m in members if m != user]
        if rest:
            await tao.obj_update(tid, {"creator": rest[0]})
        else:
            await tao.obj_delete(tid)
    await tao.assoc_delete(tid, "HAS_MEMBER", user)
    return 1


# The profile itself (last) ---------------------------------------------------------------------

async def _export_profile(ctx: DataContext, user: int) -> AsyncIterator[dict]:
    obj = (await ctx.tao.obj_get([user])).get(user)
    u = record_of(obj) if obj is not None else None
    if isinstance(u, User):
        assert obj is not None
        yield {"id": str(u.id), "username": u.username, "full_name": u.full_name, "bio": u.bio,
               "website": u.website, "is_private": u.is_private, "created": u.created,
               "profile_picture": str(u.profile_picture_id) if u.profile_picture_id else None,
               # the names it had before its renames, held for it until then (resolvers/usernames)
               "previous_usernames": [{"username": h["name"], "held_until": h["until"]}
                                      for h in holds_of(obj.data).values()]}


async def _purge_inbound(ctx: DataContext, user: int) -> int:
    """Edges of types without an inverse that point at the user (others' VISITED, DM_CONTACTED,
    NOTIF_ACTOR, REACTED_BY, ...): found by the store's erasure scan."""
    edges = await ctx.tao.assoc_scan_to([user], ctx.batch, naming=[user])
    for id1, atype, id2 in edges:
        await remove_edge(ctx.tao, id1, atype, id2)
    return len(edges)


async def _purge_notifications_about(ctx: DataContext, user: int) -> int:
    """Others' notifications that name the user (a FOLLOW notification's target is the follower):
    the whole group goes, from its recipient's list too."""
    tao = ctx.tao
    nids = await tao.obj_scan_naming(user, "NOTIFICATION", ctx.batch)
    for nid in nids:
        for a in await tao.assoc_range(nid, "NOTIF_ACTOR", 0, 10_000):
            await tao.assoc_delete(nid, "NOTIF_ACTOR", a.id2)
        for id1, atype, _ in await tao.assoc_scan_to([nid], 100):
            await remove_edge(tao, id1, atype, nid)
        await tao.obj_delete(nid)
        await ctx.erase([nid])
    return len(nids)


async def _purge_profile(ctx: DataContext, user: int) -> int:
    tao = ctx.tao
    u = await _record(tao, user)
    if not isinstance(u, User):
        return 0
    await tao.key_release(USERNAME_KEYS, normalize_username(u.username), user)
    await release_skeleton(tao, u.username, user)
    obj = (await tao.obj_get([user])).get(user)
    for key, hold in holds_of(obj.data if obj is not None else {}).items():  # names held after renames
        await tao.key_release(USERNAME_KEYS, key, user)
        await release_skeleton(tao, str(hold["name"]), user)
        if hold.get("job"):
            await tao.outbox.delete(tao.shard(user), int(hold["job"]))  # its end: nothing left to release
    await tao.obj_delete(user)
    await ctx.erase([user])
    return 1


F_EDGE = "FOLLOWS/FOLLOWED_BY"
# A held username's release runs 14 days on and touches only the account's own claims; the
# profile's purge deletes the account's own (their ids are on its holds).
register_scheduled_handler(HOLD_JOB)
register_kind(DataKind("sessions", "Sessions", 10, {"id": "session id", "created": "ms", "expires_at": "ms",
                                                    "device": "device named from the User-Agent",
                                                    "ip": "client address at log-in", "last_used": "ms"},
                       _export_sessions, _purge_sessions))
register_kind(DataKind("push_subscriptions", "Push subscriptions", 12, {"id": "id", "endpoint": "Web Push endpoint"},
                       _export_push, _purge_push))
register_kind(DataKind("settings", "Notification preferences and read markers", 14,
                       {"setting": "NOTIF_PREFS or NOTIF_READ", "value": "the stored value"},
                       _export_settings, _purge_settings))
register_kind(DataKind("notifications", "Notifications", 16,
                       {"id": "id", "time": "ms", "type": "LIKE, COMMENT, ...",
                        "target": "the object's id (null: an account you may not see)"},
                       _export_notifications, _purge_notifications))
register_kind(DataKind("messages", "Messages", 20,
                       {"thread": "thread id", "id": "message id", "sent": "ms", "sender": "user id",
                        "mine": "sent by you",
                        "kind": "TEXT, POST, MEDIA or VOICE", "text": "the text, decrypted", "media": "media id",
                        "reaction": "your reaction to it (an emoji), or null"},
                       _export_messages, _purge_messages))
register_kind(DataKind("posts", "Posts", 30, POST_FIELDS, _export_posts, _purge_posts))
register_kind(DataKind("comments", "Comments", 32,
                       {"id": "id", "created": "ms", "post": "post id", "reply_to": "comment id or null",
                        "text": "text"},
                       _export_comments, _purge_comments))
# Lists naming other accounts hold those the user may see now, as the app's lists do (a follow
# of an account pending deletion, or a visit to one that has since blocked them, named it until
# the fifteenth session); content they acted on, unless its author is hidden from them.
# A like or follow that goes takes its actor out of the notification group it made first, as an
# unlike or unfollow does: the group's count past its scan knew of the account only through its
# tally (gone next, at `dormant_tallies`), not its NOTIF_ACTOR edge (gone at `inbound`).
edge_kind("likes", "Likes", 40, ("LIKES", "COMMENT_LIKES"), "a post or comment you liked",
          authored=("LIKES", "COMMENT_LIKES"), before_purge=leave_notification_groups)
edge_kind("following", "Following and followers", 42, ("FOLLOWS", "FOLLOWED_BY"), F_EDGE,
          accounts=("FOLLOWS", "FOLLOWED_BY"), before_purge=leave_notification_groups)
edge_kind("follow_requests", "Follow requests", 44, ("FOLLOW_REQUESTED", "FOLLOW_REQUESTED_BY"), "sent / received",
          accounts=("FOLLOW_REQUESTED", "FOLLOW_REQUESTED_BY"))
# Who blocked or muted the user, and whose close friends they are, is never told to them: the
# export holds their own side only (the purge removes both). Their own block list is whole, as
# the app shows it (`blockedUsers`: the blocked are hidden everywhere else).
edge_kind("blocks", "Blocks", 46, ("BLOCKS", "BLOCKED_BY"), "accounts you blocked", secret=("BLOCKED_BY",))
edge_kind("mutes", "Mutes", 48, ("MUTES", "MUTED_BY"), "accounts you muted", secret=("MUTED_BY",),
          accounts=("MUTES",))
edge_kind("close_friends", "Close friends", 50, ("CLOSE_FRIEND", "CLOSE_FRIEND_OF"), "your list",
          secret=("CLOSE_FRIEND_OF",), accounts=("CLOSE_FRIEND",))
# Others' posts, comments and stories that mention the user: those the user may see (a post by
# an account that blocks them, or pending deletion, was listed; the app shows none of it).
edge_kind("mentions", "Mentions of you", 52, ("MENTIONED_IN",), "posts, comments and stories that mention you",
          shown=("MENTIONED_IN",), purge=_purge_mentions)
edge_kind("activity", "Activity", 54, ("VISITED", "DM_REQUEST_SENT", "DM_CONTACTED"), "profiles visited, messaging",
          accounts=("VISITED", "DM_REQUEST_SENT", "DM_CONTACTED"))
edge_kind("feed", "Feed entries", 56, ("FEED", "STREAM_EVENT"), "your feed and event stream", authored=("FEED",))
register_kind(DataKind("media", "Media (originals in media/)", 60,
                       {"id": "id", "created": "ms", "kind": "PHOTO, VIDEO, AUDIO", "status": "status",
                        "content_type": "type", "byte_size": "bytes", "file": "its original in the archive"},
                       _export_media, _purge_media, _media_files, _media_residue))
register_kind(DataKind("notifications_about", "Others' notifications about you", 85, {}, None,
                       _purge_notifications_about))
register_kind(DataKind("inbound", "Edges others hold to you", 90, {}, None, _purge_inbound))
register_kind(DataKind("profile", "Profile", 99,
                       {"id": "id", "username": "username", "full_name": "name", "bio": "bio", "website": "website",
                        "is_private": "private account", "created": "ms", "profile_picture": "media id"},
                       _export_profile, _purge_profile))
