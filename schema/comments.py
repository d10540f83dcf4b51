"""Comments: the `Comment` type and `addComment`, `deleteComment`, `likeComment`, `unlikeComment`.

`Post.comments` lists top-level comments newest first; each comment's `replies` (one level deep)
are newest first too. Scalars are attributes; each async field is one loader call.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import Info

from resolvers import comments, likes, records
from resolvers.context import RequestContext
from resolvers.throttle import Action
from schema import prefetch
from schema.errors import Error
from schema.mutations import actor, mutation
from schema.posts import Post, store_id, timestamp
from schema.relay import Connection, First, Node, connection_from_page, list_cursors, register_node, to_global_id
from schema.users import User

# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
CommentErrorCode = comments.CommentErrorCode
strawberry.enum(comments.CommentErrorCode)
Ctx = Info[RequestContext, None]


@strawberry.type(description="A comment on a post, or a reply to one (replies are one level deep).")
class Comment(Node):
    id: strawberry.ID
    text: str
    created_at: datetime
    record: strawberry.Private[records.Comment]
    prefetched: strawberry.Private[dict | None] = None  # schema/prefetch.py: field values a page loaded

    @classmethod
    def from_record(cls, c: records.Comment) -> Comment:
        return cls(id=to_global_id("Comment", c.id), text=c.text, created_at=timestamp(c.created), record=c)

    @strawberry.field(description="Waiting for your approval (`approveComment`): by an account you restrict. Only "
                                  "the post's author is told; everyone else sees false.")
    def is_pending_approval(self, info: Ctx) -> bool:
        return self.record.pending and info.context.viewer_id != self.record.author

    @strawberry.field
    async def author(self, info: Ctx) -> User | None:
        obj = await comments.comment_author(info.context, self.record)
        return User.from_record(obj) if obj is not None else None

    @strawberry.field
    async def post(self, info: Ctx) -> Post | None:
        obj = await comments.comment_post(info.context, self.record)
        return Post.from_record(obj) if obj is not None else None

    @strawberry.field(description="The top-level comment this replies to; null for a top-level comment.")
    async def reply_to(self, info: Ctx) -> Comment | None:
        top = self.record.reply_to
        obj = await comments.get_comment(info.context, int(top)) if top else None
        return Comment.from_record(obj) if obj is not None else None

    @strawberry.field
    async def reply_count(self, info: Ctx) -> int:
        return await comments.reply_count(info.context, self.record)

    @strawberry.field(description="Replies, newest first.")
    async def replies(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[Comment]:
        cursors = list_cursors("Comment.replies", self.record.id)
        page = await comments.replies(info.context, self.record, first, cursors.decode(after))
        connection = connection_from_page(page, Comment.from_record, cursors)
        await prefetch.prefetch_page(info, "Comment", connection)
        return connection

    @strawberry.field
    async def like_count(self, info: Ctx) -> int:
        return await likes.comment_like_count(info.context, self.record.id)

    @strawberry.field
    async def viewer_has_liked(self, info: Ctx) -> bool:
        return await likes.viewer_has_liked_comment(info.context, self.record.id)


# What a page of comments loads for all of them at once (schema/prefetch.py).

@prefetch.batch_fetcher("Comment", "author", child_type="User")
async def _authors(ctx: RequestContext, items: list[Comment], _: dict) -> list:
    return prefetch.values(await comments.comment_authors(ctx, [c.record for c in items]), User.from_record)


@prefetch.batch_fetcher("Comment", "likeCount")
async def _like_counts(ctx: RequestContext, items: list[Comment], _: dict) -> list:
    return prefetch.values(await likes.comment_like_counts(ctx, [c.record.id for c in items]))


@prefetch.batch_fetcher("Comment", "viewerHasLiked")
async def _viewer_likes(ctx: RequestContext, items: list[Comment], _: dict) -> list:
    return prefetch.values(await likes.viewer_has_liked_comments(ctx, [c.record.id for c in items]))


@prefetch.batch_fetcher("Comment", "replyCount")
async def _reply_counts(ctx: RequestContext, items: list[Comment], _: dict) -> list:
    return prefetch.values(await comments.reply_counts(ctx, [c.record for c in items]))


register_node("Comment", "COMMENT", Comment.from_record)


@strawberry.type
class CommentError(Error):
    code: CommentErrorCode
    message: str
    field: str | None


@strawberry.input
class CommentAddInput:
    post_id: strawberry.ID
    text: str = strawberry.field(description="1 to 2200 characters; @mentions are linked.")
    reply_to_id: strawberry.ID | None = strawberry.field(
        default=None, description="Reply to this comment (a reply to a reply joins its top-level comment).")


@strawberry.input
class CommentDeleteInput:
    comment_id: strawberry.ID


@strawberry.input
class CommentApproveInput:
    comment_id: strawberry.ID


@strawberry.input
class CommentLikeInput:
    comment_id: strawberry.ID


@strawberry.input
class CommentUnlikeInput:
    comment_id: strawberry.ID


@strawberry.type
class CommentPayload:
    comment: Comment | None = None
    errors: list[CommentError] = strawberry.field(default_factory=list)


@strawberry.type
class CommentDeletePayload:
    deleted_comment_id: strawberry.ID | None = None
    errors: list[CommentError] = strawberry.field(default_factory=list)


def _comment_id(ctx: RequestContext, global_id: str, arg: str = "commentId") -> int:
    return store_id(ctx, global_id, "Comment", arg)


@strawberry.type
class CommentsMutation:
    @mutation(description="Comment on a post, or reply to a comment.", action=Action.COMMENTS)
    async def add_comment(self, info: Ctx, input: CommentAddInput) -> CommentPayload:
        ctx = info.context
        post_id = store_id(ctx, input.post_id, "Post", "postId")
        reply_to = _comment_id(ctx, input.reply_to_id, "replyToId") if input.reply_to_id else None
        obj = await comments.do_add_comment(ctx.tao, actor(info), post_id, input.text, reply_to)
        return CommentPayload(comment=Comment.from_record(obj))

    @mutation(description="Delete a comment (its author or the post's author), with its replies.")
    async def delete_comment(self, info: Ctx, input: CommentDeleteInput) -> CommentDeletePayload:
        ctx = info.context
        await comments.do_delete_comment(ctx.tao, actor(info), _comment_id(ctx, input.comment_id))
        return CommentDeletePayload(deleted_comment_id=input.comment_id)

    @mutation(description="Approve a comment by an account you restrict: everyone sees it from now on.")
    async def approve_comment(self, info: Ctx, input: CommentApproveInput) -> CommentPayload:
        ctx = info.context
        obj = await comments.do_approve_comment(ctx.tao, actor(info), _comment_id(ctx, input.comment_id))
        return CommentPayload(comment=Comment.from_record(obj))

    @mutation(description="Like a comment (idempotent).", action=Action.LIKES)
    async def like_comment(self, info: Ctx, input: CommentLikeInput) -> CommentPayload:
        ctx = info.context
        obj = await likes.do_like_comment(ctx.tao, actor(info), _comment_id(ctx, input.comment_id))
        return CommentPayload(comment=Comment.from_record(obj))

    @mutation(description="Take back a like of a comment (idempotent).")
    async def unlike_comment(self, info: Ctx, input: CommentUnlikeInput) -> CommentPayload:
        ctx = info.context
        obj = await likes.do_unlike_comment(ctx.tao, actor(info), _comment_id(ctx, input.comment_id))
        return CommentPayload(comment=Comment.from_record(obj))
