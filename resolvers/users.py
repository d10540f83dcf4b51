"""Profiles: reading users (through privacy) and `do_update_profile`.

Invariant: the username in a USER object is always the one it holds the `username` key claim
for; a rename claims the new name first, then writes the object, then releases the old name,
so at no point can two accounts hold one name (a crash in between leaves the old name claimed
by its owner, which is safe).
"""

from __future__ import annotations

import enum
import re
import time
import unicodedata
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.accounts import normalize_username, validate_full_name, validate_username
from resolvers.actor import acting_as
from resolvers.dormant import net_counts
from resolvers.errors import UnavailableError, UserError
from resolvers.notifications import causes
from resolvers.notifications.model import NotificationType
from resolvers.posts import SYNC_AUTHOR_EDGES_JOB
from resolvers.records import User, record_of
from resolvers.search.indexer import index_jobs
from resolvers.text_rules import is_blank, name_refused, text_has_controls
from resolvers.throttle import wait_text
from resolvers.usernames import (
    CHECK_JOB,
    CLAIM_CHECK_MS,
    HOLD_JOB,
    SKELETON_KEYS,
    USERNAME_KEYS,
    claim_skeleton,
    confirm_claims,
    holds_of,
    release_if_unused,
    release_skeleton,
    similar_error_message,
    skeleton,
)
from tao import Tao, VersionConflictError

if TYPE_CHECKING:
    from resolvers.context import RequestContext

RENAME_TRIES = 20  # compare-and-set attempts of a rename against other writes of the profile
APPROVE_PENDING_JOB = "follows.approve_pending_requests"  # going public accepts the pending requests
BIO_MAX = 150
WEBSITE_MAX = 200
WEBSITE_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class ProfileErrorCode(enum.Enum):
    USERNAME_INVALID = "USERNAME_INVALID"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    FULL_NAME_INVALID = "FULL_NAME_INVALID"
    BIO_TOO_LONG = "BIO_TOO_LONG"
    BIO_INVALID = "BIO_INVALID"  # control characters, or only invisible ones
    WEBSITE_INVALID = "WEBSITE_INVALID"
    PROFILE_PICTURE_INVALID = "PROFILE_PICTURE_INVALID"
    USERNAME_CHANGE_LIMIT = "USERNAME_CHANGE_LIMIT"  # auth.username_changes_per_hold names held already


def validate_bio(bio: str) -> str:
    """A bio is free text (`resolvers.text_rules`, as captions and comments): line breaks and
    tabs are fine, other control characters are not, nor text that shows as nothing (only
    spaces and invisible characters; an empty bio removes it). Before the sixteenth session a
    bio took a terminal escape, a bell or a lone zero-width space."""
    bio = bio.strip()
    if len(bio) > BIO_MAX:
        raise UserError(ProfileErrorCode.BIO_TOO_LONG, f"A bio is at most {BIO_MAX} characters.", "bio")
    if text_has_controls(bio) or (bio and is_blank(bio)):
        raise UserError(ProfileErrorCode.BIO_INVALID,
                        "A bio cannot hold control characters (line breaks and tabs are fine) or be only "
                        "invisible characters: remove them (an empty bio removes it).", "bio")
    return bio


async def get_user(ctx: RequestContext, user_id: int) -> User | None:
    """The user, or None if missing or hidden from the viewer."""
    if await privacy.user_visibility(ctx, user_id) == privacy.Visibility.HIDDEN:
        return None
    return await ctx.loaders.object_by_id.load(user_id)


async def get_user_by_username(ctx: RequestContext, username: str) -> User | None:
    if not 1 <= len(username) <= 30:
        return None  # cannot be a username; the store's key check would refuse it
    user_id = await ctx.loaders.user_id_by_username.load(normalize_username(username))
    return None if user_id is None else await get_user(ctx, user_id)


async def follower_count(ctx: RequestContext, user_id: int) -> int:
    """The followers, less accounts pending deletion (hidden from `followers`: resolvers.dormant)."""
    return await _net_count(ctx, user_id, "FOLLOWED_BY")


