"""Accounts and sessions: sign-up, log-in, log-out, and turning a bearer token into a viewer.

Invariants:
- A username is unique case-insensitively: it is claimed with `key_claim("username", lower)`
  before the account counts as created; a lost race deletes the new user object. Names that
  look alike ("adaI" and "adal") are one name: the account claims its confusable skeleton too
  (`resolvers.usernames`).
- Passwords are hashed and checked with argon2id in `resolvers.passwords`' bounded pool, never
  on the event loop; log-in spends the same work (one check) for an unknown username, so
  response time does not reveal which usernames exist. Failed log-ins are throttled per
  username and per client address (`LoginThrottle`); a refused attempt checks no password.
- A session token is `tgs_<session id>.<user id>_<secret>`: the id finds the SESSION object (on
  the user's shard, so a session lives and dies with its account's shard), the user id lets the
  session and its user be read together (one round of cached reads, not two; a session whose
  user is not the token's is refused), and only the secret's sha256 is stored, so a leaked
  database or cache cannot be replayed. Tokens issued before the user id was in them
  (`tgs_<session id>_<secret>`) still work. Tokens expire after `AuthSettings.session_ttl_seconds`.
- A session records its device (named from the User-Agent, `resolvers.devices`), the client
  address that opened it, and when it was last used, rewritten at most once per
  `AuthSettings.session_touch_seconds` by `authenticate` (not a write per request). A log-in
  from a device the account never used notifies it (`NEW_DEVICE_LOGIN`, in the session's write).
- With two-factor log-in on (`resolvers.two_factor`), a correct password opens no session: it
  answers a short-lived challenge, and `completeLogIn` with a code opens the session.
- Changing the password ends every other session of the account, and deletes a ready data
  export's archive (its signed URL stops working; so does ending other sessions).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config import AuthSettings
from resolvers.actor import acting_as
from resolvers.devices import Device, device_of, remember_device
from resolvers.errors import AuthenticationError, UserError
from resolvers.ids import check_object_id
from resolvers.job_context import JobContext
from resolvers.passwords import hash_password, strength_problem, verify_password
from resolvers.records import AuthSession, User, record_of
from resolvers.search.indexer import index_jobs
from resolvers.text_rules import is_blank, name_refused
from resolvers.throttle import LoginThrottle
from resolvers.usernames import SKELETON_KEYS, USERNAME_KEYS, claim_skeleton, similar_error_message, skeleton
from tao import ObjectNotFoundError, Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

TOKEN_PREFIX = "tgs_"
END_SESSION_JOB = "accounts.end_session"
# `\Z`, not `$`: `$` also matches before a final newline, and "ada\n" was a second account that
# every client showed as "ada" (found by probe3).
USERNAME_RE = re.compile(r"^(?!.*\.\.)(?!\.)(?!.*\.\Z)[A-Za-z0-9._]{1,30}\Z")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
FULL_NAME_MAX = 64


class AccountErrorCode(enum.Enum):
    USERNAME_INVALID = "USERNAME_INVALID"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    PASSWORD_INVALID = "PASSWORD_INVALID"
    PASSWORD_TOO_WEAK = "PASSWORD_TOO_WEAK"  # one of the most common, the username, one character repeated
    PASSWORD_UNCHANGED = "PASSWORD_UNCHANGED"  # changePassword: the new one is the current one
    FULL_NAME_INVALID = "FULL_NAME_INVALID"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    # two-factor log-in (resolvers.two_factor)
    INVALID_CODE = "INVALID_CODE"
    CHALLENGE_INVALID = "CHALLENGE_INVALID"
    TWO_FACTOR_ALREADY_ENABLED = "TWO_FACTOR_ALREADY_ENABLED"
    TWO_FACTOR_NOT_STARTED = "TWO_FACTOR_NOT_STARTED"
    TWO_FACTOR_NOT_ENABLED = "TWO_FACTOR_NOT_ENABLED"


@dataclass(frozen=True, slots=True)
class Client:
    """Who is opening a session: the client's address and User-Agent (from the transport)."""

    address: str = "anonymous"
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class LogInResult:
    """A log-in's answer: a session `token`, or (two-factor on) a `challenge` for `completeLogIn`."""

    user: User
    token: str | None = None
    challenge: str | None = None
    challenge_expires_at: int | None = None


def normalize_username(username: str) -> str:
    return username.lower()


def validate_username(username: str, field: str = "username") -> str:
    if not USERNAME_RE.match(username):
        raise UserError(
            AccountErrorCode.USERNAME_INVALID,
            "A username is 1 to 30 letters, digits, periods or underscores, "
            "with no period first, last or twice in a row.",
            field,
        )
    return username


