"""Media through GraphQL, as a client does it: startUpload, PUT the parts to the signed URLs over
HTTP, uploadStatus, completeUpload, the processing job, then READY media whose URLs serve the
files. Runs on S3 (the session's moto server, MariaDB store) and on the local store (served by
the app's own `/media` route, SQLite store). Media are tiny and generated here."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from media_pipeline import shutdown_workers
from server import create_app
from tao import open_tao
from tests.media_pipeline.factory import make_video
from tests.schema.client import GQL, graphql_settings

S3_MIN_PART = 5 * 1024 * 1024
LOCAL_PART = 16 * 1024  # small parts, so the local path really uploads several
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)

START = """mutation($i: UploadStartInput!) { startUpload(input: $i) {
  upload { id partSize parts { number url headers { name value } expiresAt } }
  media { id status type } errors { code field message } } }"""
COMPLETE = """mutation($i: UploadCompleteInput!) { completeUpload(input: $i) {
  media { id status type width height } errors { code field message } } }"""
STATUS = """query($u: ID!) { uploadStatus(uploadId: $u) { state partSize partsPresent
  missing { number url headers { name value } } media { id status } } }"""
MEDIA = """query($id: ID!) { node(id: $id) { ... on Media { id type status failureReason width height duration
  variants { name width height contentType url } best: url(width: 300) largest: url } } }"""
CREATE = """mutation($i: PostCreateInput!) { createPost(input: $i) {
  post { id status media { ... on Media { id status } } } errors { code field } } }"""
CREATE_VIEW = "query($id: ID!) { node(id: $id) { ... on Post { media { ... on Media { id } } } } }"
POST = """query($id: ID!) { node(id: $id) { ... on Post { status media { ... on Media { type status duration
  variants { name contentType url } } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    shutdown_workers()


@pytest.fixture(params=["s3", "local"])
def media_settings(request, test_id: str, tmp_path: Path):
    store_backend = "mysql" if request.param == "s3" else "sqlite"
    services = request.getfixturevalue("services") if store_backend == "mysql" else None
    s = graphql_settings(store_backend, services, test_id, tmp_path)
    m = s.media
    m.work_dir, m.workers, m.thumbnails = str(tmp_path / "work"), 1, 1
    m.video_heights, m.image_widths = [120, 96], [1080, 640, 320]
    if request.param == "s3":
        m.backend, m.s3_endpoint_url, m.s3_bucket = "s3", services.s3_endpoint, f"tg-media-{test_id}"
        m.s3_access_key = m.s3_secret_key = "testing"
        m.part_size = S3_MIN_PART
    else:
        m.backend, m.local_dir, m.part_size = "local", str(tmp_path / "store"), LOCAL_PART
        m.local_base_url = f"http://127.0.0.1:{_free_port()}/media"
    return s


@pytest.fixture
async def api(media_settings):
    """(GraphQL client, HTTP session for the signed URLs) over the real app on a real port."""
    async with _api(media_settings) as both:
        yield both


@asynccontextmanager
async def _api(media_settings):
    pre = await open_tao(media_settings, migrate=True, start_worker=False)
    await pre.close()
    app = await asyncio.to_thread(create_app, media_settings)
    port = urlsplit(media_settings.media.local_base_url).port if media_settings.media.backend == "local" else None
    client = TestClient(TestServer(app, host="127.0.0.1", port=port))
    await client.start_server()
    try:
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            yield GQL(client), http
    finally:
        await client.close()


def jpeg(width: int, height: int) -> bytes:
    """A noisy JPEG (noise keeps it big enough for several local parts)."""
    img = Image.effect_noise((width, height), 64).convert("RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parts_of(data: bytes, part_size: int) -> list[bytes]:
    return [data[i:i + part_size] for i in range(0, len(data), part_size)]


async def put(http: aiohttp.ClientSession, part: dict, body: bytes) -> int:
    headers = {"Content-Type": "application/octet-stream", **{h["name"]: h["value"] for h in part["headers"]}}
    async with http.put(part["url"], data=body, headers=headers) as r:
        await r.read()
        return r.status


async def start(gql, token, data: bytes, kind="IMAGE", content_type="image/jpeg", *, declared: bytes | None = None,
                byte_size: int | None = None, part_size: int):
    declared = data if declared is None else declared
    i = {"kind": kind, "byteSize": byte_size or len(data), "contentType": content_type, "sha256": sha(declared),
         "partSha256s": [sha(p) for p in parts_of(declared, part_size)]}
    return (await gql.ok(START, {"i": i}, token))["startUpload"]


async def upload(gql, http, token, data: bytes, kind="IMAGE", content_type="image/jpeg", part_size=None) -> dict:
    """startUpload + every part PUT; returns the startUpload payload."""
    p = await start(gql, token, data, kind, content_type, part_size=part_size)
    assert p["errors"] == [], p
    up = p["upload"]
    for part, body in zip(up["parts"], parts_of(data, up["partSize"])):
        assert await put(http, part, body) == 200
    return p


async def complete(gql, token, upload_id: str, share_location=False) -> dict:
    return (await gql.ok(COMPLETE, {"i": {"uploadId": upload_id, "shareLocation": share_location}}, token))[
        "completeUpload"
    ]


async def node(gql, token, gid: str, query=MEDIA):
    return (await gql.ok(query, {"id": gid}, token))["node"]


def part_size(settings) -> int:
    return settings.media.part_size


async def test_photo_upload_resumes_completes_and_serves_variants(api, media_settings):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob", private=False)
    data = jpeg(400, 300)
    p = await start(gql, ta, data, part_size=part_size(media_settings))
    assert p["errors"] == [] and p["media"]["status"] == "UPLOADING" and p["media"]["type"] == "IMAGE"
    up, media_id = p["upload"], p["media"]["id"]
    chunks = parts_of(data, up["partSize"])
    assert len(up["parts"]) == len(chunks) and (len(chunks) > 1) == (media_settings.media.backend == "local")
    # the connection drops before the last part: uploadStatus says what is missing, with a fresh URL
    for part, body in zip(up["parts"][:-1], chunks[:-1]):
        assert await put(http, part, body) == 200
    st = (await gql.ok(STATUS, {"u": up["id"]}, ta))["uploadStatus"]
    assert st["state"] == "OPEN" and st["partsPresent"] == list(range(1, len(chunks)))
    assert [m["number"] for m in st["missing"]] == [len(chunks)] and st["media"]["id"] == media_id
    # a corrupted part is refused by the store at once (it is signed with its checksum; real S3
    # checks it, moto does not), and sent again
    corrupt = await put(http, st["missing"][0], b"x" * len(chunks[-1]))
    assert corrupt == 400 or media_settings.media.backend == "s3"
    assert await put(http, st["missing"][0], chunks[-1]) == 200
    assert (await gql.ok(STATUS, {"u": up["id"]}, tb))["uploadStatus"] is None  # not bob's upload

    done = await complete(gql, ta, up["id"])
    assert done["errors"] == [] and done["media"]["status"] == "PROCESSING"
    assert (done["media"]["width"], done["media"]["height"]) == (400, 300)
    # completing twice: a typed error carrying the same media, and no second job
    again = await complete(gql, ta, up["id"])
    assert [e["code"] for e in again["errors"]] == ["ALREADY_COMPLETED"] and again["media"]["id"] == media_id
    assert (await gql.ok(STATUS, {"u": up["id"]}, ta))["uploadStatus"]["state"] == "COMPLETED"
    assert await node(gql, tb, media_id) is None  # others see it only once ready
    await gql.tao.run_jobs_until_idle()

    m = await node(gql, ta, media_id)
    assert m["status"] == "READY" and (m["width"], m["height"]) == (400, 300) and m["failureReason"] is None
    names = {v["name"]: v for v in m["variants"]}
    assert {"original", "jpeg_400", "webp_400", "jpeg_320", "webp_320"} <= set(names)
    # url(width:) picks the smallest at least that wide (JPEG first); no width: the largest
    assert urlsplit(m["best"]).path == urlsplit(names["jpeg_320"]["url"]).path
    assert urlsplit(m["largest"]).path == urlsplit(names["jpeg_400"]["url"]).path
    async with http.get(names["jpeg_320"]["url"]) as r:
        assert r.status == 200
        body = await r.read()
    img = await asyncio.to_thread(lambda: Image.open(io.BytesIO(body)).size)
    assert img == (320, 240)
    assert await node(gql, tb, media_id) is None  # in no post: ada's alone, ready or not

    # the same media as a profile picture; a private account's picture shows to non-followers
    upd = await gql.ok("""mutation($i: ProfileUpdateInput!) { updateProfile(input: $i) {
        user { profilePicture { ... on Media { id status } } } errors { code } } }""",
                       {"i": {"profilePictureId": media_id, "isPrivate": True}}, ta)
    assert upd["updateProfile"] == {"user": {"profilePicture": {"id": media_id, "status": "READY"}}, "errors": []}
    seen = await gql.ok("""query { user(username: "ada") { profilePicture { ... on Media { url(width: 100) } } } }""",
                        token=tb)
    assert seen["user"]["profilePicture"]["url"]
    bad = await gql.ok("""mutation($i: ProfileUpdateInput!) { updateProfile(input: $i) { errors { code field } } }""",
                       {"i": {"profilePictureId": media_id}}, tb)
    assert bad["updateProfile"]["errors"] == [{"code": "PROFILE_PICTURE_INVALID", "field": "profilePictureId"}]


VIEW = """query($id: ID!) { node(id: $id) { ... on Media { id url variants { name url } blurhash dominantColor
  grid: url(aspect: "1:1", width: 100) story: url(aspect: "9:16") av1: url(codecs: ["av01", "avc1"]) } }
  nodes(ids: [$id]) { ... on Media { id url(aspect: "4:5") blurhash } } }"""


async def surfaces_showing(gql, token, media_id: str) -> list[str]:
    """Which of `node(id:)` and `nodes(ids:)` show the media (with its URLs) to this viewer."""
    body = await gql.ok(VIEW, {"id": media_id}, token)
    shown = []
    if body["node"] is not None:
        assert body["node"]["url"] and all(v["url"] for v in body["node"]["variants"])
        # the crops, the codec choice and the placeholder are shown exactly where the media is
        shown_node = body["node"]
        assert shown_node["grid"] and shown_node["story"] and shown_node["av1"] and shown_node["blurhash"]
        assert "square" in shown_node["grid"] and "story" in shown_node["story"]
        shown.append("node")
    if body["nodes"] != [None]:
        assert body["nodes"][0]["url"] and body["nodes"][0]["blurhash"]
        shown.append("nodes")
    return shown


async def test_media_outside_a_visible_post_is_its_owners_alone(api, media_settings):
    gql, http = api
    ta, ada = await gql.sign_up("ada")
    tf, _ = await gql.sign_up("fan")
    ts, _ = await gql.sign_up("stranger")
    await gql.mutate("follow", tf, ada)
    p = await upload(gql, http, ta, jpeg(160, 120), part_size=part_size(media_settings))
    media_id = (await complete(gql, ta, p["upload"]["id"], share_location=True))["media"]["id"]
    await gql.tao.run_jobs_until_idle()
    viewers = {"ada": ta, "fan": tf, "stranger": ts, "anonymous": None}
    both = ["node", "nodes"]

    async def who_sees() -> dict[str, list[str]]:
        return {name: await surfaces_showing(gql, t, media_id) for name, t in viewers.items()}

    # never attached to a post: the uploader's alone, though the account is public
    assert await who_sees() == {"ada": both, "fan": [], "stranger": [], "anonymous": []}
    # in a public post: everyone's, through the post and by id
    post = (await gql.ok(CREATE, {"i": {"caption": "c", "mediaIds": [media_id]}}, ta))["createPost"]["post"]["id"]
    assert await who_sees() == {"ada": both, "fan": both, "stranger": both, "anonymous": both}
    assert [m["id"] for m in (await node(gql, None, post, CREATE_VIEW))["media"]] == [media_id]
    # the account goes private: its followers' only
    await gql.ok("mutation { updateProfile(input: {isPrivate: true}) { errors { code } } }", token=ta)
    assert await who_sees() == {"ada": both, "fan": both, "stranger": [], "anonymous": []}
    # the post is deleted: the uploader's alone again
    await gql.ok("mutation($i: PostDeleteInput!) { deletePost(input: $i) { errors { code } } }",
                 {"i": {"postId": post}}, ta)
    assert await who_sees() == {"ada": both, "fan": [], "stranger": [], "anonymous": []}


async def test_video_post_visible_to_follower_only_when_ready(api, media_settings, tmp_path):
    gql, http = api
    ta, ada = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    await gql.mutate("follow", tb, ada)
    video = await asyncio.to_thread(make_video, tmp_path / "clip.mp4", width=160, height=120, seconds=1.0)
    data = video.read_bytes()
    p = await upload(gql, http, ta, data, "VIDEO", "video/mp4", part_size(media_settings))
    done = await complete(gql, ta, p["upload"]["id"])
    assert done["errors"] == [] and done["media"]["type"] == "VIDEO"
    created = (await gql.ok(CREATE, {"i": {"caption": "clip", "mediaIds": [done["media"]["id"]]}}, ta))["createPost"]
    assert created["errors"] == [] and created["post"]["status"] == "PROCESSING"
    post_id = created["post"]["id"]
    # processing: the author sees it, the follower sees neither the post nor its media
    assert (await node(gql, ta, post_id, POST))["status"] == "PROCESSING"
    assert await node(gql, tb, post_id, POST) is None
    assert await node(gql, tb, done["media"]["id"]) is None
    posts = await gql.ok('query { user(username: "ada") { posts { nodes { id } } } }', token=tb)
    assert posts["user"]["posts"]["nodes"] == []

    await gql.tao.run_jobs_until_idle()  # transcode, mark ready, publish, fan out
    seen = await node(gql, tb, post_id, POST)
    assert seen["status"] == "VISIBLE"
    (media,) = seen["media"]
    assert media["type"] == "VIDEO" and media["status"] == "READY" and abs(media["duration"] - 1.0) < 0.2
    names = {v["name"]: v for v in media["variants"]}
    assert {"mp4_120", "mp4_96", "poster"} <= set(names) and names["mp4_120"]["contentType"] == "video/mp4"
    async with http.get(names["mp4_96"]["url"]) as r:
        assert r.status == 200 and len(await r.read()) > 0
    feed = await gql.ok("query { viewer { feed(feedMode: CHRONOLOGICAL) { nodes { id } } } }", token=tb)
    assert [n["id"] for n in feed["viewer"]["feed"]["nodes"]] == [post_id]


async def test_one_upload_is_in_one_post_even_when_shared_twice_at_once(api, media_settings):
    """`createPost` checked that a media was in no post (its MEDIA_OF list) and then wrote: four
    concurrent creates with one upload (a double tap on Share, a retried request) all passed, one
    photo in four posts (found by probe4). Now one wins; the others answer MEDIA_INVALID and leave
    no post behind. Deleting the post frees the media for a new one."""
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    p = await upload(gql, http, ta, jpeg(200, 150), part_size=part_size(media_settings))
    media_id = (await complete(gql, ta, p["upload"]["id"]))["media"]["id"]
    tries = await asyncio.gather(*(gql.ok(CREATE, {"i": {"caption": f"try {i}", "mediaIds": [media_id]}}, ta)
                                   for i in range(4)))
    won = [t["createPost"]["post"]["id"] for t in tries if t["createPost"]["errors"] == []]
    lost = [t["createPost"] for t in tries if t["createPost"]["errors"]]
    assert len(won) == 1 and lost == [{"post": None, "errors": [{"code": "MEDIA_INVALID", "field": "mediaIds"}]}] * 3
    await gql.tao.run_jobs_until_idle()
    mine = "query { viewer { postCount posts(first: 10) { nodes { id media { ... on Media { id } } } } } }"
    seen = (await gql.ok(mine, None, ta))["viewer"]
    assert seen["postCount"] == 1 and [n["id"] for n in seen["posts"]["nodes"]] == won
    await gql.ok("mutation($i: PostDeleteInput!) { deletePost(input: $i) { errors { code } } }",
                 {"i": {"postId": won[0]}}, ta)
    again = (await gql.ok(CREATE, {"i": {"caption": "again", "mediaIds": [media_id]}}, ta))["createPost"]
    assert again["errors"] == [] and [m["id"] for m in again["post"]["media"]] == [media_id]


async def test_a_create_that_died_after_claiming_its_media_does_not_hold_it_for_good(api, media_settings,
                                                                                     monkeypatch):
    """A `createPost` that fails or dies between claiming its media and listing the post leaves
    a post no one sees holding the claim. While young it may be a create still under way, and
    keeps it; once older than `STALE_CLAIM_MS` it is taken over, so the upload can be posted."""
    from resolvers import posts

    gql, http = api
    ta, ada = await gql.sign_up("ada")
    p = await upload(gql, http, ta, jpeg(200, 150), part_size=part_size(media_settings))
    media_id = (await complete(gql, ta, p["upload"]["id"]))["media"]["id"]
    author, media = store_id(ada), store_id(media_id)
    orphan = await gql.tao.obj_add("POST", posts.post_data(author, "died", media=[media]), owner=author)
    assert await gql.tao.key_claim(posts.MEDIA_KEYS, str(media), orphan)
    create = {"i": {"caption": "mine", "mediaIds": [media_id]}}
    young = (await gql.ok(CREATE, create, ta))["createPost"]
    assert young == {"post": None, "errors": [{"code": "MEDIA_INVALID", "field": "mediaIds"}]}
    monkeypatch.setattr(posts, "STALE_CLAIM_MS", 0, raising=False)
    old = (await gql.ok(CREATE, create, ta))["createPost"]
    assert old["errors"] == [] and [m["id"] for m in old["post"]["media"]] == [media_id]


@pytest.fixture
def rejecting(media_settings):
    media_settings.media.moderation_hook = "tests.media_pipeline.hooks:reject_landscape"
    return media_settings


async def test_rejected_upload_is_failed_with_reason_for_the_author_only(rejecting, api):
    gql, http = api
    ta, ada = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    await gql.mutate("follow", tb, ada)
    p = await upload(gql, http, ta, jpeg(200, 100), part_size=part_size(rejecting))
    done = await complete(gql, ta, p["upload"]["id"])
    assert done["errors"] == [] and done["media"]["status"] == "PROCESSING"
    created = (await gql.ok(CREATE, {"i": {"caption": "wide", "mediaIds": [done["media"]["id"]]}}, ta))["createPost"]
    await gql.tao.run_jobs_until_idle()
    m = await node(gql, ta, done["media"]["id"])
    assert m["status"] == "FAILED" and "landscape" in m["failureReason"] and m["variants"] == []
    assert m["largest"] is None
    assert await node(gql, tb, done["media"]["id"]) is None
    # its post is FAILED for its author, never visible to others; a failed media cannot start a new post
    assert (await node(gql, ta, created["post"]["id"], POST))["status"] == "FAILED"
    assert await node(gql, tb, created["post"]["id"], POST) is None
    again = (await gql.ok(CREATE, {"i": {"caption": "x", "mediaIds": [done["media"]["id"]]}}, ta))["createPost"]
    assert again["errors"] == [{"code": "MEDIA_INVALID", "field": "mediaIds"}]


async def uploaded_count(gql, token) -> int:
    from base64 import urlsafe_b64decode

    me = await gql.ok("query { viewer { id } }", token=token)
    uid = int(urlsafe_b64decode(me["viewer"]["id"] + "==").decode().split(":")[1])
    return await gql.tao.assoc_count(uid, "UPLOADED")


async def test_bad_input_gives_typed_errors_and_changes_nothing(api, media_settings):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    ps = part_size(media_settings)
    data = jpeg(120, 90)
    await gql.tao.run_jobs_until_idle()  # the sign-ups' own jobs

    # refused at start: nothing recorded
    big = await start(gql, ta, data, byte_size=media_settings.media.max_image_bytes + 1, part_size=10**9)
    assert [(e["code"], e["field"]) for e in big["errors"]] == [("TOO_LARGE", "byteSize")] and big["media"] is None
    wrong_type = await start(gql, ta, data, content_type="video/mp4", part_size=ps)
    assert [(e["code"], e["field"]) for e in wrong_type["errors"]] == [("UNSUPPORTED_TYPE", "contentType")]
    bad_hex = await gql.ok(START, {"i": {"kind": "IMAGE", "byteSize": len(data), "contentType": "image/jpeg",
                                         "sha256": "nope"}}, ta)
    assert [e["code"] for e in bad_hex["startUpload"]["errors"]] == ["INVALID_UPLOAD"]
    assert await uploaded_count(gql, ta) == 0

    # wrong checksum: declared for other bytes of the same size
    other = bytes(reversed(data))
    p = await gql.ok(START, {"i": {"kind": "IMAGE", "byteSize": len(data), "contentType": "image/jpeg",
                                   "sha256": sha(other)}}, ta)
    up = p["startUpload"]["upload"]
    for part, body in zip(up["parts"], parts_of(data, up["partSize"])):
        assert await put(http, part, body) == 200
    bad = await complete(gql, ta, up["id"])
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("CHECKSUM_MISMATCH", "sha256")] and bad[
        "media"
    ] is None
    assert (await node(gql, ta, p["startUpload"]["media"]["id"]))["status"] == "UPLOADING"
    assert [e["code"] for e in (await complete(gql, ta, up["id"]))["errors"]] == ["UPLOAD_FAILED"]

    # not an image at all, declared as one: found out by decoding at complete
    junk = b"definitely not a jpeg" * 50
    p = await upload(gql, http, ta, junk, part_size=ps)
    codes = [e["code"] for e in (await complete(gql, ta, p["upload"]["id"]))["errors"]]
    assert codes in (["UNSUPPORTED_TYPE"], ["CORRUPT"])

    # parts missing
    p = await start(gql, ta, data, part_size=ps)
    missing = await complete(gql, ta, p["upload"]["id"])
    assert [e["code"] for e in missing["errors"]] == ["MISSING_PARTS"]
    # someone else's upload, an unknown one
    assert [e["code"] for e in (await complete(gql, tb, p["upload"]["id"]))["errors"]] == ["NOT_FOUND"]
    assert [e["code"] for e in (await complete(gql, ta, "0" * 32))["errors"]] == ["NOT_FOUND"]
    # an upload not yet completed, and someone else's media, cannot go into a post
    assert await gql.tao.run_jobs_until_idle() == 0  # nothing was enqueued by any of this
    for token, mid in ((ta, p["media"]["id"]), (tb, p["media"]["id"])):
        c = (await gql.ok(CREATE, {"i": {"caption": "x", "mediaIds": [mid]}}, token))["createPost"]
        assert c == {"post": None, "errors": [{"code": "MEDIA_INVALID", "field": "mediaIds"}]}
    done = await upload(gql, http, ta, data, part_size=ps)
    assert (await complete(gql, ta, done["upload"]["id"]))["errors"] == []
    c = (await gql.ok(CREATE, {"i": {"caption": "x", "mediaIds": [done["media"]["id"]]}}, tb))["createPost"]
    assert c["errors"] == [{"code": "MEDIA_INVALID", "field": "mediaIds"}]
    posts = await gql.ok('query { user(username: "bob") { postCount } }', token=tb)
    assert posts["user"]["postCount"] == 0


@pytest.mark.parametrize("media_settings", ["local"], indirect=True)  # S3 serves its own URLs
async def test_local_route_checks_signatures_and_body_size(api, media_settings):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    p = await start(gql, ta, jpeg(120, 90), part_size=part_size(media_settings))
    url = p["upload"]["parts"][0]["url"]
    async with http.put(url.replace("partNumber=1", "partNumber=2"), data=b"x") as r:
        assert r.status == 403  # the signature covers every query parameter
    async with http.put(url, data=b"x" * (LOCAL_PART * 1000)) as r:
        assert r.status == 413
    async with http.get(url.split("?")[0].replace("/source", "/upload.json")) as r:
        assert r.status == 403  # no signature, no read (manifests and sources are private)


@pytest.mark.parametrize("media_settings", ["local"], indirect=True)
async def test_stale_upload_sweep_aborts_open_uploads(api, media_settings):
    from resolvers.media import sweep_stale_uploads
    from server import MEDIA_KEY

    gql, http = api
    ta, _ = await gql.sign_up("ada")
    p = await upload(gql, http, ta, jpeg(120, 90), part_size=part_size(media_settings))
    services = gql.client.app[MEDIA_KEY]
    assert await sweep_stale_uploads(services) == 0  # a fresh upload is not abandoned
    media_settings.media.abandoned_upload_seconds = 0
    assert await sweep_stale_uploads(services) == 1
    assert (await gql.ok(STATUS, {"u": p["upload"]["id"]}, ta))["uploadStatus"] is None
    gone = await complete(gql, ta, p["upload"]["id"])
    assert [e["code"] for e in gone["errors"]] == ["NOT_FOUND"]
    assert (await node(gql, ta, p["media"]["id"]))["status"] == "UPLOADING"


@pytest.mark.parametrize("media_settings", ["local"], indirect=True)
async def test_a_server_without_a_job_worker_still_sweeps_abandoned_uploads(media_settings):
    """Production's servers run no in-process worker (jobs run in `python -m tao worker`): the
    sweep runs in every server process all the same, on its own schedule."""
    media_settings.jobs.in_process_worker = False
    media_settings.media.abandoned_upload_seconds = 1
    media_settings.media.sweep_interval_seconds = 0.2
    async with _api(media_settings) as (gql, http):
        ta, _ = await gql.sign_up("ada")
        p = await upload(gql, http, ta, jpeg(120, 90), part_size=part_size(media_settings))
        for _ in range(300):  # sweeps every 0.1-0.2 s; the upload is abandoned after 1 s
            if (await gql.ok(STATUS, {"u": p["upload"]["id"]}, ta))["uploadStatus"] is None:
                break
            await asyncio.sleep(0.1)
        assert (await gql.ok(STATUS, {"u": p["upload"]["id"]}, ta))["uploadStatus"] is None
        assert (await node(gql, ta, p["media"]["id"]))["status"] == "UPLOADING"


def store_id(global_id: str) -> int:
    from base64 import urlsafe_b64decode

    return int(urlsafe_b64decode(global_id + "==").decode().split(":")[1])


@pytest.mark.parametrize("media_settings", ["local"], indirect=True)
async def test_busy_job_is_retried_by_the_outbox(api, media_settings):
    """A retryable pipeline error (here JobBusyError: another worker holds the job's lock)
    leaves the media PROCESSING and the job in the outbox with backoff; the retry finishes it."""
    import fcntl

    from media_pipeline.process import job_dir

    gql, http = api
    ta, _ = await gql.sign_up("ada")
    await gql.tao.run_jobs_until_idle()
    p = await upload(gql, http, ta, jpeg(120, 90), part_size=part_size(media_settings))
    mid = (await complete(gql, ta, p["upload"]["id"]))["media"]["id"]
    obj = (await gql.tao.obj_get([store_id(mid)]))[store_id(mid)]
    lock = job_dir(media_settings.media, obj.data["media_key"]).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert await gql.tao.run_jobs_until_idle(include_delayed=False) == 1  # ran once, failed, rescheduled
        assert (await node(gql, ta, mid))["status"] == "PROCESSING"
        assert await gql.tao.outbox.pending() == 1  # still there, waiting for its backoff
        assert (await gql.tao.obj_get([obj.id]))[obj.id].version == obj.version  # nothing recorded
        fcntl.flock(held, fcntl.LOCK_UN)
    assert await gql.tao.run_jobs_until_idle() == 1  # the backed-off retry
    assert (await node(gql, ta, mid))["status"] == "READY" and await gql.tao.outbox.pending() == 0


PAGE = """query($n: Int!) { user(username: "ada") { posts(first: $n) { nodes { status
  media { ... on Media { status width url(width: 300) variants { name url } } } } } } }"""


@pytest.mark.parametrize("media_settings", ["local"], indirect=True)
async def test_post_media_batch_by_depth_not_by_count(api, media_settings):
    """A page of posts with their media and signed URLs: the same store round trips for 2 posts
    as for 8 (warm cache), so media fields batch like every other field."""
    from schema.relay import to_global_id

    gql, _ = api
    ta, ada = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    await gql.mutate("follow", tb, ada)
    owner = store_id(ada)
    variants = [{"name": f"jpeg_{w}", "width": w, "height": w, "content_type": "image/jpeg",
                 "key": f"media/{'0' * 32}/v/jpeg_{w}.jpg"} for w in (320, 640)]
    for i in range(8):
        m = await gql.tao.obj_add("MEDIA", {"owner": owner, "kind": "image", "status": "ready", "width": 640,
                                            "height": 640, "duration": 0, "variants": variants}, owner=owner)
        await gql.tao.assoc_add(owner, "UPLOADED", m)
        c = await gql.ok(CREATE, {"i": {"caption": f"p{i}", "mediaIds": [to_global_id("Media", m)]}}, ta)
        assert c["createPost"]["errors"] == [] and c["createPost"]["post"]["status"] == "VISIBLE"
    await gql.tao.run_jobs_until_idle()

    async def cost(n: int) -> tuple[int, int]:
        await gql.ok(PAGE, {"n": n}, tb)  # warm the cache
        gql.tao.reset_stats()
        data = await gql.ok(PAGE, {"n": n}, tb)
        nodes = data["user"]["posts"]["nodes"]
        assert len(nodes) == n and all(p["media"][0]["status"] == "READY" and "jpeg_320" in p["media"][0]["url"]
                                       for p in nodes)
        s = gql.tao.stats()
        return s["sql_queries"], s["cache_round_trips"]

    two, eight = await cost(2), await cost(8)
    assert two == eight and two[1] > 0


@pytest.mark.parametrize("media_settings", ["local"], indirect=True)
async def test_errors_name_the_graphql_inputs_and_odd_upload_ids_are_not_found(api, media_settings):
    gql, _ = api
    ta, _ = await gql.sign_up("ada")
    data = jpeg(60, 40)
    fields = {"kind": "IMAGE", "byteSize": len(data), "contentType": "image/jpeg", "sha256": sha(data)}
    for change, field in (({"byteSize": 0}, "byteSize"), ({"byteSize": -5}, "byteSize"), ({"sha256": "nope"}, "sha256"),
                          ({"partSha256s": ["ab", "cd"]}, "partSha256s")):
        p = (await gql.ok(START, {"i": {**fields, **change}}, ta))["startUpload"]
        (err,) = p["errors"]
        assert (err["code"], err["field"]) == ("INVALID_UPLOAD", field), err
        assert f"`{field}`" in err["message"] and not re.search(r"\b[a-z0-9]+_[a-z0-9_]+", err["message"]), err

    p = await start(gql, ta, data, part_size=part_size(media_settings))  # no part PUT
    (err,) = (await complete(gql, ta, p["upload"]["id"]))["errors"]
    assert (err["code"], err["field"]) == ("MISSING_PARTS", "uploadId")
    assert "`uploadStatus`" in err["message"] and "upload_status" not in err["message"]
    for odd in ("", "x" * 65, "Z" * 32, "0" * 31):
        assert (await gql.ok(STATUS, {"u": odd}, ta))["uploadStatus"] is None
        (err,) = (await complete(gql, ta, odd))["errors"]
        assert (err["code"], err["field"]) == ("NOT_FOUND", "uploadId")
    assert await uploaded_count(gql, ta) == 1
