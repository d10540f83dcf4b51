"""Posts, hashtags and locations: the `Post`, `Hashtag` and `Location` types, `hashtag(name:)`,
`location(id:)`, `User.posts`, and the post and like mutations.

Scalar fields are plain attributes copied from the object when the type is built; every async
field is one loader call through a `resolvers` function, so a page of posts batches field by
field. A `Post` is only built from an object privacy let through.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import Info

from resolvers import comments, hashtags, likes, locations, media, posts, records
from resolvers.context import RequestContext
from resolvers.pagination import Page
from resolvers.throttle import Action
from schema import prefetch
from schema.cost import register_list_bound
from schema.errors import Error
from schema.media import Media
from schema.mutations import actor, mutation
from schema.relay import (
    Connection,
    First,
    ListCursors,
    Node,
    connection_from_page,
    from_global_id,
    list_cursors,
    register_node,
    to_global_id,
)
from schema.users import User

if TYPE_CHECKING:
    from schema.comments import Comment

# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
PostErrorCode = posts.PostErrorCode
strawberry.enum(posts.PostErrorCode)
PostStatus = records.PostStatus
strawberry.enum(records.PostStatus, description="VISIBLE; PROCESSING while its media are not ready; FAILED if one of "
                                                "them failed (the media's `failureReason` says why). Only the author "
                                                "sees a PROCESSING or FAILED post.")

Ctx = Info[RequestContext, None]
LazyComment = Annotated["Comment", strawberry.lazy("schema.comments")]


def timestamp(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def store_id(ctx: RequestContext, global_id: str, typename: str, arg: str) -> int:
    return from_global_id(global_id, ctx.settings.store.logical_shards, expected=typename, arg=arg)[1]


@strawberry.type(description="A hashtag; `posts` are the posts tagged with it, newest first.")
class Hashtag(Node):
    id: strawberry.ID
    name: str
    store_id: strawberry.Private[int]

    @classmethod
    def from_record(cls, h: records.Hashtag) -> Hashtag:
        return cls(id=to_global_id("Hashtag", h.id), name=h.name, store_id=h.id)

    @strawberry.field(description="How many public posts (published, by public accounts) use it: the same for "
                                  "everyone; your own or followed private posts show in `posts` but are not counted.")
    async def post_count(self, info: Ctx) -> int:
        return await hashtags.hashtag_post_count(info.context, self.store_id)

    @strawberry.field(description="Posts tagged with this hashtag that you may see, newest first "
                                  "(a page may be short).")
    async def posts(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[Post]:
        cursors = list_cursors("Hashtag.posts", self.store_id)
        page = await hashtags.hashtag_posts(info.context, self.store_id, first, cursors.decode(after))
        return await _post_page(info, page, cursors)


@strawberry.type(description="A place posts can be tagged at.")
class Location(Node):
    id: strawberry.ID
    name: str
    latitude: float | None
    longitude: float | None
    store_id: strawberry.Private[int]

    @classmethod
    def from_record(cls, loc: records.Location) -> Location:
        return cls(id=to_global_id("Location", loc.id), name=loc.name, latitude=loc.latitude,
                   longitude=loc.longitude, store_id=loc.id)

    @strawberry.field(description="How many public posts (published, by public accounts) are "
                                  "tagged here: the same for everyone.")
    async def post_count(self, info: Ctx) -> int:
        return await locations.location_post_count(info.context, self.store_id)

    @strawberry.field(description="Posts at this location that you may see, newest first (a page may be short).")
    async def posts(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[Post]:
        cursors = list_cursors("Location.posts", self.store_id)
        page = await locations.location_posts(info.context, self.store_id, first, cursors.decode(after))
        return await _post_page(info, page, cursors)


@strawberry.type(description="A post: a caption and up to 10 photos or videos, with likes and comments.")
class Post(Node):
    id: strawberry.ID
    caption: str
    status: PostStatus
    created_at: datetime
    published_at: datetime | None = strawberry.field(description="When it became visible; null while processing.")
    hashtags: list[str] = strawberry.field(description="The caption's hashtags, lower case, without `#`.")
    record: strawberry.Private[records.Post]
    prefetched: strawberry.Private[dict | None] = None  # schema/prefetch.py: field values a page loaded

    @classmethod
    def from_record(cls, p: records.Post) -> Post:
        return cls(
            id=to_global_id("Post", p.id), caption=p.caption, status=p.status, created_at=timestamp(p.created),
            hashtags=list(p.hashtags), record=p, published_at=timestamp(p.published_at) if p.published_at else None,
        )

    @strawberry.field
    async def author(self, info: Ctx) -> User | None:
        obj = await posts.post_author(info.context, self.record)
        return User.from_record(obj) if obj is not None else None

    @strawberry.field(description="Accounts @mentioned in the caption that you may see.")
    async def mentions(self, info: Ctx) -> list[User]:
        return [User.from_record(u) for u in await posts.post_mentions(info.context, self.record)]

    @strawberry.field
    async def location(self, info: Ctx) -> Location | None:
        obj = await posts.post_location(info.context, self.record)
        return Location.from_record(obj) if obj is not None else None

    @strawberry.field(description="The photos and videos, in order (others see them once READY).")
    async def media(self, info: Ctx) -> list[Node]:
        return [Media.from_record(m) for m in await media.post_media(info.context, self.record)]

    @strawberry.field(description="How many accounts like this post (exact).")
    async def like_count(self, info: Ctx) -> int:
        return await likes.like_count(info.context, self.record.id)

    @strawberry.field
    async def viewer_has_liked(self, info: Ctx) -> bool:
        return await likes.viewer_has_liked(info.context, self.record.id)

    @strawberry.field(description="Who liked it, newest like first.")
    async def likers(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[User]:
        cursors = list_cursors("Post.likers", self.record.id)
        page = await likes.likers(info.context, self.record.id, first, cursors.decode(after))
        return connection_from_page(page, User.from_record, cursors)

    @strawberry.field(description="How many top-level comments it has (exact; replies are "
                                  "counted by `Comment.replyCount`).")
    async def comment_count(self, info: Ctx) -> int:
        return await comments.comment_count(info.context, self.record.id)

    @strawberry.field(description="Top-level comments, newest first; each has its `replies`.")
    async def comments(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[LazyComment]:
        from schema.comments import Comment

        cursors = list_cursors("Post.comments", self.record.id)
        page = await comments.comments(info.context, self.record.id, first, cursors.decode(after))
        connection = connection_from_page(page, Comment.from_record, cursors)
        await prefetch.prefetch_page(info, "Comment", connection)
        return connection

    @strawberry.field(description="Comments by accounts you restrict, waiting for your approval (post author only).")
    async def pending_comments(self, info: Ctx, first: First = 20, after: str | None = None
                               ) -> Connection[LazyComment] | None:
        from schema.comments import Comment

        cursors = list_cursors("Post.pendingComments", self.record.id)
        page = await comments.pending_comments(info.context, self.record.id, first, cursors.decode(after))
        return connection_from_page(page, Comment.from_record, cursors)


# What a page of posts loads for all its posts at once, for the fields the request selects
# (schema/prefetch.py); each does what the field's own resolver does, for many posts.

@prefetch.batch_fetcher("Post", "author", child_type="User")
async def _authors(ctx: RequestContext, items: list[Post], _: dict) -> list:
    return prefetch.values(await posts.post_authors(ctx, [p.record for p in items]), User.from_record)


@prefetch.batch_fetcher("Post", "likeCount")
async def _like_counts(ctx: RequestContext, items: list[Post], _: dict) -> list:
    return prefetch.values(await likes.like_counts(ctx, [p.record.id for p in items]))


@prefetch.batch_fetcher("Post", "viewerHasLiked")
async def _viewer_likes(ctx: RequestContext, items: list[Post], _: dict) -> list:
    return prefetch.values(await likes.viewer_has_liked_many(ctx, [p.record.id for p in items]))


@prefetch.batch_fetcher("Post", "commentCount")
async def _comment_counts(ctx: RequestContext, items: list[Post], _: dict) -> list:
    return prefetch.values(await comments.comment_counts(ctx, [p.record.id for p in items]))


@prefetch.batch_fetcher("Post", "comments", child_type="Comment", connection=True)
async def _comment_pages(ctx: RequestContext, items: list[Post], args: dict) -> list:
    from schema.comments import Comment

    if args.get("after") is not None:
        # A cursor is one post's (`Post.comments` of that post): each post's own field decodes
        # it, and refuses it for the other posts, the ordinary way.
        return [prefetch.MISSING] * len(items)
    ids = [p.record.id for p in items]
    pages = await comments.comment_pages(ctx, ids, args["first"], None)
    return [prefetch.MISSING if isinstance(page, BaseException)
            else connection_from_page(page, Comment.from_record, list_cursors("Post.comments", i))
            for i, page in zip(ids, pages, strict=True)]


register_node("Post", "POST", Post.from_record)
register_node("Hashtag", "HASHTAG", Hashtag.from_record)
register_node("Location", "LOCATION", Location.from_record)
register_list_bound("Post", "mentions", hashtags.MENTIONS_MAX)
register_list_bound("Post", "media", posts.MEDIA_MAX)  # a carousel's items


async def user_posts(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[Post]:
    """`User.posts`: the user's posts, newest first."""
    cursors = list_cursors("User.posts", user_id)
    return await _post_page(info, await posts.user_posts(info.context, user_id, first, cursors.decode(after)), cursors)