def validate_full_name(full_name: str, field: str = "fullName") -> str:
    full_name = full_name.strip()
    # What a name must not hold: resolvers.text_rules (only C0 controls were refused before probe3).
    # Empty is fine (no name shown); made only of invisible characters it showed as nothing.
    if len(full_name) > FULL_NAME_MAX or name_refused(full_name) or (full_name and is_blank(full_name)):
        raise UserError(
            AccountErrorCode.FULL_NAME_INVALID,
            f"A full name is at most {FULL_NAME_MAX} characters, without control characters, line "
            "separators or text-direction overrides, and not only invisible characters.",
            field,
        )
    return full_name


async def _validate_password(auth: AuthSettings, password: str, username: str, full_name: str | None,
                             field: str = "password") -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise UserError(
            AccountErrorCode.PASSWORD_INVALID,
            f"A password is {PASSWORD_MIN} to {PASSWORD_MAX} characters long.",
            field,
        )
    # No e-mail address is kept yet: the username and the full name are the account's words.
    why = await strength_problem(auth, password, username=username, full_name=full_name)
    if why is not None:
        raise UserError(AccountErrorCode.PASSWORD_TOO_WEAK, f"This password {why}, so it is easy to guess: choose "
                        "another (a few unrelated words make a strong one). Nothing was changed.", field)


def user_data(username: str, full_name: str, password_hash: str | None) -> dict:
    """A new USER's data (also for bulk loads, `resolvers.bulk`). No password hash: an account
    that cannot log in (every log-in answers INVALID_CREDENTIALS)."""
    return {"username": username, "full_name": full_name, "bio": "", "website": "",
            "is_private": False, "password_hash": password_hash}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def do_sign_up(tao: Tao, username: str, password: str, full_name: str,
                     client: Client = Client()) -> tuple[User, str]:
    """Create an account and a first session; returns (user, token)."""
    ctx = acting_as(tao, None)
    validate_username(username)
    await _validate_password(ctx.settings.auth, password, username, full_name)
    full_name = validate_full_name(full_name)
    key = normalize_username(username)
    taken = UserError(AccountErrorCode.USERNAME_TAKEN, f"The username {username!r} is taken; pick another.", "username")
    similar = UserError(AccountErrorCode.USERNAME_TAKEN, similar_error_message(username), "username")
    # The claim itself, not the loader: a name held after a rename resolves to nobody but is taken.
    if (await tao.key_get_many(USERNAME_KEYS, [key])).get(key) is not None:
        raise taken
    if (await tao.key_get_many(SKELETON_KEYS, [skeleton(username)])).get(skeleton(username)) is not None:
        raise similar
    password_hash = await hash_password(ctx.settings.auth, password)
    user_id = await tao.obj_add("USER", user_data(username, full_name, password_hash),
                                jobs=lambda new_id: index_jobs(tao, [("user", new_id)]))
    if not await tao.key_claim(USERNAME_KEYS, key, user_id):
        await tao.obj_delete(user_id)  # lost the race for the name: the account never existed
        raise taken
    if not await claim_skeleton(tao, username, user_id):  # a look-alike name won the race
        await tao.key_release(USERNAME_KEYS, key, user_id)
        await tao.obj_delete(user_id)
        raise similar
    device = await device_of(client.user_agent)
    await remember_device(tao, user_id, device)  # the account's first device: nothing to tell
    token = await create_session(tao, user_id, device, client.address)
    user = await ctx.loaders.object_by_id.load(user_id)
    assert isinstance(user, User)
    return user, token


def _too_many(what: str, wait: float) -> UserError:
    whose = "this account" if what == "username" else "your network address"
    return UserError(
        AccountErrorCode.TOO_MANY_ATTEMPTS,
        f"Too many failed log-ins for {whose}: try again in {int(wait // 60) + 1} minute(s).",
        None, retry_after=round(wait, 3),
    )


def throttle_key(who: User | str) -> str:
    """What the log-in throttle counts an account's failures under: the account's id once it is
    known (`#<id>`: a username cannot hold `#`), else the name typed at log-in. Keyed by the
    username, a stolen session renamed the account between rounds of password guesses (through
    `changePassword`, `deleteAccount`, ...) and each new name had a fresh budget."""
    return f"#{who.id}" if isinstance(who, User) else normalize_username(who)[:64]


