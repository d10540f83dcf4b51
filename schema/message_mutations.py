"""Direct-message mutations: send, threads and members, requests, receipts, reactions, unsend, typing.

Each takes one `input` and returns a payload with the result and typed `errors` (codes from
`MessageErrorCode`); a malformed id is a top-level BAD_USER_INPUT, anonymity UNAUTHENTICATED.
"""

from __future__ import annotations

import strawberry
from strawberry import Info

from resolvers.context import RequestContext
from resolvers.messages import actions, model, send, threads
from resolvers.throttle import Action
from schema.errors import Error
from schema.messages import Message, Thread
from schema.mutations import actor, mutation
from schema.posts import store_id

# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
MessageErrorCode = model.MessageErrorCode
strawberry.enum(model.MessageErrorCode)
Ctx = Info[RequestContext, None]


@strawberry.type
class MessageError(Error):
    code: MessageErrorCode
    message: str
    field: str | None
    retry_after: float | None = strawberry.field(
        default=None, description="With RATE_LIMITED: seconds until the send would pass this limit.")


def _id(ctx: RequestContext, global_id: strawberry.ID | None, typename: str, arg: str) -> int | None:
    return None if global_id is None else store_id(ctx, global_id, typename, arg)


def _thread_id(ctx: RequestContext, global_id: strawberry.ID) -> int:
    return store_id(ctx, global_id, "Thread", "threadId")


@strawberry.input(description="Exactly one of `threadId` (an existing conversation) or `recipientIds` (one user: your "
                  "direct thread with them, made on first use; several: a new group). Then text, a post, or an upload.")
class MessageSendInput:
    client_message_id: str = strawberry.field(description="Your id for this send (a UUID): a retry with the same id "
                                              "and content returns the same message, never a second one.")
    thread_id: strawberry.ID | None = None
    recipient_ids: list[strawberry.ID] | None = None
    text: str | None = strawberry.field(
        default=None, description="Up to 1000 characters; with `postId`, a comment on it.")
    post_id: strawberry.ID | None = None
    media_id: strawberry.ID | None = strawberry.field(default=None, description="A completed upload of yours: a photo "
                                                      "or video, or with `voice: true` an audio upload (sent as AAC).")
    voice: bool = False
    reply_to_id: strawberry.ID | None = None


@strawberry.input
class ThreadCreateInput:
    user_ids: list[strawberry.ID] = strawberry.field(description="The other members, at most 31.")
    name: str | None = None


@strawberry.input
class ThreadAddMembersInput:
    thread_id: strawberry.ID
    user_ids: list[strawberry.ID]


@strawberry.input
class ThreadLeaveInput:
    thread_id: strawberry.ID


@strawberry.input
class ThreadRenameInput:
    thread_id: strawberry.ID
    name: str | None = strawberry.field(default=None, description="1 to 100 characters; null removes the name.")


@strawberry.input
class ThreadMuteInput:
    thread_id: strawberry.ID
    muted: bool = True


@strawberry.input
class MessageRequestAcceptInput:
    thread_id: strawberry.ID


@strawberry.input
class MessageRequestDeclineInput:
    thread_id: strawberry.ID
    block: bool = strawberry.field(default=False, description="Also block the sender (a group's creator).")


@strawberry.input
class ThreadMarkReadInput:
    thread_id: strawberry.ID
    up_to: strawberry.ID | None = strawberry.field(
        default=None, description="The newest message read; default: the newest.")


@strawberry.input
class MessageReactInput:
    message_id: strawberry.ID
    emoji: str | None = strawberry.field(default=None, description="One emoji; null removes your reaction.")


@strawberry.input
class MessageEditInput:
    message_id: strawberry.ID
    text: str = strawberry.field(description="The new text, up to 1000 characters.")


@strawberry.input
class MessageUnsendInput:
    message_id: strawberry.ID


@strawberry.input
class ThreadTypingInput:
    thread_id: strawberry.ID
    typing: bool = True


@strawberry.type(description="The message sent (the same one on a retry) and its conversation.")
class MessageSendPayload:
    message: Message | None = None
    thread: Thread | None = None
    errors: list[MessageError] = strawberry.field(default_factory=list)


@strawberry.type
class ThreadPayload:
    thread: Thread | None = None
    errors: list[MessageError] = strawberry.field(default_factory=list)


@strawberry.type
class MessagePayload:
    message: Message | None = None
    errors: list[MessageError] = strawberry.field(default_factory=list)


@strawberry.type
class MessageUnsendPayload:
    unsent_message_id: strawberry.ID | None = None
    thread: Thread | None = None
    errors: list[MessageError] = strawberry.field(default_factory=list)


async def _thread_payload(ctx: RequestContext, thread_id: int | None) -> ThreadPayload:
    """The payload of a thread mutation: the thread as the viewer sees it now (null once left)."""
    obj = await ctx.loaders.object_by_id.load(thread_id) if thread_id is not None else None
    return ThreadPayload(thread=Thread.from_record(obj) if model.is_thread(obj) else None)


