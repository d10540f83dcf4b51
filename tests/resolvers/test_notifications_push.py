"""Web Push against a real local receiver (VAPID checked, payload decrypted with http_ece):
one push per group per batch window with the exact count, mentions at once, gone endpoints
removed, failures retried with backoff, preferences honoured, bad subscriptions refused."""

from __future__ import annotations

import asyncio
import socket
from unittest import mock

import aiohttp
import aiohttp.abc
import pytest

from resolvers.notifications.push import do_register_push_subscription
from tests.resolvers.messages_client import store_id
from tests.resolvers.push_receiver import PushReceiver, b64url
from tests.resolvers.test_likes import LIKE, new_post

VAPID_KEY = "8Zg0Evp6EEA4nGBEcj17FgjHV1jJ_v7oDuuV3FU5CZ0"  # a test-only key
REGISTER = """mutation($i: PushSubscriptionRegisterInput!) { registerPushSubscription(input: $i) {
  registered errors { code field } } }"""
UNREGISTER = """mutation($i: PushSubscriptionUnregisterInput!) { unregisterPushSubscription(input: $i) {
  registered errors { code field } } }"""
PREFS = """mutation($i: NotificationPreferencesUpdateInput!) {
  updateNotificationPreferences(input: $i) { errors { code } } }"""


@pytest.fixture
def gql_settings(gql_settings):
    n = gql_settings.notifications
    n.vapid_private_key, n.push_https_only, n.push_batch_seconds = VAPID_KEY, False, 3600.0
    n.push_private_addresses = True  # the receiver listens on 127.0.0.1
    return gql_settings


@pytest.fixture
async def receiver():
    r = await PushReceiver().start()
    yield r
    await r.close()


async def recorded(gql, token, count):
    for _ in range(100):
        await gql.tao.run_jobs_until_idle(include_delayed=False)
        got = await gql.ok("{ viewer { notifications(first: 1) { edges { node { actorCount } } } } }", token=token)
        if [e["node"]["actorCount"] for e in got["viewer"]["notifications"]["edges"]] == [count]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the likes were not recorded")


async def register(gql, token, receiver, name):
    keys = receiver.device(name).keys()
    got = await gql.ok(REGISTER, {"i": {"endpoint": receiver.endpoint(name), "keys": keys}}, token)
    return got["registerPushSubscription"]


async def test_one_push_per_group_window_and_mentions_at_once(gql, receiver):
    ta, _ = await gql.sign_up("ada")
    assert (await register(gql, ta, receiver, "phone")) == {"registered": True, "errors": []}
    post = await new_post(gql, ta)
    for i in range(4):
        t, _ = await gql.sign_up(f"u{i}")
        await gql.ok(LIKE, {"i": {"postId": post}}, t)
    await recorded(gql, ta, 4)  # every like is in the group (a worker may have run some already) ...
    await gql.tao.run_jobs_until_idle()  # ... then the window's end comes: its push goes
    [push] = receiver.received["phone"]  # four likes, one push for the group
    assert push["type"] == "LIKE" and push["count"] == 4 and push["text"] == "u3, u2 and 2 others liked your post"
    assert receiver.refused == [] and len(receiver.vapid_keys) == 1
    tb, _ = await gql.sign_up("bob")
    await gql.ok('mutation { createPost(input: {caption: "hi @ada"}) { post { id } } }', token=tb)
    await gql.tao.run_jobs_until_idle()
    assert [p["type"] for p in receiver.received["phone"]] == ["LIKE", "MENTION"]


async def test_gone_endpoints_are_removed_and_failures_retried(gql, receiver):
    ta, a = await gql.sign_up("ada")
    for name in ("phone", "old", "flaky"):
        await register(gql, ta, receiver, name)
    receiver.status["old"] = 410
    receiver.fail["flaky"] = 2
    tb, _ = await gql.sign_up("bob")
    await gql.ok('mutation { createPost(input: {caption: "hi @ada"}) { post { id } } }', token=tb)
    await gql.tao.run_jobs_until_idle()  # runs the delayed retries too
    assert len(receiver.received["phone"]) == 1 and len(receiver.received["flaky"]) == 1
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(ada, "HAS_PUSH_SUB") == 2  # "old" answered 410: forgotten
    got = await gql.ok(UNREGISTER, {"i": {"endpoint": receiver.endpoint("flaky")}}, ta)
    assert got["unregisterPushSubscription"]["errors"] == []
    assert await gql.tao.assoc_count(ada, "HAS_PUSH_SUB") == 1


