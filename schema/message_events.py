"""Direct-message events pushed to clients: `inboxEvents(after:)` and `threadEvents(threadId:, after:)`.

Each event of the viewer's stream (ids only) is rebuilt here through the subscriber's own,
fresh loaders and privacy (`resolvers.messages.access`): an event about something the viewer may
not see now (a blocked sender's message, a thread they declined or left) is skipped, never sent.
An event's objects are read together (`asyncio.gather`), so the fresh loaders fetch them, and then
what their privacy rules read, in shared batches: fewer cache round trips per delivered event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry
from strawberry import Info

from resolvers import privacy, realtime, records
from resolvers.context import RequestContext
from resolvers.errors import BadInputError, UserError
from resolvers.messages import access, events, model, reads
from schema.message_mutations import _thread_id
from schema.messages import Message, Thread
from schema.realtime import StreamEvent, deliver_events, event_fields, register_event_type
from schema.relay import to_global_id
from schema.users import User

Ctx = Info[RequestContext, None]


@strawberry.type(description="A new message in one of your conversations (also your own, from another device).")
class NewMessageEvent(StreamEvent):
    message: Message
    thread: Thread


@strawberry.type(description="A message's text was edited: show `message.text`.")
class MessageEditedEvent(StreamEvent):
    message: Message


@strawberry.type(description="A message was unsent: remove it.")
class MessageUnsentEvent(StreamEvent):
    message_id: strawberry.ID
    thread: Thread


@strawberry.type(description="A member reacted to a message, or removed their reaction (see `message.reactions`).")
class MessageReactionEvent(StreamEvent):
    message: Message
    user: User


@strawberry.type(description="A member read a conversation up to a message.")
class ReadReceiptEvent(StreamEvent):
    thread: Thread
    user: User
    up_to_message_id: strawberry.ID


@strawberry.type(description="A member started or stopped typing. Ephemeral: never stored, never replayed (no cursor).")
class TypingEvent(StreamEvent):
    thread: Thread
    user: User
    typing: bool


@strawberry.type(description="You were added to a conversation, or its name or members changed.")
class ThreadChangedEvent(StreamEvent):
    thread: Thread
    added: bool


@strawberry.type(description="A conversation left your inbox (you left it or declined it).")
class ThreadRemovedEvent(StreamEvent):
    thread_id: strawberry.ID


async def _nothing() -> None:
    return None


async def _thread(info: Ctx, event: realtime.StreamEvent) -> Thread | None:
    obj = await privacy.load_visible_object(info.context, event.ids["thread"])
    return Thread.from_record(obj) if model.is_thread(obj) else None


async def _user(info: Ctx, event: realtime.StreamEvent) -> User | None:
    obj = await privacy.load_visible_object(info.context, event.ids["user"])
    return User.from_record(obj) if isinstance(obj, records.User) else None


async def _message(info: Ctx, event: realtime.StreamEvent) -> Message | None:
    obj = await privacy.load_visible_object(info.context, event.ids["message"])
    return Message.from_record(obj) if model.is_message(obj) else None


async def _new_message(info: Ctx, event: realtime.StreamEvent) -> NewMessageEvent | None:
    # What the message's and thread's privacy rules read after them (the member list, the
    # sender's visibility) rides in the same round of reads as they do.
    ctx = info.context
    ctx.loaders.assoc_page_by_key.prefetch([access.member_list_key(event.ids["thread"])])
    if "sender" in event.ids:  # events stored before they named their sender do not
        privacy.prefetch_visibility(ctx, [event.ids["sender"]])
    message, thread = await asyncio.gather(_message(info, event), _thread(info, event))
    return None if message is None or thread is None else NewMessageEvent(message=message, thread=thread,
                                                                           **event_fields(event))


async def _edited(info: Ctx, event: realtime.StreamEvent) -> MessageEditedEvent | None:
    message = await _message(info, event)
    return None if message is None else MessageEditedEvent(message=message, **event_fields(event))


async def _sender_shown(info: Ctx, event: realtime.StreamEvent) -> bool:
    # The unsent message is gone, so its sender travels in the event (events stored before it
    # did carry no `user`, and are delivered as they were).
    sender = event.ids.get("user")
    return sender is None or await privacy.user_visibility(info.context, sender) != privacy.Visibility.HIDDEN


async def _unsent(info: Ctx, event: realtime.StreamEvent) -> MessageUnsentEvent | None:
    # Only to those who could see the message: a hidden sender's unsend named a message id the
    # viewer never saw (a block either way, an account pending deletion).
    thread, shown = await asyncio.gather(_thread(info, event), _sender_shown(info, event))
    return None if thread is None or not shown else MessageUnsentEvent(
        message_id=to_global_id("Message", event.ids["message"]), thread=thread, **event_fields(event))


async def _reaction(info: Ctx, event: realtime.StreamEvent) -> MessageReactionEvent | None:
    message, user = await asyncio.gather(_message(info, event), _user(info, event))
    return None if message is None or user is None else MessageReactionEvent(message=message, user=user,
                                                                             **event_fields(event))


async def _shows_activity(info: Ctx, event: realtime.StreamEvent) -> bool:
    """The event's member shows the viewer their activity here (`reads.shows_activity`): not a
    member who restricts the viewer, nor one whose copy of the thread is an unaccepted request."""
    return (await reads.shows_activity(info.context, event.ids["thread"], [event.ids["user"]]))[0]


async def _read(info: Ctx, event: realtime.StreamEvent) -> ReadReceiptEvent | None:
    # A reader who restricts the viewer sends them no read receipts, live or replayed: the rule
    # `Message.seenBy` follows (resolvers.messages.reads.seen_by). The event is in every
    # member's stream (the restriction may be lifted or made later), so it is decided here,
    # at delivery; before, it was pushed to the restricted member as to anyone.
    # The message it names is one the viewer may see: read up to a hidden sender's message (a
    # block either way, an account pending deletion), it names the newest visible one before it
    # (or the event is skipped); it named the hidden message's id.
    # Nor does a reader whose copy of the thread is still a message request they have not
    # accepted (`reads.shows_activity`, the rule of `seenBy` too).
    thread, user, shown, up_to = await asyncio.gather(
        _thread(info, event), _user(info, event), _shows_activity(info, event),
        reads.visible_read_point(info.context, event.ids["thread"], event.ids["message"]))
    if not shown or up_to is None:
        return None
    return None if thread is None or user is None else ReadReceiptEvent(
        thread=thread, user=user, up_to_message_id=to_global_id("Message", up_to.id), **event_fields(event))


async def _typing(info: Ctx, event: realtime.StreamEvent) -> TypingEvent | None:
    # Typing is activity, as reads are: not from a member who restricts the viewer (docs/stories.md,
    # "Restrict"; it was pushed to the restricted member as to anyone), nor from one who has not
    # accepted the conversation's request.
    thread, user, shown = await asyncio.gather(_thread(info, event), _user(info, event),
                                               _shows_activity(info, event))
    return None if thread is None or user is None or not shown else TypingEvent(thread=thread, user=user,
                                                                   typing=bool(event.ids.get("typing")),
                                                                   **event_fields(event))


def _changed(added: bool):
    async def build(info: Ctx, event: realtime.StreamEvent) -> ThreadChangedEvent | None:
        thread = await _thread(info, event)
        return None if thread is None else ThreadChangedEvent(thread=thread, added=added, **event_fields(event))
    return build


async def _removed(info: Ctx, event: realtime.StreamEvent) -> ThreadRemovedEvent | None:
    # Only to the member it removed (the writer addresses it so), who may no longer see the thread.
    return ThreadRemovedEvent(thread_id=to_global_id("Thread", event.ids["thread"]), **event_fields(event))


register_event_type(events.MESSAGE_NEW, NewMessageEvent, _new_message)
register_event_type(events.MESSAGE_UNSENT, MessageUnsentEvent, _unsent)
register_event_type(events.MESSAGE_EDITED, MessageEditedEvent, _edited)
register_event_type(events.REACTION, MessageReactionEvent, _reaction)
register_event_type(events.READ, ReadReceiptEvent, _read)
register_event_type(events.TYPING, TypingEvent, _typing)
register_event_type(events.THREAD_ADDED, ThreadChangedEvent, _changed(True))
register_event_type(events.THREAD_UPDATED, ThreadChangedEvent, _changed(False))
register_event_type(events.THREAD_REMOVED, ThreadRemovedEvent, _removed)


def _is_messaging(event: realtime.StreamEvent) -> bool:
    return event.kind in events.KINDS


@strawberry.type
class MessagesSubscription:
    @strawberry.subscription(description=(
        "Events of your whole inbox: new, edited and unsent messages, reactions, read receipts, typing, and "
        "conversations added, changed or removed. `after`: resume after this cursor (no gap, no duplicate)."))
    async def inbox_events(self, info: Ctx, after: str | None = None) -> AsyncGenerator[StreamEvent, None]:
        async for out in deliver_events(info, after, _is_messaging):
            yield out

    @strawberry.subscription(description=(
        "The events of one conversation you are in; see `inboxEvents`. It completes after the "
        "`ThreadRemovedEvent` that takes you out of the conversation."))
    async def thread_events(self, info: Ctx, thread_id: strawberry.ID,
                            after: str | None = None) -> AsyncGenerator[StreamEvent, None]:
        ctx = info.context
        tid = _thread_id(ctx, thread_id)
        try:
            await access.viewer_thread(ctx, tid)
        except UserError as e:  # unknown and not-a-member alike
            raise BadInputError(f"`threadId`: {e.message}") from None
        async for out in deliver_events(info, after, lambda e: _is_messaging(e) and e.ids.get("thread") == tid):
            yield out
            if isinstance(out, ThreadRemovedEvent):
                return  # out of the conversation (left, or declined it): nothing more can come; complete
