"""The viewer's notifications: the list, the unread count, the read marker.

The list is `(viewer, NOTIFIED, notification)`, newest update first; a cursor is an edge's
(time, id), tied to this viewer's list by `schema.relay.list_cursors` like every keyset
cursor (a cursor of another list is refused), and pages stay stable while groups move to the
top (a group that moves above the cursor is not shown again below it). Each notification is
shown through the viewer's privacy at read time: its actors are the visible ones among the
latest few, and a notification whose target the viewer
can no longer see (a deleted post or comment, a thread they left), or with no visible actor
left, is hidden. The actor count is the number of the group's actors the viewer may see (the
`actors` rule): exact for a group of up to `ACTOR_SCAN` actors (all of them are read and
judged); past that, the group's exact `NOTIF_ACTOR` count minus the hidden ones among the
newest `ACTOR_SCAN` and minus those among the rest who block the viewer, are blocked by them,
or are pending deletion (`_hidden_beyond_scan`).

The read marker is a time on a self edge `(viewer, NOTIF_READ, viewer)`: a notification is
unread when its list time is after it. It only moves forward.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.notifications.model import ACTOR_IS_TARGET, LATEST_ACTORS, Notification, NotificationType
from resolvers.pagination import Cursor, Page, check_first
from resolvers.records import User
from tao import Assoc, Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

LIST = "NOTIFIED"
READ = "NOTIF_READ"
MAX_UNREAD = 99  # the badge shows "99+" past this; counting further would read the whole list
_SCAN_ROUNDS = 4  # a `types` filter reads at most this many pages of the list for one page shown
# A group's newest actors read and judged one by one: its `actorCount` is exact up to this many
# actors. Beyond them, blocks (either way) and accounts pending deletion are looked up.
ACTOR_SCAN = 50


@dataclass(frozen=True)
class NotificationView:
    """A notification as the viewer sees it now."""
    notification: Notification
    updated: int                # its list time: the latest event's
    actors: list[User]          # the latest visible actors, newest first
    actor_count: int            # distinct actors the viewer may see (module docstring)
    target: Any                 # the post, comment or thread record (None for follow types: the actor is it)
    unread: bool


async def read_marker(ctx: RequestContext, viewer: int) -> int:
    edge = await ctx.loaders.assoc_by_key.load((viewer, READ, viewer))
    return int((edge.data or {}).get("upto", 0)) if edge is not None else 0


async def _views(ctx: RequestContext, viewer: int, edges: list[Assoc],
                 marker: int | None = None) -> dict[int, NotificationView]:
    """The visible notifications among the list edges, by id. Batched by phase: each phase's
    loads are issued in one tick (one cache round trip per server), so a page costs the same
    few round trips whatever its length: the groups, their actors' heads
    and counts (and the read marker) with them, then the actors' and the targets' visibility.
    Three round trips after the list page, at most."""
    async def read_marker_if_needed() -> int:
        return marker if marker is not None else await read_marker(ctx, viewer)
    ids = [e.id2 for e in edges]
    loaded, pages, counts, read_at = await asyncio.gather(
        ctx.loaders.object_by_id.load_many(ids),
        ctx.loaders.assoc_page_by_key.load_many([(i, "NOTIF_ACTOR", ACTOR_SCAN, None) for i in ids]),
        ctx.loaders.assoc_count_by_key.load_many([(i, "NOTIF_ACTOR") for i in ids]),
        read_marker_if_needed())
    records = {n.id: n for n in loaded if isinstance(n, Notification)}
    actor_ids = list({a.id2: None for page in pages for a in page})
    target_ids = list(dict.fromkeys(n.target for n in records.values() if n.type not in ACTOR_IS_TARGET))
    users, seen = await asyncio.gather(privacy.visible_users(ctx, actor_ids),
                                       asyncio.gather(*(privacy.load_visible_object(ctx, t) for t in target_ids)))
    visible = {u.id: u for u in users}
    targets = dict(zip(target_ids, seen))
    times = {e.id2: e.time for e in edges}
    big = [(records[i], page) for i, page, count in zip(ids, pages, counts) if i in records and int(count) > len(page)]
    hidden_beyond = await _hidden_beyond_scan(ctx, viewer, big)
    out = {}
    for i, page, count in zip(ids, pages, counts):
        n = records.get(i)
        if n is None:
            continue  # not a notification (deleted since it was listed)
        shown = [visible[a.id2] for a in page if a.id2 in visible]
        target = targets.get(n.target)
        if not shown or (n.type not in ACTOR_IS_TARGET and target is None):
            continue  # nobody the viewer may see did it, or they can no longer see what it is about
        # Only the actors the viewer may see are counted, as only they are named: the group's
        # count took in blocked, blocking and pending-deletion accounts ("bob and 3 others" with
        # bob the only one shown; probed in the sixteenth session).
        n_visible = len(shown) + max(0, int(count) - len(page) - hidden_beyond.get(i, 0))
        out[i] = NotificationView(n, times[i], shown[:LATEST_ACTORS], n_visible, target, times[i] > read_at)
    return out


# A grouped type's actors pending deletion are tallied on what they acted on (resolvers.dormant):
# the post liked, the comment liked, the account followed (the recipient).
_DORMANT_TALLY = {NotificationType.LIKE: "DORMANT_LIKER", NotificationType.COMMENT_LIKE: "DORMANT_COMMENT_LIKER",
                  NotificationType.FOLLOW: "DORMANT_FOLLOWER"}
_TALLY_SCAN = 1000  # a tally lists the accounts pending deletion among an object's likers: few


async def _hidden_beyond_scan(ctx: RequestContext, viewer: int, groups: list[tuple[Notification, list[Assoc]]]
                              ) -> dict[int, int]:
    """For each group larger than its scanned page: how many of its other actors are hidden
    from the viewer, found by who they could be: accounts that block the viewer or that the
    viewer blocks, and accounts pending deletion (their tally on the group's post, comment or, for
    followers, the viewer). Two batched reads for all groups: those lists, then the edges."""
    if not groups:
        return {}
    tallied = {n.id: (n.target if n.type is not NotificationType.FOLLOW else viewer, _DORMANT_TALLY[n.type])
               for n, _ in groups if n.type in _DORMANT_TALLY}
    blocked, tallies = await asyncio.gather(
        privacy.blocked_either_way(ctx),
        ctx.loaders.assoc_page_by_key.load_many([(t, tally, _TALLY_SCAN, None) for t, tally in tallied.values()]))
    pending = {i: {a.id2 for a in page} for i, page in zip(tallied, tallies) if not isinstance(page, BaseException)}
    keys = [(n.id, "NOTIF_ACTOR", u) for n, page in groups
            for u in (blocked | pending.get(n.id, set())) - {a.id2 for a in page}]
    if not keys:
        return {}
    found = await ctx.loaders.assoc_by_key.load_many(keys)
    out: dict[int, int] = {}
    for (i, _, _), edge in zip(keys, found):
        if edge is not None and not isinstance(edge, BaseException):
            out[i] = out.get(i, 0) + 1
    return out


async def notifications(ctx: RequestContext, first: int, after: Cursor | None,
                        types: set[NotificationType] | None = None) -> Page[NotificationView]:
    """The viewer's notifications, latest update first, of `types` (None: all)."""
    viewer = ctx.require_viewer()
    check_first(ctx, first)
    items: list[tuple[Cursor, NotificationView]] = []
    cursor, has_next = after, False
    marker: int | None = None
    for _ in range(_SCAN_ROUNDS if types else 1):
        if first == 0:
            break
        if marker is None:  # the marker loads with the first page: one round trip for both
            edges, marker = await asyncio.gather(ctx.loaders.assoc_page_by_key.load((viewer, LIST, first + 1, cursor)),
                                                 read_marker(ctx, viewer))
        else:
            edges = await ctx.loaders.assoc_page_by_key.load((viewer, LIST, first + 1, cursor))
        has_next = len(edges) > first
        edges = edges[:first]
        views = await _views(ctx, viewer, edges, marker)
        for e in edges:
            v = views.get(e.id2)
            cursor = (e.time, e.id2)
            if v is not None and (types is None or v.notification.type in types):
                items.append((cursor, v))
                if len(items) == first:
                    has_next = has_next or e is not edges[-1]
                    break
        if len(items) == first or not has_next:
            break
        # a filtered page came out short: read on (the cursor is the last edge read, so no skip)
    return Page(items=items, has_next=has_next, end_cursor=cursor, has_previous=after is not None)