async def following_count(ctx: RequestContext, user_id: int) -> int:
    """The accounts followed, less those pending deletion (hidden from `following`)."""
    return await _net_count(ctx, user_id, "FOLLOWS")


async def _net_count(ctx: RequestContext, user_id: int, atype: str) -> int:
    [n] = await net_counts(ctx, [(user_id, atype)])
    if isinstance(n, BaseException):
        raise n
    return n


async def post_count(ctx: RequestContext, user_id: int) -> int:
    return await ctx.loaders.assoc_count_by_key.load((user_id, "AUTHORED"))


async def do_update_profile(
    tao: Tao,
    actor_id: int,
    *,
    username: str | None = None,
    full_name: str | None = None,
    bio: str | None = None,
    website: str | None = None,
    is_private: bool | None = None,
    profile_picture_id: int | None = None,
) -> User:
    """Change the viewer's profile; only the given fields change (`profile_picture_id=0` removes
    the picture). Returns the updated user."""
    ctx = acting_as(tao, actor_id)
    viewer = actor_id
    current = await ctx.loaders.object_by_id.load(viewer)
    assert isinstance(current, User)  # authentication checked the account exists
    changes: dict[str, Any] = {}
    if full_name is not None:
        try:
            changes["full_name"] = validate_full_name(full_name)
        except UserError as e:
            raise UserError(ProfileErrorCode.FULL_NAME_INVALID, e.message, "fullName") from None
    if bio is not None:
        changes["bio"] = validate_bio(bio)
    if website is not None:
        website = website.strip()
        if website and (len(website) > WEBSITE_MAX or not WEBSITE_RE.match(website) or name_refused(website)
                        or any(unicodedata.category(c) == "Cf" for c in website)):
            raise UserError(
                ProfileErrorCode.WEBSITE_INVALID,
                f"A website is an http:// or https:// address of at most {WEBSITE_MAX} characters, without "
                "control or invisible characters (or empty to remove it).",
                "website",
            )
        changes["website"] = website
    if is_private is not None:
        changes["is_private"] = is_private
    if profile_picture_id is not None:
        from resolvers.media import check_profile_picture  # media builds on privacy, as users do

        if profile_picture_id and not await check_profile_picture(ctx, viewer, profile_picture_id):
            raise UserError(ProfileErrorCode.PROFILE_PICTURE_INVALID,
                            "A profile picture must be a photo you uploaded and completed (`completeUpload`).",
                            "profilePictureId")
        changes["profile_picture_id"] = profile_picture_id or None
    jobs: list[tuple[str, dict]] = []
    if is_private is False and current.is_private:
        # Going public accepts every pending follow request (as Instagram does), durably.
        jobs.append((APPROVE_PENDING_JOB, {"user_id": viewer}))
    if is_private is not None and is_private != current.is_private:
        # Which posts are public changed: their hashtags' and locations' public lists follow.
        jobs.append((SYNC_AUTHOR_EDGES_JOB, {"author": viewer}))
    if username is not None and username != current.username:
        try:
            validate_username(username)
        except UserError as e:
            raise UserError(ProfileErrorCode.USERNAME_INVALID, e.message, "username") from None
    else:
        username = None
    if username is None and not changes:
        return current
    if {"username", "full_name", "is_private"} & (changes.keys() | ({"username"} if username else set())):
        # Search: the profile's document; with a privacy change, every post of theirs too
        # (a private account's posts leave the index, a public one's come back).
        private_changed = is_private is not None and is_private != current.is_private
        jobs += index_jobs(tao, [("user", viewer)], authors=[viewer] if private_changed else ())
    if username is None:
        return record_of(await tao.obj_update(viewer, changes, jobs=jobs or None))
    return await _rename(tao, viewer, username, changes, jobs)


