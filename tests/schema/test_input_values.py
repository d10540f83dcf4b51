"""Every string input obeys one rule (`schema/input_values.py`): a NUL character or an unpaired
UTF-16 surrogate, in a variable (however deep) or a literal (including a variable's default), is a
top-level BAD_USER_INPUT before anything runs, and nothing is stored. Checked on several
surfaces: sign-up, profile, post caption, comment, location name."""

from __future__ import annotations

import weakref

import pytest
from graphql import parse

from schema.input_values import literal_error

SURROGATE = "x\ud800y"  # sent as JSON "x\\ud800y": valid JSON, not valid Unicode
NUL = "x\x00y"

SIGN_UP = "mutation($i: AccountSignUpInput!) { signUp(input: $i) { token errors { code } } }"
BIO = "mutation($b: String) { updateProfile(input: {bio: $b}) { user { bio } errors { code } } }"
POST = "mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }"
COMMENT = "mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } errors { code } } }"


def refused(body: dict) -> str:
    """The single error's message, after checking it is a BAD_USER_INPUT refusal with no data."""
    assert body.get("data") is None, body
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT", err
    return err["message"]


async def counts(gql, user_id_gid: str) -> dict:
    data = await gql.ok("query($id: ID!) { node(id: $id) { ... on User { bio postCount } } }", {"id": user_id_gid})
    return data["node"]


@pytest.mark.parametrize("bad", [SURROGATE, NUL], ids=["surrogate", "nul"])
async def test_sign_up_refuses_bad_strings_in_variables(gql, bad):
    for field in ("username", "password", "fullName"):
        fields = {"username": "ada", "password": "long enough password", "fullName": "Ada"}
        fields[field] = fields[field] + bad
        message = refused(await gql(SIGN_UP, {"i": fields}))
        assert f"$i.{field}" in message, message
    assert await gql.tao.key_get_many("username", ["ada"]) == {}


@pytest.mark.parametrize("bad", [SURROGATE, NUL], ids=["surrogate", "nul"])
async def test_profile_post_comment_and_location_refuse_bad_strings(gql, bad):
    token, me = await gql.sign_up("ada")
    message = refused(await gql(BIO, {"b": bad}, token))
    assert "$b" in message and ("NUL" in message if bad == NUL else "surrogate" in message)
    refused(await gql(POST, {"i": {"caption": "hello " + bad}}, token))
    refused(await gql(POST, {"i": {"caption": "at a place", "location": {"name": "Caf" + bad}}}, token))
    post = (await gql.ok(POST, {"i": {"caption": "fine"}}, token))["createPost"]["post"]
    refused(await gql(COMMENT, {"i": {"postId": post["id"], "text": bad}}, token))
    refused(await gql(COMMENT, {"i": {"postId": post["id"], "text": "ok", "replyToId": bad}}, token))

    assert await counts(gql, me) == {"bio": "", "postCount": 1}
    comments = await gql.ok("query($id: ID!) { node(id: $id) { ... on Post { commentCount } } }", {"id": post["id"]})
    assert comments["node"]["commentCount"] == 0
    if bad == NUL:  # (a surrogate key cannot even be looked up: the store hashes keys as UTF-8)
        assert await gql.tao.key_get_many("location", ["caf" + NUL + "y"]) == {}


async def test_literals_and_variable_defaults_are_checked_too(gql):
    token, me = await gql.sign_up("ada")
    # A NUL escape is valid GraphQL syntax, so it parses; the input rule then refuses it.
    refused(await gql('mutation { updateProfile(input: {bio: "a\\u0000b"}) { errors { code } } }', token=token))
    refused(await gql('mutation($b: String = "a\\u0000b") { updateProfile(input: {bio: $b}) { errors { code } } }',
                      token=token))
    refused(
        await gql(
            'mutation { createPost(input: {caption: "ok", location: {name: "\\u0000"}}) { errors { code } } }',
            token=token,
        )
    )
    # A lone surrogate escape in a literal is a syntax error by the GraphQL spec: refused before parsing ends.
    body = await gql('mutation { updateProfile(input: {bio: "a\\ud800b"}) { errors { code } } }', token=token)
    assert body.get("data") is None and body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert await counts(gql, me) == {"bio": "", "postCount": 0}


async def test_deep_variables_and_bad_names_are_refused(gql):
    deep: object = NUL
    for _ in range(50):
        deep = [deep]
    message = refused(await gql("query($x: [ID!]!) { nodes(ids: $x) { id } }", {"x": deep}))
    assert "$x[0][0]" in message
    refused(await gql("query($x: String!) { user(username: $x) { id } }", {"x": "ok", "y": {"k\ud800": 1}}))


async def test_valid_unicode_passes(gql):
    token, _ = await gql.sign_up("ada")
    text = "café 😀 — ok\ttab"
    data = await gql.ok(BIO, {"b": text}, token)
    assert data["updateProfile"]["user"]["bio"] == text


def test_a_literals_verdict_lives_as_long_as_its_document_and_no_longer():
    """The verdict is remembered for the document object (a cached document is checked once),
    but that memo keeps no document alive: the document caches alone decide how many live."""
    document = parse('{ user(username: "%s") { username } }' % ("a" * 20))
    error = literal_error(document, 10, 1024)
    assert error is not None and "longer than" in error.message
    assert literal_error(document, 10, 1024) is error  # remembered: the same verdict, not a second walk
    assert literal_error(document, 100, 1024) is None  # per limit
    ref = weakref.ref(document)
    del document
    assert ref() is None