async def test_endpoints_on_private_addresses_are_refused_and_never_reached(gql, gql_settings, receiver):
    """The worker POSTs to a URL a client named: it must not reach loopback, the private network
    or a metadata service (server-side request forgery), on registering nor when sending."""
    ta, a = await gql.sign_up("ada")
    keys = receiver.device("phone").keys()
    assert (await register(gql, ta, receiver, "phone"))["errors"] == []  # allowed: stored
    gql_settings.notifications.push_private_addresses = False
    for endpoint in ("https://127.0.0.1/push", "https://127.1.2.3:8443/x", "https://[::1]/x", "https://10.0.0.7/x",
                     "https://192.168.1.1/x", "https://169.254.169.254/latest/meta-data/", "https://100.64.0.1/x",
                     "https://[::ffff:127.0.0.1]/x", "https://[fd00::1]/x", "https://localhost/x",
                     "https://api.localhost./x", "https://0.0.0.0/x", "https://2130706433/x", "https://127.1/x",
                     "https://0x7f.0.0.1/x", receiver.endpoint("laptop")):
        got = (await gql.ok(REGISTER, {"i": {"endpoint": endpoint, "keys": keys}}, ta))["registerPushSubscription"]
        assert got["errors"] == [{"code": "INVALID_ENDPOINT", "field": "endpoint"}], endpoint
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(ada, "HAS_PUSH_SUB") == 1
    # The one stored before (or a name that resolves to a private address) is never connected to:
    # the push reaches nothing and the endpoint is forgotten, not retried.
    tb, _ = await gql.sign_up("bob")
    await gql.ok('mutation { createPost(input: {caption: "hi @ada"}) { post { id } } }', token=tb)
    await gql.tao.run_jobs_until_idle()
    assert receiver.received["phone"] == []
    assert await gql.tao.assoc_count(ada, "HAS_PUSH_SUB") == 0


