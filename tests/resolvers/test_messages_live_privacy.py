"""Direct-message events name nothing the viewer may not see (docs/messages.md, "Events").

"Nothing reaches a client that the viewer may not see, on any surface": a `ReadReceiptEvent`
named the message a member read up to even when its sender was hidden from the viewer (a block
either way, or an account pending deletion), and a `MessageUnsentEvent` named the unsent
message of a hidden sender: ids of messages the viewer never saw, telling them when the hidden
member wrote (and unsent). Each test has a control member who may see the sender.
"""

from __future__ import annotations

import pytest

from tests.resolvers.messages_client import DM
from tests.resolvers.test_messages_live import subscribed
from tests.schema.client import password_of

DELETE = "mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { ok errors { code } } }"


@pytest.fixture
def dm(gql) -> DM:
    return DM(gql)


async def _drain(sub) -> list[dict]:
    out = []
    while True:
        try:
            out.append(await sub.next(timeout=0.7))
        except TimeoutError:
            return out


async def _group(gql, dm):
    """ada's group with bob (the viewer), cy (to be hidden from bob) and dee (the control)."""
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    td, d = await gql.sign_up("dee")
    for t in (tb, tc, td):  # the group lands in everyone's inbox (a request's reader sends no receipts)
        assert (await gql.mutate("follow", t, a))["errors"] == []
    group = (await dm.mutate("createGroupThread", ta, {"userIds": [b, c, d], "name": "four"},
                             "thread { id } errors { code }"))["thread"]["id"]
    return group, {"ada": (ta, a), "bob": (tb, b), "cy": (tc, c), "dee": (td, d)}


async def _hide(gql, change: str, u: dict) -> None:
    (tb, b), (tc, c) = u["bob"], u["cy"]
    if change == "viewer_blocks":
        assert (await gql.mutate("block", tb, c))["errors"] == []
    elif change == "blocked_by_them":
        assert (await gql.mutate("block", tc, b))["errors"] == []
    elif change == "pending_deletion":
        assert (await gql.ok(DELETE, {"i": {"password": password_of("cy")}}, tc))["deleteAccount"]["ok"] is True


@pytest.mark.parametrize("change", ["viewer_blocks", "blocked_by_them", "pending_deletion"])
async def test_a_read_receipt_names_no_message_of_a_hidden_sender(gql, dm, change):
    group, u = await _group(gql, dm)
    ta = u["ada"][0]
    seen_by_all = (await dm.sent(ta, thread=group, text="from ada"))["message"]["id"]
    hidden = (await dm.sent(u["cy"][0], thread=group, text="from cy"))["message"]["id"]
    await _hide(gql, change, u)
    async with subscribed(gql, u["bob"][0]) as bob, subscribed(gql, u["dee"][0]) as dee:
        assert (await dm.mutate("markThreadRead", ta, {"threadId": group}))["errors"] == []  # up to cy's
        # the control: dee may see cy (unless her account is going, which hides her from
        # everyone), and is told ada read up to cy's message
        control = [e for e in await _drain(dee) if e["__typename"] == "ReadReceiptEvent"]
        assert [e["upToMessageId"] for e in control] == [seen_by_all if change == "pending_deletion" else hidden]
        # bob may not: he is told of ada's read up to the newest message he may see
        receipts = [e for e in await _drain(bob) if e["__typename"] == "ReadReceiptEvent"]
        assert [(e["user"]["username"], e["upToMessageId"]) for e in receipts] == [("ada", seen_by_all)]
    assert [m["text"] for m in await dm.messages(u["bob"][0], group)] == ["from ada"]


async def test_a_read_receipt_up_to_hidden_messages_only_is_not_sent(gql, dm):
    group, u = await _group(gql, dm)
    await dm.sent(u["cy"][0], thread=group, text="from cy")
    await _hide(gql, "viewer_blocks", u)
    async with subscribed(gql, u["bob"][0]) as bob:
        assert (await dm.mutate("markThreadRead", u["ada"][0], {"threadId": group}))["errors"] == []
        assert [e for e in await _drain(bob) if e["__typename"] == "ReadReceiptEvent"] == []


@pytest.mark.parametrize("change", ["viewer_blocks", "blocked_by_them"])
async def test_an_unsend_by_a_hidden_sender_is_not_sent(gql, dm, change):
    group, u = await _group(gql, dm)
    tc = u["cy"][0]
    await _hide(gql, change, u)
    mid = (await dm.sent(tc, thread=group, text="from cy"))["message"]["id"]
    async with subscribed(gql, u["bob"][0]) as bob, subscribed(gql, u["dee"][0]) as dee:
        u_ = await dm.mutate("unsendMessage", tc, {"messageId": mid}, "unsentMessageId errors { code }")
        assert u_ == {"unsentMessageId": mid, "errors": []}
        assert [e["messageId"] for e in await _drain(dee) if e["__typename"] == "MessageUnsentEvent"] == [mid]
        assert [e for e in await _drain(bob) if e["__typename"] == "MessageUnsentEvent"] == []
    # and her own unsend still reaches a member who sees her (the control above), and herself
    async with subscribed(gql, tc) as cy:
        mid2 = (await dm.sent(tc, thread=group, text="again"))["message"]["id"]
        await dm.mutate("unsendMessage", tc, {"messageId": mid2})
        assert [e["messageId"] for e in await _drain(cy) if e["__typename"] == "MessageUnsentEvent"] == [mid2]


@pytest.mark.parametrize("change", ["viewer_blocks", "blocked_by_them"])
async def test_a_read_receipt_of_a_hidden_reader_is_not_sent(gql, dm, change):
    """The reader is named through the user rule (held before this session; kept by this test)."""
    group, u = await _group(gql, dm)
    await dm.sent(u["ada"][0], thread=group, text="from ada")
    await _hide(gql, change, u)
    async with subscribed(gql, u["bob"][0]) as bob, subscribed(gql, u["dee"][0]) as dee:
        assert (await dm.mutate("markThreadRead", u["cy"][0], {"threadId": group}))["errors"] == []
        assert [e["user"]["username"] for e in await _drain(dee) if e["__typename"] == "ReadReceiptEvent"] == ["cy"]
        assert [e for e in await _drain(bob) if e["__typename"] == "ReadReceiptEvent"] == []
