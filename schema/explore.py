"""Explore in GraphQL: `explore(first:, after:)`, `suggestedUsers(first:)`,
`trendingHashtags(first:)` and `dismissSuggestion`.

Thin: each field is one call into `resolvers.explore`; privacy is decided there. Explore cursors
are opaque base64("explore:session:index") strings (resolvers/explore/sessions.py).
"""

from __future__ import annotations

import base64
import binascii

import strawberry
from strawberry import Info

from resolvers.context import RequestContext
from resolvers.errors import BadInputError
from resolvers.explore import service, trends
from resolvers.explore.sessions import BAD_CURSOR, ExploreCursor
from resolvers.pagination import check_first
from schema.errors import Error
from schema.mutations import actor, authenticated_field, mutation
from schema.posts import Hashtag, Post
from schema.relay import PageInfo, from_global_id
from schema.users import User

Ctx = Info[RequestContext, None]


def encode_explore_cursor(c: ExploreCursor) -> str:
    return base64.urlsafe_b64encode(f"explore:{c[0]}:{c[1]}".encode()).decode().rstrip("=")


def decode_explore_cursor(cursor: str | None) -> ExploreCursor | None:
    if cursor is None:
        return None
    try:
        if len(cursor) > 200:
            raise ValueError(cursor)
        tag, sid, index = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        if tag != "explore":
            raise ValueError(tag)
        return int(sid), int(index)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInputError(BAD_CURSOR) from None


@strawberry.type
class ExploreEdge:
    cursor: str
    node: Post


@strawberry.type(description="A page of Explore: posts from accounts you do not follow, ranked for you. Pages come "
                             "from one snapshot taken by the first page, so `after` never repeats or skips a post; a "
                             "post served once is not served again by a later snapshot.")
class ExploreConnection:
    edges: list[ExploreEdge]
    page_info: PageInfo

    @strawberry.field(description="The posts of `edges`.")
    def nodes(self) -> list[Post]:
        return [e.node for e in self.edges]


@strawberry.type(description="An account you may know, and why it is suggested.")
class SuggestedUser:
    user: User
    reason: str = strawberry.field(description='Why: "followed by ada and 3 others", or "follows you".')
    mutual_count: int = strawberry.field(description="Accounts you follow that follow it (among those scanned).")
    follows_you: bool


@strawberry.type(description="A hashtag whose use is growing faster than usual.")
class TrendingHashtag:
    hashtag: Hashtag
    score: float = strawberry.field(description="Growth in distinct accounts over its baseline, decayed since its "
                                                "peak (docs/explore.md).")
    accounts: int = strawberry.field(description="Distinct accounts that used it in the current period.")


@strawberry.type
class ExploreQuery:
    @authenticated_field(description="Explore: a grid of posts from accounts you do not follow.")
    async def explore(self, info: Ctx, first: int = 24, after: str | None = None) -> ExploreConnection:
        page = await service.explore(info.context, first, decode_explore_cursor(after))
        edges = [ExploreEdge(cursor=encode_explore_cursor(i.cursor), node=Post.from_record(i.post))
                 for i in page.items]
        return ExploreConnection(edges=edges, page_info=PageInfo(
            has_next_page=page.has_next, has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=encode_explore_cursor(page.end_cursor) if page.end_cursor else None))

    @authenticated_field(description="Accounts you may know: followed by accounts you follow, or following you.")
    async def suggested_users(self, info: Ctx, first: int = 10) -> list[SuggestedUser]:
        return [SuggestedUser(user=User.from_record(x.user), reason=x.reason, mutual_count=x.mutuals,
                              follows_you=x.follows_you)
                for x in await service.suggested_users(info.context, first)]

    @strawberry.field(description="Hashtags trending now, best first.")
    async def trending_hashtags(self, info: Ctx, first: int = 10) -> list[TrendingHashtag]:
        check_first(info.context, first)
        return [TrendingHashtag(hashtag=Hashtag.from_record(t.hashtag), score=round(t.score, 4), accounts=t.accounts)
                for t in await trends.trending_hashtags(info.context, first)]


ExploreErrorCode = service.ExploreErrorCode
strawberry.enum(service.ExploreErrorCode)


@strawberry.type
class SuggestionDismissError(Error):
    code: ExploreErrorCode
    message: str
    field: str | None


@strawberry.input
class SuggestionDismissInput:
    user_id: strawberry.ID


@strawberry.type
class SuggestionDismissPayload:
    ok: bool = False
    errors: list[SuggestionDismissError] = strawberry.field(default_factory=list)


@strawberry.type
class ExploreMutation:
    @mutation(description="Stop suggesting this account to you (for 90 days by default).")
    async def dismiss_suggestion(self, info: Ctx, input: SuggestionDismissInput) -> SuggestionDismissPayload:
        ctx = info.context
        _, user_id = from_global_id(input.user_id, ctx.tao.n_shards, "User", "userId")
        await service.do_dismiss_suggestion(ctx.tao, actor(info), user_id)
        return SuggestionDismissPayload(ok=True)
