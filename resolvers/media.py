"""Media in the API: uploads recorded as MEDIA objects, their processing job, and who sees them.

A MEDIA object lives on its owner's shard (`obj_add(..., owner=viewer)`) with data
  owner, kind (`MediaKind`), upload_id (the pipeline's), media_key (its source object),
  status (`MediaStatus`: uploading -> processing -> ready | failed), content_type, byte_size,
  share_location, focal_point [x, y] (optional), width, height, duration,
  variants [{name, width, height, content_type, key, codecs (video renditions)}], blurhash, dominant_color,
  failure_code, failure_reason (set when failed; shown to the owner only)
and edges owner -UPLOADED-> media (⇄ UPLOADED_BY), post -HAS_MEDIA-> media (⇄ MEDIA_OF, written
by the posts domain). The upload id is a unique key (`key_claim("upload", upload_id, media)`),
so one upload never becomes two media, whatever the client retries.

Invariants:
- The status only moves forward: `do_complete_upload` moves UPLOADING to PROCESSING and
  commits the `media.process` job in that same write, so a completed upload is always processed;
  the job moves PROCESSING to READY or FAILED (idempotent: a finished media is left alone).
- A post with media is published (by `resolvers.posts.do_publish_post`) only when all its media
  are ready: the job publishes every post of a media that became ready, after recording it.
- Failures of the pipeline are translated here, once: expected ones become typed
  `MediaErrorCode`s, transient ones a top-level UNAVAILABLE (the client retries), and in the job
  a transient error re-raises so the outbox retries it with backoff.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import media_pipeline as mp
from config import Settings
from config.settings import MediaSettings
from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.errors import BadInputError, UnavailableError, UserError
from resolvers.job_context import JobContext
from resolvers.records import Media, MediaKind, MediaStatus, Post, Record, User, record_of
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

log = logging.getLogger("taogram.media")

PROCESS_JOB = "media.process"
UPLOADING, PROCESSING, READY, FAILED = (s.value for s in MediaStatus)
KINDS = tuple(k.value for k in MediaKind)  # audio: voice messages (resolvers.messages), never posts
UPLOAD_KEYS = "upload"  # the unique-key namespace: pipeline upload id -> MEDIA id


class MediaErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_UPLOAD = "INVALID_UPLOAD"
    TOO_LARGE = "TOO_LARGE"
    UNSUPPORTED_TYPE = "UNSUPPORTED_TYPE"
    CORRUPT = "CORRUPT"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    MISSING_PARTS = "MISSING_PARTS"
    ALREADY_COMPLETED = "ALREADY_COMPLETED"
    UPLOAD_FAILED = "UPLOAD_FAILED"
    REJECTED = "REJECTED"


# pipeline error -> (our code, the input field at fault); most specific class first.
_CODES: list[tuple[type[mp.MediaError], MediaErrorCode, str | None]] = [
    (mp.UploadNotFoundError, MediaErrorCode.NOT_FOUND, "uploadId"),
    (mp.UploadAlreadyCompletedError, MediaErrorCode.ALREADY_COMPLETED, "uploadId"),
    (mp.UploadFailedError, MediaErrorCode.UPLOAD_FAILED, "uploadId"),
    (mp.ChecksumMismatchError, MediaErrorCode.CHECKSUM_MISMATCH, "sha256"),
    (mp.MediaTooLargeError, MediaErrorCode.TOO_LARGE, "byteSize"),
    (mp.CorruptMediaError, MediaErrorCode.CORRUPT, None),
    (mp.UnsupportedMediaError, MediaErrorCode.UNSUPPORTED_TYPE, "contentType"),
    (mp.MediaRejectedError, MediaErrorCode.REJECTED, None),
]


# The pipeline's argument names -> the GraphQL input fields they come from (`UploadStartInput`).
_INPUT_FIELDS = {"kind": "kind", "byte_size": "byteSize", "content_type": "contentType", "sha256": "sha256",
                 "part_sha256s": "partSha256s", "upload_id": "uploadId"}


def translate(exc: mp.MediaError) -> Exception:
    """The API's error for a pipeline error: a UserError, or UNAVAILABLE for a transient one.

    Messages and `field` name the GraphQL input (`byteSize`), never the pipeline's Python names."""
    if exc.retryable:
        return UnavailableError(f"Media storage or processing is busy ({exc.code}); retry in a moment.")
    if isinstance(exc, mp.InvalidUploadError):
        field = _INPUT_FIELDS.get(exc.field or "")
        return UserError(MediaErrorCode.INVALID_UPLOAD, f"`{field}` {exc.problem}." if field else str(exc), field)
    if isinstance(exc, mp.MissingPartsError):
        return UserError(MediaErrorCode.MISSING_PARTS,
                         f"Parts {exc.missing} are missing or have the wrong size: PUT them (`uploadStatus` gives "
                         "fresh URLs), then call `completeUpload` again.", "uploadId")
    for cls, code, field in _CODES:
        if isinstance(exc, cls):
            return UserError(code, str(exc), field)
    return UserError(MediaErrorCode.INVALID_UPLOAD, str(exc))