async def _post_page(info: Ctx, page: Page[records.Post], cursors: ListCursors) -> Connection[Post]:
    """A connection of posts, with what the request selects of them loaded for all at once."""
    connection = connection_from_page(page, Post.from_record, cursors)
    await prefetch.prefetch_page(info, "Post", connection)
    return connection


@strawberry.type
class PostError(Error):
    code: PostErrorCode
    message: str
    field: str | None


@strawberry.input(description="A new place: found by name (and coordinates) or created.")
class LocationInput:
    name: str
    latitude: float | None = None
    longitude: float | None = None


@strawberry.input
class PostCreateInput:
    caption: str = strawberry.field(
        default="", description="Up to 2200 characters; #hashtags and @mentions are linked.")
    media_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Your uploads, in display order, at most 10.")
    location_id: strawberry.ID | None = None
    location: LocationInput | None = None


@strawberry.input
class PostEditInput:
    post_id: strawberry.ID
    caption: str


@strawberry.input
class PostDeleteInput:
    post_id: strawberry.ID


@strawberry.input
class PostLikeInput:
    post_id: strawberry.ID


@strawberry.input
class PostUnlikeInput:
    post_id: strawberry.ID


@strawberry.type(description="The post (null on failure) and typed errors.")
class PostPayload:
    post: Post | None = None
    errors: list[PostError] = strawberry.field(default_factory=list)


