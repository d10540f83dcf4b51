"""Subscriptions' GraphQL side: the `StreamEvent` interface, its registry of event types, and
`viewerEvents(after:)`.

Every event type implements `StreamEvent` (`cursor`, `eventId`) and is registered once with
`register_event_type(kind, Type, build)`: `build(info, event)` turns a `resolvers.realtime.StreamEvent`
(ids only) into the GraphQL object by reading through `info.context.loaders` (fresh for each
event) and privacy, or returns None to skip the event (its content is gone, or the viewer may
not see it). Unregistered kinds are skipped, so a server never sends what it cannot describe.
A domain's subscription fields (e.g. `inboxEvents`) call `deliver_events` with their `match`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import strawberry
from strawberry import Info

from resolvers import realtime, users
from resolvers.context import RequestContext
from resolvers.errors import ThrottledError
from resolvers.throttle import EventBudget, wait_text
from schema.cost import event_costs
from schema.relay import to_global_id
from schema.users import User

Ctx = Info[RequestContext, None]
Builder = Callable[[Ctx, realtime.StreamEvent], Awaitable[Any | None]]


@strawberry.interface(description=(
    "An event of the viewer's stream, pushed by a subscription. Resume after a disconnect by "
    "subscribing again with `after:` the `cursor` of the last event received: every stored event "
    "since then comes first, then live ones, with no gap and no duplicate."))
class StreamEvent:
    cursor: str | None = strawberry.field(description=(
        "Where this event sits in the viewer's stream (pass it as `after:` to resume); null for "
        "ephemeral events (typing), which are never stored or replayed."))
    event_id: strawberry.ID | None = strawberry.field(description=(
        "The event's id, the same on every subscription that delivers it: deduplicate by it. Null "
        "for ephemeral events."))


_BUILDERS: dict[str, Builder] = {}
EVENT_TYPES: list[type] = []


# Kinds delivered only by their domain's own subscription, not by `viewerEvents` (notifications:
# `notificationEvents`), so adding such a kind changes nothing for `viewerEvents` clients.
OWN_SUBSCRIPTION_ONLY: set[str] = set()


def register_event_type(kind: str, gql_type: type, build: Builder, *, in_viewer_events: bool = True) -> None:
    """Declare how events of `kind` reach clients; `gql_type` implements `StreamEvent`.
    `in_viewer_events=False`: only a domain subscription that matches the kind delivers it."""
    if kind in _BUILDERS:
        raise ValueError(f"event kind {kind!r} is registered twice")
    _BUILDERS[kind] = build
    if not in_viewer_events:
        OWN_SUBSCRIPTION_ONLY.add(kind)
    if gql_type not in EVENT_TYPES:
        EVENT_TYPES.append(gql_type)


def event_fields(event: realtime.StreamEvent) -> dict[str, Any]:
    """The interface's fields for a type's constructor."""
    return {"cursor": event.cursor,
            "event_id": None if event.event_id is None else to_global_id("StreamEvent", event.event_id)}


async def deliver_events(info: Ctx, after: str | None,
                         match: Callable[[realtime.StreamEvent], bool] | None = None) -> AsyncGenerator[Any, None]:
    """The GraphQL objects of the viewer's stream after `after`, filtered by `match`, each paid
    for from the viewer's cost budget (`_EventCharge`)."""
    # The build runs inside the stream, with the event's fresh loaders and alongside the
    # session's check (one batch of reads); a store fault there closes the socket (1013) with
    # the cursor that resumes at the event.
    def known(event: realtime.StreamEvent) -> bool:
        return event.kind in _BUILDERS and (match is None or match(event))

    async def build(event: realtime.StreamEvent) -> Any | None:
        return await _BUILDERS[event.kind](info, event)

    charge = _EventCharge(info)
    try:
        async for out in realtime.viewer_stream(info.context, after, match=known, build=build):
            if await charge.pay(out):
                yield out
    finally:
        charge.budget.release()


