"""Notifications in GraphQL: `viewer { notifications unreadNotificationCount notificationPreferences }`,
`markNotificationsRead`, `updateNotificationPreferences`, and the subscription `notificationEvents`.

Thin: every field hands back one `resolvers.notifications` call; privacy is decided there.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry import Info

from resolvers import realtime
from resolvers.context import RequestContext
from resolvers.notifications import prefs as prefs_domain
from resolvers.notifications import push, reads
from resolvers.notifications.errors import NotificationErrorCode
from resolvers.notifications.model import LATEST_ACTORS, Level, NotificationType
from resolvers.notifications.record import KIND_NOTIFICATION
from resolvers.pagination import check_choices
from schema.cost import register_list_bound
from schema.errors import Error
from schema.mutations import actor, mutation
from schema.realtime import (
    StreamEvent,
    deliver_events,
    event_fields,
    register_event_type,
)
from schema.relay import Edge, Node, PageInfo, list_cursors, node_types, to_global_id
from schema.users import User

Ctx = Info[RequestContext, None]

# NotificationType is marked in schema.users, which takes it as an argument (`User.notifications(types:)`).
strawberry.enum(Level, name="NotificationLevel", description="Who may notify you of a type of event.")
strawberry.enum(NotificationErrorCode)

@strawberry.type(description="One notification: a group of events of one type about one target ("
                             "\"ada and 10 others liked your post\"), or a single event.")
class Notification(Node):
    type: NotificationType
    actors: list[User] = strawberry.field(description="The latest actors you may see (at most 3), newest first.")
    actor_count: int = strawberry.field(description=(
        "How many distinct actors you may see did it (blocked, blocking and deleted accounts are not counted)."))
    latest_at: float = strawberry.field(description="When the latest actor joined (ms since the Unix epoch).")
    unread: bool
    preview: str = strawberry.field(description="A short text for the list: who did what.")
    target: Node | None = strawberry.field(description=(
        "What it is about: the post, comment or thread (null for follow types: see `actors`)."))

    @classmethod
    def from_view(cls, view: reads.NotificationView) -> Notification:
        target = None
        if view.target is not None:
            for otype, from_obj in node_types().values():
                if otype == view.target.otype:
                    target = from_obj(view.target)
                    break
        return cls(id=to_global_id("Notification", view.notification.id), type=view.notification.type,
                   actors=[User.from_record(u) for u in view.actors], actor_count=view.actor_count,
                   latest_at=float(view.updated), unread=view.unread, preview=reads.preview_text(view), target=target)


@strawberry.type(description="A page of notifications, latest update first.")
class NotificationConnection:
    edges: list[Edge[Notification]]
    page_info: PageInfo


async def user_notifications(info: Ctx, user_id: int, first: int, after: str | None,
                             types: list[NotificationType] | None) -> NotificationConnection:
    info.context.require_self(user_id, "notifications")
    check_choices("types", types, NotificationType)
    cursors = list_cursors("User.notifications", user_id)  # `types` filters one list: its cursors serve all
    page = await reads.notifications(info.context, first, cursors.decode(after),
                                     set(types) if types is not None else None)
    edges = [Edge(cursor=cursors.encode(c), node=Notification.from_view(v)) for c, v in page.items]
    return NotificationConnection(edges=edges, page_info=PageInfo(
        has_next_page=page.has_next, has_previous_page=page.has_previous,
        start_cursor=edges[0].cursor if edges else None, end_cursor=cursors.encode(page.end_cursor)))


async def user_unread_count(info: Ctx, user_id: int) -> int:
    info.context.require_self(user_id, "notifications")
    return await reads.unread_count(info.context)


# ---- preferences ---------------------------------------------------------------------------------

@strawberry.type(description="Your setting for one type of notification.")
class NotificationSetting:
    type: NotificationType
    level: Level
    push: bool


@strawberry.type(description="Who may notify you of what, and whether it is pushed.")
class NotificationPreferences:
    settings: list[NotificationSetting]
    push_paused_until: float | None = strawberry.field(description=(
        "Every push is paused until then (ms since the Unix epoch); null when not paused."))

    @classmethod
    def of(cls, p: prefs_domain.Preferences) -> NotificationPreferences:
        from tao.models import now_ms

        return cls(settings=[NotificationSetting(type=t, level=p.level(t), push=p.push.get(t, True))
                             for t in NotificationType],
                   push_paused_until=float(p.pause_until) if p.pause_until > now_ms() else None)


async def user_preferences(info: Ctx, user_id: int) -> NotificationPreferences:
    info.context.require_self(user_id, "notifications")
    return NotificationPreferences.of(await prefs_domain.load_preferences(info.context.tao, user_id))


@strawberry.type
class NotificationError(Error):
    code: NotificationErrorCode
    message: str
    field: str | None


@strawberry.input(description="One type's setting; omit `level` or `push` to keep its value.")
class NotificationSettingInput:
    type: NotificationType
    level: Level | None = None
    push: bool | None = None


@strawberry.input(description="Settings to change; the others keep their values.")
class NotificationPreferencesUpdateInput:
    settings: list[NotificationSettingInput] = strawberry.field(default_factory=list)
    pause_push_hours: float | None = strawberry.field(default=None, description=(
        "Pause every push for this many hours from now (0 resumes push)."))


@strawberry.type
class NotificationPreferencesUpdatePayload:
    preferences: NotificationPreferences | None = None
    errors: list[NotificationError] = strawberry.field(default_factory=list)


@strawberry.input(description="Mark notifications read up to one (its `cursor`), or all of them (omit `upTo`).")
class NotificationsMarkReadInput:
    up_to: str | None = None


@strawberry.type
class NotificationsMarkReadPayload:
    unread_count: int | None = None
    errors: list[NotificationError] = strawberry.field(default_factory=list)


@strawberry.input(description="A browser's `PushSubscription.keys`, base64url.")
class PushKeysInput:
    p256dh: str
    auth: str


@strawberry.input(description="A browser's Web Push subscription (`PushSubscription.toJSON()`).")
class PushSubscriptionRegisterInput:
    endpoint: str
    keys: PushKeysInput


@strawberry.input(description="The endpoint to stop pushing to.")
class PushSubscriptionUnregisterInput:
    endpoint: str


@strawberry.type
class PushSubscriptionPayload:
    registered: bool = False
    errors: list[NotificationError] = strawberry.field(default_factory=list)


@strawberry.type
class NotificationsMutation:
    @mutation(description="Receive Web Push notifications on this browser (at most 20 per account), "
                          "until this session ends (log-out, revoked, password changed).")
    async def register_push_subscription(self, info: Ctx, input: PushSubscriptionRegisterInput
                                         ) -> PushSubscriptionPayload:
        await push.do_register_push_subscription(info.context.tao, actor(info), input.endpoint, input.keys.p256dh,
                                                 input.keys.auth, info.context.session_id)
        return PushSubscriptionPayload(registered=True)

    @mutation(description="Stop Web Push notifications to this endpoint.")
    async def unregister_push_subscription(self, info: Ctx, input: PushSubscriptionUnregisterInput
                                           ) -> PushSubscriptionPayload:
        await push.do_unregister_push_subscription(info.context.tao, actor(info), input.endpoint)
        return PushSubscriptionPayload(registered=False)

    @mutation(description="Mark your notifications read up to `upTo` (a notification's cursor), or all.")
    async def mark_notifications_read(self, info: Ctx, input: NotificationsMarkReadInput
                                      ) -> NotificationsMarkReadPayload:
        viewer = actor(info)
        up_to = list_cursors("User.notifications", viewer).decode(input.up_to, "upTo")
        await reads.do_mark_notifications_read(info.context.tao, viewer, up_to)
        info.context.reset_loaders()
        return NotificationsMarkReadPayload(unread_count=await reads.unread_count(info.context))

    @mutation(description="Change who may notify you of each type, push per type, or pause all push for N hours.")
    async def update_notification_preferences(self, info: Ctx, input: NotificationPreferencesUpdateInput
                                              ) -> NotificationPreferencesUpdatePayload:
        levels = {s.type: s.level for s in input.settings if s.level is not None}
        push = {s.type: s.push for s in input.settings if s.push is not None}
        updated = await prefs_domain.do_update_notification_preferences(
            info.context.tao, actor(info), levels=levels, push=push, pause_push_hours=input.pause_push_hours)
        return NotificationPreferencesUpdatePayload(preferences=NotificationPreferences.of(updated))


# ---- live ------------------------------------------------------------------------------------------

@strawberry.type(description="A notification was created or gained an actor: show it at the top.")
class NotificationEvent(StreamEvent):
    notification: Notification


async def _notification_event(info: Ctx, event: realtime.StreamEvent) -> NotificationEvent | None:
    view = await reads.notification_view(info.context, event.ids["notification"])
    return None if view is None else NotificationEvent(**event_fields(event), notification=Notification.from_view(view))


# Only `notificationEvents` delivers these: `viewerEvents` stays as it was for its clients.
register_event_type(KIND_NOTIFICATION, NotificationEvent, _notification_event, in_viewer_events=False)


@strawberry.type
class NotificationsSubscription:
    @strawberry.subscription(description=(
        "Your notifications as they arrive (new ones and groups gaining an actor), resumable: pass "
        "`after:` the `cursor` of the last event received to get what you missed first."))
    async def notification_events(self, info: Ctx, after: str | None = None
                                  ) -> AsyncGenerator[NotificationEvent, None]:
        async for out in deliver_events(info, after, match=lambda e: e.kind == KIND_NOTIFICATION):
            yield out
register_list_bound("Notification", "actors", LATEST_ACTORS)
register_list_bound("NotificationPreferences", "settings", len(NotificationType))  # one per type
