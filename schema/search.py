"""Search in GraphQL: `search(query:, types:, first:, after:)`, `recentSearches`, and the
mutations that keep recent searches. Thin: each field calls one `resolvers.search` function."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import strawberry
from strawberry import Info

from resolvers import records
from resolvers.context import RequestContext
from resolvers.pagination import check_choices
from resolvers.search import query as search_domain
from resolvers.search import recent
from schema.errors import Error
from schema.mutations import actor, authenticated_field, mutation
from schema.posts import Hashtag, Location, Post
from schema.relay import Connection, First, connection_from_page, from_global_id, list_cursors
from schema.users import User

Ctx = Info[RequestContext, None]


@strawberry.enum(description="What `search` looks for.")
class SearchType(enum.Enum):
    USER = "user"
    HASHTAG = "hashtag"
    PLACE = "place"
    POST = "post"


strawberry.enum(recent.SearchErrorCode, name="SearchErrorCode")

SearchResult = Annotated[User | Hashtag | Location | Post,
                         strawberry.union("SearchResult", description="An account, hashtag, place or post found.")]


def to_result(rec: Any) -> Any:
    if isinstance(rec, records.User):
        return User.from_record(rec)
    if isinstance(rec, records.Hashtag):
        return Hashtag.from_record(rec)
    if isinstance(rec, records.Location):
        return Location.from_record(rec)
    return Post.from_record(rec)


@strawberry.type
class SearchError(Error):
    code: recent.SearchErrorCode


@strawberry.input
class RecentSearchAddInput:
    id: strawberry.ID = strawberry.field(description="The account, hashtag or place chosen from `search`.")


@strawberry.input
class RecentSearchRemoveInput:
    id: strawberry.ID


@strawberry.type
class RecentSearchPayload:
    errors: list[SearchError] = strawberry.field(default_factory=list)


@strawberry.type
class RecentSearchesClearPayload:
    cleared: int = 0
    errors: list[SearchError] = strawberry.field(default_factory=list)


@strawberry.type
class SearchQuery:
    @strawberry.field(description=(
        "Accounts, hashtags, places and posts matching `query` as typed so far: exact matches first, "
        "then prefixes, then near misses (typos), accounts you follow (and that they follow) first; "
        "then posts whose caption matches. Case, accents and full-width forms do not matter. "
        "`types` narrows it (default: all). An empty query finds nothing; at most 100 characters."))
    async def search(self, info: Ctx, query: str, types: list[SearchType] | None = None, first: First = 20,
                     after: str | None = None) -> Connection[SearchResult]:
        check_choices("types", types, SearchType)
        kinds = tuple(dict.fromkeys(t.value for t in (types if types is not None else list(SearchType))))
        # the viewer's searches are one list; its positions carry the query's fingerprint, so a
        # cursor of another query is refused by the domain (`resolvers.search.query.search`)
        cursors = list_cursors("Query.search", info.context.viewer_id or 0)
        page = await search_domain.search(info.context, query, kinds, first, cursors.decode(after))
        return connection_from_page(page, to_result, cursors)

    @authenticated_field(description="The accounts, hashtags and places you chose from search, newest first.")
    async def recent_searches(self, info: Ctx, first: First = 20) -> list[SearchResult]:
        return [to_result(r) for r in await recent.recent_searches(info.context, first)]


def _target(info: Ctx, global_id: str) -> int:
    return from_global_id(global_id, info.context.tao.n_shards)[1]


@strawberry.type
class SearchMutation:
    @mutation(description="Remember a search result you chose (shown first in `recentSearches`).")
    async def add_recent_search(self, info: Ctx, input: RecentSearchAddInput) -> RecentSearchPayload:
        await recent.do_add_recent_search(info.context.tao, actor(info), _target(info, input.id))
        return RecentSearchPayload()

    @mutation(description="Forget one recent search.")
    async def remove_recent_search(self, info: Ctx, input: RecentSearchRemoveInput) -> RecentSearchPayload:
        await recent.do_remove_recent_search(info.context.tao, actor(info), _target(info, input.id))
        return RecentSearchPayload()

    @mutation(description="Forget every recent search.")
    async def clear_recent_searches(self, info: Ctx) -> RecentSearchesClearPayload:
        return RecentSearchesClearPayload(cleared=await recent.do_clear_recent_searches(info.context.tao,
                                                                                         actor(info)))