def _check_change_limit(tao: Tao, holds: dict[str, dict], new_key: str, old_key: str) -> None:
    """Each rename holds a name for the hold's length: without a bound one account could hold
    any number of names by renaming again and again (squatting them for two weeks at a time).
    As Instagram allows two changes in 14 days, a rename that would hold one more name while
    `auth.username_changes_per_hold` are held is refused; taking a held name back is always
    allowed (it holds the name left instead). Read and written with the rename's compare-and-set,
    so renames sent at once cannot pass it together."""
    auth = tao.settings.auth
    now = int(time.time() * 1000)
    active = sorted(int(h["until"]) for h in holds.values() if int(h["until"]) > now)
    if new_key == old_key or new_key in holds or len(active) < auth.username_changes_per_hold:
        return
    wait = (active[0] - now) / 1000
    days = auth.username_hold_seconds / 86_400
    raise UserError(ProfileErrorCode.USERNAME_CHANGE_LIMIT,
                    f"You can change your username {auth.username_changes_per_hold} times in {days:g} days: try "
                    f"again in {wait_text(wait)} (or take back a name you left).", "username",
                    retry_after=round(wait, 3))


async def _take_back_rename(tao: Tao, viewer: int, username: str, old: str, *, changes: dict[str, Any],
                            before: dict[str, Any], jobs: list, notice: tuple[int, int]) -> None:
    """A rename whose new name was lost to another account between its claim and its write:
    the account takes its old name back, which it still claims (held, or not yet released), so the
    name is borne only by the account that claims it. Before the seventeenth session both bore it
    (logged). A compare-and-set, again from what a racing write of the profile wrote. The request's
    other changes are taken back with it (each that still holds the value written: a later write's
    stays), its USERNAME_CHANGED notice is withdrawn, and the jobs that bring derived state in
    line with the profile (search, a privacy change's post edges) are committed again. The release
    fence (`usernames.release_if_unused`) keeps a rename stalled past its claim check from landing
    at all; this is for a claim lost otherwise."""
    old_key = normalize_username(old)
    for _ in range(RENAME_TRIES):
        obj = (await tao.obj_get([viewer]))[viewer]
        if normalize_username(str(obj.data.get("username", ""))) != normalize_username(username):
            return  # renamed again meanwhile: that rename's name is the account's
        holds = holds_of(obj.data)
        hold = holds.pop(old_key, None)
        restore = {k: before.get(k) for k, v in changes.items() if obj.data.get(k) == v}
        redo = [j for j in jobs if j[0] != APPROVE_PENDING_JOB]
        # The notice's record job is deleted below (unrun, it never runs); the retraction, due a
        # grace later, withdraws it if a worker recorded it first (a retraction before the record
        # would find nothing and the record, whose cause is the account, would then stand).
        grace = tao.settings.notifications.record_grace_ms
        retract = [(handler, payload, grace) for handler, payload, *_ in
                   causes.account_notice(NotificationType.USERNAME_CHANGED, viewer, notice[0], undo=True)]
        try:
            await tao.obj_update(viewer, {**restore, "username": old, "username_holds": holds or None},
                                 jobs=redo + retract, version=obj.version)
        except VersionConflictError:
            continue
        await tao.outbox.delete(tao.shard(viewer), notice[1])
        if hold is not None and hold.get("job"):
            await tao.outbox.delete(tao.shard(viewer), int(hold["job"]))  # its old name is borne again
        await release_if_unused(tao, viewer, username)  # the lost name's skeleton, if this account has it
        return
    raise UnavailableError("Your profile kept changing while it was being renamed: try again.")


