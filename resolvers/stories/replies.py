"""Replies and emoji reactions to a story: direct messages to its author that quote it.

Both go through `resolvers.messages.send.do_send_message` (so message requests, blocks, spam
limits, restrict and read receipts apply as to any message), with the story's id on the
message: the author's thread shows the reply under the story it answers
(`Message.story`, visible to each reader while the story is visible to them). The replier
must see the story now; one's own story cannot be replied to.
"""

from __future__ import annotations

from resolvers.actor import acting_as
from resolvers.errors import UserError
from resolvers.messages.actions import _check_emoji
from resolvers.messages.send import do_send_message
from resolvers.records import Message
from resolvers.stories.model import Story, StoryErrorCode, story_not_found
from resolvers.stories.visibility import story_visible
from tao import Tao

TEXT_MAX = 1000


async def _story_to_answer(tao: Tao, actor_id: int, story_id: int) -> Story:
    ctx = acting_as(tao, actor_id)
    story = await ctx.loaders.object_by_id.load(story_id)
    if not isinstance(story, Story) or not await story_visible(ctx, story):
        raise story_not_found()
    if story.author == actor_id:
        raise UserError(StoryErrorCode.REPLY_INVALID, "You cannot reply to your own story.", "storyId")
    return story


async def _send(tao: Tao, actor_id: int, story: Story, text: str, client_id: str, reaction: bool) -> Message:
    try:
        return (await do_send_message(tao, actor_id, client_id=client_id, recipient_ids=[story.author], text=text,
                                      story_id=story.id, story_reaction=reaction)).message
    except UserError as e:  # the messages domain's refusal (limits, a request not allowed), in this domain's codes
        field = "clientMessageId" if e.field == "clientMessageId" else "storyId"
        raise UserError(StoryErrorCode.CANNOT_MESSAGE, e.message, field) from None


async def do_reply_to_story(tao: Tao, actor_id: int, story_id: int, text: str, client_id: str) -> Message:
    text = text.strip()
    if not 0 < len(text) <= TEXT_MAX:
        raise UserError(StoryErrorCode.REPLY_INVALID, f"A reply is 1 to {TEXT_MAX} characters.", "text")
    story = await _story_to_answer(tao, actor_id, story_id)
    return await _send(tao, actor_id, story, text, client_id, False)


async def do_react_to_story(tao: Tao, actor_id: int, story_id: int, emoji: str, client_id: str) -> Message:
    try:
        emoji = _check_emoji(emoji)
    except UserError as e:
        raise UserError(StoryErrorCode.REPLY_INVALID, e.message, "emoji") from None
    story = await _story_to_answer(tao, actor_id, story_id)
    return await _send(tao, actor_id, story, emoji, client_id, True)