class _Resolver(aiohttp.abc.AbstractResolver):
    """A DNS answer of the test's choosing (the name's AAAA records, say), for the connector."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": 0} for a in self.answers[host]]

    async def close(self) -> None:
        pass


async def test_ipv6_addresses_carrying_a_private_ipv4_one_are_never_connected_to():
    """An IPv6 address can carry an IPv4 one and reach it: NAT64 (64:ff9b::/96: a NAT64
    gateway, a cloud VPC's say, forwards to the IPv4 address, private ones included),
    IPv4-translated, IPv4-compatible, 6to4. `is_global` calls several of them public, and the
    connector's filter judged only IPv4-mapped ones as the IPv4 address they carry: a push
    endpoint whose name answered 64:ff9b::a00:5 reached 10.0.0.5 through the gateway, and
    64:ff9b::a9fe:a9fe the metadata service. Now each is judged by the IPv4 address it carries
    (the same forms of a public address stay public: NAT64 is how an IPv6-only host reaches
    IPv4 services)."""
    from resolvers.notifications import egress

    private = ["64:ff9b::a9fe:a9fe", "64:ff9b::a00:5", "64:ff9b::7f00:1", "64:ff9b:1::808:808", "2002:a9fe:a9fe::1",
               "::a9fe:a9fe", "::ffff:0:a00:5", "fec0::1"]
    public = ["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111", "8.8.8.8"]
    connector = egress.PublicOnlyConnector(resolver=_Resolver({"evil.example": private,
                                                               "mixed.example": private + public}))
    try:
        with pytest.raises(egress.PrivateAddressError):
            await connector._resolve_host("evil.example", 443)
        assert sorted(r["host"] for r in await connector._resolve_host("mixed.example", 443)) == sorted(public)
        async with aiohttp.ClientSession(connector=connector, connector_owner=False) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as refused:
                await session.post("http://evil.example:9/push", data=b"x")
        assert isinstance(refused.value.os_error, egress.PrivateAddressError)  # never tried to connect
    finally:
        await connector.close()
    assert [egress.is_private_host(h) for h in private] == [True] * len(private)


async def test_the_private_addresses_override_still_never_reaches_link_local(gql, receiver):
    """`push_private_addresses` (on here: the receiver is on 127.0.0.1) turned both checks off
    whole: an endpoint on 169.254.169.254, the cloud metadata service, was stored and POSTed to
    by the worker. A local push service is on loopback or a private network, never link-local:
    those stay refused, on registering and on connecting."""
    from resolvers.notifications import egress

    ta, _ = await gql.sign_up("ada")
    keys = receiver.device("phone").keys()
    for endpoint in ("http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://0.0.0.0/x",
                     "http://[64:ff9b::a9fe:a9fe]/x", "http://[ff02::1]/x"):
        got = (await gql.ok(REGISTER, {"i": {"endpoint": endpoint, "keys": keys}}, ta))["registerPushSubscription"]
        assert got["errors"] == [{"code": "INVALID_ENDPOINT", "field": "endpoint"}], endpoint
    assert (await register(gql, ta, receiver, "phone"))["errors"] == []  # loopback: allowed by the override
    connector = egress.PublicOnlyConnector(allow_private=True, resolver=_Resolver({
        "meta.example": ["169.254.169.254", "fe80::1", "64:ff9b::a9fe:a9fe"],
        "local.example": ["169.254.169.254", "127.0.0.1", "10.0.0.5"]}))
    try:
        with pytest.raises(egress.PrivateAddressError):
            await connector._resolve_host("meta.example", 80)
        assert sorted(r["host"] for r in await connector._resolve_host("local.example", 80)) == ["10.0.0.5",
                                                                                                 "127.0.0.1"]
    finally:
        await connector.close()


async def test_an_endpoint_no_vapid_claim_can_name_is_refused_and_does_not_stop_the_others(gql, gql_settings,
                                                                                         receiver):
    """An IPv6-literal endpoint (a public one passes the address checks) cannot be signed for:
    py_vapid refuses an `aud` of `https://[2606:4700::1111]`. It was stored, and then every push
    to the account raised on it: the job failed for all of the account's endpoints and was
    retried until parked (20 runs), each run pushing again to the endpoints before it. Now it is
    refused on registering, and one stored before is forgotten as gone."""
    ta, a = await gql.sign_up("ada")
    keys = receiver.device("laptop").keys()
    literal = f"http://[::1]:{receiver.server.port}/push/laptop"
    got = (await gql.ok(REGISTER, {"i": {"endpoint": literal, "keys": keys}}, ta))["registerPushSubscription"]
    assert got["errors"] == [{"code": "INVALID_ENDPOINT", "field": "endpoint"}]
    gql_settings.notifications.push_https_only = True
    got = (await gql.ok(REGISTER, {"i": {"endpoint": "https://[2606:4700::1111]/push", "keys": keys}},
                        ta))["registerPushSubscription"]
    assert got["errors"] == [{"code": "INVALID_ENDPOINT", "field": "endpoint"}]
    gql_settings.notifications.push_https_only = False
    # one stored before the rule (registered by the code before: its check let it through),
    # beside a working one
    ada = store_id(a)
    with mock.patch("resolvers.notifications.push._check"):
        await do_register_push_subscription(gql.tao, ada, literal, keys["p256dh"], keys["auth"])
    assert (await register(gql, ta, receiver, "phone"))["errors"] == []
    assert await gql.tao.assoc_count(ada, "HAS_PUSH_SUB") == 2
    tb, _ = await gql.sign_up("bob")
    await gql.ok('mutation { createPost(input: {caption: "hi @ada"}) { post { id } } }', token=tb)
    await gql.tao.run_jobs_until_idle()
    assert len(receiver.received["phone"]) == 1  # once: the job did not fail and run again
    assert await gql.tao.assoc_count(ada, "HAS_PUSH_SUB") == 1


async def test_push_preferences_and_pause_are_honoured(gql, receiver):
    ta, _ = await gql.sign_up("ada")
    await register(gql, ta, receiver, "phone")
    await gql.ok(PREFS, {"i": {"settings": [{"type": "MENTION", "push": False}]}}, ta)
    tb, _ = await gql.sign_up("bob")
    await gql.ok('mutation { createPost(input: {caption: "hi @ada"}) { post { id } } }', token=tb)
    post = await new_post(gql, ta)
    await gql.ok(PREFS, {"i": {"pausePushHours": 2}}, ta)
    await gql.ok(LIKE, {"i": {"postId": post}}, tb)
    await gql.tao.run_jobs_until_idle()
    assert receiver.received["phone"] == []  # listed in the app, never pushed
    listed = await gql.ok("{ viewer { notifications(first: 5) { edges { node { type } } } } }", token=ta)
    assert [e["node"]["type"] for e in listed["viewer"]["notifications"]["edges"]] == ["LIKE", "MENTION"]


async def test_bad_subscriptions_are_refused_and_nothing_is_stored(gql, gql_settings, receiver):
    ta, _ = await gql.sign_up("ada")
    keys = receiver.device("phone").keys()
    bad = [({"endpoint": "not a url", "keys": keys}, "INVALID_ENDPOINT"),
           ({"endpoint": receiver.endpoint("phone"), "keys": {"p256dh": "AAAA", "auth": keys["auth"]}}, "INVALID_KEYS"),
           ({"endpoint": receiver.endpoint("phone"), "keys": {"p256dh": keys["p256dh"], "auth": b64url(b"x" * 3)}},
            "INVALID_KEYS")]
    for i, code in bad:
        got = await gql.ok(REGISTER, {"i": i}, ta)
        assert got["registerPushSubscription"]["errors"][0]["code"] == code
    gql_settings.notifications.push_https_only = True
    got = await gql.ok(REGISTER, {"i": {"endpoint": receiver.endpoint("phone"), "keys": keys}}, ta)
    assert got["registerPushSubscription"]["errors"] == [{"code": "INVALID_ENDPOINT", "field": "endpoint"}]
    gql_settings.notifications.push_https_only = False
    gql_settings.notifications.max_push_subscriptions = 3
    for n in range(3):
        assert (await register(gql, ta, receiver, f"d{n}"))["errors"] == []
    assert (await register(gql, ta, receiver, "d0"))["errors"] == []  # the same endpoint again: kept once
    got = await register(gql, ta, receiver, "d3")
    assert got["errors"] == [{"code": "TOO_MANY_SUBSCRIPTIONS", "field": "endpoint"}]
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(ada, "HAS_PUSH_SUB") == 3


CHANGE_PASSWORD = """mutation($i: AccountPasswordChangeInput!) { changePassword(input: $i) { errors { code } } }"""
LOG_IN = """mutation($u: String!, $p: String!) { logIn(input: {username: $u, password: $p}) {
  token errors { code } } }"""


async def test_ending_a_session_stops_the_pushes_it_registered(gql, receiver):
    """A push subscription outlived the session that registered it: someone who once had a
    session (a stolen password) kept every push (who liked, followed, messaged, "logged in from
    a new device") after being logged out, the session revoked and the password changed, and the
    owner had no way to see or remove their endpoint (probe3). A subscription is now the
    session's: ending the session (log-out, revoke, password change, deletion) removes it."""
    ta, a = await gql.sign_up("ada")
    thief = (await gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"}))["logIn"]["token"]
    assert (await register(gql, thief, receiver, "thief"))["registered"]
    assert (await register(gql, ta, receiver, "phone"))["registered"]
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    post = await new_post(gql, ta)
    await gql.ok(LIKE, {"i": {"postId": post}}, tb)
    await recorded(gql, ta, 1)
    await gql.tao.run_jobs_until_idle()
    assert len(receiver.received["thief"]) == 1 and len(receiver.received["phone"]) == 1
    # ada changes her password: every other session ends, and with them their pushes
    got = await gql.ok(CHANGE_PASSWORD, {"i": {"currentPassword": "password-ada", "newPassword": "new-password-1"}},
                       ta)
    assert got["changePassword"]["errors"] == []
    assert await gql.tao.assoc_count(store_id(a), "HAS_PUSH_SUB") == 1  # her phone's only
    await gql.mutate("follow", tc, a)  # another group: pushed in its own window
    await gql.tao.run_jobs_until_idle()
    # (the password change's own notice reaches her phone alone: the thief's session had ended)
    # (the notice and the follow are pushed by separate tasks: in either order)
    phone = [p["type"] for p in receiver.received["phone"]]
    assert phone[0] == "LIKE" and sorted(phone[1:]) == ["FOLLOW", "PASSWORD_CHANGED"], phone
    assert [p["type"] for p in receiver.received["thief"]] == ["LIKE"]
    # logging out on her phone stops its pushes too
    await gql.ok("mutation { logOut { ok } }", token=ta)
    assert await gql.tao.assoc_count(store_id(a), "HAS_PUSH_SUB") == 0


async def test_no_push_reaches_a_subscription_whose_session_is_gone(gql, receiver):
    """A session that ended without its subscriptions' removal (a crash between the two): the push
    skips its subscription and removes it."""
    from resolvers.accounts import _parse_token

    ta, a = await gql.sign_up("ada")
    other = (await gql.ok(LOG_IN, {"u": "ada", "p": "password-ada"}))["logIn"]["token"]
    assert (await register(gql, other, receiver, "tablet"))["registered"]
    assert (await register(gql, ta, receiver, "phone"))["registered"]
    sid, _ = _parse_token(other)
    await gql.tao.obj_delete(sid)  # the session object only, as a crash right after it would leave
    tb, _ = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    await gql.tao.run_jobs_until_idle()
    assert [p["type"] for p in receiver.received["phone"]] == ["FOLLOW"] and receiver.received["tablet"] == []
    assert await gql.tao.assoc_count(store_id(a), "HAS_PUSH_SUB") == 1
