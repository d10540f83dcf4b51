"""Profiles: `user(username:)`, `viewer`, `updateProfile`, counts."""

from __future__ import annotations

import pytest

UPDATE = """mutation($i: ProfileUpdateInput!) {
  updateProfile(input: $i) { user { username fullName bio website isPrivate } errors { code message field } }
}"""
PROFILE = ("query($u: String!) { user(username: $u) { id username fullName bio website isPrivate "
           "followerCount followingCount postCount profilePicture { id } } }")


async def test_update_profile_changes_only_given_fields(gql):
    token, _ = await gql.sign_up("ada")
    p = (await gql.ok(UPDATE, {"i": {"bio": "Countess", "website": "https://ada.example"}}, token))["updateProfile"]
    assert p["errors"] == []
    assert p["user"] == {"username": "ada", "fullName": "Ada", "bio": "Countess",
                         "website": "https://ada.example", "isPrivate": False}
    got = (await gql.ok(PROFILE, {"u": "ada"}))["user"]
    assert got["bio"] == "Countess" and got["fullName"] == "Ada" and got["profilePicture"] is None
    # An empty website removes it
    p = (await gql.ok(UPDATE, {"i": {"website": ""}}, token))["updateProfile"]
    assert p["user"]["website"] == "" and p["user"]["bio"] == "Countess"


@pytest.mark.parametrize("field,value,code", [
    ("bio", "x" * 151, "BIO_TOO_LONG"),
    ("website", "javascript:alert(1)", "WEBSITE_INVALID"),
    ("website", "ftp://ada.example", "WEBSITE_INVALID"),
    ("fullName", "a\x07b", "FULL_NAME_INVALID"),  # (NUL is refused for every string: test_input_strings)
    ("username", "no spaces", "USERNAME_INVALID"),
    ("username", "bob\n", "USERNAME_INVALID"),  # shown as "bob" everywhere: a second "bob" (probe3)
    # Free-text rules (resolvers.text_rules, as captions and comments), until the sixteenth session
    # taken as they came: a terminal escape, a bell, a C1 control, text that shows as nothing.
    ("bio", "hi\x1b[2J there", "BIO_INVALID"),
    ("bio", "ring\x07", "BIO_INVALID"),
    ("bio", "next\x85line", "BIO_INVALID"),
    ("bio", "\u200b", "BIO_INVALID"),
    ("bio", " \u2060\u200b\ufeff ", "BIO_INVALID"),
    ("fullName", "\u200b\u200b", "FULL_NAME_INVALID"),
    ("website", "https://ada.example/\u202egnp.exe", "WEBSITE_INVALID"),
    ("website", "https://exa\u200bmple.com", "WEBSITE_INVALID"),
    ("website", "https://ada.example/\x07", "WEBSITE_INVALID"),
])
async def test_update_profile_validation(gql, field, value, code):
    token, _ = await gql.sign_up("ada")
    p = (await gql.ok(UPDATE, {"i": {field: value}}, token))["updateProfile"]
    assert p["user"] is None
    assert [(e["code"], e["field"]) for e in p["errors"]] == [(code, field)]
    got = (await gql.ok(PROFILE, {"u": "ada"}))["user"]
    assert (got["bio"], got["website"], got["fullName"]) == ("", "", "Ada")  # unchanged


async def test_a_bio_keeps_line_breaks_emoji_and_any_script(gql):
    token, _ = await gql.sign_up("ada")
    bio = "Countess of Lovelace\n\u0639\u0631\u0628\u064a \u200f\U0001f469\u200d\U0001f4bb\tpoet"
    p = (await gql.ok(UPDATE, {"i": {"bio": f"  {bio}\n"}}, token))["updateProfile"]
    assert p["errors"] == [] and p["user"]["bio"] == bio
    p = (await gql.ok(UPDATE, {"i": {"bio": ""}}, token))["updateProfile"]  # empty removes it
    assert p["errors"] == [] and p["user"]["bio"] == ""


async def test_rename_frees_the_old_name_and_refuses_taken_ones(gql):
    gql.tao.settings.auth.username_hold_seconds = 0  # no hold (the default, 14 days: test_username_holds.py)
    token, uid = await gql.sign_up("ada")
    await gql.sign_up("bob")
    p = (await gql.ok(UPDATE, {"i": {"username": "BOB"}}, token))["updateProfile"]
    assert [e["code"] for e in p["errors"]] == ["USERNAME_TAKEN"]
    p = (await gql.ok(UPDATE, {"i": {"username": "lovelace"}}, token))["updateProfile"]
    assert p["errors"] == [] and p["user"]["username"] == "lovelace"
    assert (await gql.ok(PROFILE, {"u": "ada"}))["user"] is None
    assert (await gql.ok(PROFILE, {"u": "LoveLace"}))["user"]["id"] == uid
    # the old name is free again
    token2, _ = await gql.sign_up("ada")
    assert token2


async def test_update_profile_needs_a_session(gql):
    body = await gql(UPDATE, {"i": {"bio": "x"}})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_unknown_and_impossible_usernames_are_null(gql):
    for name in ["nobody", "", "x" * 500]:
        body = await gql(PROFILE, {"u": name})
        assert body["data"]["user"] is None and "errors" not in body


async def test_counts_follow_the_graph(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    await gql.mutate("follow", ta, b)
    await gql.mutate("follow", tc, b)
    await gql.mutate("follow", tb, a)
    bob = (await gql.ok(PROFILE, {"u": "bob"}))["user"]
    assert (bob["followerCount"], bob["followingCount"], bob["postCount"]) == (2, 1, 0)