@strawberry.type
class PostDeletePayload:
    deleted_post_id: strawberry.ID | None = None
    errors: list[PostError] = strawberry.field(default_factory=list)


@strawberry.type
class PostsQuery:
    @strawberry.field(description="The hashtag with this name (`#` optional, any case), or null "
                                  "if no post you may see uses it.")
    async def hashtag(self, info: Ctx, name: str) -> Hashtag | None:
        obj = await hashtags.get_hashtag(info.context, name)
        return Hashtag.from_record(obj) if obj is not None else None

    @strawberry.field(description="The location with this id, or null if no post you may see is tagged at it.")
    async def location(self, info: Ctx, id: strawberry.ID) -> Location | None:
        obj = await locations.get_location(info.context, store_id(info.context, id, "Location", "id"))
        return Location.from_record(obj) if obj is not None else None


@strawberry.type
class PostsMutation:
    @mutation(description="Publish a post. With media still processing it stays PROCESSING (seen "
                          "only by you) until they are ready.", action=Action.POSTS)
    async def create_post(self, info: Ctx, input: PostCreateInput) -> PostPayload:
        ctx = info.context
        media = [store_id(ctx, m, "Media", "mediaIds") for m in input.media_ids]
        loc_id = store_id(ctx, input.location_id, "Location", "locationId") if input.location_id else None
        loc: Any = input.location
        obj = await posts.do_create_post(
            ctx.tao, actor(info), input.caption, media, location_id=loc_id,
            location_name=loc.name if loc else None, latitude=loc.latitude if loc else None,
            longitude=loc.longitude if loc else None)
        return PostPayload(post=Post.from_record(obj))

    @mutation(description="Change a post's caption (author only); hashtags and mentions follow.")
    async def edit_post(self, info: Ctx, input: PostEditInput) -> PostPayload:
        ctx = info.context
        pid = store_id(ctx, input.post_id, "Post", "postId")
        return PostPayload(post=Post.from_record(await posts.do_edit_post(ctx.tao, actor(info), pid, input.caption)))

    @mutation(description="Delete a post (author only), with its likes and comments.")
    async def delete_post(self, info: Ctx, input: PostDeleteInput) -> PostDeletePayload:
        ctx = info.context
        await posts.do_delete_post(ctx.tao, actor(info), store_id(ctx, input.post_id, "Post", "postId"))
        return PostDeletePayload(deleted_post_id=input.post_id)

    @mutation(description="Like a post (idempotent).", action=Action.LIKES)
    async def like_post(self, info: Ctx, input: PostLikeInput) -> PostPayload:
        ctx = info.context
        pid = store_id(ctx, input.post_id, "Post", "postId")
        return PostPayload(post=Post.from_record(await likes.do_like_post(ctx.tao, actor(info), pid)))

    @mutation(description="Take back a like (idempotent).")
    async def unlike_post(self, info: Ctx, input: PostUnlikeInput) -> PostPayload:
        ctx = info.context
        pid = store_id(ctx, input.post_id, "Post", "postId")
        return PostPayload(post=Post.from_record(await likes.do_unlike_post(ctx.tao, actor(info), pid)))