async def take_attempt(throttle: LoginThrottle | None, who: User | str, address: str) -> None:
    """Count an attempt of the account (`throttle_key`) and the address before any secret is
    checked (it stays counted, as a failure, unless `attempt_succeeded` gives it back);
    TOO_MANY_ATTEMPTS, with nothing counted, while either is throttled."""
    if throttle is not None:
        what, wait = await throttle.attempt(throttle_key(who), address)
        if wait > 0:
            raise _too_many(what, wait)


async def attempt_succeeded(throttle: LoginThrottle | None, who: User | str, address: str) -> None:
    """The secret was right: the attempt `take_attempt` counted does not count."""
    if throttle is not None:
        await throttle.refund(throttle_key(who), address)


async def do_log_in(tao: Tao, username: str, password: str, *, throttle: LoginThrottle | None = None,
                    client: Client = Client()) -> LogInResult:
    """Check the credentials and open a session (with two-factor on: a challenge instead). With
    a `throttle`, failed attempts count against the account and the client's address."""
    ctx = acting_as(tao, None)
    address = client.address
    user_id = None
    if USERNAME_RE.match(username):
        # The claim, not `user_id_by_username`: a name the account holds after a rename is its
        # own alone, and its owner (who may not know a name a stolen session gave it) logs in by it.
        key = normalize_username(username)
        user_id = (await tao.key_get_many(USERNAME_KEYS, [key])).get(key)
    user = await ctx.loaders.object_by_id.load(user_id) if user_id is not None else None
    if not isinstance(user, User):
        user = None
    await take_attempt(throttle, user or username, address)  # the account's count, whatever its name now
    stored = user.password_hash if user is not None else None
    if not await verify_password(ctx.settings.auth, stored, password):
        raise UserError(AccountErrorCode.INVALID_CREDENTIALS, "Wrong username or password.", None)  # counted
    assert user is not None
    if user.deactivated:  # deletion requested: a log-in cancels it, unless the purge has started
        from resolvers.account_data.deletion import check_not_purging  # builds on this module
        await check_not_purging(tao, user.id)
    device = await device_of(client.user_agent)
    if user.two_factor is not None and user.two_factor.enabled:
        # The password was right, but it is only the first step: the throttle is not reset
        # until the second succeeds (resolvers.two_factor).
        from resolvers.two_factor import create_challenge  # it builds on this module
        challenge, expires_at = await create_challenge(tao, user, device, address)
        await attempt_succeeded(throttle, user, address)
        return LogInResult(user, challenge=challenge, challenge_expires_at=expires_at)
    if throttle is not None:
        await throttle.record_success(throttle_key(user), address)
    token = await open_session(tao, user.id, device, address, password=password_tag(stored))
    return LogInResult(user, token=token)


def password_tag(password_hash: str | None) -> str:
    """A short digest of the stored password hash: what a log-in's check matched, compared again
    once its session exists (and by a two-factor challenge), so a change of password meanwhile
    is seen."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


async def open_session(tao: Tao, user_id: int, device: Device, address: str, *, password: str) -> str:
    """A new session for a log-in that passed every step; the account hears of a new device.
    Logging in within the grace period of a deletion cancels it (a no-op read otherwise); once
    its purge has started, INVALID_CREDENTIALS and no session.

    `password` is the `password_tag` of the hash the log-in's password matched. The session is
    written first and the password read after: if it changed meanwhile, the session is removed
    and the answer is INVALID_CREDENTIALS. A change stores the new hash and then ends every
    other session, so either it ends this one or this read sees the new hash. Before, a log-in
    that checked the old password while its owner changed it opened a session the change had
    not seen, and kept it."""
    from resolvers.account_data.deletion import cancel_deletion  # builds on this module

    await cancel_deletion(tao, user_id)
    new_device = await remember_device(tao, user_id, device)
    token = await create_session(tao, user_id, device, address, notify_new_device=new_device)
    user = record_of(obj) if (obj := (await tao.obj_get([user_id])).get(user_id)) is not None else None
    if not isinstance(user, User) or password_tag(user.password_hash) != password:
        parsed = _parse_token(token)
        assert parsed is not None
        await end_session(tao, user_id, parsed[0])
        raise UserError(AccountErrorCode.INVALID_CREDENTIALS,
                        "The password was changed while you were logging in: log in with the new one.", None)
    return token


def _parse_token(token: str) -> tuple[int, str] | None:
    """(session id, secret) from `tgs_<id>[.<user id>]_<secret>`, or None if it is not shaped
    like one (`token_user` reads the user id).

    Only the shape is judged here: a token of the right shape that opens no live session (a
    wrong secret, an id of nothing) is invalid, not malformed, and `authenticate` says so."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    ids, _, secret = token[len(TOKEN_PREFIX):].partition("_")
    sid, dot, uid = ids.partition(".")
    if not _digits(sid) or (dot and not _digits(uid)) or not secret or not secret.isascii():
        return None
    return int(sid), secret


