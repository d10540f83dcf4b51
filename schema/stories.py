"""Stories: the `Story`, `StoryRing` and `Highlight` types, the viewer's story fields (served on
`User`, own-account ones only for the viewer), and the story, close-friends, restrict and
highlight mutations. Everything goes through `resolvers.stories`; nothing here reads a clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import Info

from resolvers import records
from resolvers.context import RequestContext
from resolvers.hashtags import MENTIONS_MAX
from resolvers.stories import actions, highlights, model, replies, social, tray, views
from resolvers.stories.visibility import now_ms
from resolvers.throttle import Action
from schema import prefetch
from schema.cost import register_field_cost, register_list_bound
from schema.errors import Error
from schema.media import Media
from schema.mutations import actor, mutation
from schema.posts import store_id, timestamp
from schema.relay import Connection, First, Node, connection_from_page, list_cursors, register_node, to_global_id
from schema.users import User

if TYPE_CHECKING:
    from schema.messages import Message

Ctx = Info[RequestContext, None]
LazyMessage = Annotated["Message", strawberry.lazy("schema.messages")]

StoryAudience = model.Audience
strawberry.enum(model.Audience, name="StoryAudience",
                description="Who sees a story: your followers (anyone, for a public account), or your close friends.")
StoryErrorCode = model.StoryErrorCode
strawberry.enum(model.StoryErrorCode)


@strawberry.type(description="A story: a photo or video visible for exactly 24 hours (then in its author's archive), "
                             "or longer while it is in a highlight.")
class Story(Node):
    id: strawberry.ID
    posted_at: datetime
    expires_at: datetime = strawberry.field(description="postedAt + 24 h: visible while now is before it.")
    audience: StoryAudience
    is_close_friends: bool = strawberry.field(description="Only for the author's close friends (a green ring).")
    hashtag: str | None = strawberry.field(description="The hashtag sticker, lower case, without `#`.")
    link: str | None = strawberry.field(description="The link sticker's URL.")
    record: strawberry.Private[model.Story]
    prefetched: strawberry.Private[dict | None] = None  # schema/prefetch.py: field values a page loaded

    @classmethod
    def from_record(cls, s: model.Story) -> Story:
        return cls(id=to_global_id("Story", s.id), posted_at=timestamp(s.posted_at), expires_at=timestamp(s.expires_at),
                   audience=s.audience, is_close_friends=s.close_friends, hashtag=s.hashtag, link=s.link, record=s)

    @strawberry.field(description="Whether it is still within its 24 hours (by the store's clock).")
    def is_live(self, info: Ctx) -> bool:
        return self.record.live_at(now_ms(info.context))

    @strawberry.field
    async def author(self, info: Ctx) -> User | None:
        obj = await info.context.loaders.object_by_id.load(self.record.author)
        return User.from_record(obj) if isinstance(obj, records.User) else None

    @strawberry.field(description="The photo or video.")
    async def media(self, info: Ctx) -> Media | None:
        obj = await info.context.loaders.object_by_id.load(self.record.media)
        return Media.from_record(obj) if isinstance(obj, records.Media) else None

    @strawberry.field(description="Accounts in its @mention stickers that you may see.")
    async def mentions(self, info: Ctx) -> list[User]:
        from resolvers import privacy

        return [User.from_record(u) for u in await privacy.visible_users(info.context, self.record.mentions)]

    @strawberry.field(description="Whether you have seen it (`markStorySeen`).")
    async def viewer_has_seen(self, info: Ctx) -> bool:
        return await views.viewer_has_seen(info.context, self.record)

    @strawberry.field(description="How many accounts viewed it (author only; null with FORBIDDEN for others). Exact "
                                  "while `viewerCountIsExact`, else a HyperLogLog estimate (error under 2%).")
    async def viewer_count(self, info: Ctx) -> int | None:
        return (await views.viewer_count(info.context, self.record)).count

    @strawberry.field(description="False once the count is an estimate (a story with many viewers). Author only.")
    async def viewer_count_is_exact(self, info: Ctx) -> bool | None:
        return (await views.viewer_count(info.context, self.record)).exact

    @strawberry.field(description="Who viewed it, newest view first (author only). Past the exact threshold, the "
                                  "most recent viewers only.")
    async def viewers(self, info: Ctx, first: First = 50, after: str | None = None) -> Connection[User] | None:
        cursors = list_cursors("Story.viewers", self.record.id)
        page = await views.viewers(info.context, self.record, first, cursors.decode(after))
        return connection_from_page(page, User.from_record, cursors)


@strawberry.type(description="One account's ring in the story tray.")
class StoryRing:
    has_unseen: bool
    latest_story_at: datetime
    is_close_friends: bool = strawberry.field(description="It holds a close-friends story (you are on that list).")
    ring: strawberry.Private[tray.Ring]
    prefetched: strawberry.Private[dict | None] = None  # schema/prefetch.py: field values the tray page loaded

    @classmethod
    def from_ring(cls, r: tray.Ring) -> StoryRing:
        return cls(has_unseen=r.has_unseen, latest_story_at=timestamp(r.latest_at), is_close_friends=r.close_friends,
                   ring=r)

    @strawberry.field
    async def user(self, info: Ctx) -> User | None:
        obj = await info.context.loaders.object_by_id.load(self.ring.author)
        return User.from_record(obj) if isinstance(obj, records.User) else None

    @strawberry.field(description="Its live stories you may see, oldest first.")
    async def stories(self, info: Ctx) -> list[Story]:
        return [Story.from_record(s) for s in await tray.ring_stories(info.context, self.ring)]


@strawberry.type(description="A named, ordered set of its owner's stories, shown on the profile past 24 hours.")
class Highlight(Node):
    id: strawberry.ID
    title: str
    record: strawberry.Private[model.Highlight]

    @classmethod
    def from_record(cls, h: model.Highlight) -> Highlight:
        return cls(id=to_global_id("Highlight", h.id), title=h.title, record=h)

    @strawberry.field(description="Its stories you may see, in order (close-friends ones only to close friends).")
    async def stories(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[Story]:
        cursors = list_cursors("Highlight.stories", self.record.id)
        page = await highlights.highlight_stories_page(info.context, self.record, first, cursors.decode(after))
        return connection_from_page(page, Story.from_record, cursors)

    @strawberry.field(description="The cover story (the first you may see if the chosen cover is not).")
    async def cover(self, info: Ctx) -> Story | None:
        s = await highlights.highlight_cover(info.context, self.record)
        return Story.from_record(s) if s is not None else None


# What a tray page loads for all its rings (and their stories) at once, for the fields the
# request selects (schema/prefetch.py); each does what the field's own resolver does, for many.

async def _users(ctx: RequestContext, ids: list[int]) -> list:
    users = await ctx.loaders.object_by_id.load_each(ids)
    return prefetch.values(users, lambda u: User.from_record(u) if isinstance(u, records.User) else None)


@prefetch.batch_fetcher("StoryRing", "user", child_type="User")
async def _ring_users(ctx: RequestContext, items: list[StoryRing], _: dict) -> list:
    return await _users(ctx, [r.ring.author for r in items])


@prefetch.batch_fetcher("StoryRing", "stories", child_type="Story")
async def _ring_stories(ctx: RequestContext, items: list[StoryRing], _: dict) -> list:
    found = await tray.rings_stories(ctx, [r.ring for r in items])
    return prefetch.values(found, lambda stories: [Story.from_record(s) for s in stories])


@prefetch.batch_fetcher("Story", "author", child_type="User")
async def _story_authors(ctx: RequestContext, items: list[Story], _: dict) -> list:
    return await _users(ctx, [s.record.author for s in items])


@prefetch.batch_fetcher("Story", "media", child_type="Media")
async def _story_media(ctx: RequestContext, items: list[Story], _: dict) -> list:
    found = await ctx.loaders.object_by_id.load_each([s.record.media for s in items])
    return prefetch.values(found, lambda m: Media.from_record(m) if isinstance(m, records.Media) else None)


@prefetch.batch_fetcher("Story", "viewerHasSeen")
async def _stories_seen(ctx: RequestContext, items: list[Story], _: dict) -> list:
    return prefetch.values(await views.viewer_has_seen_many(ctx, [s.record for s in items]))


register_node("Story", "STORY", Story.from_record)
register_node("Highlight", "HIGHLIGHT", Highlight.from_record)
register_list_bound("Story", "mentions", MENTIONS_MAX)
# A viewer count reads the story's viewers, up to `stories.exact_viewers` (1 000) edges, and their
# visibility, each time it is asked (an alias asks again): priced like a membership scan.
register_field_cost("Story", "viewerCount", 10)
register_field_cost("Story", "viewerCountIsExact", 10)
# At most two stories read: the chosen cover, and the first the viewer may see if it is not that one.
register_field_cost("Highlight", "cover", 2)
register_list_bound("StoryRing", "stories", 100)  # a ring's live stories: a live read holds at most 100
register_list_bound("StorySeenPayload", "stories", model.MAX_BATCH)  # the ids markStorySeen takes


# Fields of `User` (schema/users.py hands each of these a call) -------------------------------

async def user_story_tray(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[StoryRing]:
    info.context.require_self(user_id, "story tray")
    cursors = list_cursors("User.storyTray", user_id)
    page = await tray.story_tray(info.context, first, cursors.decode(after))
    connection = connection_from_page(page, StoryRing.from_ring, cursors)
    await prefetch.prefetch_page(info, "StoryRing", connection)
    return connection


async def user_stories(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[Story]:
    cursors = list_cursors("User.stories", user_id)
    page = await tray.user_stories(info.context, user_id, first, cursors.decode(after))
    return connection_from_page(page, Story.from_record, cursors)


async def user_highlights(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[Highlight]:
    cursors = list_cursors("User.highlights", user_id)
    page = await highlights.user_highlights(info.context, user_id, first, cursors.decode(after))
    return connection_from_page(page, Highlight.from_record, cursors)


async def user_story_archive(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[Story]:
    info.context.require_self(user_id, "story archive")
    cursors = list_cursors("User.storyArchive", user_id)
    page = await tray.story_archive(info.context, first, cursors.decode(after))
    return connection_from_page(page, Story.from_record, cursors)


async def user_close_friends(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[User]:
    info.context.require_self(user_id, "close friends")
    cursors = list_cursors("User.closeFriends", user_id)
    return connection_from_page(await social.close_friends(info.context, first, cursors.decode(after)),
                                User.from_record, cursors)


async def user_restricted(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[User]:
    info.context.require_self(user_id, "restricted accounts")
    cursors = list_cursors("User.restrictedUsers", user_id)
    return connection_from_page(await social.restricted_users(info.context, first, cursors.decode(after)),
                                User.from_record, cursors)


async def user_story_muted(info: Ctx, user_id: int, first: int, after: str | None) -> Connection[User]:
    info.context.require_self(user_id, "story mutes")
    cursors = list_cursors("User.storyMutedUsers", user_id)
    return connection_from_page(await social.story_muted_users(info.context, first, cursors.decode(after)),
                                User.from_record, cursors)


# Mutations -----------------------------------------------------------------------------------

@strawberry.type
class StoryError(Error):
    code: StoryErrorCode
    message: str
    field: str | None


@strawberry.input
class StoryCreateInput:
    media_id: strawberry.ID = strawberry.field(description="Your upload, READY (a photo or a video).")
    audience: StoryAudience = StoryAudience.FOLLOWERS
    mentions: list[str] = strawberry.field(default_factory=list, description="Usernames for @mention stickers.")
    hashtag: str | None = strawberry.field(default=None, description="One hashtag sticker.")
    link: str | None = strawberry.field(default=None, description="A link sticker: an http(s) URL.")


@strawberry.input
class StoryDeleteInput:
    story_id: strawberry.ID


@strawberry.input
class StoryMarkSeenInput:
    story_ids: list[strawberry.ID] = strawberry.field(description="1 to 100 stories you may see.")


@strawberry.input
class StoryReplyInput:
    story_id: strawberry.ID
    text: str
    client_message_id: str = strawberry.field(description="Your id for this send (a UUID); reuse it only to retry.")


@strawberry.input
class StoryReactInput:
    story_id: strawberry.ID
    emoji: str
    client_message_id: str


@strawberry.input
class CloseFriendsInput:
    user_ids: list[strawberry.ID] = strawberry.field(description="At most 100 accounts per call.")


@strawberry.input
class StoryUserInput:
    user_id: strawberry.ID


@strawberry.input
class HighlightCreateInput:
    title: str
    story_ids: list[strawberry.ID] = strawberry.field(description="Your stories (live or archived), at most 100.")
    cover_story_id: strawberry.ID | None = None


@strawberry.input
class HighlightEditInput:
    highlight_id: strawberry.ID
    title: str | None = None
    cover_story_id: strawberry.ID | None = None


@strawberry.input
class HighlightStoriesInput:
    highlight_id: strawberry.ID
    story_ids: list[strawberry.ID]


@strawberry.input
class HighlightDeleteInput:
    highlight_id: strawberry.ID


@strawberry.type
class StoryPayload:
    story: Story | None = None
    errors: list[StoryError] = strawberry.field(default_factory=list)


@strawberry.type
class StoryDeletePayload:
    deleted_story_id: strawberry.ID | None = None
    errors: list[StoryError] = strawberry.field(default_factory=list)


@strawberry.type
class StorySeenPayload:
    stories: list[Story] = strawberry.field(default_factory=list)
    errors: list[StoryError] = strawberry.field(default_factory=list)


@strawberry.type
class StoryReplyPayload:
    message: LazyMessage | None = None
    errors: list[StoryError] = strawberry.field(default_factory=list)


@strawberry.type
class CloseFriendsPayload:
    close_friend_count: int | None = None
    errors: list[StoryError] = strawberry.field(default_factory=list)


@strawberry.type
class StoryUserPayload:
    user: User | None = None
    errors: list[StoryError] = strawberry.field(default_factory=list)


@strawberry.type
class HighlightPayload:
    highlight: Highlight | None = None
    errors: list[StoryError] = strawberry.field(default_factory=list)


@strawberry.type
class HighlightDeletePayload:
    deleted_highlight_id: strawberry.ID | None = None
    errors: list[StoryError] = strawberry.field(default_factory=list)


def _ids(ctx: RequestContext, ids: list[strawberry.ID], typename: str, field: str) -> list[int]:
    return [store_id(ctx, i, typename, field) for i in ids]


async def _user_payload(info: Ctx, user_id: int) -> StoryUserPayload:
    obj = await info.context.loaders.object_by_id.load(user_id)
    return StoryUserPayload(user=User.from_record(obj) if isinstance(obj, records.User) else None)


@strawberry.type
class StoriesMutation:
    @mutation(description="Post a story (visible for 24 hours from now on the store's clock).", action=Action.STORIES)
    async def create_story(self, info: Ctx, input: StoryCreateInput) -> StoryPayload:
        ctx = info.context
        story = await actions.do_create_story(
            ctx.tao, actor(info), store_id(ctx, input.media_id, "Media", "mediaId"), input.audience.value,
            mentions=list(input.mentions), hashtag=input.hashtag, link=input.link)
        return StoryPayload(story=Story.from_record(story))

    @mutation(description="Delete your story (live or archived), with its media; it leaves your highlights.")
    async def delete_story(self, info: Ctx, input: StoryDeleteInput) -> StoryDeletePayload:
        ctx = info.context
        await actions.do_delete_story(ctx.tao, actor(info), store_id(ctx, input.story_id, "Story", "storyId"))
        return StoryDeletePayload(deleted_story_id=input.story_id)

    @mutation(description="Mark stories seen (idempotent). Refused as a whole if you may not see one of them.")
    async def mark_story_seen(self, info: Ctx, input: StoryMarkSeenInput) -> StorySeenPayload:
        ctx = info.context
        stories = await views.do_mark_stories_seen(ctx.tao, actor(info),
                                                   _ids(ctx, input.story_ids, "Story", "storyIds"))
        return StorySeenPayload(stories=[Story.from_record(s) for s in stories])

    # A reply and a reaction are direct messages (`do_send_message`): limited as `sendMessage` is.
    @mutation(description="Reply to a story: a direct message to its author that quotes it.", action=Action.MESSAGES)
    async def reply_to_story(self, info: Ctx, input: StoryReplyInput) -> StoryReplyPayload:
        from schema.messages import Message

        ctx = info.context
        msg = await replies.do_reply_to_story(ctx.tao, actor(info), store_id(ctx, input.story_id, "Story", "storyId"),
                                              input.text, input.client_message_id)
        return StoryReplyPayload(message=Message.from_record(msg))

    @mutation(description="React to a story with one emoji: a direct message to its author that quotes it.",
              action=Action.MESSAGES)
    async def react_to_story(self, info: Ctx, input: StoryReactInput) -> StoryReplyPayload:
        from schema.messages import Message

        ctx = info.context
        msg = await replies.do_react_to_story(ctx.tao, actor(info), store_id(ctx, input.story_id, "Story", "storyId"),
                                              input.emoji, input.client_message_id)
        return StoryReplyPayload(message=Message.from_record(msg))

    @mutation(description="Add accounts to your close friends (idempotent). They are not told.")
    async def add_close_friends(self, info: Ctx, input: CloseFriendsInput) -> CloseFriendsPayload:
        ctx = info.context
        n = await social.do_add_close_friends(ctx.tao, actor(info), _ids(ctx, input.user_ids, "User", "userIds"))
        return CloseFriendsPayload(close_friend_count=n)

    @mutation(description="Remove accounts from your close friends (idempotent). They are not told.")
    async def remove_close_friends(self, info: Ctx, input: CloseFriendsInput) -> CloseFriendsPayload:
        ctx = info.context
        n = await social.do_remove_close_friends(ctx.tao, actor(info), _ids(ctx, input.user_ids, "User", "userIds"))
        return CloseFriendsPayload(close_friend_count=n)

    @mutation(description="Hide an account's stories from your tray (its posts stay; see `mute` for those).")
    async def mute_stories(self, info: Ctx, input: StoryUserInput) -> StoryUserPayload:
        uid = store_id(info.context, input.user_id, "User", "userId")
        await social.do_mute_stories(info.context.tao, actor(info), uid)
        return await _user_payload(info, uid)

    @mutation(description="Show an account's stories in your tray again.")
    async def unmute_stories(self, info: Ctx, input: StoryUserInput) -> StoryUserPayload:
        uid = store_id(info.context, input.user_id, "User", "userId")
        await social.do_unmute_stories(info.context.tao, actor(info), uid)
        return await _user_payload(info, uid)

    @mutation(description="Restrict an account: its new comments on your posts wait for your approval (it alone sees "
                          "them), its messages go to your requests without read receipts. It is not told.")
    async def restrict(self, info: Ctx, input: StoryUserInput) -> StoryUserPayload:
        uid = store_id(info.context, input.user_id, "User", "userId")
        await social.do_restrict_user(info.context.tao, actor(info), uid)
        return await _user_payload(info, uid)

    @mutation(description="Lift a restriction.")
    async def unrestrict(self, info: Ctx, input: StoryUserInput) -> StoryUserPayload:
        uid = store_id(info.context, input.user_id, "User", "userId")
        await social.do_unrestrict_user(info.context.tao, actor(info), uid)
        return await _user_payload(info, uid)

    @mutation(description="Make a highlight of your stories (at most 100).")
    async def create_highlight(self, info: Ctx, input: HighlightCreateInput) -> HighlightPayload:
        ctx = info.context
        cover = store_id(ctx, input.cover_story_id, "Story", "coverStoryId") if input.cover_story_id else None
        h = await highlights.do_create_highlight(ctx.tao, actor(info), input.title,
                                                 _ids(ctx, input.story_ids, "Story", "storyIds"), cover)
        return HighlightPayload(highlight=Highlight.from_record(h))

    @mutation(description="Change a highlight's title or cover.")
    async def edit_highlight(self, info: Ctx, input: HighlightEditInput) -> HighlightPayload:
        ctx = info.context
        cover = store_id(ctx, input.cover_story_id, "Story", "coverStoryId") if input.cover_story_id else None
        h = await highlights.do_edit_highlight(ctx.tao, actor(info),
                                               store_id(ctx, input.highlight_id, "Highlight", "highlightId"),
                                               title=input.title, cover_story_id=cover)
        return HighlightPayload(highlight=Highlight.from_record(h))

    @mutation(description="Add stories to the end of a highlight.")
    async def add_to_highlight(self, info: Ctx, input: HighlightStoriesInput) -> HighlightPayload:
        ctx = info.context
        h = await highlights.do_add_to_highlight(ctx.tao, actor(info),
                                                 store_id(ctx, input.highlight_id, "Highlight", "highlightId"),
                                                 _ids(ctx, input.story_ids, "Story", "storyIds"))
        return HighlightPayload(highlight=Highlight.from_record(h))

    @mutation(description="Take stories out of a highlight (it keeps at least one).")
    async def remove_from_highlight(self, info: Ctx, input: HighlightStoriesInput) -> HighlightPayload:
        ctx = info.context
        h = await highlights.do_remove_from_highlight(ctx.tao, actor(info),
                                                      store_id(ctx, input.highlight_id, "Highlight", "highlightId"),
                                                      _ids(ctx, input.story_ids, "Story", "storyIds"))
        return HighlightPayload(highlight=Highlight.from_record(h))

    @mutation(description="Put a highlight's stories in a new order (list each exactly once).")
    async def reorder_highlight(self, info: Ctx, input: HighlightStoriesInput) -> HighlightPayload:
        ctx = info.context
        h = await highlights.do_reorder_highlight(ctx.tao, actor(info),
                                                  store_id(ctx, input.highlight_id, "Highlight", "highlightId"),
                                                  _ids(ctx, input.story_ids, "Story", "storyIds"))
        return HighlightPayload(highlight=Highlight.from_record(h))

    @mutation(description="Delete a highlight (its stories stay in your archive, for its usual time).")
    async def delete_highlight(self, info: Ctx, input: HighlightDeleteInput) -> HighlightDeletePayload:
        ctx = info.context
        await highlights.do_delete_highlight(ctx.tao, actor(info),
                                             store_id(ctx, input.highlight_id, "Highlight", "highlightId"))
        return HighlightDeletePayload(deleted_highlight_id=input.highlight_id)