@dataclass
class MediaServices:
    """What one server process holds for media: the object store and the upload protocol over it."""

    settings: MediaSettings
    store: mp.ObjectStore
    uploads: mp.UploadService


@asynccontextmanager
async def media_services(settings: MediaSettings) -> AsyncIterator[MediaServices]:
    """Open the store once (creating the S3 bucket if missing); close it and the worker pool after."""
    store = await asyncio.to_thread(mp.open_store, settings)  # constructing a boto3 client reads files
    try:
        await store.ensure_ready()
        yield MediaServices(settings, store, mp.UploadService(store, settings))
    finally:
        store.close()
        await asyncio.to_thread(mp.shutdown_workers)


def _services(ctx: RequestContext) -> MediaServices:
    media = getattr(ctx, "media", None)
    if media is None:  # a context built without the app (never the server's)
        raise UnavailableError("Media uploads are not configured on this server.")
    return media


# Uploads -------------------------------------------------------------------------------------

async def do_start_upload(tao: Tao, actor_id: int, kind: str, byte_size: int, content_type: str, sha256: str,
                          part_sha256s: list[str] | None, *,
                          services: MediaServices | None) -> tuple[Media, mp.UploadTicket]:
    """Open an upload in the pipeline (`services`: the process's) and record its MEDIA
    (status uploading) for the actor."""
    ctx = acting_as(tao, actor_id, media=services)
    viewer = actor_id
    services = _services(ctx)
    try:
        ticket = await services.uploads.start_upload(kind, byte_size, content_type, sha256, part_sha256s)
    except mp.MediaError as exc:
        raise translate(exc) from None
    data = {
        "owner": viewer, "kind": kind, "status": UPLOADING, "upload_id": ticket.upload_id,
        "content_type": content_type, "byte_size": byte_size,
    }
    # A crash after start_upload leaves an open upload (the stale-upload sweep removes it); after
    # obj_add, a MEDIA no one can reach (no UPLOADED edge, no upload key).
    media_id = await tao.obj_add("MEDIA", data, owner=viewer)
    if not await tao.key_claim(UPLOAD_KEYS, ticket.upload_id, media_id):
        raise RuntimeError("upload id collision")  # 128 random bits: a fault, not an input error
    await tao.assoc_add(viewer, "UPLOADED", media_id)
    obj = record_of((await tao.obj_get([media_id]))[media_id])
    return obj, ticket


async def _own_upload(ctx: RequestContext, upload_id: str) -> Media:
    """The viewer's MEDIA for a pipeline upload id; NOT_FOUND for anyone else's or an unknown one."""
    viewer = ctx.require_viewer()
    # Only a well-formed id can be a key (the store refuses an empty one): any other is unknown.
    media_id = ((await ctx.tao.key_get_many(UPLOAD_KEYS, [upload_id])).get(upload_id)
                if mp.is_upload_id(upload_id) else None)
    obj = await ctx.loaders.object_by_id.load(media_id) if media_id is not None else None
    if not isinstance(obj, Media) or obj.owner != viewer:
        raise UserError(MediaErrorCode.NOT_FOUND, "No such upload of yours: check `uploadId` or start a new upload.",
                        "uploadId")
    return obj


async def upload_status(ctx: RequestContext, upload_id: str) -> tuple[Media, mp.UploadStatus]:
    media = await _own_upload(ctx, upload_id)
    try:
        return media, await _services(ctx).uploads.upload_status(upload_id)
    except mp.MediaError as exc:
        raise translate(exc) from None


