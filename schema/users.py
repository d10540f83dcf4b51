"""The `User` type (profile, counts, follow-graph fields), `user(username:)`, `viewer`, `updateProfile`.

Scalar profile fields are plain attributes copied from the USER object when the type is built;
only fields that read the store are async, and each is one loader call (so a list of users
batches). A `User` is only ever built from an object that privacy let through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import Info

from resolvers import follows, records, users
from resolvers.context import RequestContext
from resolvers.feed.service import FeedMode as FeedModeValue
from resolvers.notifications.model import NotificationType
from schema.cost import register_field_cost, register_list_bound
from schema.errors import Error
from schema.mutations import actor, mutation
from schema.relay import (
    Connection,
    First,
    Node,
    connection_from_page,
    from_global_id,
    list_cursors,
    register_node,
    to_global_id,
)

if TYPE_CHECKING:  # lazy at run time (schema.posts and schema.feed import this module)
    from schema.feed import FeedConnection
    from schema.notifications import NotificationConnection, NotificationPreferences
    from schema.posts import Post
    from schema.sessions import Session, TwoFactorStatus
    from schema.stories import Highlight, Story, StoryRing

# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
FollowStatus = follows.FollowStatus
strawberry.enum(follows.FollowStatus, description="How the viewer follows a user.")
# Marked here, before any field names it: `User.notifications(types:)` takes it as a real type.
strawberry.enum(NotificationType, description="What a notification is about.")
ProfileErrorCode = users.ProfileErrorCode
strawberry.enum(users.ProfileErrorCode)

Ctx = Info[RequestContext, None]


@strawberry.type(description="A followers-you-follow summary: \"followed by A, B and 3 others you follow\".")
class FollowersYouFollow:
    total_count: int
    users: list[User]


@strawberry.type(description="An account. Private accounts show their lists only to approved followers.")
class User(Node):
    id: strawberry.ID
    username: str
    full_name: str
    bio: str
    website: str
    is_private: bool
    store_id: strawberry.Private[int]
    picture_id: strawberry.Private[int | None]
    prefetched: strawberry.Private[dict | None] = None  # schema/prefetch.py: field values a page loaded

    @classmethod
    def from_record(cls, u: records.User) -> User:
        return cls(
            id=to_global_id("User", u.id), store_id=u.id, username=u.username, full_name=u.full_name, bio=u.bio,
            website=u.website, is_private=u.is_private, picture_id=u.profile_picture_id,
        )

    @strawberry.field(description="The profile picture (a media node), or null if none is set.")
    async def profile_picture(self, info: Ctx) -> Node | None:
        if self.picture_id is None:
            return None
        from schema.node import resolve_node  # node resolution needs every node type registered

        return await resolve_node(info.context, self.picture_id)

    @strawberry.field
    async def follower_count(self, info: Ctx) -> int:
        return await users.follower_count(info.context, self.store_id)

    @strawberry.field
    async def following_count(self, info: Ctx) -> int:
        return await users.following_count(info.context, self.store_id)

    @strawberry.field
    async def post_count(self, info: Ctx) -> int:
        return await users.post_count(info.context, self.store_id)

    @strawberry.field(description="This account's posts, newest first. Null, with a FORBIDDEN error, for a private "
                                  "account the viewer does not follow.")
    async def posts(self, info: Ctx, first: First = 12, after: str | None = None
                    ) -> Connection[Annotated[Post, strawberry.lazy("schema.posts")]] | None:
        from schema.posts import user_posts  # posts import this module (Post.author is a User)

        return await user_posts(info, self.store_id, first, after)

    @strawberry.field(description="The home feed: posts of the accounts you follow, ranked or newest first. Only on "
                                  "your own account (`viewer { feed }`).")
    async def feed(self, info: Ctx, first: First = 12, after: str | None = None,
                   feed_mode: FeedModeValue = FeedModeValue.RANKED,
                   ) -> Annotated[FeedConnection, strawberry.lazy("schema.feed")] | None:
        from schema.feed import user_feed  # the feed's schema imports Post, which imports this module

        return await user_feed(info, self.store_id, first, after, feed_mode)

    @strawberry.field(description="Your notifications, latest first (only on your own account: "
                                  "`viewer { notifications }`). `types`: only these.")
    async def notifications(self, info: Ctx, first: First = 20, after: str | None = None,
                            # Not lazy: strawberry resolves a lazy argument type per call and per list
                            # element, with file stats (schema.notifications marks this enum in place).
                            types: list[NotificationType] | None = None,
                            ) -> Annotated[NotificationConnection, strawberry.lazy("schema.notifications")]:
        from schema.notifications import user_notifications  # it imports User

        return await user_notifications(info, self.store_id, first, after, types)

    @strawberry.field(description="How many notifications are unread (at most 100: show \"99+\"). "
                                  "Only on your own account.")
    async def unread_notification_count(self, info: Ctx) -> int:
        from schema.notifications import user_unread_count

        return await user_unread_count(info, self.store_id)

    @strawberry.field(description="Where your account is logged in, newest first (at most 100). Only on your "
                                  "own account: `viewer { sessions }`.")
    async def sessions(self, info: Ctx) -> list[Annotated[Session, strawberry.lazy("schema.sessions")]]:
        from schema.sessions import user_sessions  # it imports User

        return await user_sessions(info, self.store_id)

    @strawberry.field(description="Your two-factor log-in settings. Only on your own account.")
    async def two_factor(self, info: Ctx) -> Annotated[TwoFactorStatus, strawberry.lazy("schema.sessions")]:
        from schema.sessions import user_two_factor

        return await user_two_factor(info, self)

    @strawberry.field(description="Your notification settings. Only on your own account.")
    async def notification_preferences(self, info: Ctx
                                       ) -> Annotated[NotificationPreferences, strawberry.lazy("schema.notifications")]:
        from schema.notifications import user_preferences

        return await user_preferences(info, self.store_id)

    @strawberry.field(description="Your story tray: your own ring first, then the accounts you follow with live "
                                  "stories you may see, unseen rings first, each group by how close you are. Only on "
                                  "your own account (`viewer { storyTray }`).")
    async def story_tray(self, info: Ctx, first: First = 20, after: str | None = None
                         ) -> Connection[Annotated[StoryRing, strawberry.lazy("schema.stories")]] | None:
        from schema.stories import user_story_tray  # stories import this module

        return await user_story_tray(info, self.store_id, first, after)

    @strawberry.field(description="This account's live stories you may see, oldest first (its profile ring).")
    async def stories(self, info: Ctx, first: First = 20, after: str | None = None
                      ) -> Connection[Annotated[Story, strawberry.lazy("schema.stories")]]:
        from schema.stories import user_stories

        return await user_stories(info, self.store_id, first, after)

    @strawberry.field(description="This account's highlights, newest first (for whoever may see its posts).")
    async def highlights(self, info: Ctx, first: First = 20, after: str | None = None
                         ) -> Connection[Annotated[Highlight, strawberry.lazy("schema.stories")]]:
        from schema.stories import user_highlights

        return await user_highlights(info, self.store_id, first, after)

    @strawberry.field(description="Your expired stories, newest first. Only on your own account.")
    async def story_archive(self, info: Ctx, first: First = 20, after: str | None = None
                            ) -> Connection[Annotated[Story, strawberry.lazy("schema.stories")]] | None:
        from schema.stories import user_story_archive

        return await user_story_archive(info, self.store_id, first, after)

    @strawberry.field(description="Your close friends (nobody else can see or infer this list). Only on your own "
                                  "account.")
    async def close_friends(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[User] | None:
        from schema.stories import user_close_friends

        return await user_close_friends(info, self.store_id, first, after)

    @strawberry.field(description="Accounts you restrict. Only on your own account.")
    async def restricted_users(self, info: Ctx, first: First = 20, after: str | None = None
                               ) -> Connection[User] | None:
        from schema.stories import user_restricted

        return await user_restricted(info, self.store_id, first, after)

    @strawberry.field(description="Accounts whose stories you muted. Only on your own account.")
    async def story_muted_users(self, info: Ctx, first: First = 20, after: str | None = None
                                ) -> Connection[User] | None:
        from schema.stories import user_story_muted

        return await user_story_muted(info, self.store_id, first, after)

    @strawberry.field(description="Accounts following this one. Null, with a FORBIDDEN error, for a private "
                                  "account the viewer does not follow.")
    async def followers(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[User] | None:
        cursors = list_cursors("User.followers", self.store_id)
        page = await follows.followers(info.context, self.store_id, first, cursors.decode(after))
        return connection_from_page(page, User.from_record, cursors)

    @strawberry.field(description="Accounts this one follows. Null, with a FORBIDDEN error, for a private "
                                  "account the viewer does not follow.")
    async def following(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[User] | None:
        cursors = list_cursors("User.following", self.store_id)
        page = await follows.following(info.context, self.store_id, first, cursors.decode(after))
        return connection_from_page(page, User.from_record, cursors)

    @strawberry.field(description="Pending requests to follow this (private) account. Only "
                                  "the account itself may read it.")
    async def follow_requests(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[User] | None:
        cursors = list_cursors("User.followRequests", self.store_id)
        page = await follows.follow_requests(info.context, self.store_id, first, cursors.decode(after))
        return connection_from_page(page, User.from_record, cursors)

    @strawberry.field(description="Accounts this one blocks. Only the account itself may read it.")
    async def blocked_users(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[User] | None:
        cursors = list_cursors("User.blockedUsers", self.store_id)
        page = await follows.blocked_users(info.context, self.store_id, first, cursors.decode(after))
        return connection_from_page(page, User.from_record, cursors)

    @strawberry.field(description="Accounts this one mutes. Only the account itself may read it.")
    async def muted_users(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[User] | None:
        cursors = list_cursors("User.mutedUsers", self.store_id)
        page = await follows.muted_users(info.context, self.store_id, first, cursors.decode(after))
        return connection_from_page(page, User.from_record, cursors)

    @strawberry.field(description="Followers of this account whom the viewer follows (among the viewer's newest 200 "
                                  "followings). Null, with a FORBIDDEN error, where `followers` is.")
    async def followers_you_follow(self, info: Ctx, first: First = 3) -> FollowersYouFollow | None:
        total, found = await follows.followed_by_viewer_following(info.context, self.store_id, first)
        return FollowersYouFollow(total_count=total, users=[User.from_record(u) for u in found])

    @strawberry.field
    async def viewer_follow_status(self, info: Ctx) -> FollowStatus:
        return await follows.viewer_follow_status(info.context, self.store_id)

    @strawberry.field
    async def viewer_follows(self, info: Ctx) -> bool:
        return await follows.viewer_follows(info.context, self.store_id)

    @strawberry.field
    async def follows_viewer(self, info: Ctx) -> bool:
        return await follows.follows_viewer(info.context, self.store_id)

    @strawberry.field
    async def viewer_blocks(self, info: Ctx) -> bool:
        return await follows.viewer_blocks(info.context, self.store_id)

    @strawberry.field
    async def viewer_mutes(self, info: Ctx) -> bool:
        return await follows.viewer_mutes(info.context, self.store_id)

    @strawberry.field
    async def has_requested_to_follow_viewer(self, info: Ctx) -> bool:
        return await follows.has_requested_to_follow_viewer(info.context, self.store_id)


register_node("User", "USER", User.from_record)
# One followers-you-follow reads up to MUTUAL_SCAN_LIMIT edges: price it so a page of 100 users
# asking for it (100 x 10 points) is visible in the cost, not free.
register_field_cost("User", "followersYouFollow", 10)
register_list_bound("FollowersYouFollow", "users", page=True)  # followersYouFollow(first:) counts them
register_list_bound("User", "sessions", 100)  # resolvers.sessions.MAX_LISTED


@strawberry.type
class ProfileError(Error):
    code: ProfileErrorCode
    message: str
    field: str | None
    retry_after: float | None = strawberry.field(
        default=None, description="With USERNAME_CHANGE_LIMIT: seconds until the username may change again.")


@strawberry.input(description="Only the fields given change. An empty `website` removes it.")
class ProfileUpdateInput:
    username: str | None = None
    full_name: str | None = None
    bio: str | None = None
    website: str | None = None
    is_private: bool | None = strawberry.field(
        default=None, description="Making an account public accepts every pending follow request."
    )
    profile_picture_id: strawberry.ID | None = strawberry.field(
        default=None, description="A photo you uploaded (a `Media` id); an empty string removes the picture."
    )


@strawberry.type
class ProfileUpdatePayload:
    user: User | None = None
    errors: list[ProfileError] = strawberry.field(default_factory=list)


@strawberry.type
class UsersQuery:
    @strawberry.field(description="The logged-in account, or null for an anonymous request.")
    async def viewer(self, info: Ctx) -> User | None:
        ctx = info.context
        if ctx.viewer_id is None:
            return None
        obj = await ctx.loaders.object_by_id.load(ctx.viewer_id)
        return User.from_record(obj) if obj is not None else None

    @strawberry.field(description="The account with this username (case-insensitive), or null.")
    async def user(self, info: Ctx, username: str) -> User | None:
        obj = await users.get_user_by_username(info.context, username)
        return User.from_record(obj) if obj is not None else None


@strawberry.type
class UsersMutation:
    @mutation(description="Change the viewer's profile.")
    async def update_profile(self, info: Ctx, input: ProfileUpdateInput) -> ProfileUpdatePayload:
        ctx = info.context
        picture = None
        if input.profile_picture_id is not None:  # an empty string: remove the picture
            picture = from_global_id(input.profile_picture_id, ctx.settings.store.logical_shards,
                                     expected="Media", arg="profilePictureId")[1] if input.profile_picture_id else 0
        obj = await users.do_update_profile(
            ctx.tao, actor(info), username=input.username, full_name=input.full_name, bio=input.bio,
            website=input.website, is_private=input.is_private, profile_picture_id=picture,
        )
        return ProfileUpdatePayload(user=User.from_record(obj))


__all__ = ["FollowStatus", "User", "UsersMutation", "UsersQuery"]
