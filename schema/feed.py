"""The home feed in GraphQL: `User.feed` (the viewer's own; `viewer { feed(...) }`), its
connection with `newPostsCount` and developer-only `debug` scores, and `recordProfileVisit`.

Thin: each field is one call into `resolvers.feed.service`. Feed cursors are opaque
base64("feed:session:index:page_start") strings (see resolvers/feed/sessions.py).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import strawberry
from strawberry import Info
from strawberry.permission import BasePermission

from resolvers.context import RequestContext
from resolvers.errors import BadInputError, PermissionDeniedError
from resolvers.feed import service
from resolvers.feed.sessions import FeedCursor
from schema import prefetch
from schema.errors import Error
from schema.mutations import actor, mutation
from schema.posts import Post
from schema.relay import PageInfo, from_global_id

Ctx = Info[RequestContext, None]
# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
FeedMode = service.FeedMode
strawberry.enum(service.FeedMode, description="RANKED (default) or newest first.")


def encode_feed_cursor(c: FeedCursor) -> str:
    return base64.urlsafe_b64encode(f"feed:{c[0]}:{c[1]}:{c[2]}".encode()).decode().rstrip("=")


def decode_feed_cursor(cursor: str | None) -> FeedCursor | None:
    if cursor is None:
        return None
    try:
        if len(cursor) > 200:
            raise ValueError(cursor)
        tag, sid, index, start = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        if tag != "feed":
            raise ValueError(tag)
        return int(sid), int(index), int(start)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInputError("`after` is not a valid feed cursor: "
                            "pass a `cursor` or `pageInfo.endCursor` from `feed`.") from None


@strawberry.type(description="Why a post ranks where it does (developers only). `score` is the weighted sum of the "
                             "components; `seen` posts sink below unseen ones whatever their score.")
class FeedScore:
    score: float
    recency: float
    engagement: float
    affinity: float
    content_type: float
    seen: bool


class MaySeeFeedScores(BasePermission):
    """The page was made for a viewer the domain lets see ranking scores (`service.debug_allowed`)."""

    message = service.SCORES_FORBIDDEN

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return bool(source.debug_allowed)

    def on_unauthorized(self) -> None:
        raise PermissionDeniedError(self.message)


@strawberry.type
class FeedEdge:
    cursor: str
    node: Post
    scores: strawberry.Private[dict | None]
    debug_allowed: strawberry.Private[bool]

    @strawberry.field(description="The ranking's score and its components. FORBIDDEN unless the server runs in "
                                  "debug mode or your account has the developer flag; null in CHRONOLOGICAL mode.",
                      permission_classes=[MaySeeFeedScores])
    def debug(self) -> FeedScore | None:
        return FeedScore(**self.scores) if self.scores else None


@strawberry.type(description="A page of the home feed. Pages come from one ranked snapshot taken by the first page, "
                             "so scrolling with `after` never repeats or skips a post; refetch without `after` to "
                             "see new posts.")
class FeedConnection:
    edges: list[FeedEdge]
    page_info: PageInfo
    page: strawberry.Private[service.FeedPage]

    @strawberry.field(description="The posts of `edges`.")
    def nodes(self) -> list[Post]:
        return [e.node for e in self.edges]

    @strawberry.field(description="Posts that arrived after this feed's snapshot: offer a refresh when > 0.")
    async def new_posts_count(self, info: Ctx) -> int:
        if self.page.session is None:
            return 0
        return await service.new_posts_count(info.context, self.page.session)


async def user_feed(info: Ctx, user_id: int, first: int, after: str | None, feed_mode: service.FeedMode
                    ) -> FeedConnection:
    """`User.feed`: only for the viewer's own account."""
    page = await service.user_home_feed(info.context, user_id, first, decode_feed_cursor(after), feed_mode)
    edges = [FeedEdge(cursor=encode_feed_cursor(i.cursor), node=Post.from_record(i.post), scores=i.debug,
                      debug_allowed=page.debug_allowed) for i in page.items]
    connection = FeedConnection(edges=edges, page=page, page_info=PageInfo(
        has_next_page=page.has_next, has_previous_page=page.has_previous,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=encode_feed_cursor(page.end_cursor) if page.end_cursor else None))
    await prefetch.prefetch_page(info, "Post", connection)
    return connection


FeedErrorCode = service.FeedErrorCode
strawberry.enum(service.FeedErrorCode)


@strawberry.type
class ProfileVisitError(Error):
    code: FeedErrorCode
    message: str
    field: str | None


@strawberry.input
class ProfileVisitRecordInput:
    user_id: strawberry.ID


@strawberry.type
class ProfileVisitRecordPayload:
    ok: bool = False
    errors: list[ProfileVisitError] = strawberry.field(default_factory=list)


@strawberry.type
class FeedMutation:
    @mutation(description="Record that the viewer opened a profile (a feed ranking signal). Cheap; "
                          "repeated visits within 10 minutes are one.")
    async def record_profile_visit(self, info: Ctx, input: ProfileVisitRecordInput) -> ProfileVisitRecordPayload:
        ctx = info.context
        _, user_id = from_global_id(input.user_id, ctx.tao.n_shards, "User", "userId")
        await service.do_record_profile_visit(ctx.tao, actor(info), user_id)
        return ProfileVisitRecordPayload(ok=True)