async def do_complete_upload(tao: Tao, actor_id: int, upload_id: str, share_location: bool,
                             focal_point: tuple[float, float] | None = None, *,
                             services: MediaServices | None) -> Media:
    """Verify the upload (size, sha256, decode) and commit its processing job with status processing.
    `focal_point` (fractions of the upright picture) centres the surface crops.

    A second call raises ALREADY_COMPLETED (`UserError.media` holds the media, so a client whose
    first answer was lost can carry on); a failed verification changes nothing in the store."""
    ctx = acting_as(tao, actor_id, media=services)
    if focal_point is not None and not all(0.0 <= c <= 1.0 for c in focal_point):
        raise UserError(MediaErrorCode.INVALID_UPLOAD,
                        "A focal point's x and y are fractions of the picture, from 0 to 1: "
                        "send e.g. {x: 0.5, y: 0.3}.",
                        "focalPoint")
    media = await _own_upload(ctx, upload_id)
    if media.status is not MediaStatus.UPLOADING:
        err = UserError(MediaErrorCode.ALREADY_COMPLETED,
                        "This upload was already completed: use the media it made (returned here).", "uploadId")
        err.media = media  # type: ignore[attr-defined]
        raise err
    try:
        done = await _services(ctx).uploads.complete_upload(upload_id)
    except mp.UploadAlreadyCompletedError as exc:
        done = cast(mp.CompletedUpload, exc.result)  # completed in the pipeline, but we crashed before recording it
    except mp.MediaError as exc:
        raise translate(exc) from None
    changes = {
        "status": PROCESSING, "content_type": done.content_type, "byte_size": done.byte_size,
        "width": done.width, "height": done.height, "duration": done.duration,
        "media_key": done.media_key, "share_location": bool(share_location),
    }
    if focal_point is not None:
        changes["focal_point"] = [float(focal_point[0]), float(focal_point[1])]
    updated = await tao.obj_update(media.id, changes, jobs=[(PROCESS_JOB, {"media": media.id})])
    return record_of(updated)


# Reads ----------------------------------------------------------------------------------------

async def media_visible(ctx: RequestContext, obj: Record) -> bool:
    """The owner always. Anyone else only where the media is shown to them, once ready: as part
    of a post they may see (its MEDIA_OF edge, confirmed by the post's data), or as the profile
    picture of an account they may see at all. A media in no post they may see (never attached,
    its post deleted or still processing, a private account's they do not follow) is its
    owner's alone, on every surface: `node(id:)`, `nodes`, its URLs. Voice notes and media sent
    in direct messages (`dm`) are never in a post: their readers reach them through the message
    (`resolvers.messages`, which checks the reader is in the thread)."""
    if not isinstance(obj, Media):
        return False
    owner = obj.owner
    if owner == ctx.viewer_id:
        return True
    if obj.status is not MediaStatus.READY or obj.kind is MediaKind.AUDIO or obj.dm:
        # Seen through their message only (also if one were ever listed in a post).
        return False
    seen, owner_obj = await asyncio.gather(privacy.user_visibility(ctx, owner),
                                           ctx.loaders.object_by_id.load(owner))
    if seen == privacy.Visibility.HIDDEN or not isinstance(owner_obj, User):
        return False
    if owner_obj.profile_picture_id == obj.id:
        return True
    # A media belongs to at most one post: the first edge of its MEDIA_OF list is the one.
    edges = await ctx.loaders.assoc_page_by_key.load((obj.id, "MEDIA_OF", 1, None))
    for post in await ctx.loaders.object_by_id.load_many([a.id2 for a in edges]):
        if (isinstance(post, Post) and obj.id in post.media and post.author == owner
                and await privacy.post_visible(ctx, post)):
            return True
        # A story's media: visible exactly while its story is (resolvers.stories.visibility:
        # the 24 hours on the store's clock, close friends, highlights).
        if (getattr(post, "otype", None) == "STORY" and getattr(post, "media", None) == obj.id
                and getattr(post, "author", None) == owner and await privacy.can_see_object(ctx, post)):
            return True
    return False


async def profile_pictures(ctx: RequestContext, users: Sequence[tuple[int, int | None]]
                           ) -> list[Media | None | BaseException]:
    """The profile picture of each (user id, its picture id), for many users in one batch, where
    `media_visible` lets it through as that: the owner's own, or a ready image that is the
    current picture of an account the viewer may see at all. None where a user has no picture;
    a `BaseException` (the caller then asks the one-object rule) where this form cannot tell,
    or a read failed: a picture not shown as a profile picture may still be visible elsewhere."""
    wanted = [pic for _, pic in users if pic is not None]
    objs = dict(zip(wanted, await ctx.loaders.object_by_id.load_each(wanted)))
    owners = [uid for uid, pic in users if pic is not None and uid != ctx.viewer_id]
    seen = dict(zip(owners, await ctx.loaders.visibility_by_user_id.load_each(owners)))
    out: list[Media | None | BaseException] = []
    for uid, pic in users:
        obj = objs.get(pic) if pic is not None else None
        if pic is None:
            out.append(None)
        elif (isinstance(obj, Media) and obj.owner == uid
              and (uid == ctx.viewer_id or (obj.status is MediaStatus.READY and obj.kind is MediaKind.IMAGE
                                            and not obj.dm and seen.get(uid) in _SEES_PICTURE))):
            out.append(obj)
        else:
            out.append(LookupError("not shown as this user's profile picture"))
    return out