def token_user(token: str) -> int | None:
    """The user id a well-shaped token names (None: a token from before they named one)."""
    uid = token[len(TOKEN_PREFIX):].partition("_")[0].partition(".")[2]
    return int(uid) if uid else None


def _digits(part: str) -> bool:
    return part.isascii() and part.isdigit() and len(part) <= 19


async def create_session(tao: Tao, user_id: int, device: Device, address: str, *,
                         notify_new_device: bool = False) -> str:
    # Imported here: notifications reach the real-time layer, which reads sessions through this module.
    from resolvers.notifications import causes

    secret = secrets.token_urlsafe(32)
    now = int(time.time() * 1000)
    expires_at = now + tao.settings.auth.session_ttl_seconds * 1000
    data = {"user_id": user_id, "token_hash": token_hash(secret), "expires_at": expires_at,
            "device": device.name, "ip": address[:64], "last_used": now}
    session_id = await tao.obj_add(
        "SESSION", data, owner=user_id,
        jobs=(lambda sid: causes.new_device_login(user_id, sid, now)) if notify_new_device else None)
    await tao.assoc_add(user_id, "HAS_SESSION", session_id)
    return f"{TOKEN_PREFIX}{session_id}.{user_id}_{secret}"


async def do_log_out(tao: Tao, actor_id: int, session_id: int, *, all_sessions: bool = False) -> None:
    """End the actor's session `session_id` (with `all_sessions`, every session of theirs); the
    tokens stop working at once."""
    ended = await end_other_sessions(tao, actor_id, session_id, publish=False) if all_sessions else []
    await end_session(tao, actor_id, session_id)
    await publish_ended(tao, actor_id, [session_id, *ended])


async def end_other_sessions(tao: Tao, user_id: int, keep: int | None, *, publish: bool = True) -> list[int]:
    """End every session of the user but `keep`; returns the ended ids."""
    ended: list[int] = []
    while True:  # a long-lived account may hold many sessions: page through them all
        page = await tao.assoc_range(user_id, "HAS_SESSION", 0, 500)
        others = [a.id2 for a in page if a.id2 != keep]
        if not others:
            break
        for sid in others:
            await end_session(tao, user_id, sid)
        ended += others
    # Every other browser's pushes stop too: those its session registered went with it, and
    # any subscription not bound to a session (stored before they were) goes now.
    from resolvers.notifications.push import forget_sessions  # notifications read sessions through this module
    await forget_sessions(tao, user_id, keep=keep, others=True)
    # And a download link any of them may have taken: a ready export's archive is deleted.
    from resolvers.account_data.export import revoke_export  # account data builds on this module
    await revoke_export(tao, user_id)
    if publish:
        await publish_ended(tao, user_id, ended)
    return ended


async def publish_ended(tao: Tao, user_id: int, session_ids: list[int]) -> None:
    """Live WebSockets of these sessions re-check and close now (4403, resolvers.realtime.sessions);
    imported here because the real-time layer reads sessions through this module."""
    from resolvers.realtime.sessions import publish_session_revoked
    await publish_session_revoked(tao, user_id, session_ids)


async def check_own_password(tao: Tao, user: User, password: str, throttle: LoginThrottle | None,
                             address: str, field: str) -> None:
    """For actions that ask the account's password again (change it, two-factor): the same
    throttle as log-ins; a wrong password counts as a failed log-in of the account."""
    await take_attempt(throttle, user, address)
    if not await verify_password(tao.settings.auth, user.password_hash, password):
        raise UserError(AccountErrorCode.INVALID_CREDENTIALS, "The password is wrong.", field)  # counted
    await attempt_succeeded(throttle, user, address)


async def do_change_password(tao: Tao, actor_id: int, session_id: int | None, current_password: str,
                             new_password: str, *, throttle: LoginThrottle | None = None,
                             address: str = "anonymous") -> None:
    """Check the current password, store the new one (with the account's security notice), and
    end every other session."""
    from resolvers.notifications import causes
    from resolvers.notifications.model import NotificationType

    user = record_of((await tao.obj_get([actor_id]))[actor_id])
    assert isinstance(user, User)
    await _validate_password(tao.settings.auth, new_password, user.username, user.full_name, "newPassword")
    await check_own_password(tao, user, current_password, throttle, address, "currentPassword")
    if new_password == current_password:
        # It changed nothing but a new hash of the same password, and ended every other session.
        raise UserError(AccountErrorCode.PASSWORD_UNCHANGED, "The new password is your current password: "
                        "choose a different one (nothing was changed).", "newPassword")
    notice = causes.account_notice(NotificationType.PASSWORD_CHANGED, actor_id, int(time.time() * 1000))
    await tao.obj_update(actor_id, {"password_hash": await hash_password(tao.settings.auth, new_password)},
                         jobs=notice)
    await end_other_sessions(tao, actor_id, session_id)