async def unread_count(ctx: RequestContext) -> int:
    """How many visible notifications were updated after the read marker (at most MAX_UNREAD + 1:
    the client shows "99+")."""
    viewer = ctx.require_viewer()
    marker = await read_marker(ctx, viewer)
    edges = await ctx.tao.assoc_time_range(viewer, LIST, None, marker + 1, MAX_UNREAD + 1)
    return len(await _views(ctx, viewer, [e for e in edges if e.time > marker]))


async def do_mark_notifications_read(tao: Tao, actor_id: int, up_to: Cursor | None) -> int:
    """Everything up to the cursor's notification (None: everything now) is read. The marker only
    moves forward, and never past now: a cursor's time ahead of now (crafted, or a sealed cursor
    opened under another key during a key change) would mark every later notification read."""
    edge = (await tao.assoc_get(actor_id, READ, [actor_id])).get(actor_id)
    old = int((edge.data or {}).get("upto", 0)) if edge is not None else 0
    now = now_ms()
    marker = max(old, min(up_to[0], now) if up_to is not None else now)
    if marker != old:
        await tao.assoc_add(actor_id, READ, actor_id, data={"upto": marker})
    return marker


async def shown_views(ctx: RequestContext, edges: list[Assoc]) -> dict[int, NotificationView]:
    """The notifications of these edges of the viewer's list that the app shows them now, by id
    (the account export holds these, and nothing the app hides)."""
    return await _views(ctx, ctx.require_viewer(), edges)


