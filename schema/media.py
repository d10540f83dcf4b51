"""Media: the `Media` node, the upload mutations (`startUpload`, `completeUpload`) and `uploadStatus`.

Scalar fields are copied from the MEDIA object when the type is built; URLs are the only I/O
(signing runs off the loop, all of one media's variants in one hop). A `Media` is only built
from an object privacy let through (`resolvers.media.media_visible`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import strawberry
from strawberry import Info

from media_pipeline import PartUrl
from media_pipeline.uploads import MAX_PARTS
from resolvers import media, records
from resolvers.context import RequestContext
from resolvers.errors import BadInputError, UserError
from schema import prefetch
from schema.cost import register_list_bound
from schema.errors import Error
from schema.mutations import actor, mutation
from schema.relay import Node, register_node, to_global_id

MAX_CODECS = 16  # `Media.url(codecs:)`: a client plays a handful

Ctx = Info[RequestContext, None]
# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
MediaErrorCode = media.MediaErrorCode
strawberry.enum(media.MediaErrorCode)
MediaStatus = records.MediaStatus
strawberry.enum(records.MediaStatus,
    description="UPLOADING until `completeUpload`, PROCESSING until its variants exist, then READY or FAILED.")


@strawberry.enum(description="What a media item is.")
class MediaType(enum.Enum):
    IMAGE = records.MediaKind.IMAGE.value
    VIDEO = records.MediaKind.VIDEO.value
    AUDIO = strawberry.enum_value(records.MediaKind.AUDIO.value,
                                  description="A voice message (transcoded to AAC); for direct messages only.")


@strawberry.enum(description="An upload's state in storage.")
class UploadState(enum.Enum):
    OPEN = "open"
    COMPLETED = "completed"
    FAILED = "failed"


@strawberry.type(description="One published rendition of a media item.")
class MediaVariant:
    name: str = strawberry.field(description="`jpeg_640`, `webp_320`, `original`, crops `jpeg_square_320`, "
                                             "`jpeg_feed_1080`, `jpeg_story_1080` (images); `mp4_720`, `av1_720`, "
                                             "`poster`, `jpeg_poster_square_320`, `thumb_0` (videos).")
    width: int
    height: int
    content_type: str
    codecs: str | None = strawberry.field(description="RFC 6381 codecs of a video rendition (`avc1.640028,mp4a.40.2`, "
                                                      "`av01.0.08M.08,mp4a.40.2`); null for images.")
    url: str = strawberry.field(description="Signed and expiring (or on the CDN): fetch it soon, do not store it.")


@strawberry.type(description="A photo or video you uploaded; others see it once READY, where "
                             "they may see its post or profile.")
class Media(Node):
    id: strawberry.ID
    type: MediaType
    status: MediaStatus
    width: int | None = strawberry.field(description="Pixels, upright; null until the upload is completed.")
    height: int | None
    duration: float | None = strawberry.field(description="Seconds (videos); 0 for images; null until completed.")
    blurhash: str | None = strawberry.field(description="A BlurHash (4x3 components) of the picture (a video's "
                                                        "poster) to draw at `width`:`height` before the first byte "
                                                        "arrives; null until READY.")
    dominant_color: str | None = strawberry.field(
        description="The picture's most common colour, `#rrggbb`; null until READY.")
    created_at: datetime
    record: strawberry.Private[records.Media]
    prefetched: strawberry.Private[dict | None] = None  # schema/prefetch.py: field values a page loaded

    @classmethod
    def from_record(cls, m: records.Media) -> Media:
        return cls(id=to_global_id("Media", m.id), type=MediaType(m.kind.value), status=m.status,
                   width=m.width, height=m.height, duration=m.duration, blurhash=m.blurhash,
                   dominant_color=m.dominant_color, created_at=datetime.fromtimestamp(m.created / 1000, tz=UTC),
                   record=m)

    @strawberry.field(description="Why processing failed (corrupt file, rejected by moderation); only you see it.")
    def failure_reason(self, info: Ctx) -> str | None:
        return media.failure_reason(info.context, self.record)

    @strawberry.field(description="Every published rendition (empty until READY).")
    async def variants(self, info: Ctx) -> list[MediaVariant]:
        found = self.record.variants
        urls = await media.urls_for(info.context, [v["key"] for v in found])
        return [MediaVariant(name=v["name"], width=v["width"], height=v["height"], content_type=v["content_type"],
                             codecs=v.get("codecs"), url=u) for v, u in zip(found, urls)]

    @strawberry.field(description=(
        "A URL of the best rendition: the named `variant`; else among those of the `aspect` asked for (`\"1:1\"` grid, "
        "`\"4:5\"` feed, `\"9:16\"` story: a crop, else the full picture) in a codec the client plays (`codecs`, e.g. "
        "`[\"av01\", \"avc1\"]`; H.264 when not given), for `width` the smallest at least that wide (else the widest), "
        "else the largest; AV1 before H.264 at equal width. Null until READY."))
    async def url(self, info: Ctx, variant: str | None = None, width: int | None = None, aspect: str | None = None,
                  codecs: list[str] | None = None) -> str | None:
        if codecs is not None and len(codecs) > MAX_CODECS:
            # Read per media, and a scalar costs nothing in the static estimate: 100 000 entries
            # were taken into a set for every media of a page.
            raise BadInputError(f"`codecs` holds at most {MAX_CODECS} codecs (got {len(codecs)}); "
                                "list those the client plays, best first.")
        ratio = media.parse_aspect(aspect) if aspect is not None else None
        chosen = media.pick_variant(self.record.variants, variant, width, ratio, codecs)
        return (await media.urls_for(info.context, [chosen["key"]]))[0] if chosen else None


register_node("Media", "MEDIA", Media.from_record)
# A media's variants, from its record (no reads): the original, JPEG and WebP of each width and
# crop, and the video ladder with its AV1 rung and poster.
register_list_bound("Media", "variants", 32, setting=lambda s: 3 + len(s.media.video_heights) + 2 * (
    len(s.media.image_widths) + sum(len(w) for w in s.media.crop_widths.values())))
register_list_bound("UploadPart", "headers", 1)  # the part's checksum header, if any
# An upload's parts: its file's largest size over the part size (media_pipeline.uploads).
_PARTS = MAX_PARTS, lambda s: min(MAX_PARTS, -(-max(s.media.max_image_bytes, s.media.max_video_bytes,
                                                s.media.max_audio_bytes) // s.media.part_size))
register_list_bound("Upload", "parts", _PARTS[0], setting=_PARTS[1])
register_list_bound("UploadStatus", "missing", _PARTS[0], setting=_PARTS[1])


# What a page loads for all its media (and its users' pictures) at once, for the fields the
# request selects (schema/prefetch.py): each does what the field's own resolver does, for many.

@prefetch.batch_fetcher("Media", "url")
async def _urls(ctx: RequestContext, items: list[Media], args: dict) -> list:
    aspect = args.get("aspect")
    ratio = media.parse_aspect(aspect) if aspect is not None else None
    chosen = [media.pick_variant(m.record.variants, args.get("variant"), args.get("width"), ratio, args.get("codecs"))
              for m in items]
    keys = [c["key"] for c in chosen if c]
    urls = iter(await media.urls_for(ctx, keys) if keys else ())
    return [next(urls) if c else None for c in chosen]


@prefetch.batch_fetcher("User", "profilePicture", child_type="Media")
async def _profile_pictures(ctx: RequestContext, items: list, _: dict) -> list:
    found = await media.profile_pictures(ctx, [(u.store_id, u.picture_id) for u in items])
    return prefetch.values(found, Media.from_record)


@strawberry.type
class MediaError(Error):
    code: MediaErrorCode
    message: str
    field: str | None


@strawberry.type(description="A request header to send with a part (`name: value`).")
class HttpHeader:
    name: str
    value: str


@strawberry.type(description="Where to PUT one part of the file: bytes [(number-1)*partSize, number*partSize).")
class UploadPart:
    number: int
    url: str
    headers: list[HttpHeader]
    expires_at: datetime

    @classmethod
    def from_part(cls, p: PartUrl) -> UploadPart:
        return cls(number=p.number, url=p.url, headers=[HttpHeader(name=k, value=v) for k, v in p.headers.items()],
                   expires_at=datetime.fromtimestamp(p.expires_at, tz=UTC))


@strawberry.type(description="An open upload: PUT every part, then `completeUpload`.")
class Upload:
    id: strawberry.ID = strawberry.field(description="The upload id for `uploadStatus` and `completeUpload`.")
    part_size: int
    parts: list[UploadPart]


@strawberry.type(description="What arrived so far, and fresh URLs for the parts still to send.")
class UploadStatus:
    upload_id: strawberry.ID
    state: UploadState
    part_size: int
    parts_present: list[int]
    missing: list[UploadPart]
    error: str | None
    media: Media


@strawberry.input
class UploadStartInput:
    kind: MediaType
    byte_size: int = strawberry.field(description="The file's exact size in bytes.")
    content_type: str = strawberry.field(description="image/jpeg, image/png, image/webp, image/gif, image/heic, "
                                                     "image/heif; video/mp4, video/quicktime, video/webm.")
    sha256: str = strawberry.field(description="SHA-256 of the whole file, hex.")
    part_sha256s: list[str] | None = strawberry.field(
        default=None, description="SHA-256 (hex) of each part (see `partSize`): the store then "
                                  "refuses a corrupted part at once.")


@strawberry.input(description="Where the subject is, as fractions of the upright picture "
                              "(0,0 top-left; 1,1 bottom-right).")
class FocalPointInput:
    x: float
    y: float


@strawberry.input
class UploadCompleteInput:
    upload_id: strawberry.ID
    share_location: bool = strawberry.field(default=False, description="Keep the photo's GPS position in `original`.")
    focal_point: FocalPointInput | None = strawberry.field(
        default=None, description="Centre of the square, 4:5 and 9:16 crops (the picture's centre when not given).")


@strawberry.type
class UploadStartPayload:
    upload: Upload | None = None
    media: Media | None = None
    errors: list[MediaError] = strawberry.field(default_factory=list)


@strawberry.type(description="The media (PROCESSING; also set with ALREADY_COMPLETED) and typed errors.")
class UploadCompletePayload:
    media: Media | None = None
    errors: list[MediaError] = strawberry.field(default_factory=list)


@strawberry.type
class MediaQuery:
    @strawberry.field(description="An upload of yours: parts received and URLs for the "
                                  "missing ones (resume after a drop).")
    async def upload_status(self, info: Ctx, upload_id: strawberry.ID) -> UploadStatus | None:
        try:
            obj, st = await media.upload_status(info.context, str(upload_id))
        except UserError:
            return None  # unknown, expired, or not yours: alike
        return UploadStatus(upload_id=strawberry.ID(st.upload_id), state=UploadState(st.state), part_size=st.part_size,
                            parts_present=st.parts_present, missing=[UploadPart.from_part(p) for p in st.missing],
                            error=st.error, media=Media.from_record(obj))


def _already_completed(e: UserError) -> dict:
    """ALREADY_COMPLETED carries the media the first call made (`UserError.media`)."""
    done = getattr(e, "media", None)
    return {"media": Media.from_record(done) if done else None}


@strawberry.type
class MediaMutation:
    @mutation(description="Start uploading a photo or video: returns signed URLs to PUT its parts to.")
    async def start_upload(self, info: Ctx, input: UploadStartInput) -> UploadStartPayload:
        ctx = info.context
        obj, ticket = await media.do_start_upload(ctx.tao, actor(info), input.kind.value, input.byte_size,
                                                  input.content_type, input.sha256, input.part_sha256s,
                                                  services=ctx.media)
        upload = Upload(id=strawberry.ID(ticket.upload_id), part_size=ticket.part_size,
                        parts=[UploadPart.from_part(p) for p in ticket.parts])
        return UploadStartPayload(upload=upload, media=Media.from_record(obj))

    @mutation(description="Finish an upload once every part is stored: verifies it and starts processing. "
                          "A second call answers ALREADY_COMPLETED with the same media.",
              on_error=_already_completed)
    async def complete_upload(self, info: Ctx, input: UploadCompleteInput) -> UploadCompletePayload:
        ctx = info.context
        focal = (input.focal_point.x, input.focal_point.y) if input.focal_point else None
        obj = await media.do_complete_upload(ctx.tao, actor(info), str(input.upload_id), input.share_location,
                                             focal, services=ctx.media)
        return UploadCompletePayload(media=Media.from_record(obj))
