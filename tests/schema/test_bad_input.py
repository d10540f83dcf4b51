"""Bad input to the fields of the last sessions (close friends, restrict, story mutes,
highlights, seen marks, the story tray and viewers, search, Explore and suggestions, notification
settings, two-factor and the other security mutations, account export and deletion), as a new
user or an attacker sends it. Each case is refused with a clear code, a top-level GraphQL error
or a typed payload error, or answers a sensible empty result; never an internal error or engine
text (SQL, the search engine's query syntax, a Python exception); and a refused mutation changes
nothing of the viewer's state (`_state`).

The cases are a table (`CASES`) in the manner of `test_relay.py`'s FIRST_FIELDS: one row per
input, run over both backends. Page sizes (`first`) on every field are `test_relay.py`'s, and a
highlight's cap of 100 distinct stories is `stories/test_social.py`'s (a list repeating one id
is that one story). The foreign cursors here are other lists' own, taken after a first item:
Explore's has a shape of its own and is refused elsewhere, search's is bound to its query (a
fingerprint) as well as to its list, and every keyset cursor (followers, the tray, viewers,
notifications) is bound to the list that issued it (`schema.relay.list_cursors`), so in any
other list, another user's same list included, it is refused like garbage
(`test_list_cursors.py` covers every field that takes `after`)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.resolvers.stories.helpers import clock, post_story, uid
from tests.resolvers.transports import both
from tests.schema.client import GQL

# Text that must never reach a client: it names the machinery, not what to do.
ENGINE_TEXT = re.compile(r"Traceback|sqlite|mysql|MariaDB|SELECT |INSERT |UPDATE |tantivy|query syntax|"
                         r"object has no attribute|KeyError|TypeError|ValueError|NoneType|IndexError|"
                         r"unexpected keyword|\bline \d+\b|\.py\b", re.I)
TOP_LEVEL = {"BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED", "UNAUTHENTICATED", "FORBIDDEN"}


@dataclass
class World:
    """ada (the viewer) and the others, with a story, a highlight and cursors of each kind."""
    ta: str
    ada: str
    bob: str
    cy: str
    eve: str  # blocks ada
    tb: str
    ada_story: str
    bob_story: str
    cy_story: str  # cy is private: ada may not see it
    highlight: str
    bob_highlight: str
    post: str
    cursors: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


CF = "mutation($i: CloseFriendsInput!) { %s(input: $i) { closeFriendCount errors { code field message } } }"
STORY_USER = "mutation($i: StoryUserInput!) { %s(input: $i) { errors { code field message } } }"
HL_CREATE = ("mutation($i: HighlightCreateInput!) { createHighlight(input: $i) { highlight { id } "
             "errors { code field message } } }")
HL_EDIT = ("mutation($i: HighlightEditInput!) { editHighlight(input: $i) { highlight { id } "
           "errors { code field message } } }")
HL_STORIES = "mutation($i: HighlightStoriesInput!) { %s(input: $i) { highlight { id } errors { code field message } } }"
HL_DELETE = "mutation($i: HighlightDeleteInput!) { deleteHighlight(input: $i) { errors { code field message } } }"
SEEN = "mutation($i: StoryMarkSeenInput!) { markStorySeen(input: $i) { stories { id } errors { code field message } } }"
SEARCH = """query($q: String!, $t: [SearchType!], $a: String) { search(query: $q, types: $t, first: 5, after: $a) {
  edges { cursor node { __typename } } pageInfo { hasNextPage } } }"""
EXPLORE = "query($a: String) { explore(first: 5, after: $a) { edges { cursor } } }"
TRAY = "query($a: String) { viewer { storyTray(first: 5, after: $a) { edges { cursor } } } }"
VIEWERS = ("query($s: ID!, $a: String) { node(id: $s) { ... on Story { viewers(first: 5, after: $a) "
           "{ nodes { id } } } } }")
FOLLOWERS = "query($u: String!, $a: String) { user(username: $u) { followers(first: 5, after: $a) { nodes { id } } } }"
FOLLOWING = "query($u: String!, $a: String) { user(username: $u) { following(first: 5, after: $a) { nodes { id } } } }"
NOTIFS = "query($a: String) { viewer { notifications(first: 5, after: $a) { edges { cursor } } } }"
PREFS = ("mutation($i: NotificationPreferencesUpdateInput!) { updateNotificationPreferences(input: $i) { "
         "errors { code field message } } }")
MARK_READ = ("mutation($i: NotificationsMarkReadInput!) { markNotificationsRead(input: $i) { "
             "errors { code field message } } }")
START_2FA = "mutation($i: TwoFactorStartInput!) { startTwoFactor(input: $i) { errors { code field message } } }"
CONFIRM_2FA = "mutation($i: TwoFactorConfirmInput!) { confirmTwoFactor(input: $i) { errors { code field message } } }"
DISABLE_2FA = "mutation($i: TwoFactorDisableInput!) { disableTwoFactor(input: $i) { errors { code field message } } }"
COMPLETE = ("mutation($i: AccountLogInCompleteInput!) { completeLogIn(input: $i) { token "
            "errors { code field message } } }")
PASSWORD = ("mutation($i: AccountPasswordChangeInput!) { changePassword(input: $i) { "
            "errors { code field message } } }")
REVOKE = "mutation($i: SessionRevokeInput!) { revokeSession(input: $i) { errors { code field message } } }"
DELETE_ACCOUNT = "mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { errors { code field message } } }"
EXPORT = "mutation($f: DataExportFormat!) { requestDataExport(input: {format: $f}) { errors { code field message } } }"
EXPORT_WITH = ("mutation($f: DataExportFormat!, $p: String) { requestDataExport(input: {format: $f, password: $p}) "
               "{ errors { code field message } } }")
DISMISS = "mutation($i: SuggestionDismissInput!) { dismissSuggestion(input: $i) { errors { code field message } } }"
RECENT = "mutation($i: RecentSearchAddInput!) { %s(input: $i) { errors { code field message } } }"

PASSWORD_OF_ADA = "password-ada"


def _garbage(w: World) -> str:
    return "not-an-id"


# (name, document, variables from the world, what it may answer: "error" = a refusal (top-level
# code or payload errors), "empty" = a sensible empty answer, "either").
CASES: list[tuple[str, str, Any, str]] = [
    # close friends
    ("close friends: a post id", CF % "addCloseFriends", lambda w: {"i": {"userIds": [w.post]}}, "error"),
    ("close friends: garbage", CF % "addCloseFriends", lambda w: {"i": {"userIds": [_garbage(w)]}}, "error"),
    ("close friends: 1 000 ids", CF % "addCloseFriends", lambda w: {"i": {"userIds": [w.bob] * 1000}}, "error"),
    ("close friends: oneself", CF % "addCloseFriends", lambda w: {"i": {"userIds": [w.ada]}}, "error"),
    ("close friends: who blocks you", CF % "addCloseFriends", lambda w: {"i": {"userIds": [w.eve]}}, "error"),
    ("close friends: remove a story id", CF % "removeCloseFriends", lambda w: {"i": {"userIds": [w.bob_story]}},
     "error"),
    ("close friends: remove 1 000 ids", CF % "removeCloseFriends", lambda w: {"i": {"userIds": [w.bob] * 1000}},
     "error"),
    # restrict, story mutes
    ("restrict: oneself", STORY_USER % "restrict", lambda w: {"i": {"userId": w.ada}}, "error"),
    ("restrict: a story id", STORY_USER % "restrict", lambda w: {"i": {"userId": w.bob_story}}, "error"),
    ("restrict: who blocks you", STORY_USER % "restrict", lambda w: {"i": {"userId": w.eve}}, "error"),
    ("unrestrict: garbage", STORY_USER % "unrestrict", lambda w: {"i": {"userId": _garbage(w)}}, "error"),
    ("muteStories: oneself", STORY_USER % "muteStories", lambda w: {"i": {"userId": w.ada}}, "error"),
    ("unmuteStories: a highlight id", STORY_USER % "unmuteStories", lambda w: {"i": {"userId": w.highlight}},
     "error"),
    # highlights
    ("highlight: no stories", HL_CREATE, lambda w: {"i": {"title": "t", "storyIds": []}}, "error"),
    ("highlight: someone else's story", HL_CREATE, lambda w: {"i": {"title": "t", "storyIds": [w.bob_story]}},
     "error"),
    ("highlight: a story you may not see", HL_CREATE, lambda w: {"i": {"title": "t", "storyIds": [w.cy_story]}},
     "error"),
    ("highlight: a user id for a story", HL_CREATE, lambda w: {"i": {"title": "t", "storyIds": [w.bob]}}, "error"),
    ("highlight: an empty title", HL_CREATE, lambda w: {"i": {"title": "", "storyIds": [w.ada_story]}}, "error"),
    ("highlight: a 10 000-character title", HL_CREATE,
     lambda w: {"i": {"title": "x" * 10_000, "storyIds": [w.ada_story]}}, "error"),
    ("highlight: a cover outside it", HL_CREATE,
     lambda w: {"i": {"title": "t", "storyIds": [w.ada_story], "coverStoryId": w.bob_story}}, "error"),
    ("highlight: edit someone else's", HL_EDIT, lambda w: {"i": {"highlightId": w.bob_highlight, "title": "mine"}},
     "error"),
    ("highlight: edit with a story id", HL_EDIT, lambda w: {"i": {"highlightId": w.ada_story, "title": "x"}},
     "error"),
    ("highlight: add someone else's story", HL_STORIES % "addToHighlight",
     lambda w: {"i": {"highlightId": w.highlight, "storyIds": [w.bob_story]}}, "error"),
    ("highlight: add to someone else's", HL_STORIES % "addToHighlight",
     lambda w: {"i": {"highlightId": w.bob_highlight, "storyIds": [w.ada_story]}}, "error"),
    ("highlight: remove its last story", HL_STORIES % "removeFromHighlight",
     lambda w: {"i": {"highlightId": w.highlight, "storyIds": [w.ada_story]}}, "error"),
    ("highlight: reorder with a stranger", HL_STORIES % "reorderHighlight",
     lambda w: {"i": {"highlightId": w.highlight, "storyIds": [w.bob_story]}}, "error"),
    ("highlight: reorder listing one twice", HL_STORIES % "reorderHighlight",
     lambda w: {"i": {"highlightId": w.highlight, "storyIds": [w.ada_story, w.ada_story]}}, "error"),
    ("highlight: delete someone else's", HL_DELETE, lambda w: {"i": {"highlightId": w.bob_highlight}}, "error"),
    ("highlight: delete a post id", HL_DELETE, lambda w: {"i": {"highlightId": w.post}}, "error"),
    # seen marks
    ("seen: a story you may not see", SEEN, lambda w: {"i": {"storyIds": [w.cy_story]}}, "error"),
    ("seen: visible and invisible", SEEN, lambda w: {"i": {"storyIds": [w.bob_story, w.cy_story]}}, "error"),
    ("seen: a post id", SEEN, lambda w: {"i": {"storyIds": [w.post]}}, "error"),
    ("seen: none", SEEN, lambda w: {"i": {"storyIds": []}}, "either"),
    ("seen: 1 000 ids", SEEN, lambda w: {"i": {"storyIds": [w.bob_story] * 1000}}, "error"),
    # story tray and viewers, with cursors of other lists
    ("tray: an explore cursor", TRAY, lambda w: {"a": w.cursors["explore"]}, "error"),
    ("tray: a followers cursor", TRAY, lambda w: {"a": w.cursors["followers"]}, "error"),
    ("tray: garbage cursor", TRAY, lambda w: {"a": "%%%"}, "error"),
    ("viewers: a tray cursor", VIEWERS, lambda w: {"s": w.ada_story, "a": w.cursors["tray"]}, "error"),
    ("viewers: a search cursor", VIEWERS, lambda w: {"s": w.ada_story, "a": w.cursors["search"]}, "error"),
    # follow lists, with cursors of other lists (another user's same list, too)
    ("followers: another user's followers cursor", FOLLOWERS, lambda w: {"u": "bob", "a": w.cursors["followers"]},
     "error"),
    ("following: a followers cursor", FOLLOWING, lambda w: {"u": "ada", "a": w.cursors["followers"]}, "error"),
    ("followers: a tray cursor", FOLLOWERS, lambda w: {"u": "ada", "a": w.cursors["tray"]}, "error"),
    ("viewers: of someone else's story", VIEWERS, lambda w: {"s": w.bob_story, "a": None}, "error"),
    # search
    ("search: empty", SEARCH, lambda w: {"q": ""}, "empty"),
    ("search: blank", SEARCH, lambda w: {"q": "   "}, "empty"),
    ("search: 1 000 characters", SEARCH, lambda w: {"q": "a" * 1000}, "error"),
    *((f"search: syntax {c!r}", SEARCH, lambda w, c=c: {"q": c}, "either")
      for c in ["*", '"', "~", ":", "(", ")", 'a*" ~:(b)', "username:ada", "-", "^2", "[a TO z]", "\\", "ada~1",
                'ada" OR "1"="1', "ada AND", "+", "!", "{}", "/"]),
    ("search: an unknown type", SEARCH, lambda w: {"q": "ada", "t": ["GROUP"]}, "error"),
    ("search: an explore cursor", SEARCH, lambda w: {"q": "ada", "a": w.cursors["explore"]}, "error"),
    ("search: a followers cursor", SEARCH, lambda w: {"q": "ada", "a": w.cursors["followers"]}, "error"),
    ("search: a cursor of another query", SEARCH, lambda w: {"q": "zed", "a": w.cursors["search"]}, "error"),
    # explore, notifications with foreign cursors
    ("explore: a search cursor", EXPLORE, lambda w: {"a": w.cursors["search"]}, "error"),
    ("explore: a tray cursor", EXPLORE, lambda w: {"a": w.cursors["tray"]}, "error"),
    ("explore: garbage cursor", EXPLORE, lambda w: {"a": "AAAA"}, "error"),
    ("notifications: an explore cursor", NOTIFS, lambda w: {"a": w.cursors["explore"]}, "error"),
    ("notifications: a followers cursor", NOTIFS, lambda w: {"a": w.cursors["followers"]}, "error"),
    ("mark read: a followers cursor", MARK_READ, lambda w: {"i": {"upTo": w.cursors["followers"]}}, "error"),
    # notification settings
    ("prefs: negative pause", PREFS, lambda w: {"i": {"pausePushHours": -1}}, "error"),
    ("prefs: a pause of a million years", PREFS, lambda w: {"i": {"pausePushHours": 1e10}}, "error"),
    ("prefs: an unknown type", PREFS,
     lambda w: {"i": {"settings": [{"type": "NOPE", "push": True}]}}, "error"),
    ("mark read: garbage cursor", MARK_READ, lambda w: {"i": {"upTo": "garbage"}}, "error"),
    ("mark read: an explore cursor", MARK_READ, lambda w: {"i": {"upTo": w.cursors["explore"]}}, "error"),
    # two-factor and security
    ("2FA start: wrong password", START_2FA, lambda w: {"i": {"password": "wrong"}}, "error"),
    ("2FA start: a 10 000-character password", START_2FA, lambda w: {"i": {"password": "x" * 10_000}}, "error"),
    ("2FA confirm: never started", CONFIRM_2FA, lambda w: {"i": {"code": "123456"}}, "error"),
    ("2FA confirm: not digits", CONFIRM_2FA, lambda w: {"i": {"code": "abc' OR 1=1 --"}}, "error"),
    ("2FA disable: not enabled", DISABLE_2FA, lambda w: {"i": {"password": PASSWORD_OF_ADA}}, "error"),
    ("2FA disable: wrong password", DISABLE_2FA, lambda w: {"i": {"password": ""}}, "error"),
    ("complete log-in: garbage challenge", COMPLETE, lambda w: {"i": {"challenge": "x" * 5000, "code": "1"}},
     "error"),
    ("complete log-in: empty", COMPLETE, lambda w: {"i": {"challenge": "", "code": ""}}, "error"),
    ("password: wrong current", PASSWORD, lambda w: {"i": {"currentPassword": "no", "newPassword": "x" * 20}},
     "error"),
    ("password: too short", PASSWORD, lambda w: {"i": {"currentPassword": PASSWORD_OF_ADA, "newPassword": "x"}},
     "error"),
    ("password: 100 000 characters", PASSWORD,
     lambda w: {"i": {"currentPassword": PASSWORD_OF_ADA, "newPassword": "x" * 100_000}}, "error"),
    ("revoke: a user id", REVOKE, lambda w: {"i": {"id": w.bob}}, "error"),
    ("revoke: someone else's session", REVOKE, lambda w: {"i": {"id": w.ids["bob_session"]}}, "error"),
    ("revoke: garbage", REVOKE, lambda w: {"i": {"id": "garbage"}}, "error"),
    # account export and deletion, suggestions, recent searches
    ("export: an unknown format", EXPORT, lambda w: {"f": "XML"}, "error"),
    ("export: no password", EXPORT, lambda w: {"f": "JSON"}, "error"),
    ("export: wrong password", EXPORT_WITH, lambda w: {"f": "JSON", "p": "wrong"}, "error"),
    ("export: 100 000 characters", EXPORT_WITH, lambda w: {"f": "JSON", "p": "x" * 100_000}, "error"),
    ("delete account: wrong password", DELETE_ACCOUNT, lambda w: {"i": {"password": "wrong"}}, "error"),
    ("delete account: empty password", DELETE_ACCOUNT, lambda w: {"i": {"password": ""}}, "error"),
    ("delete account: 100 000 characters", DELETE_ACCOUNT, lambda w: {"i": {"password": "x" * 100_000}}, "error"),
    ("dismiss suggestion: oneself", DISMISS, lambda w: {"i": {"userId": w.ada}}, "error"),
    ("dismiss suggestion: a post id", DISMISS, lambda w: {"i": {"userId": w.post}}, "error"),
    ("recent search: a story id", RECENT % "addRecentSearch", lambda w: {"i": {"id": w.bob_story}}, "error"),
    ("recent search: a story you may not see", RECENT % "addRecentSearch", lambda w: {"i": {"id": w.cy_story}},
     "error"),
    ("recent search: who blocks you", RECENT % "addRecentSearch", lambda w: {"i": {"id": w.eve}}, "error"),
    ("recent search: remove garbage", RECENT % "removeRecentSearch", lambda w: {"i": {"id": "garbage"}}, "error"),
]


async def _world(gql: GQL) -> World:
    clock(gql)
    ta, ada = await gql.sign_up("ada")
    tb, bob = await gql.sign_up("bob")
    tc, cy = await gql.sign_up("cy", private=True)
    te, eve = await gql.sign_up("eve")
    assert (await gql.mutate("block", te, ada))["errors"] == []
    assert (await gql.mutate("follow", ta, bob))["errors"] == []
    assert (await gql.mutate("follow", tb, ada))["errors"] == []  # a notification and a follower
    ada_story, bob_story, cy_story = [(await post_story(gql, t, n))["id"]
                                      for t, n in ((ta, "ada"), (tb, "bob"), (tc, "cy"))]
    made = {}
    for token, story in ((ta, ada_story), (tb, bob_story)):
        p = (await gql.ok(HL_CREATE, {"i": {"title": "trip", "storyIds": [story]}}, token))["createHighlight"]
        assert p["errors"] == [], p
        made[token] = p["highlight"]["id"]
    post = (await gql.ok('mutation { createPost(input: {caption: "#tag hello"}) { post { id } } }',
                         token=tb))["createPost"]["post"]["id"]
    await gql.tao.run_jobs_until_idle()
    w = World(ta, ada, bob, cy, eve, tb, ada_story, bob_story, cy_story, made[ta], made[tb], post)
    # One cursor of each kind, as each list hands them out after its first item (an empty first
    # page's end cursor is the head of any list: `test_relay.py`).
    w.cursors["explore"] = (await gql.ok("{ explore(first: 1) { pageInfo { endCursor } } }", token=ta)
                            )["explore"]["pageInfo"]["endCursor"]
    w.cursors["followers"] = (await gql.ok("{ viewer { followers(first: 1) { pageInfo { endCursor } } } }", token=ta)
                              )["viewer"]["followers"]["pageInfo"]["endCursor"]
    w.cursors["tray"] = (await gql.ok("{ viewer { storyTray(first: 1) { pageInfo { endCursor } } } }", token=ta)
                         )["viewer"]["storyTray"]["pageInfo"]["endCursor"]
    w.cursors["search"] = (await gql.ok('{ search(query: "bob", first: 1) { pageInfo { endCursor } } }', token=ta)
                           )["search"]["pageInfo"]["endCursor"]
    for name, c in w.cursors.items():
        assert c and not base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)).endswith(b"head"), (name, c)
    sessions = await gql.ok("{ viewer { sessions { id } } }", token=tb)
    w.ids["bob_session"] = sessions["viewer"]["sessions"][0]["id"]
    return w


STATE = """{ viewer { username followingCount
  closeFriends(first: 100) { nodes { id } } restrictedUsers(first: 100) { nodes { id } }
  storyMutedUsers(first: 100) { nodes { id } }
  highlights(first: 100) { nodes { id title stories(first: 100) { nodes { id } } } }
  twoFactor { enabled } sessions { id } unreadNotificationCount
  notificationPreferences { pushPausedUntil settings { type level push } } }
  recentSearches(first: 100) { __typename } }"""


async def _state(gql: GQL, w: World) -> dict:
    """What a refused mutation must leave as it was: ada's own-account data, and her seen marks
    and data exports as the store holds them."""
    data = await gql.ok(STATE, token=w.ta)
    ada = await uid(gql, "ada")
    data["seen"] = await gql.tao.assoc_count(ada, "STORY_SEEN")
    data["bob's highlight"] = (await gql.ok(
        '{ user(username: "bob") { highlights { nodes { title stories { nodes { id } } } } } }',
        token=w.tb))["user"]["highlights"]
    return data


def _check_answer(name: str, body: dict, expect: str) -> None:
    assert not ENGINE_TEXT.search(str(body)), (name, body)
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors", [])]
    assert "INTERNAL_SERVER_ERROR" not in codes and None not in codes, (name, body)
    assert set(codes) <= TOP_LEVEL, (name, body)
    payload_errors = [e for v in (body.get("data") or {}).values() if isinstance(v, dict)
                      for e in v.get("errors") or []]
    for e in payload_errors:
        assert e["code"] and e["message"], (name, e)
    refused = bool(codes or payload_errors)
    if expect == "error":
        assert refused, (name, body)
    elif expect == "empty":
        assert not refused and not _has_items(body.get("data")), (name, body)


def _has_items(data: Any) -> bool:
    if isinstance(data, dict):
        return any(_has_items(v) for k, v in data.items() if k in ("edges", "nodes") or isinstance(v, dict))
    if isinstance(data, list):
        return bool(data)
    return False


# The table runs on the embedded backend only: every refusal here is decided above the store (the
# resolvers' checks), and each domain's own tests run its writes on MariaDB too. On both backends it
# cost the suite ~2.5 minutes more for no path of its own; the anonymous and WebSocket tests below
# keep both.
@pytest.mark.parametrize("gql_settings", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", [c[0] for c in CASES])
async def test_bad_input_is_refused_clearly_and_changes_nothing(gql: GQL, name: str) -> None:
    _, document, variables, expect = next(c for c in CASES if c[0] == name)
    w = await _world(gql)
    before = await _state(gql, w)
    body = await gql(document, variables(w), w.ta)
    _check_answer(name, body, expect)
    await gql.tao.run_jobs_until_idle()
    assert await _state(gql, w) == before, name


def test_the_cases_have_distinct_names() -> None:
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))


async def test_an_anonymous_caller_is_refused_every_mutation_above(gql: GQL) -> None:
    """The same mutations without a token: UNAUTHENTICATED, before any input is looked at."""
    w = await _world(gql)
    for name, document, variables, _ in CASES:
        if not document.startswith("mutation") or "completeLogIn" in document:
            continue  # completeLogIn is how an anonymous caller finishes a log-in
        body = await gql(document, variables(w))
        codes = {e["extensions"]["code"] for e in body.get("errors", [])}
        assert codes & {"UNAUTHENTICATED", "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}, (name, body)
        assert not ENGINE_TEXT.search(str(body)), (name, body)




async def test_the_query_cases_answer_the_same_over_a_websocket(gql: GQL, gql_settings) -> None:
    """The reads above over a WebSocket as over HTTP: the same data and codes, and no engine text
    in the socket's messages either."""
    gql_settings.realtime.message_burst = 1000  # one socket sends them all, faster than a person
    w = await _world(gql)
    async with both(gql, w.ta) as reader:
        for name, document, variables, expect in CASES:
            if document.startswith("query"):
                await reader.read(document, variables(w))  # asserts ws == http (data, codes, paths)
                body = await reader.ws(document, variables(w))
                _check_answer(name, body, expect)