async def notification_view(ctx: RequestContext, notification_id: int) -> NotificationView | None:
    """One notification of the viewer's list as they see it now (None: not theirs, or hidden)."""
    viewer = ctx.require_viewer()
    edge = await ctx.loaders.assoc_by_key.load((viewer, LIST, notification_id))
    if edge is None:
        return None
    return (await _views(ctx, viewer, [edge])).get(notification_id)


_VERBS = {
    NotificationType.LIKE: "liked your post",
    NotificationType.COMMENT_LIKE: "liked your comment",
    NotificationType.COMMENT: "commented on your post",
    NotificationType.REPLY: "replied to your comment",
    NotificationType.MENTION: "mentioned you",
    NotificationType.FOLLOW: "started following you",
    NotificationType.FOLLOW_REQUEST: "asked to follow you",
    NotificationType.FOLLOW_ACCEPTED: "accepted your follow request",
    NotificationType.MESSAGE_REQUEST: "wants to send you a message",
    NotificationType.NEW_DEVICE_LOGIN: "was logged in to from a new device: if it was not you, change your password",
    NotificationType.PASSWORD_CHANGED: "had its password changed: if it was not you, secure your account now",
    NotificationType.USERNAME_CHANGED: "is your username now: if you did not change it, change your password",
    NotificationType.DATA_EXPORT_REQUESTED: "asked for a download of its data: if it was not you, change your "
                                            "password",
}


def preview_text(view: NotificationView) -> str:
    """"ada, bob and 10 others liked your post": names of visible actors only, the exact count
    (the list and the push both say this, so a push shows no more than the app)."""
    names = [u.username for u in view.actors[:2]]
    others = view.actor_count - len(names)
    who = f"{', '.join(names)} and {others} other{'s' if others > 1 else ''}" if others > 0 else " and ".join(names)
    return f"{who} {_VERBS[view.notification.type]}"
