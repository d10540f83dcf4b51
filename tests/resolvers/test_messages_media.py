"""Media in direct messages: photos and voice notes through the upload protocol, shown once processed,
and only to the thread's members (never on a generic surface)."""

from __future__ import annotations

import asyncio

from tests.media_pipeline.factory import make_video
from tests.resolvers.messages_client import DM, store_id
from tests.resolvers.test_media_api import (  # noqa: F401
    CREATE,
    _stop_workers,
    api,
    complete,
    jpeg,
    media_settings,
    node,
    part_size,
    upload,
)

MSGS = """query($t: ID!) { thread(id: $t) { messages { nodes { kind media { type status duration
  variants { name contentType url } } } } } }"""


async def _voice(api, media_settings, token, tmp_path, seconds=1.5) -> str:
    gql, http = api
    clip = await asyncio.to_thread(make_video, tmp_path / "voice.m4a", seconds=seconds, video=False)
    p = await upload(gql, http, token, clip.read_bytes(), "AUDIO", "audio/mp4", part_size(media_settings))
    done = await complete(gql, token, p["upload"]["id"])
    assert done["errors"] == [] and done["media"]["type"] == "AUDIO", done
    return done["media"]["id"]


async def test_voice_note_is_transcoded_to_aac_and_shown_when_ready(api, media_settings, tmp_path):
    gql, http = api
    dm = DM(gql)
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    media_id = await _voice(api, media_settings, ta, tmp_path)
    p = await dm.sent(ta, to=[b], text=None, mediaId=media_id, voice=True)
    assert p["message"]["kind"] == "VOICE"
    thread = p["thread"]["id"]
    # processing: the sender sees her upload, the recipient sees the message without media yet
    (as_bob,) = (await gql.ok(MSGS, {"t": thread}, tb))["thread"]["messages"]["nodes"]
    assert as_bob == {"kind": "VOICE", "media": None}
    await gql.tao.run_jobs_until_idle()
    (as_bob,) = (await gql.ok(MSGS, {"t": thread}, tb))["thread"]["messages"]["nodes"]
    media = as_bob["media"]
    assert media["type"] == "AUDIO" and media["status"] == "READY" and abs(media["duration"] - 1.5) < 0.2
    (aac,) = media["variants"]
    assert aac["name"] == "aac" and aac["contentType"] == "audio/mp4"
    async with http.get(aac["url"]) as r:
        body = await r.read()
    assert r.status == 200 and b"ftyp" in body[:16] and b"mp4a" in body  # an MP4 holding AAC
    # no generic surface shows it to anyone but its owner
    assert await node(gql, tb, media_id) is None and await node(gql, tc, media_id) is None
    assert (await node(gql, ta, media_id))["status"] == "READY"
    # nor can it become a post
    created = await gql.ok("mutation($i: PostCreateInput!) { createPost(input: $i) { errors { code } } }",
                           {"i": {"caption": "x", "mediaIds": [media_id]}}, ta)
    assert [e["code"] for e in created["createPost"]["errors"]] == ["MEDIA_INVALID"]


async def test_photo_message_and_wrong_kinds(api, media_settings, tmp_path):
    gql, http = api
    dm = DM(gql)
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    p = await upload(gql, http, ta, jpeg(200, 150), part_size=part_size(media_settings))
    photo = (await complete(gql, ta, p["upload"]["id"]))["media"]["id"]
    # a photo is not a voice note; an audio upload is not a photo
    bad = await dm.send(ta, to=[b], text=None, mediaId=photo, voice=True)
    assert [e["code"] for e in bad["errors"]] == ["MEDIA_INVALID"]
    voice = await _voice(api, media_settings, ta, tmp_path)
    bad = await dm.send(ta, to=[b], text=None, mediaId=voice)
    assert [e["code"] for e in bad["errors"]] == ["MEDIA_INVALID"]
    # someone else's upload cannot be sent
    bad = await dm.send(tb, to=[a], text=None, mediaId=photo)
    assert [e["code"] for e in bad["errors"]] == ["MEDIA_INVALID"]
    ok = await dm.sent(ta, to=[b], text=None, mediaId=photo)
    await gql.tao.run_jobs_until_idle()
    (m,) = (await gql.ok(MSGS, {"t": ok["thread"]["id"]}, tb))["thread"]["messages"]["nodes"]
    assert m["kind"] == "MEDIA" and m["media"]["type"] == "IMAGE" and m["media"]["status"] == "READY"
    assert await node(gql, tb, photo) is None  # seen through the message only


