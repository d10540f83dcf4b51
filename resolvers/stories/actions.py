"""Posting and deleting stories, and the jobs that expire, archive and purge them.

Posting costs O(1) writes whatever the author's audience (the tray is pulled at read time,
docs/stories.md): the STORY object, its STORY_LIVE edge committed with the delayed expiry job,
and its media and mention edges. Nothing is written per follower.

Invariants:
- Visibility never waits for a job: readers decide `now < posted_at + 24 h` on the store's clock.
  The expiry job (`stories.expire`, delayed 24 h, committed with the STORY_LIVE edge) only moves
  the story out of STORY_LIVE into STORY_ARCHIVE (`assoc_change_type`: same time and data) and
  commits the purge job (`stories.purge`, delayed `stories.archive_days`) with that move.
- The purge deletes the story and its media unless the story is in a highlight; removing it from
  its last highlight after its archive time commits a purge again.
- Every job is idempotent: a story already moved, deleted or highlighted is left as it is.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from resolvers import privacy
from resolvers.actor import acting_as
from resolvers.errors import UserError
from resolvers.hashtags import is_hashtag_name, normalize_hashtag
from resolvers.job_context import JobContext
from resolvers.notifications import causes
from resolvers.posts import claim_media, mention_ids, release_media
from resolvers.records import Media, MediaKind, MediaStatus, User, record_of
from resolvers.stories.model import LIFETIME_MS, LINK_MAX, Audience, Story, StoryErrorCode, story_edge_data
from resolvers.text_rules import name_refused
from tao import JobNotDueError, Tao, TaoError

EXPIRE_JOB = "stories.expire"
PURGE_JOB = "stories.purge"
CLEANUP_JOB = "stories.cleanup"
HINT_JOB = "stories.live_hint"
DAY_MS = 24 * 3600 * 1000
# Jobs come due on the store's clock (the outbox's schedule uses it), so an expiry or purge job
# runs when it is due; one run early anyway (`run_jobs_until_idle(include_delayed=True)` runs
# delayed jobs at once) raises `JobNotDueError` and the outbox puts it back for its time.
_LINK = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)


def _audience(value: str) -> Audience:
    try:
        return Audience(value.lower())
    except ValueError:
        raise UserError(StoryErrorCode.AUDIENCE_INVALID,
                        "`audience` must be FOLLOWERS or CLOSE_FRIENDS.", "audience") from None


async def _check_media(tao: Tao, actor: int, media_id: int) -> Media:
    ctx = acting_as(tao, actor)
    obj, mine, used = (await ctx.loaders.object_by_id.load(media_id),
                       await ctx.loaders.assoc_by_key.load((actor, "UPLOADED", media_id)),
                       await ctx.loaders.assoc_count_by_key.load((media_id, "MEDIA_OF")))
    if not isinstance(obj, Media) or mine is None or used or obj.kind is MediaKind.AUDIO or obj.dm:
        raise UserError(StoryErrorCode.MEDIA_INVALID,
                        "`mediaId` must be a photo or video upload of yours not used in a post, a story or a "
                        "message: upload it first.", "mediaId")
    if obj.status is not MediaStatus.READY:
        raise UserError(StoryErrorCode.MEDIA_NOT_READY,
                        "The upload is not ready yet: wait until its status is READY (or upload it again if it "
                        "FAILED), then post the story.", "mediaId")
    return obj


def _hashtag(tag: str | None) -> str | None:
    if tag is None or tag == "":
        return None
    name = normalize_hashtag(tag).removeprefix("#")  # as a caption's tags are (NFKC case fold, `İ` as `i`)
    if not is_hashtag_name(name):
        raise UserError(StoryErrorCode.HASHTAG_INVALID,
                        "A hashtag sticker is one tag of letters, digits or underscores (at most 100).", "hashtag")
    return name


def _link(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    if len(url) > LINK_MAX or not _LINK.fullmatch(url) or not _plain_host(url):
        raise UserError(StoryErrorCode.LINK_INVALID,
                        f"A link sticker is an http(s) URL of at most {LINK_MAX} characters, to a host without a "
                        "user name, and without control characters or text-direction overrides.", "link")
    return url


def _plain_host(url: str) -> bool:
    """Whether the link goes where it reads: no user name before the host
    ("https://instagram.com@evil.example" goes to evil.example), a host, and no control
    character or text-direction override (resolvers.text_rules: U+202E reverses what follows).
    Any non-space was taken before the fifteenth session's counts probe."""
    if name_refused(url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port out of range
    except ValueError:  # that, or an unclosed IPv6 bracket
        return False
    return bool(parts.hostname) and "@" not in parts.netloc


async def do_create_story(tao: Tao, actor_id: int, media_id: int, audience: str = "followers", *,
                          mentions: list[str] | None = None, hashtag: str | None = None,
                          link: str | None = None) -> Story:
    """Post a story (its media must be the actor's, unused, and READY). Everything is checked
    before the first write: a refused story changes nothing."""
    ctx = acting_as(tao, actor_id)
    aud = _audience(audience)
    media = await _check_media(tao, actor_id, media_id)
    tag, url = _hashtag(hashtag), _link(link)
    mentioned = await mention_ids(ctx, [m.removeprefix("@") for m in mentions or []], "mentions",
                                  StoryErrorCode.TOO_MANY_MENTIONS)
    now = tao.clock.now_ms()
    # The expiry job's id is kept on the story, so an account purge can take the job back.
    expire_job = tao.ids.next_id(tao.shard(actor_id))
    data = {"author": actor_id, "media": media_id, "kind": "video" if media.kind is MediaKind.VIDEO else "photo",
            "audience": aud.value, "posted_at": now, "mentions": mentioned, "hashtag": tag, "link": url,
            "expire_job": expire_job}
    story_id = await tao.obj_add("STORY", data, owner=actor_id)
    # A media is in one post or story, however many shares race for it (resolvers.posts).
    if not await claim_media(tao, story_id, [media_id]):
        await tao.obj_delete(story_id)  # never listed: nothing else of it exists
        raise UserError(StoryErrorCode.MEDIA_INVALID,
                        "`mediaId` is already in a post or another story (was this shared twice?).", "mediaId")
    story = record_of((await tao.obj_get([story_id]))[story_id])
    # The live edge commits with its expiry job (a listed story always expires) and with the job
    # that sets the tray's live hint, done here at once and then deleted (it is the retry if
    # Redis does not answer now).
    hint_job = tao.ids.next_id(tao.shard(actor_id)) if tao.sketches.available else None
    jobs: list[tuple] = [(EXPIRE_JOB, {"story": story_id}, LIFETIME_MS, expire_job), *_mention_jobs(story)]
    if hint_job is not None:
        jobs.append((HINT_JOB, {"author": actor_id, "posted_at": now}, 0, hint_job))
    await tao.assoc_add(actor_id, "STORY_LIVE", story_id, time=now, data=story_edge_data(story), jobs=jobs)
    await tao.assoc_add_many([(story_id, "HAS_MEDIA", media_id, now)]
                             + [(story_id, "MENTIONS", u, now) for u in mentioned])
    if hint_job is not None:
        try:
            await set_live_hint(tao, actor_id, now)
        except TaoError:
            pass  # the job retries it
        else:
            await tao.outbox.delete(tao.shard(actor_id), hint_job)
    return story


def viewers_sketch_key(story_id: int) -> str:
    """The Redis keys of a story's viewers (resolvers.stories.views)."""
    return f"story:{story_id}:viewers"


def live_hint_key(author: int) -> str:
    return f"live:{author}"


async def set_live_hint(tao: Tao, author: int, posted_at: int) -> None:
    """Tell trays that `author` has a live story until posted_at + 24 h (a newer story moves it on)."""
    remaining = posted_at + LIFETIME_MS - tao.clock.now_ms()
    if remaining > 0:
        await tao.sketches.hint_set(live_hint_key(author), posted_at, remaining)


async def hint_job(job: JobContext, payload: dict) -> None:
    """`stories.live_hint`: the retry of `set_live_hint` (idempotent: the newest story wins)."""
    tao = job.tao
    author = int(payload["author"])
    newest = await tao.assoc_range(author, "STORY_LIVE", 0, 1)
    if newest:
        await set_live_hint(tao, author, max(newest[0].time, int(payload["posted_at"])))


def _mention_jobs(story: Story) -> list[tuple[str, dict]]:
    return causes.story_mentions(story.author, story.id, list(story.mentions), story.posted_at)


async def own_story(tao: Tao, actor_id: int, story_id: int, field: str = "storyId") -> Story:
    """The actor's own story (live or archived), else NOT_FOUND (another's story answers as a missing one)."""
    ctx = acting_as(tao, actor_id)
    story = await privacy.load_visible_object(ctx, story_id)
    if not isinstance(story, Story) or story.author != actor_id:
        from resolvers.stories.model import story_not_found
        raise story_not_found(field)
    return story


async def do_delete_story(tao: Tao, actor_id: int, story_id: int) -> None:
    story = await own_story(tao, actor_id, story_id)
    await tao.obj_delete(story.id, jobs=[(CLEANUP_JOB, {"story": story.id, "author": story.author,
                                                        "media": story.media})])
    await cleanup(tao, story.id, story.author)


async def cleanup(tao: Tao, story_id: int, author: int, media_id: int | None = None, files: Any = None) -> None:
    """Everything a deleted story leaves: its lists' edges, its place in highlights, and (from
    the cleanup job, which has the object store as `files`) its media and their files, unless
    that media is its author's profile picture (then the picture stays: found by probe4).
    Idempotent (the cleanup job runs it again after a crash)."""
    from resolvers.stories.highlights import drop_from_highlights

    for atype in ("STORY_LIVE", "STORY_ARCHIVE"):
        await tao.assoc_delete(author, atype, story_id)
    await drop_from_highlights(tao, author, story_id)
    for atype in ("HAS_MEDIA", "MENTIONS", "STORY_VIEWER"):
        while page := await tao.assoc_range(story_id, atype, 0, 200):
            for a in page:
                await tao.assoc_delete(story_id, atype, a.id2)
                if atype == "HAS_MEDIA":
                    await release_media(tao, story_id, [a.id2])
    try:
        await tao.sketches.delete(viewers_sketch_key(story_id))  # its HyperLogLog and recent viewers
    except TaoError:
        pass  # they expire with their TTL
    if media_id is not None:
        found = await tao.obj_get([media_id, author])
        media = record_of(found[media_id]) if media_id in found else None
        owner = record_of(found[author]) if author in found else None
        if isinstance(owner, User) and owner.profile_picture_id == media_id:
            return  # also the author's profile picture (any image of theirs may be): it stays theirs
        if isinstance(media, Media) and files is not None:
            keys = [str(v["key"]) for v in media.variants if v.get("key")]
            keys += [media.media_key] if media.media_key else []
            if keys:
                await files.delete(keys)
        await tao.assoc_delete(author, "UPLOADED", media_id)
        await tao.obj_delete(media_id)


async def _job_story(tao: Tao, payload: dict) -> Story | None:
    """The story a job names, or None once it is gone (a job that finds nothing is done)."""
    story_id = int(payload["story"])
    obj = (await tao.obj_get([story_id])).get(story_id)
    story = record_of(obj) if obj is not None else None
    return story if isinstance(story, Story) else None


async def expire_job(job: JobContext, payload: dict) -> None:
    """`stories.expire`: out of the live list, into the archive (with the purge job)."""
    tao = job.tao
    story = await _job_story(tao, payload)
    if story is None:
        return
    if story.live_at(tao.clock.now_ms()):
        raise JobNotDueError(story.expires_at)  # run early (a drain of delayed jobs): back to its time
    await expire(tao, story, job.settings.stories.archive_days)


async def expire(tao: Tao, story: Story, archive_days: float) -> bool:
    """Move one expired story to its author's archive; returns whether this call moved it."""
    if not await tao.assoc_get(story.author, "STORY_LIVE", [story.id]):
        return False
    keep_ms = int(archive_days * DAY_MS)
    # The purge job commits with the story's note of its id (an account purge takes it back);
    # a crash before the move re-runs this job, whose next purge job replaces the note.
    purge_job = tao.ids.next_id(tao.shard(story.author))
    await tao.obj_update(story.id, {"purge_job": purge_job},
                         jobs=[(PURGE_JOB, {"story": story.id}, keep_ms, purge_job)])
    await tao.assoc_change_type(story.author, "STORY_LIVE", story.id, "STORY_ARCHIVE")
    return True


def purge_due(story: Story, archive_days: float) -> int:
    """When an archived story's time is up (ms on the store's clock)."""
    return story.expires_at + int(archive_days * DAY_MS)


async def purge_job(job: JobContext, payload: dict) -> None:
    """`stories.purge`: an archived story past its time goes with its media, unless highlighted."""
    tao = job.tao
    story = await _job_story(tao, payload)
    if story is None:
        return
    days = job.settings.stories.archive_days
    due = purge_due(story, days)
    if tao.clock.now_ms() < due:
        raise JobNotDueError(due)
    await purge_if_due(tao, story, days)


async def purge_if_due(tao: Tao, story: Story, archive_days: float) -> bool:
    if await tao.assoc_count(story.id, "IN_HIGHLIGHT"):
        return False  # kept while highlighted; removal from the last highlight asks again
    if tao.clock.now_ms() < purge_due(story, archive_days):
        return False
    if not await tao.assoc_get(story.author, "STORY_ARCHIVE", [story.id]):
        return False  # still live-listed (its expiry job has not run): that job commits a purge
    await tao.obj_delete(story.id, jobs=[(CLEANUP_JOB, {"story": story.id, "author": story.author,
                                                        "media": story.media})])
    await cleanup(tao, story.id, story.author)
    return True


async def cleanup_job(job: JobContext, payload: dict) -> None:
    tao = job.tao
    story_id = int(payload["story"])
    if (await tao.obj_get([story_id])).get(story_id) is not None:
        return  # not deleted: a stale job
    media = payload.get("media")
    await cleanup(tao, story_id, int(payload["author"]), int(media) if media else None,
                  job.media.store if job.media is not None else None)