class _EventCharge:
    """A subscription's selection runs again for every event it delivers, so each event costs
    what the selection costs on the event's type (`schema.cost.event_costs`), spent from the
    viewer's budget before the event is sent (`resolvers.throttle.EventBudget`). Not there: a
    stored event ends the subscription with THROTTLED, naming the cursor to resume from (the
    event is not lost); an ephemeral one (typing: at most once by design) is dropped."""

    def __init__(self, info: Ctx) -> None:
        ctx = info.context
        limits = ctx.settings.limits
        raw = info._raw_info  # graphql-core's (strawberry's Info wraps it): the field's node, fragments, variables
        self.costs = event_costs(raw.schema, raw.field_nodes[0], raw.fragments, raw.variable_values,
                                 limits.max_page_size, ctx.settings)
        self.most = max(self.costs.values(), default=1)
        self.field = info.field_name
        self.budget = EventBudget(ctx.tao, limits, ctx.cost_key)

    async def pay(self, out: Any) -> bool:
        """True: paid, send it; False: an ephemeral event not paid for, drop it."""
        definition = getattr(type(out), "__strawberry_definition__", None)
        points = self.costs.get(definition.name if definition is not None else "", self.most)
        try:
            await self.budget.pay(points, f"each event of this `{self.field}` selection")
        except ThrottledError as exc:
            if out.cursor is None:
                return False
            position = realtime.decode_cursor(out.cursor)
            assert position is not None
            raise ThrottledError(
                f"{exc.message}: wait {wait_text(exc.retry_after)}, then subscribe again with after: "
                f"{realtime.encode_cursor(position - 1)} (nothing is lost), selecting less on each event.",
                exc.retry_after) from None
        return True


# ---- this layer's own event types ---------------------------------------------------------------

@strawberry.type(description="Someone started following the viewer.")
class NewFollowerEvent(StreamEvent):
    follower: User


@strawberry.type(description="Someone asked to follow the viewer (a private account).")
class FollowRequestEvent(StreamEvent):
    requester: User


async def _still(info: Ctx, event: realtime.StreamEvent, atype: str) -> tuple[Any, bool]:
    """The event's user (None: hidden from the viewer) and whether their edge to the viewer that
    the event announces still holds (the edge committed with the event, not its inverse, which
    is synced after the commit), read in one batch. A follow undone or a request withdrawn (or
    answered) before it was delivered, a replay after a reconnect, is not announced: the viewer's
    own lists no longer show it, and a withdrawn request was withdrawn so that it would not be
    seen."""
    viewer, user_id = info.context.require_viewer(), event.ids["user"]
    user, edge = await asyncio.gather(users.get_user(info.context, user_id),
                                      info.context.loaders.assoc_by_key.load((user_id, atype, viewer)))
    return user, edge is not None


async def _new_follower(info: Ctx, event: realtime.StreamEvent) -> NewFollowerEvent | None:
    user, holds = await _still(info, event, "FOLLOWS")
    return None if user is None or not holds else NewFollowerEvent(follower=User.from_record(user),
                                                                   **event_fields(event))


async def _follow_request(info: Ctx, event: realtime.StreamEvent) -> FollowRequestEvent | None:
    user, holds = await _still(info, event, "FOLLOW_REQUESTED")
    return None if user is None or not holds else FollowRequestEvent(requester=User.from_record(user),
                                                                     **event_fields(event))


register_event_type(realtime.KIND_NEW_FOLLOWER, NewFollowerEvent, _new_follower)
register_event_type(realtime.KIND_FOLLOW_REQUEST, FollowRequestEvent, _follow_request)


@strawberry.type
class RealtimeSubscription:
    @strawberry.subscription(description=(
        "Every event of the viewer's stream (new followers, follow requests, and each domain's "
        "events). Needs a session (the token in `connection_init`); `after`: resume after this "
        "cursor, or omit it for live events from now on."))
    async def viewer_events(self, info: Ctx, after: str | None = None) -> AsyncGenerator[StreamEvent, None]:
        async for out in deliver_events(info, after, match=lambda e: e.kind not in OWN_SUBSCRIPTION_ONLY):
            yield out
