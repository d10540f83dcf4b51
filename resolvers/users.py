"""Profiles: reading users (through privacy) and `do_update_profile`.

Invariant: the username in a USER object is always the one it holds the `username` key claim
for; a rename claims the new name first, then writes the object, then releases the old name,
so at no point can two accounts hold one name (a crash in between leaves the old name claimed
by its owner, which is safe).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.accounts import normalize_username, validate_full_name, validate_username
from resolvers.actor import acting_as
from resolvers.errors import UserError
from resolvers.posts import SYNC_AUTHOR_EDGES_JOB
from resolvers.records import User, record_of
from resolvers.search.indexer import index_jobs
from resolvers.text_rules import is_blank, name_refused, text_has_controls
from resolvers.usernames import claim_skeleton, release_skeleton, similar_error_message, skeleton
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

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
    return await ctx.loaders.assoc_count_by_key.load((user_id, "FOLLOWED_BY"))


async def following_count(ctx: RequestContext, user_id: int) -> int:
    return await ctx.loaders.assoc_count_by_key.load((user_id, "FOLLOWS"))


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
        jobs.append(("follows.approve_pending_requests", {"user_id": viewer}))
    if is_private is not None and is_private != current.is_private:
        # Which posts are public changed: their hashtags' and locations' public lists follow.
        jobs.append((SYNC_AUTHOR_EDGES_JOB, {"author": viewer}))
    old_key = normalize_username(current.username)
    new_key, new_skeleton = None, False
    if username is not None and username != current.username:
        try:
            validate_username(username)
        except UserError as e:
            raise UserError(ProfileErrorCode.USERNAME_INVALID, e.message, "username") from None
        new_key = normalize_username(username)
        if new_key != old_key and not await tao.key_claim("username", new_key, viewer):
            raise UserError(ProfileErrorCode.USERNAME_TAKEN, f"The username {username!r} is taken; pick another.",
                            "username")
        # A look-alike of another account's name is taken too (a case-only rename may make one).
        new_skeleton = skeleton(username) != skeleton(current.username)
        if new_skeleton and not await claim_skeleton(tao, username, viewer):
            if new_key != old_key:
                await tao.key_release("username", new_key, viewer)
            raise UserError(ProfileErrorCode.USERNAME_TAKEN, similar_error_message(username), "username")
        changes["username"] = username
    if not changes:
        return current
    if {"username", "full_name", "is_private"} & changes.keys():
        # Search: the profile's document; with a privacy change, every post of theirs too
        # (a private account's posts leave the index, a public one's come back).
        private_changed = is_private is not None and is_private != current.is_private
        jobs += index_jobs(tao, [("user", viewer)], authors=[viewer] if private_changed else ())
    updated = await tao.obj_update(viewer, changes, jobs=jobs or None)
    if new_key is not None and new_key != old_key:
        await tao.key_release("username", old_key, viewer)
    if new_skeleton:
        await release_skeleton(tao, current.username, viewer)
    return record_of(updated)
