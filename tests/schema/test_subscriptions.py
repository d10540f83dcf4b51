"""Subscriptions over graphql-transport-ws on the real app, store and broker (Redis on MariaDB,
the in-process bus on SQLite): delivery, resume by cursor, privacy re-read per event, the
session rules of a live socket (issue 9, item 1), and per-connection limits."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from resolvers.accounts import _parse_token
from resolvers.realtime import CLOSE_FORBIDDEN, CLOSE_RATE_LIMITED, KIND_NEW_FOLLOWER, stream_event
from resolvers.throttle import cost_bucket
from tao import Mode
from tests.resolvers.messages_client import store_id
from tests.schema.client import GQL
from tests.wsclient import PROTOCOL, VIEWER_EVENTS, WSClient

LOG_OUT_ALL = "mutation { logOut(input: {allSessions: true}) { ok } }"
SET_BIO = 'mutation { updateProfile(input: {bio: "after logout"}) { user { bio } errors { code } } }'


async def ws(gql: GQL, token: str | None, **kw) -> WSClient:
    return await WSClient.connect(gql.client, "/graphql", token, **kw)


async def handled(sock: WSClient) -> None:
    """Until the server has handled every message sent on the socket so far (it handles them in
    order, and a ping takes no operation slot)."""
    await sock.ws.send_json({"type": "ping"})
    while (msg := await sock.receive(timeout=10)) is not None and msg["type"] != "pong":
        pass
    assert msg is not None, (sock.close_code, sock.close_reason)


async def follow(gql: GQL, token: str, user_id: str) -> None:
    assert (await gql.mutate("follow", token, user_id))["errors"] == []


async def test_new_follower_is_pushed_then_resume_replays_what_was_missed_once(gql: GQL) -> None:
    tb, idb = await gql.sign_up("bob")
    followers = [await gql.sign_up(f"fan{i}") for i in range(4)]
    sock = await ws(gql, tb)
    await sock.subscribe("1", VIEWER_EVENTS)
    await asyncio.sleep(0.3)  # the subscription is live once the broker acknowledged it
    await follow(gql, followers[0][0], idb)
    first = (await sock.next_data("1"))["viewerEvents"]
    assert first["__typename"] == "NewFollowerEvent" and first["follower"]["username"] == "fan0"
    await sock.close()
    # Missed while away: replayed from the store, in order, then live ones, each exactly once.
    await follow(gql, followers[1][0], idb)
    await follow(gql, followers[2][0], idb)
    sock = await ws(gql, tb)
    await sock.subscribe("1", VIEWER_EVENTS, {"after": first["cursor"]})
    got = [(await sock.next_data("1"))["viewerEvents"] for _ in range(2)]
    assert [g["follower"]["username"] for g in got] == ["fan1", "fan2"]
    await follow(gql, followers[3][0], idb)
    live = (await sock.next_data("1"))["viewerEvents"]
    assert live["follower"]["username"] == "fan3"
    cursors = [first["cursor"], *(g["cursor"] for g in got), live["cursor"]]
    assert len(set(cursors)) == 4 and sorted(cursors, key=lambda c: int(c[1:])) == cursors
    assert len({first["eventId"], *(g["eventId"] for g in got), live["eventId"]}) == 4
    with pytest.raises(TimeoutError):  # nothing twice
        await sock.next_data("1", timeout=0.5)
    await sock.close()


async def test_a_replayed_follow_or_request_is_sent_only_while_it_still_holds(gql: GQL) -> None:
    """A follow request withdrawn (or a follow undone) while its target was away was replayed on
    resume all the same: "fan1 asked to follow you", about a request the target's own
    `followRequests` no longer lists and the requester withdrew so it would not be seen. An event
    now announces a follow or a request only while its edge still holds."""
    tb, idb = await gql.sign_up("bob", private=True)
    tc, idc = await gql.sign_up("cy")
    fans = [await gql.sign_up(f"fan{i}") for i in range(5)]
    sock = await ws(gql, tb)
    await sock.subscribe("1", VIEWER_EVENTS)
    await asyncio.sleep(0.3)
    await gql.mutate("follow", fans[0][0], idb)
    first = (await sock.next_data("1"))["viewerEvents"]
    assert first["__typename"] == "FollowRequestEvent" and first["requester"]["username"] == "fan0"
    await sock.close()
    await gql.mutate("follow", fans[1][0], idb)
    await gql.mutate("unfollow", fans[1][0], idb)   # withdrawn while bob is away
    await gql.mutate("follow", fans[2][0], idb)     # still pending
    sock = await ws(gql, tb)
    await sock.subscribe("1", VIEWER_EVENTS, {"after": first["cursor"]})
    got = (await sock.next_data("1"))["viewerEvents"]
    assert (got["__typename"], got["requester"]["username"]) == ("FollowRequestEvent", "fan2")
    with pytest.raises(TimeoutError):
        await sock.next_data("1", timeout=0.5)
    await sock.close()
    # the same for a public account's followers
    sock = await ws(gql, tc)
    await sock.subscribe("1", VIEWER_EVENTS)
    await asyncio.sleep(0.3)
    await follow(gql, fans[3][0], idc)
    first = (await sock.next_data("1"))["viewerEvents"]
    await sock.close()
    await follow(gql, fans[4][0], idc)
    await gql.mutate("unfollow", fans[4][0], idc)
    await follow(gql, fans[0][0], idc)
    sock = await ws(gql, tc)
    await sock.subscribe("1", VIEWER_EVENTS, {"after": first["cursor"]})
    got = (await sock.next_data("1"))["viewerEvents"]
    assert (got["__typename"], got["follower"]["username"]) == ("NewFollowerEvent", "fan0")
    with pytest.raises(TimeoutError):
        await sock.next_data("1", timeout=0.5)
    await sock.close()


async def test_an_event_is_re_read_through_privacy_when_delivered(gql: GQL) -> None:
    tb, idb = await gql.sign_up("bob")
    tc, idc = await gql.sign_up("carol")
    td, _ = await gql.sign_up("dave")
    sock = await ws(gql, tb)
    await sock.subscribe("1", VIEWER_EVENTS)
    await asyncio.sleep(0.3)
    await follow(gql, td, idb)
    before = (await sock.next_data("1"))["viewerEvents"]
    await sock.close()
    await follow(gql, tc, idb)                       # stored in bob's stream ...
    await gql.mutate("block", tb, idc)               # ... and then bob blocks carol
    await follow(gql, td, idb)                       # (already following: no event)
    _, ide = await gql.sign_up("erin")
    te = (await gql.ok('mutation { logIn(input: {username: "erin", password: "password-erin"}) { token } }'))["logIn"][
        "token"
    ]
    await follow(gql, te, idb)
    sock = await ws(gql, tb)
    await sock.subscribe("1", VIEWER_EVENTS, {"after": before["cursor"]})
    got = (await sock.next_data("1"))["viewerEvents"]
    assert got["follower"]["username"] == "erin"     # carol's event is skipped, never shown
    await sock.close()


async def test_bad_tokens_are_refused_with_4403_and_anonymous_subscriptions_fail(gql: GQL) -> None:
    sock = await ws(gql, "tgs_123_" + "x" * 40, expect_ack=False)
    assert await sock.wait_closed() == CLOSE_FORBIDDEN
    sock = await ws(gql, None)
    await sock.subscribe("1", VIEWER_EVENTS)
    msg = await sock.receive()
    assert msg["type"] in ("error", "next") and "must be logged in" in str(msg["payload"])
    await sock.close()


async def test_a_credential_that_is_not_a_string_is_refused_with_4403(gql: GQL) -> None:
    """Before: a non-string `Authorization` crashed the handshake (1011 "Internal error", an
    exception logged as a server fault), and a non-string `token` opened an anonymous socket."""
    token, _ = await gql.sign_up("ada")
    for payload in ({"Authorization": 5}, {"authorization": True}, {"Authorization": ["Bearer " + token]},
                    {"Authorization": {"Bearer": token}}, {"token": 5}, {"token": [token]}):
        sock = await gql.client.ws_connect("/graphql", protocols=[PROTOCOL], autoclose=False)
        client = WSClient(sock)
        await sock.send_json({"type": "connection_init", "payload": payload})
        assert await client.wait_closed() == CLOSE_FORBIDDEN, (payload, client.close_code, client.close_reason)


async def test_logout_closes_the_socket_and_nothing_runs_on_it_after(gql: GQL) -> None:
    """Issue 9, item 1: the exact scenario."""
    token, _ = await gql.sign_up("ada")
    sock = await ws(gql, token)
    await sock.subscribe("q", "{ viewer { username } }")
    assert (await sock.next_data("q"))["viewer"]["username"] == "ada"
    other = (await gql.ok('mutation { logIn(input: {username: "ada", password: "password-ada"}) { token } }'))["logIn"][
        "token"
    ]
    await gql.ok(LOG_OUT_ALL, token=other)
    try:
        await sock.subscribe("m", SET_BIO)
    except ConnectionResetError:
        pass  # closed already (the session-revoked event got there first)
    assert await sock.wait_closed() == CLOSE_FORBIDDEN
    assert "logged out or revoked" in sock.close_reason
    fresh = (await gql.ok('mutation { logIn(input: {username: "ada", password: "password-ada"}) { token } }'))["logIn"][
        "token"
    ]
    assert (await gql.ok("{ viewer { bio } }", token=fresh))["viewer"]["bio"] == ""


async def test_each_operation_rechecks_the_session_even_when_no_event_announced_its_end(gql: GQL) -> None:
    token, _ = await gql.sign_up("ada")
    sock = await ws(gql, token)
    session_id = _parse_token(token)[0]
    await gql.tao.obj_delete(session_id)  # ended behind the broker's back: no session.revoked event
    await sock.subscribe("m", SET_BIO)
    assert await sock.wait_closed() == CLOSE_FORBIDDEN
    fresh = (await gql.ok('mutation { logIn(input: {username: "ada", password: "password-ada"}) { token } }'))["logIn"][
        "token"
    ]
    assert (await gql.ok("{ viewer { bio } }", token=fresh))["viewer"]["bio"] == ""


async def test_a_log_out_between_the_handshake_and_the_session_watch_closes_the_socket(gql: GQL, monkeypatch) -> None:
    """The handshake reads the session, answers `connection_ack`, then the socket's session watch
    subscribes to the user's channel. A log-out whose `session.revoked` was published in between
    reached no one, and the idle socket stayed open until the watch's periodic check
    (`session_check_seconds`, 30 s) instead of closing "within milliseconds"."""
    token, _ = await gql.sign_up("ada")
    warm = await ws(gql, (await gql.sign_up("bob"))[0])  # Redis's subscription connection is up (no resync)
    await asyncio.sleep(0.5)
    broker, listen = gql.tao.broker, gql.tao.broker.listen

    async def logged_out_first(channel, listener):
        if type(listener).__name__ == "SessionWatch":
            await gql.tao.obj_delete(listener.ctx.session_id)  # ended, and its event already gone by
        await listen(channel, listener)

    monkeypatch.setattr(broker, "listen", logged_out_first)
    sock = await ws(gql, token)
    assert await sock.wait_closed(timeout=3) == CLOSE_FORBIDDEN
    await warm.close()


async def test_a_replay_spends_the_viewer_s_cost_budget_per_event_read(gql_with) -> None:
    """A resume (`after:`) reads up to `max_replay` + 1 stored events (SQL: the stream is never
    cached) and builds each, ~1 s of server time for 1 000 (measured on MariaDB), for the
    subscription's static cost (2 points): a 10 000-point budget paid for 5 000 such replays a
    minute. Now each event read costs a point, from the same budget; refused: THROTTLED."""
    # 3 000: two replays' reads (2 x 1 000) and whatever of their events went out before the test's
    # `complete` (2 points each, now charged per delivered event) leave less than a third read.
    async with gql_with(cost_budget=3_000, cost_window_seconds=3_600) as g:  # ~0.8 points a second back
        tb, b = await g.sign_up("bob")
        ta, a = await g.sign_up("ada")
        bid, aid = store_id(b), store_id(a)
        await g.tao.assoc_add(aid, "FOLLOWS", bid)  # what the events announce holds: each is built
        for _ in range(1_000):
            await stream_event(g.tao, [bid], KIND_NEW_FOLLOWER, {"user": aid}).deliver(g.tao)
        oldest = min(e.time for e in await g.tao.assoc_time_range(bid, "STREAM_EVENT", limit=1_000))
        sock = await WSClient.connect(g.client, "/graphql", tb)
        for attempt in range(3):
            await sock.subscribe(str(attempt), VIEWER_EVENTS, {"after": f"s{oldest - 1}"})
            msg = await sock.receive()
            assert msg is not None, (sock.close_code, sock.close_reason)
            if attempt < 2:  # 1 000 points each
                assert msg["type"] == "next" and "errors" not in msg["payload"], msg
                await sock.ws.send_json({"type": "complete", "id": str(attempt)})
                with contextlib.suppress(TimeoutError):  # what was on its way
                    while await sock.receive(timeout=0.5) is not None:
                        pass
            else:
                errors = msg["payload"] if msg["type"] == "error" else msg["payload"].get("errors")
                assert errors and errors[0]["extensions"]["code"] == "THROTTLED", msg
                assert errors[0]["extensions"]["retryAfter"] > 0, msg
        await sock.close()


async def test_message_rate_and_subscription_caps(gql: GQL, gql_settings) -> None:
    token, _ = await gql.sign_up("ada")
    sock = await ws(gql, token)
    for i in range(gql_settings.realtime.max_subscriptions):
        await sock.subscribe(str(i), VIEWER_EVENTS)
    await sock.subscribe("over", VIEWER_EVENTS)
    msg = await sock.receive()
    assert msg == {"id": "over", "type": "error", "payload": [{"message": "Subscription limit reached"}]} or \
        msg["id"] == "over", msg
    await sock.close()
    sock = await ws(gql, token)
    try:
        for _ in range(gql_settings.realtime.message_burst + 5):
            await sock.ws.send_json({"type": "ping"})
    except ConnectionResetError:
        pass
    code = None
    async with asyncio.timeout(10):
        while code is None:
            if await sock.receive() is None:
                code = sock.close_code
    assert code == CLOSE_RATE_LIMITED


async def test_one_user_s_live_operations_are_capped_over_all_their_sockets(gql: GQL, gql_settings) -> None:
    """The per-socket cap alone bounded nothing per user: one account held 100 sockets (the
    per-address cap) times 20 operations in each process, and each event for that user was
    built once per subscription (an account typing into a group made every member's
    subscriptions rebuild it). Now `max_subscriptions_per_user` live operations per user (over
    every process: tests/test_ws_caps_processes.py); one more gets an `error` for that operation,
    and a socket that closes frees its own."""
    gql_settings.realtime.max_subscriptions_per_user = 3
    token, _ = await gql.sign_up("ada")
    other, _ = await gql.sign_up("bob")
    first, second = await ws(gql, token), await ws(gql, token)
    for i in range(2):
        await first.subscribe(str(i), VIEWER_EVENTS)
    await handled(first)  # its operations hold their slots before the other socket asks
    await second.subscribe("a", VIEWER_EVENTS)
    await second.subscribe("over", VIEWER_EVENTS)
    msg = await second.receive(timeout=5)
    assert msg is not None and msg["id"] == "over" and msg["type"] == "error", msg
    assert msg["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", msg
    bob = await ws(gql, other)  # another user is not affected
    assert (await bob.execute("q", "{ viewer { username } }"))["data"] == {"viewer": {"username": "bob"}}
    await first.close()
    for _ in range(50):  # the closed socket's operations give their slots back
        await second.subscribe("again", VIEWER_EVENTS)
        try:
            msg = await second.receive(timeout=0.2)
        except TimeoutError:
            break  # no refusal: it runs
        assert msg is not None and msg["id"] == "again" and msg["type"] == "error", msg
        await asyncio.sleep(0.05)  # a release reaches the shared count (tao.holds) in the background
    else:
        pytest.fail("the closed socket's operations kept their slots")
    await second.close()
    await bob.close()


async def test_the_text_one_user_s_live_operations_hold_is_capped(gql: GQL, gql_settings) -> None:
    """A live subscription holds its message's text (strawberry keeps the query and variables,
    the parsed document keeps its source and tokens, every frame repeats the id) for as long as
    it runs. Tokens are capped, characters only by the message's size (2 MiB): padded with a
    comment, 20 subscriptions held ~64 MB on one socket (tracemalloc), 100 sockets from one
    address ~6 GB in a process. Now `max_operation_chars_per_user` in all per user per process."""
    gql_settings.realtime.max_operation_chars_per_user = 100_000
    token, _ = await gql.sign_up("ada")
    sock = await ws(gql, token)
    padded = "#" + "x" * 60_000 + "\n" + VIEWER_EVENTS
    await sock.subscribe("1", padded)
    await sock.ws.send_json({"type": "subscribe", "id": "2", "payload": {"query": padded, "variables": {}}})
    msg = await sock.receive(timeout=5)
    assert msg is not None and msg["id"] == "2" and msg["type"] == "error", msg
    assert msg["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", msg
    for big in ({"id": "i" * 60_000, "payload": {"query": VIEWER_EVENTS}},  # an id, echoed in every frame
                {"id": "v", "payload": {"query": VIEWER_EVENTS, "variables": {"unused": "v" * 60_000}}}):
        await sock.ws.send_json({"type": "subscribe", **big})
        msg = await sock.receive(timeout=5)
        assert msg is not None and msg["type"] == "error", msg
        assert msg["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", msg
    # The operation's name is kept too (strawberry's Operation, the operation's log line): a
    # subscription named with 30 000 characters holds them twice, in the query and the name;
    # counted once, the second half of a 2 MiB message went uncounted.
    name = "N" + "n" * 30_000
    named = {"query": f"subscription {name} {{ viewerEvents {{ __typename }} }}", "operationName": name}
    await sock.ws.send_json({"type": "subscribe", "id": "named", "payload": named})
    msg = await sock.receive(timeout=5)  # 60 000 held + 30 000 (query) + 30 000 (name) > 100 000
    assert msg is not None and msg["id"] == "named" and msg["type"] == "error", msg
    assert msg["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", msg
    await sock.subscribe("small", VIEWER_EVENTS)  # what is left of the budget still serves
    await sock.ws.send_json({"type": "complete", "id": "1"})
    for _ in range(50):  # the completed one gives its characters back
        await sock.subscribe("again", padded)
        try:
            msg = await sock.receive(timeout=0.2)
        except TimeoutError:
            break
        assert msg is not None and msg["id"] == "again" and msg["type"] == "error", msg
        await asyncio.sleep(0.05)  # a release reaches the shared count (tao.holds) in the background
    else:
        pytest.fail("a completed operation kept its characters")
    await sock.close()


async def test_a_client_that_goes_away_leaves_no_subscription_running(gql: GQL) -> None:
    """The peer closes its socket: every operation on it ends and lets go of its broker
    listeners at once, not when the process stops (aiohttp cancels the connection's handler
    mid-shutdown; the operations must be cancelled before that can interrupt it)."""
    tb, _ = await gql.sign_up("bob")
    before = gql.tao.broker.stats()["listeners"]
    sock = await ws(gql, tb)
    await sock.subscribe("1", VIEWER_EVENTS)
    await sock.subscribe("2", VIEWER_EVENTS)
    await asyncio.sleep(0.3)
    assert gql.tao.broker.stats()["listeners"] > before
    await sock.close()
    for _ in range(100):
        if gql.tao.broker.stats()["listeners"] == before:
            break
        await asyncio.sleep(0.05)
    assert gql.tao.broker.stats()["listeners"] == before


async def test_a_subscription_is_refused_by_the_request_policy_like_any_operation(gql: GQL, gql_with) -> None:
    """The policy's checks before execution (string and list inputs, the cost limit, the viewer's
    budget) answered a query or mutation with their refusal, but strawberry subscribes whatever
    the refusal says: a subscription ran anyway, with a NUL in its variables, 5 000 entries in a
    list, over `max_query_cost` or over budget. Now it gets the refusal and does not run."""
    token, me = await gql.sign_up("ada")

    async def refusal(sock: WSClient, op_id: str, variables: dict | None = None) -> dict:
        await sock.subscribe(op_id, VIEWER_EVENTS, variables)
        msg = await sock.receive(timeout=5)
        assert msg is not None and msg["id"] == op_id and msg["type"] in ("next", "error"), msg
        if msg["type"] == "error":
            (error,) = msg["payload"]
            return error
        assert msg["payload"]["data"] is None, msg
        assert await sock.receive(timeout=5) == {"id": op_id, "type": "complete"}  # ended, not running
        (error,) = msg["payload"]["errors"]
        return error

    sock = await ws(gql, token)
    assert (await refusal(sock, "nul", {"unused": "a\x00b"}))["extensions"]["code"] == "BAD_USER_INPUT"
    error = await refusal(sock, "list", {"unused": [me] * 5000})
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "max_list_length" in error["message"], error
    await sock.close()
    async with gql_with(max_query_cost=1) as small:
        sock = await ws(small, token)
        assert (await refusal(sock, "cost"))["extensions"]["code"] == "MAX_COST_EXCEEDED"
        await sock.close()
    async with gql_with(max_query_cost=5000, cost_budget=15) as poor:
        sock = await ws(poor, token)
        await sock.subscribe("paid", VIEWER_EVENTS)  # 10 points of 15
        assert (await refusal(sock, "over"))["extensions"]["code"] == "THROTTLED"
        await sock.close()


HEAVY_EVENT = """subscription { inboxEvents { ... on NewMessageEvent {
  thread { members { followers(first: 10) { nodes { posts(first: 4) { nodes { caption } } } } } } } } }"""


async def test_a_subscription_whose_selection_costs_more_per_event_than_the_limit_is_refused(gql: GQL) -> None:
    """A subscription's static cost is spent once, at subscribe, but its selection runs again for
    every event it delivers: under `max_query_cost` (this one costs 1 986 points, and reads up to
    32 x 10 x 4 posts a message; with 100 followers and 40 posts, 4 204 points before lists were
    costed by their bound), one cheap `sendMessage` into a group made every such
    subscription of every member do a large query's work, 100 subscriptions a member. A
    subscription may now cost at most `limits.max_subscription_cost` points (an event's work)."""
    tb, _ = await gql.sign_up("bob")
    sock = await ws(gql, tb)
    await sock.subscribe("1", HEAVY_EVENT)
    msg = await sock.receive()
    assert msg is not None and msg["id"] == "1", msg
    errors = msg["payload"] if msg["type"] == "error" else msg["payload"].get("errors")
    assert errors and errors[0]["extensions"]["code"] == "MAX_COST_EXCEEDED", msg
    assert "every event" in errors[0]["message"] and "1986" in errors[0]["message"], errors
    await sock.subscribe("2", VIEWER_EVENTS)  # an ordinary one still runs
    with pytest.raises(TimeoutError):
        await sock.next_data("2", timeout=0.5)
    await sock.close()


async def test_each_delivered_event_is_charged_to_the_viewer_s_budget(gql_with) -> None:
    """A subscription's static cost was spent once, at subscribe, and its selection then ran for
    every event delivered, for free: one account's subscriptions did a query's work on every
    event others' cheap writes caused. Now each event costs what the selection costs on its type
    (`viewerEvents` 1 + `follower` 1 = 2 points), from the viewer's budget; when that is spent,
    the subscription ends with THROTTLED and the cursor that resumes at the first event it did
    not send, so nothing is lost."""
    async with gql_with(cost_budget=2_000, cost_window_seconds=720_000) as g:  # ~0.003 points a second back
        tb, b = await g.sign_up("bob")
        ta, a = await g.sign_up("ada")
        bid, aid = store_id(b), store_id(a)
        await g.tao.assoc_add(aid, "FOLLOWS", bid)  # what the events announce holds: each is built
        bucket = cost_bucket(f"user:{bid}", 2_000.0, 720_000.0)
        await g.tao.rate_limits.take([bucket], 1_900.0, Mode.FORCE)  # bob has 100 points left
        sock = await WSClient.connect(g.client, "/graphql", tb)
        await sock.subscribe("1", VIEWER_EVENTS)  # 10 points: 90 left, 45 events' worth
        await asyncio.sleep(0.3)
        for _ in range(60):
            await stream_event(g.tao, [bid], KIND_NEW_FOLLOWER, {"user": aid}).deliver(g.tao)
        got, error = [], None
        while error is None:
            msg = await sock.receive()
            assert msg is not None, (sock.close_code, sock.close_reason)
            errors = msg["payload"] if msg["type"] == "error" else msg["payload"].get("errors")
            if errors:
                error = errors[0]
            else:
                got.append(msg["payload"]["data"]["viewerEvents"])
        assert 40 <= len(got) <= 45, len(got)
        assert error["extensions"]["code"] == "THROTTLED" and error["extensions"]["retryAfter"] > 0, error
        assert "each event" in error["message"] and "subscribe again with after: s" in error["message"], error
        resume = error["message"].split("after: ")[1].split(" ")[0]
        assert int(got[-1]["cursor"][1:]) <= int(resume[1:]), (got[-1], resume)
        # With points again, resuming there sends exactly the events it did not, none twice.
        await g.tao.rate_limits.reset([f"cost:user:{bid}"])
        await sock.subscribe("2", VIEWER_EVENTS, {"after": resume})
        rest = [(await sock.next_data("2"))["viewerEvents"] for _ in range(60 - len(got))]
        assert len({e["cursor"] for e in got + rest}) == 60
        await sock.close()
