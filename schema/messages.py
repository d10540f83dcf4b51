"""Direct messages in the API: the `Thread` and `Message` types, `inbox`, `thread(id:)`.

Scalar fields are copied from the records; every async field is one `resolvers.messages` call
over the request's loaders, so a page of threads or messages batches field by field. A type is
only built from an object privacy let through (`resolvers.messages.access`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import Info

from resolvers import privacy
from resolvers.context import RequestContext
from resolvers.messages import model, reads
from resolvers.messages.model import Message as MessageRecord
from resolvers.messages.model import Thread as ThreadRecord
from schema.cost import register_list_bound
from schema.media import Media
from schema.mutations import authenticated_field
from schema.posts import Post, store_id, timestamp
from schema.relay import Connection, Node, connection_from_page, list_cursors, register_node, to_global_id
from schema.users import User

if TYPE_CHECKING:
    from schema.stories import Story

Ctx = Info[RequestContext, None]
First = Annotated[int, strawberry.argument(description="Page size, 0 to 100.")]


@strawberry.enum(description="What a message carries.")
class MessageKind(enum.Enum):
    TEXT = model.TEXT
    POST = model.POST
    MEDIA = model.MEDIA
    VOICE = model.VOICE


@strawberry.enum(description="INBOX: conversations you accepted or started; REQUESTS: first messages "
                             "from accounts you do not follow.")
class InboxFolder(enum.Enum):
    INBOX = "INBOX"
    REQUESTS = "REQUESTS"


@strawberry.type(description="One member's reaction to a message.")
class MessageReaction:
    user: User
    emoji: str


@strawberry.type(description="A message in a conversation. Its text is stored encrypted; only members read it.")
class Message(Node):
    id: strawberry.ID
    kind: MessageKind
    sent_at: datetime
    record: strawberry.Private[MessageRecord]

    @classmethod
    def from_record(cls, m: MessageRecord) -> Message:
        return cls(id=to_global_id("Message", m.id), kind=MessageKind(m.kind), sent_at=timestamp(m.created), record=m)

    @strawberry.field(description="The text (null for a post, photo, video or voice message without one).")
    def text(self, info: Ctx) -> str | None:
        return reads.message_text(info.context, self.record)

    @strawberry.field(description="When the text was last edited; null if never.")
    def edited_at(self) -> datetime | None:
        return timestamp(self.record.edited) if self.record.edited else None

    @strawberry.field(description="Your own id for the send that made it (only on your own messages).")
    def client_message_id(self, info: Ctx) -> str | None:
        return self.record.client_id if self.record.sender == info.context.viewer_id else None

    @strawberry.field
    async def sender(self, info: Ctx) -> User | None:
        obj = await info.context.loaders.object_by_id.load(self.record.sender)
        return User.from_record(obj) if obj is not None else None

    @strawberry.field
    async def thread(self, info: Ctx) -> Thread | None:
        obj = await info.context.loaders.object_by_id.load(self.record.thread)
        return Thread.from_record(obj) if obj is not None else None

    @strawberry.field(description="The shared post; null if it was deleted or you may not see it (its author's "
                                  "privacy applies to each reader).")
    async def post(self, info: Ctx) -> Post | None:
        obj = await reads.shared_post(info.context, self.record)
        return Post.from_record(obj) if obj is not None else None

    @strawberry.field(description="The photo, video or voice note (AAC), once processed; null until then.")
    async def media(self, info: Ctx) -> Media | None:
        obj = await reads.message_media(info.context, self.record)
        return Media.from_record(obj) if obj is not None else None

    @strawberry.field(description="The story this message replies or reacts to; null if none, or if you may no "
                                  "longer see it (expired, deleted, or its author's privacy).")
    async def story(self, info: Ctx) -> Annotated[Story, strawberry.lazy("schema.stories")] | None:
        from schema.stories import Story

        if self.record.story is None:
            return None
        obj = await privacy.load_visible_object(info.context, self.record.story)
        return Story.from_record(obj) if obj is not None and obj.otype == "STORY" else None

    @strawberry.field(description="True when `text` is an emoji reaction to `story`.")
    def story_reaction(self) -> bool:
        return self.record.story_reaction

    @strawberry.field(description="The message this one replies to; null if it was unsent.")
    async def reply_to(self, info: Ctx) -> Message | None:
        m = await reads.replied_message(info.context, self.record)
        return Message.from_record(m) if m is not None else None

    @strawberry.field
    async def reactions(self, info: Ctx) -> list[MessageReaction]:
        return [MessageReaction(user=User.from_record(u), emoji=e)
                for u, e in await reads.reactions(info.context, self.record)]

    @strawberry.field(description="Members other than the sender who have read up to this message or past it.")
    async def seen_by(self, info: Ctx) -> list[User]:
        return [User.from_record(u) for u in await reads.seen_by(info.context, self.record)]


@strawberry.type(description="A conversation: direct (two people) or a group (up to 32, with a name).")
class Thread(Node):
    id: strawberry.ID
    is_group: bool
    name: str | None
    record: strawberry.Private[ThreadRecord]

    @classmethod
    def from_record(cls, t: ThreadRecord) -> Thread:
        return cls(id=to_global_id("Thread", t.id), is_group=t.is_group, name=t.name, record=t)

    @strawberry.field
    async def members(self, info: Ctx) -> list[User]:
        return [User.from_record(u) for u in await reads.members(info.context, self.record.id)]

    @strawberry.field(description="Messages, newest first.")
    async def messages(self, info: Ctx, first: First = 20, after: str | None = None) -> Connection[Message]:
        cursors = list_cursors("Thread.messages", self.record.id)
        page = await reads.thread_messages(info.context, self.record.id, first, cursors.decode(after))
        return connection_from_page(page, Message.from_record, cursors)

    @strawberry.field
    async def last_message(self, info: Ctx) -> Message | None:
        m = await reads.last_message(info.context, self.record.id)
        return Message.from_record(m) if m is not None else None

    @strawberry.field(description="Messages from others you have not read (exact up to 100, then 100).")
    async def unread_count(self, info: Ctx) -> int:
        return await reads.unread_count(info.context, self.record.id)

    @strawberry.field
    async def is_muted(self, info: Ctx) -> bool:
        return await reads.is_muted(info.context, self.record.id)

    @strawberry.field(description="True while this is a message request you have not accepted.")
    async def is_request(self, info: Ctx) -> bool:
        return await reads.is_request(info.context, self.record.id)


register_node("Thread", "THREAD", Thread.from_record)
register_node("Message", "MESSAGE", Message.from_record)
# A group's members, and a message's readers and reactions (one a member): `messages.max_members`.
for _type, _field in (("Thread", "members"), ("Message", "seenBy"), ("Message", "reactions")):
    register_list_bound(_type, _field, 32, setting=lambda s: s.messages.max_members)


@strawberry.type(description="Your conversations.")
class Inbox:
    @strawberry.field(description="Conversations in a folder, most recent activity first.")
    async def threads(self, info: Ctx, folder: InboxFolder = InboxFolder.INBOX, first: First = 20,
                      after: str | None = None) -> Connection[Thread]:
        # each folder is a list of its own, of the viewer's (no viewer: the domain refuses the read)
        cursors = list_cursors(f"Inbox.threads:{folder.value}", info.context.viewer_id or 0)
        page = await reads.inbox(info.context, folder.value, first, cursors.decode(after))
        return connection_from_page(page, Thread.from_record, cursors)

    @strawberry.field(description="Conversations with messages you have not read.")
    async def unread_thread_count(self, info: Ctx) -> int:
        return (await reads.unread_totals(info.context))[0]

    @strawberry.field(description="Unread messages over all your conversations.")
    async def unread_message_count(self, info: Ctx) -> int:
        return (await reads.unread_totals(info.context))[1]


@strawberry.type
class MessagesQuery:
    @authenticated_field(description="Your inbox (you must be logged in).")
    def inbox(self, info: Ctx) -> Inbox:
        return Inbox()

    @authenticated_field(description="A conversation you are in; null for any other id.")
    async def thread(self, info: Ctx, id: strawberry.ID) -> Thread | None:
        obj = await privacy.load_visible_object(info.context, store_id(info.context, id, "Thread", "id"))
        return Thread.from_record(obj) if model.is_thread(obj) else None