async def _rename(tao: Tao, viewer: int, username: str, changes: dict[str, Any], jobs: list) -> User:
    """Write the profile `changes` with the new `username`. The write is a compare-and-set of the
    USER read here, retried on a conflict, so of two renames at once the second renames from the
    first's name (held in turn) instead of both releasing the first name: before the sixteenth
    session the loser's name stayed claimed for good by nobody. The old name is held
    (`resolvers.usernames`) and released by a job at the hold's end (here only with no hold,
    through `release_if_unused`, which releases nothing the account bears or holds); a claim
    whose rename does not complete is released by the job committed before it was claimed."""
    hold_ms = tao.settings.auth.username_hold_seconds * 1000
    new_key = normalize_username(username)
    claimed = False  # by this request, in an earlier try
    for _ in range(RENAME_TRIES):
        obj = (await tao.obj_get([viewer]))[viewer]
        current = record_of(obj)
        assert isinstance(current, User)
        old_key = normalize_username(current.username)
        holds = holds_of(obj.data)
        try:
            _check_change_limit(tao, holds, new_key, old_key)
        except UserError:
            if claimed:  # a rename that won a try before this one used the last change
                await release_if_unused(tao, viewer, username)
            raise
        if new_key != old_key:
            if new_key not in holds:  # a new claim: checked later, whatever becomes of this request
                # ...unless the name is visibly another's: each refused rename queued a job.
                if (await tao.key_get_many(USERNAME_KEYS, [new_key])).get(new_key) not in (None, viewer):
                    raise UserError(ProfileErrorCode.USERNAME_TAKEN, f"The username {username!r} is not "
                                    "available; pick another.", "username")
                skel = skeleton(username)
                if (await tao.key_get_many(SKELETON_KEYS, [skel])).get(skel) not in (None, viewer):
                    raise UserError(ProfileErrorCode.USERNAME_TAKEN, similar_error_message(username), "username")
                await tao.enqueue(viewer, CHECK_JOB, {"user": viewer, "name": username}, delay_ms=CLAIM_CHECK_MS)
            if not await tao.key_claim(USERNAME_KEYS, new_key, viewer):
                raise UserError(ProfileErrorCode.USERNAME_TAKEN, f"The username {username!r} is not available; "
                                "pick another.", "username")
            claimed = new_key not in holds
        # A look-alike of another account's name is taken too (a case-only rename may make one).
        if skeleton(username) != skeleton(current.username) and not await claim_skeleton(tao, username, viewer):
            if new_key != old_key and new_key not in holds:
                await release_if_unused(tao, viewer, username)
            raise UserError(ProfileErrorCode.USERNAME_TAKEN, similar_error_message(username), "username")
        taken_back = holds.pop(new_key, None)
        hold_job = None
        if new_key != old_key:
            # The hold's end is queued before the write (a no-op if the write never lands) and
            # its id kept on the hold, so the account's purge can delete it.
            until = int(time.time() * 1000) + hold_ms
            hold_job = await tao.enqueue(viewer, HOLD_JOB, {"user": viewer, "name": current.username, "until": until},
                                         delay_ms=hold_ms)
            holds[old_key] = {"name": current.username, "until": until, "job": hold_job}
        # The account hears of its new name (whoever renamed it), with the write.
        notice_at = int(time.time() * 1000)
        # Under an id of ours, so a take-back can delete the row before a worker records it.
        notice_id = tao.ids.next_id(tao.shard(viewer))
        notice = [(handler, payload, 0, notice_id) for handler, payload, *_ in
                  causes.account_notice(NotificationType.USERNAME_CHANGED, viewer, notice_at)]
        try:
            updated = await tao.obj_update(viewer, {**changes, "username": username, "username_holds": holds or None},
                                           jobs=jobs + notice, version=obj.version)
        except VersionConflictError:
            if hold_job is not None:
                await tao.outbox.delete(tao.shard(viewer), hold_job)
            continue  # another write of the profile (another rename?): rename from what it wrote
        if taken_back is not None and taken_back.get("job"):
            await tao.outbox.delete(tao.shard(viewer), int(taken_back["job"]))  # its hold is over
        if not await confirm_claims(tao, viewer, username):
            await _take_back_rename(tao, viewer, username, current.username, changes=changes,
                                    before={k: obj.data.get(k) for k in changes}, jobs=jobs,
                                    notice=(notice_at, notice_id))
            raise UserError(ProfileErrorCode.USERNAME_TAKEN, f"The username {username!r} is not available; "
                            "pick another.", "username")
        if new_key == old_key:
            # A case-only rename ("adai" -> "adaI") keeps the name; a skeleton it no longer
            # bears is released now unless a held name still has it.
            kept = {skeleton(username), *(skeleton(str(h["name"])) for h in holds.values())}
            if skeleton(current.username) not in kept:
                await release_skeleton(tao, current.username, viewer)
        elif hold_ms == 0:  # no hold: the old name is free now (its job will find nothing to do)
            await release_if_unused(tao, viewer, current.username)
        return record_of(updated)
    raise UnavailableError("Your profile kept changing while it was being renamed: try again.")