_SEES_PICTURE = (privacy.Visibility.FULL, privacy.Visibility.LIMITED)  # any but HIDDEN


async def post_media(ctx: RequestContext, post: Post) -> list[Media]:
    """The media of a post the viewer may see, in order: visible with it (they are part of it),
    so no per-media lookup of MEDIA_OF; the author sees them in any status, others once ready."""
    author = post.author
    objs = await ctx.loaders.object_by_id.load_many(list(post.media))
    return [m for m in objs if isinstance(m, Media) and m.owner == author
            and (author == ctx.viewer_id or m.status is MediaStatus.READY)]


privacy.register_object_rule("MEDIA", media_visible)


def failure_reason(ctx: RequestContext, media: Media) -> str | None:
    """Why processing failed: for the owner only (it may name what moderation objected to)."""
    return media.failure_reason if media.owner == ctx.viewer_id else None


# Renditions that are never picked without their name: the uploader's bytes, playlists, stills.
_NAMED_ONLY_PREFIXES = ("original", "hls", "thumb_", "poster", "jpeg_poster_", "webp_poster_")
_SURFACES = ("square", "feed", "story")
_CROP_MARKS = tuple(f"_{s}_" for s in _SURFACES)  # in a crop's name: jpeg_square_640, webp_story_1080
# Codec families in the order a client that accepts them is served (most efficient first).
_CODEC_PREFERENCE = ("av01", "avc1")
DEFAULT_VIDEO_CODECS = ("avc1",)  # what every client plays; AV1 only for those that say so
_ASPECT_SLACK = 0.02


def parse_aspect(aspect: str) -> float:
    """`"4:5"` -> 0.8; a BAD_USER_INPUT error for anything but two positive integers."""
    w, sep, h = aspect.partition(":")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise BadInputError(f"aspect {aspect!r} is not W:H with positive integers; "
                            "ask for e.g. \"1:1\", \"4:5\" or \"9:16\".")
    return int(w) / int(h)


def _codec_family(v: Mapping[str, Any]) -> str:
    if not v["content_type"].startswith("video/"):
        return ""
    return (v.get("codecs") or "avc1")[:4]  # renditions recorded before codecs were: H.264


def _is_crop(v: Mapping[str, Any]) -> bool:
    name = v["name"]
    return any(mark in name for mark in _CROP_MARKS)


def pick_variant(variants: Sequence[Mapping[str, Any]], name: str | None, width: int | None,
                 aspect: float | None = None, codecs: list[str] | None = None) -> Mapping[str, Any] | None:
    """The rendition for a request: by name; else among the displayable renditions in a codec
    the client plays (`codecs`, RFC 6381 prefixes such as "av01"; H.264 when not given) and of
    the requested `aspect` (a surface's crop, else the full picture when none was cut, as for a
    source already of that shape, or a video): for a width the smallest at least that wide (else
    the widest), with no width the largest; at equal width AV1 before H.264 and JPEG before WebP.
    `original`, playlists, posters and thumbnails are chosen by name only."""
    if name is not None:
        return next((v for v in variants if v["name"] == name), None)
    accepted = {c.strip().lower()[:4] for c in codecs} if codecs else set(DEFAULT_VIDEO_CODECS)
    pool = [v for v in variants if not v["name"].startswith(_NAMED_ONLY_PREFIXES)
            and (not _codec_family(v) or _codec_family(v) in accepted)]
    if not pool:
        return None
    shaped = (None if aspect is None
              else [v for v in pool if abs(v["width"] / v["height"] / aspect - 1) <= _ASPECT_SLACK])
    pool = shaped or [v for v in pool if not _is_crop(v)]  # no crop of that shape: the full picture
    if not pool:
        return None

    def preference(v: Mapping[str, Any]) -> tuple[int, bool]:
        family = _codec_family(v)
        rank = _CODEC_PREFERENCE.index(family) if family in _CODEC_PREFERENCE else len(_CODEC_PREFERENCE)
        return rank, v["content_type"] != "image/jpeg"

    if width is not None:
        wide = [v for v in pool if v["width"] >= width]
        if wide:
            return min(wide, key=lambda v: (v["width"], *preference(v)))
    best = max(v["width"] for v in pool)
    return min((v for v in pool if v["width"] == best), key=preference)


