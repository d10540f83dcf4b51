"""The root types, assembled from each domain's parts. A new domain adds its part here."""

from __future__ import annotations

import strawberry

from schema.account_data import AccountDataMutation, AccountDataQuery
from schema.accounts import AccountsMutation
from schema.comments import CommentsMutation
from schema.explore import ExploreMutation, ExploreQuery
from schema.feed import FeedMutation
from schema.follows import FollowsMutation
from schema.media import MediaMutation, MediaQuery
from schema.message_events import MessagesSubscription
from schema.message_mutations import MessagesMutation
from schema.messages import MessagesQuery
from schema.node import NodeQuery
from schema.notifications import NotificationsMutation, NotificationsSubscription
from schema.posts import PostsMutation, PostsQuery
from schema.realtime import RealtimeSubscription
from schema.search import SearchMutation, SearchQuery
from schema.sessions import SessionsMutation
from schema.stories import StoriesMutation
from schema.users import UsersMutation, UsersQuery


@strawberry.type
class Query(NodeQuery, UsersQuery, PostsQuery, MediaQuery, MessagesQuery, AccountDataQuery, SearchQuery, ExploreQuery):
    pass


@strawberry.type
class Mutation(AccountsMutation, UsersMutation, FollowsMutation, PostsMutation, CommentsMutation, FeedMutation,
               MediaMutation, MessagesMutation, NotificationsMutation, StoriesMutation, AccountDataMutation,
               SearchMutation, SessionsMutation, ExploreMutation):
    pass


@strawberry.type
class Subscription(RealtimeSubscription, MessagesSubscription, NotificationsSubscription):
    pass


SUBSCRIPTION = Subscription