@strawberry.type
class MessagesMutation:
    @mutation(description="Send a message. Idempotent by `clientMessageId`.", action=Action.MESSAGES)
    async def send_message(self, info: Ctx, input: MessageSendInput) -> MessageSendPayload:
        ctx = info.context
        recipients = None if input.recipient_ids is None else [store_id(ctx, u, "User", "recipientIds")
                                                               for u in input.recipient_ids]
        msg, thread = await send.do_send_message(
            ctx.tao, actor(info), client_id=input.client_message_id,
            thread_id=_id(ctx, input.thread_id, "Thread", "threadId"), recipient_ids=recipients, text=input.text,
            post_id=_id(ctx, input.post_id, "Post", "postId"), media_id=_id(ctx, input.media_id, "Media", "mediaId"),
            voice=input.voice, reply_to=_id(ctx, input.reply_to_id, "Message", "replyToId"))
        # The thread the send read (or made): the send does not change the thread object.
        obj = thread if thread is not None else await ctx.loaders.object_by_id.load(msg.thread)
        return MessageSendPayload(message=Message.from_record(msg), thread=Thread.from_record(obj) if obj else None)

    @mutation(description="Start a group conversation (you and up to 31 others).")
    async def create_group_thread(self, info: Ctx, input: ThreadCreateInput) -> ThreadPayload:
        ctx = info.context
        users = [store_id(ctx, u, "User", "userIds") for u in input.user_ids]
        thread = await threads.do_create_group_thread(ctx.tao, actor(info), users, input.name)
        return await _thread_payload(ctx, thread.id)

    @mutation()
    async def add_thread_members(self, info: Ctx, input: ThreadAddMembersInput) -> ThreadPayload:
        ctx = info.context
        tid = _thread_id(ctx, input.thread_id)
        users = [store_id(ctx, u, "User", "userIds") for u in input.user_ids]
        thread = await threads.do_add_thread_members(ctx.tao, actor(info), tid, users)
        return await _thread_payload(ctx, thread.id)

    @mutation(description="Leave a group; it leaves your inbox.")
    async def leave_thread(self, info: Ctx, input: ThreadLeaveInput) -> ThreadPayload:
        ctx = info.context
        await threads.do_leave_thread(ctx.tao, actor(info), _thread_id(ctx, input.thread_id))
        return ThreadPayload()

    @mutation(action=Action.MESSAGES)  # an event in every member's stream, as a message is
    async def rename_thread(self, info: Ctx, input: ThreadRenameInput) -> ThreadPayload:
        ctx = info.context
        thread = await threads.do_rename_thread(ctx.tao, actor(info), _thread_id(ctx, input.thread_id),
                                                input.name)
        return await _thread_payload(ctx, thread.id)

    @mutation(description="Mute (or unmute) a conversation: no notifications; it stays in your inbox.")
    async def mute_thread(self, info: Ctx, input: ThreadMuteInput) -> ThreadPayload:
        ctx = info.context
        thread = await threads.do_mute_thread(ctx.tao, actor(info), _thread_id(ctx, input.thread_id),
                                              input.muted)
        return await _thread_payload(ctx, thread.id)

    @mutation(description="Move a message request to your inbox.")
    async def accept_message_request(self, info: Ctx, input: MessageRequestAcceptInput) -> ThreadPayload:
        ctx = info.context
        thread = await threads.do_accept_message_request(ctx.tao, actor(info), _thread_id(ctx, input.thread_id))
        return await _thread_payload(ctx, thread.id)

    @mutation(description="Decline a message request (optionally blocking its sender). The sender is not told.")
    async def decline_message_request(self, info: Ctx, input: MessageRequestDeclineInput) -> ThreadPayload:
        ctx = info.context
        await threads.do_decline_message_request(ctx.tao, actor(info), _thread_id(ctx, input.thread_id),
                                                 input.block)
        return ThreadPayload()

    @mutation(description="Mark messages read up to `upTo` (default: all): others see you in `seenBy`.")
    async def mark_thread_read(self, info: Ctx, input: ThreadMarkReadInput) -> ThreadPayload:
        ctx = info.context
        tid = _thread_id(ctx, input.thread_id)
        up_to = _id(ctx, input.up_to, "Message", "upTo")
        thread = await actions.do_mark_thread_read(ctx.tao, actor(info), tid, up_to)
        return await _thread_payload(ctx, thread.id)

    # Each of these three stores an event in every member's stream: throttled as the action it is.
    @mutation(description="React to a message with one emoji (replacing yours), or remove yours with null.",
              action=Action.LIKES)
    async def react_to_message(self, info: Ctx, input: MessageReactInput) -> MessagePayload:
        ctx = info.context
        mid = store_id(ctx, input.message_id, "Message", "messageId")
        msg = await actions.do_react_to_message(ctx.tao, actor(info), mid, input.emoji)
        return MessagePayload(message=Message.from_record(msg))

    @mutation(description="Edit the text of your own text message (members see `editedAt`).",
              action=Action.MESSAGES)
    async def edit_message(self, info: Ctx, input: MessageEditInput) -> MessagePayload:
        ctx = info.context
        mid = store_id(ctx, input.message_id, "Message", "messageId")
        msg = await actions.do_edit_message(ctx.tao, actor(info), mid, input.text)
        return MessagePayload(message=Message.from_record(msg))

    @mutation(description="Unsend your message: it is removed for everyone, on every device.")
    async def unsend_message(self, info: Ctx, input: MessageUnsendInput) -> MessageUnsendPayload:
        ctx = info.context
        mid = store_id(ctx, input.message_id, "Message", "messageId")
        tid = await actions.do_unsend_message(ctx.tao, actor(info), mid)
        obj = await ctx.loaders.object_by_id.load(tid)
        return MessageUnsendPayload(unsent_message_id=input.message_id, thread=Thread.from_record(obj) if obj else None)

    @mutation(description="Tell the other members you are typing (or stopped). Never stored.")
    async def set_typing(self, info: Ctx, input: ThreadTypingInput) -> ThreadPayload:
        ctx = info.context
        thread = await actions.do_set_typing(ctx.tao, actor(info), _thread_id(ctx, input.thread_id),
                                             input.typing)
        return await _thread_payload(ctx, thread.id)