async def urls_for(ctx: RequestContext, keys: list[str]) -> list[str]:
    """Client URLs of published variants: under the CDN, or signed and expiring (one executor hop)."""
    store = _services(ctx).store
    if store.cdn_base_url or len(keys) <= 1:  # no I/O: one after the other, no task per key
        return [await store.url_for(k) for k in keys]
    ttl = store.url_ttl_seconds
    return await store.run(lambda: [store.blocking.presign_get(k, ttl) for k in keys])


async def check_profile_picture(ctx: RequestContext, viewer: int, media_id: int) -> bool:
    """Whether `media_id` may be the viewer's profile picture: their own completed image."""
    obj = await ctx.loaders.object_by_id.load(media_id)
    return (isinstance(obj, Media) and obj.owner == viewer and obj.kind is MediaKind.IMAGE
            and obj.status in (MediaStatus.PROCESSING, MediaStatus.READY))


# Jobs -----------------------------------------------------------------------------------------

def _failure_code(exc: mp.MediaError) -> str:
    """The code a failed media records: its `MediaErrorCode` (a transient error never fails one)."""
    code = translate(exc).code  # type: ignore[attr-defined]  # AppError's code: an enum for UserError
    return code.value if isinstance(code, enum.Enum) else str(code)


async def process_job(job: JobContext, payload: dict) -> None:
    """`media.process`: transcode, record the result, settle the posts waiting for it.

    Idempotent: a finished media only re-runs the publishing step (which is idempotent too), and
    `process_media` itself returns a finished job's stored result. Transient pipeline errors
    re-raise, so the outbox retries with backoff."""
    from resolvers.posts import do_publish_post  # posts use media; media publish posts

    tao = job.tao
    media_id = int(payload["media"])
    obj = (await tao.obj_get([media_id])).get(media_id)
    media = record_of(obj) if obj is not None else None
    if not isinstance(media, Media) or media.status is MediaStatus.UPLOADING:
        return
    if media.status is MediaStatus.PROCESSING:
        settings: Settings = job.settings
        try:
            options = mp.ProcessOptions(share_location=media.share_location, focal_point=media.focal_point)
            if media.media_key is None:
                raise ValueError(f"media {media_id} is processing but has no media_key")  # a fault: completion sets it
            result = await mp.process_media(settings.media, media.media_key, media.kind.value, options)
        except mp.MediaError as exc:
            if exc.retryable:
                raise
            await tao.obj_update(media_id, {"status": FAILED, "failure_code": _failure_code(exc),
                                            "failure_reason": str(exc)})
        else:
            variants = [{"name": v.name, "width": v.width, "height": v.height, "content_type": v.content_type,
                         "key": v.key} | ({"codecs": v.codecs} if v.codecs else {}) for v in result.variants]
            await tao.obj_update(media_id, {"status": READY, "width": result.width, "height": result.height,
                                            "duration": result.duration, "variants": variants,
                                            "blurhash": result.blurhash, "dominant_color": result.dominant_color})
    # Settle the posts waiting for it: published if all their media are ready, FAILED if this
    # one failed. A media belongs to at most one post, but reading a page keeps this correct
    # if that changes.
    for edge in await tao.assoc_range(media_id, "MEDIA_OF", 0, 100):
        await do_publish_post(tao, edge.id2)


async def sweep_stale_uploads(services: MediaServices) -> int:
    """Abort uploads abandoned for `abandoned_upload_seconds` (their MEDIA stay UPLOADING,
    reachable by no one but their owner, and completing them answers NOT_FOUND)."""
    return await services.uploads.abort_stale_uploads()


async def run_sweeper(services: MediaServices) -> None:
    """Every server process sweeps every `media.sweep_interval_seconds` (hourly by default), with
    jitter; sweeping is idempotent, so processes need not agree."""
    interval = services.settings.sweep_interval_seconds
    while True:
        await asyncio.sleep(interval * random.uniform(0.5, 1.0))
        try:
            n = await sweep_stale_uploads(services)
            if n:
                log.info("aborted %d abandoned uploads", n)
        except Exception:  # the next round tries again; a sweep must never kill the server
            log.exception("stale-upload sweep failed")

