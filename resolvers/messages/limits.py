"""Spam limits on messaging metadata (never on content): message requests per hour and distinct
new recipients per day, stricter for accounts younger than `messages.new_account_days`.

The counts are the sender's own lists, on the sender's shard: sender -DM_REQUEST_SENT-> user
(time: the request, the first message to someone who does not follow the sender) and
sender -DM_CONTACTED-> user (time: the first message to that user). A limit is checked before
anything is written, and a refused send stores nothing; the edges are written once the message
is stored. Two sends racing past the check may both pass: the limits bound abuse, they are not a quota to the unit.
Making a group of people or adding them to one counts as messaging them (`threads`): it puts
the thread in the requests of those who do not follow the sender, as a first message does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resolvers.errors import UserError
from resolvers.messages.model import MessageErrorCode
from resolvers.throttle import wait_text
from tao import Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

HOUR_MS, DAY_MS = 3_600_000, 86_400_000


async def _recent(tao: Tao, user: int, atype: str, since: int, limit: int) -> list[int]:
    """Times of the user's `atype` edges newer than `since`, newest first, up to `limit` + 1."""
    return [e.time for e in await tao.assoc_time_range(user, atype, low=since, limit=min(limit + 1, 1000))]


def _retry_after(times: list[int], adding: int, limit: int, window: int, now: int) -> float:
    """Seconds until enough of `times` leave the window for `adding` more to fit under `limit`."""
    must_leave = len(times) + adding - limit
    if must_leave <= 0 or not times:
        return 0.0
    oldest_needed = times[max(0, len(times) - must_leave)]  # newest first: the last ones leave first
    return max(0.001, (oldest_needed + window - now) / 1000)


def split_keys(sender: int, thread_id: int | None, recipients: list[int]) -> list[tuple[int, str, int]]:
    """The edges `split_recipients` reads."""
    keys = [(r, "FOLLOWS", sender) for r in recipients] + [(sender, "DM_CONTACTED", r) for r in recipients]
    if thread_id is not None:
        keys += [(r, "INBOX", thread_id) for r in recipients]
    return keys


async def split_recipients(ctx: RequestContext, thread_id: int | None,
                           recipients: list[int]) -> tuple[list[int], list[int]]:
    """(those this send would reach as a message request, those the sender never messaged)."""
    sender = ctx.require_viewer()
    keys = split_keys(sender, thread_id, recipients)
    found = dict(zip(keys, await ctx.loaders.assoc_by_key.load_many(keys)))
    new = [r for r in recipients if found[(sender, "DM_CONTACTED", r)] is None]
    # A request opens a conversation with someone who does not follow the sender; later messages
    # into it (or into a thread they accepted) are not new requests.
    requests = [r for r in new if found[(r, "FOLLOWS", sender)] is None
                and (thread_id is None or found[(r, "INBOX", thread_id)] is None)]
    return requests, new


async def check_send_limits(ctx: RequestContext, requests: list[int], new: list[int],
                            field: str = "recipientIds") -> None:
    if not requests and not new:
        return
    sender = ctx.require_viewer()
    cfg = ctx.settings.messages
    user = await ctx.loaders.object_by_id.load(sender)
    young = user is not None and now_ms() - user.created < cfg.new_account_days * DAY_MS
    per_hour = cfg.new_account_requests_per_hour if young else cfg.requests_per_hour
    per_day = cfg.new_account_new_recipients_per_day if young else cfg.new_recipients_per_day
    now = now_ms()
    if requests:
        times = await _recent(ctx.tao, sender, "DM_REQUEST_SENT", now - HOUR_MS, per_hour)
        if len(times) + len(requests) > per_hour:
            wait = _retry_after(times, len(requests), per_hour, HOUR_MS, now)
            raise UserError(MessageErrorCode.RATE_LIMITED,
                            f"You can send at most {per_hour} message requests an hour"
                            f"{' while your account is new' if young else ''}: try again in {wait_text(wait)}, "
                            "or message people who follow you.", field, retry_after=round(wait, 3))
    if new:
        times = await _recent(ctx.tao, sender, "DM_CONTACTED", now - DAY_MS, per_day)
        if len(times) + len(new) > per_day:
            wait = _retry_after(times, len(new), per_day, DAY_MS, now)
            raise UserError(MessageErrorCode.RATE_LIMITED,
                            f"You can message at most {per_day} new people a day"
                            f"{' while your account is new' if young else ''}: try again in {wait_text(wait)}.",
                            field, retry_after=round(wait, 3))


async def record_send(tao: Tao, sender: int, requests: list[int], new: list[int], time: int) -> None:
    edges = [(sender, "DM_REQUEST_SENT", r, time) for r in requests] + [(sender, "DM_CONTACTED", r, time) for r in new]
    if edges:
        await tao.assoc_add_many(edges)