async def test_one_upload_is_a_message_or_a_post_not_both(api, media_settings):
    """sendMessage and createPost each checked that the upload was in no post and no message,
    then wrote: sent at once, both passed, and one photo was a post's and a message's (seen
    through the message only, `dm`, so the post showed it to no one). Now the upload is claimed
    (resolvers.posts.claim_media) by whichever writes first; the other answers MEDIA_INVALID and
    leaves nothing behind (found by probe4)."""
    gql, http = api
    dm = DM(gql)
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    await gql.mutate("follow", tb, a)
    thread = (await dm.sent(ta, to=[b], text="hi"))["thread"]["id"]
    for attempt in range(3):  # a fresh upload each time: one race per upload
        p = await upload(gql, http, ta, jpeg(200, 150), part_size=part_size(media_settings))
        photo = (await complete(gql, ta, p["upload"]["id"]))["media"]["id"]
        post, sent = await asyncio.gather(
            gql.ok(CREATE, {"i": {"caption": f"race {attempt}", "mediaIds": [photo]}}, ta),
            dm.send(ta, thread=thread, text=None, mediaId=photo))
        post_ok, sent_ok = post["createPost"]["errors"] == [], sent["errors"] == []
        assert post_ok != sent_ok, (post, sent)
        loser = sent if post_ok else post["createPost"]
        assert [e["code"] for e in loser["errors"]] == ["MEDIA_INVALID"]
        await gql.tao.run_jobs_until_idle()
        msgs = "query($t: ID!) { thread(id: $t) { messages { nodes { media { id } } } } }"
        messages = (await gql.ok(msgs, {"t": thread}, ta))["thread"]["messages"]["nodes"]
        with_photo = [m for m in messages if (m["media"] or {}).get("id") == photo]
        mine = "query { viewer { posts(first: 20) { nodes { media { ... on Media { id } } } } } }"
        posts = (await gql.ok(mine, None, ta))["viewer"]["posts"]["nodes"]
        in_posts = [n for n in posts if [m["id"] for m in n["media"]] == [photo]]
        assert (len(in_posts), len(with_photo)) == ((1, 0) if post_ok else (0, 1)), (in_posts, with_photo)


async def test_audio_upload_with_a_video_stream_fails_processing(api, media_settings, tmp_path):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    clip = await asyncio.to_thread(make_video, tmp_path / "clip.mp4", width=64, height=48, seconds=1.0)
    p = await upload(gql, http, ta, clip.read_bytes(), "AUDIO", "audio/mp4", part_size(media_settings))
    done = await complete(gql, ta, p["upload"]["id"])
    if done["errors"]:  # refused at completion (the probe runs there)
        assert [e["code"] for e in done["errors"]] == ["UNSUPPORTED_TYPE"]
        return
    await gql.tao.run_jobs_until_idle()
    seen = await node(gql, ta, done["media"]["id"])
    assert seen["status"] == "FAILED" and "audio only" in seen["failureReason"]


async def test_an_upload_claimed_by_a_message_under_way_is_not_taken(api, media_settings):
    """A message claims its upload under its id before its delivery stores it (one transaction
    less a send): a createPost finding the claim's holder not stored yet must not take the
    upload as a failed create's (it did, and the photo was a post's and a message's)."""
    from resolvers.posts import MEDIA_KEYS

    gql, http = api
    ta, a = await gql.sign_up("ada")
    p = await upload(gql, http, ta, jpeg(200, 150), part_size=part_size(media_settings))
    photo = (await complete(gql, ta, p["upload"]["id"]))["media"]["id"]
    planned = gql.tao.obj_plan("MESSAGE", {}, owner=store_id(a))  # a send between its claims and its delivery
    assert await gql.tao.key_claim(MEDIA_KEYS, str(store_id(photo)), planned.obj.id)
    post = (await gql.ok(CREATE, {"i": {"caption": "mine", "mediaIds": [photo]}}, ta))["createPost"]
    assert [e["code"] for e in post["errors"]] == ["MEDIA_INVALID"] and post["post"] is None