async def end_session(tao: Tao, user_id: int, session_id: int) -> None:
    """Remove one session: the object first (from then on its token resolves to nothing), then
    the user's edge to it, then the push subscriptions it registered (pushes already go only to
    a live session's). Idempotent."""
    from resolvers.notifications.push import forget_sessions  # notifications read sessions through this module

    await tao.obj_delete(session_id)
    await tao.assoc_delete(user_id, "HAS_SESSION", session_id)
    await forget_sessions(tao, user_id, [session_id])


async def end_session_job(job: JobContext, payload: dict) -> None:
    """`accounts.end_session`: the clean-up of an expired session."""
    await end_session(job.tao, payload["user_id"], payload["session_id"])


async def session_problem(tao: Tao, session_id: int, user_id: int) -> str | None:
    """Why the session no longer authorizes `user_id` (a sentence for the client), or None if it
    still does. A fresh read of the session object (one cache round trip, not a loader's copy):
    long-lived connections call it at every operation and before every event they deliver."""
    obj = (await tao.obj_get([session_id])).get(session_id)
    return session_record_problem(record_of(obj) if obj is not None else None, user_id)


def session_record_problem(session: object, user_id: int) -> str | None:
    """`session_problem` of a session record already read (None: missing or deleted)."""
    if not isinstance(session, AuthSession) or session.user_id != user_id:
        return "The session was logged out or revoked: log in again."
    if session.expires_at <= int(time.time() * 1000):
        return "The session has expired: log in again."
    return None


async def authenticate(ctx: RequestContext, token: str | None) -> None:
    """Set the viewer from a bearer token (None: anonymous); raise AuthenticationError if it is bad."""
    if token is None:
        return
    parsed = _parse_token(token)
    if parsed is None:
        raise AuthenticationError("The session token is malformed: log in again to get a new one.")
    session_id, secret = parsed
    user_id = token_user(token)
    invalid = AuthenticationError("The session token is not valid (wrong, logged out or revoked): log in again.")
    if not check_object_id(session_id, ctx.tao.n_shards) or (
            user_id is not None and not check_object_id(user_id, ctx.tao.n_shards)):
        raise invalid
    if user_id is None:
        session, user = await ctx.loaders.object_by_id.load(session_id), None
    else:  # the session and its user in one batch of reads
        session, user = await ctx.loaders.object_by_id.load_many([session_id, user_id])
    if (not isinstance(session, AuthSession) or not hmac.compare_digest(session.token_hash, token_hash(secret))
            or user_id not in (None, session.user_id)):
        raise invalid
    if session.expires_at <= int(time.time() * 1000):
        # Clean up in the background (durably, on the session's shard); the answer is the same.
        await ctx.tao.enqueue(session.id, END_SESSION_JOB, {"session_id": session.id, "user_id": session.user_id})
        raise AuthenticationError("The session has expired: log in again.")
    now = int(time.time() * 1000)
    if now - session.last_used >= ctx.settings.auth.session_touch_seconds * 1000:
        # `lastUsedAt`: one write per session per touch interval, not one per request.
        try:
            await ctx.tao.obj_update(session.id, {"last_used": now})
        except ObjectNotFoundError:
            # Ended since it was read (a log-out in another tab): as for a session already
            # ended. It was an internal error before.
            raise invalid from None
    ctx.viewer_id = session.user_id
    ctx.session_id = session_id
    ctx.reset_loaders()
    if user_id is not None:
        ctx.loaders.object_by_id.prime(user_id, user)  # read above, in this request
    viewer = await ctx.loaders.object_by_id.load(ctx.viewer_id)
    if not isinstance(viewer, User) or viewer.deactivated:
        # Gone, or deleted (deletion ends every session, but one opened by a log-in racing the
        # deletion, or during the purge, must not act for an account hidden from everyone).
        ctx.viewer_id = ctx.session_id = None
        ctx.reset_loaders()
        raise AuthenticationError("The account of this session no longer exists or is being deleted: "
                                  "log in again (within the grace period, that cancels the deletion).")
