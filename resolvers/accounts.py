"""Accounts and sessions: sign-up, log-in, log-out, and turning a bearer token into a viewer.

Invariants:
- A username is unique case-insensitively: it is claimed with `key_claim("username", lower)`
  before the account counts as created; a lost race deletes the new user object.
- Passwords are hashed and checked with argon2id in `resolvers.passwords`' bounded pool, never
  on the event loop; log-in spends the same work (one check) for an unknown username, so
  response time does not reveal which usernames exist. Failed log-ins are throttled per
  username and per client address (`LoginThrottle`); a refused attempt checks no password.
- A session token is `tgs_<session id>_<secret>`: the id finds the SESSION object (on the
  user's shard, so a session lives and dies with its account's shard and authenticating is one
  cached object read), and only the secret's sha256 is stored, so a leaked database or cache
  cannot be replayed. Tokens expire after `AuthSettings.session_ttl_seconds`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING

from resolvers.actor import acting_as
from resolvers.errors import AuthenticationError, UserError
from resolvers.ids import check_object_id
from resolvers.job_context import JobContext
from resolvers.passwords import hash_password, verify_password
from resolvers.records import AuthSession, User, record_of
from resolvers.throttle import LoginThrottle
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

TOKEN_PREFIX = "tgs_"
USERNAME_KEYS = "username"  # the unique-key namespace: lower-cased username -> USER id
END_SESSION_JOB = "accounts.end_session"
USERNAME_RE = re.compile(r"^(?!.*\.\.)(?!\.)(?!.*\.$)[A-Za-z0-9._]{1,30}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
FULL_NAME_MAX = 64


class AccountErrorCode(enum.Enum):
    USERNAME_INVALID = "USERNAME_INVALID"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    PASSWORD_INVALID = "PASSWORD_INVALID"
    FULL_NAME_INVALID = "FULL_NAME_INVALID"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"


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
    if len(full_name) > FULL_NAME_MAX or any(ord(c) < 32 for c in full_name):
        raise UserError(
            AccountErrorCode.FULL_NAME_INVALID,
            f"A full name is at most {FULL_NAME_MAX} characters, without control characters.",
            field,
        )
    return full_name


def _validate_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise UserError(
            AccountErrorCode.PASSWORD_INVALID,
            f"A password is {PASSWORD_MIN} to {PASSWORD_MAX} characters long.",
            "password",
        )


def user_data(username: str, full_name: str, password_hash: str | None) -> dict:
    """A new USER's data (also for bulk loads, `resolvers.bulk`). No password hash: an account
    that cannot log in (every log-in answers INVALID_CREDENTIALS)."""
    return {"username": username, "full_name": full_name, "bio": "", "website": "",
            "is_private": False, "password_hash": password_hash}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def do_sign_up(tao: Tao, username: str, password: str, full_name: str) -> tuple[User, str]:
    """Create an account and a first session; returns (user, token)."""
    ctx = acting_as(tao, None)
    validate_username(username)
    _validate_password(password)
    full_name = validate_full_name(full_name)
    key = normalize_username(username)
    taken = UserError(AccountErrorCode.USERNAME_TAKEN, f"The username {username!r} is taken; pick another.", "username")
    if await ctx.loaders.user_id_by_username.load(key) is not None:
        raise taken
    password_hash = await hash_password(ctx.settings.auth, password)
    user_id = await tao.obj_add("USER", user_data(username, full_name, password_hash))
    if not await tao.key_claim(USERNAME_KEYS, key, user_id):
        await tao.obj_delete(user_id)  # lost the race for the name: the account never existed
        raise taken
    token = await _create_session(ctx, user_id)
    user = await ctx.loaders.object_by_id.load(user_id)
    assert isinstance(user, User)
    return user, token


async def do_log_in(tao: Tao, username: str, password: str, *, throttle: LoginThrottle | None = None,
                    client_key: str = "anonymous") -> tuple[User, str]:
    """Check the credentials and open a session; returns (user, token). With a `throttle`, failed
    attempts count against the account and the client's address (`client_key`)."""
    ctx = acting_as(tao, None)
    key, address = normalize_username(username)[:64], client_key
    what, wait = throttle.retry_after(key, address) if throttle is not None else ("", 0.0)
    if wait > 0:
        whose = "this account" if what == "username" else "your network address"
        raise UserError(
            AccountErrorCode.TOO_MANY_ATTEMPTS,
            f"Too many failed log-ins for {whose}: try again in {int(wait // 60) + 1} minute(s).",
            None,
        )
    user_id = None
    if USERNAME_RE.match(username):
        user_id = await ctx.loaders.user_id_by_username.load(normalize_username(username))
    user = await ctx.loaders.object_by_id.load(user_id) if user_id is not None else None
    if not isinstance(user, User):
        user = None
    stored = user.password_hash if user is not None else None
    if not await verify_password(ctx.settings.auth, stored, password):
        if throttle is not None:
            throttle.record_failure(key, address)
        raise UserError(AccountErrorCode.INVALID_CREDENTIALS, "Wrong username or password.", None)
    assert user is not None
    if throttle is not None:
        throttle.record_success(key)
    if user.deactivated:  # logging in within the grace period cancels the account's deletion
        from resolvers.account_data.deletion import cancel_deletion  # builds on this module
        await cancel_deletion(tao, user.id)
    token = await _create_session(ctx, user.id)
    return user, token


def _parse_token(token: str) -> tuple[int, str] | None:
    """(session id, secret) from `tgs_<id>_<secret>`, or None if it is not shaped like one.

    Only the shape is judged here: a token of the right shape that opens no live session (a
    wrong secret, an id of nothing) is invalid, not malformed, and `authenticate` says so."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    sid, _, secret = token[len(TOKEN_PREFIX):].partition("_")
    if not sid.isascii() or not sid.isdigit() or len(sid) > 19 or not secret or not secret.isascii():
        return None
    return int(sid), secret


async def _create_session(ctx: RequestContext, user_id: int) -> str:
    secret = secrets.token_urlsafe(32)
    expires_at = int(time.time() * 1000) + ctx.settings.auth.session_ttl_seconds * 1000
    session_id = await ctx.tao.obj_add(
        "SESSION", {"user_id": user_id, "token_hash": token_hash(secret), "expires_at": expires_at}, owner=user_id
    )
    await ctx.tao.assoc_add(user_id, "HAS_SESSION", session_id)
    return f"{TOKEN_PREFIX}{session_id}_{secret}"


async def do_log_out(tao: Tao, actor_id: int, session_id: int, *, all_sessions: bool = False) -> None:
    """End the actor's session `session_id` (with `all_sessions`, every session of theirs); the
    tokens stop working at once."""
    ended = [session_id]
    if all_sessions:
        while True:  # a long-lived account may hold many sessions: page through them all
            page = await tao.assoc_range(actor_id, "HAS_SESSION", 0, 500)
            others = [a.id2 for a in page if a.id2 != session_id]
            if not others:
                break
            for sid in others:
                await end_session(tao, actor_id, sid)
            ended += others
    await end_session(tao, actor_id, session_id)
    # Live WebSockets of these sessions re-check and close now (resolvers.realtime.sessions);
    # imported here because the real-time layer reads sessions through this module.
    from resolvers.realtime.sessions import publish_session_revoked
    await publish_session_revoked(tao, actor_id, ended)


async def end_session(tao: Tao, user_id: int, session_id: int) -> None:
    """Remove one session: the object first (from then on its token resolves to nothing), then
    the user's edge to it. Idempotent."""
    await tao.obj_delete(session_id)
    await tao.assoc_delete(user_id, "HAS_SESSION", session_id)


async def end_session_job(job: JobContext, payload: dict) -> None:
    """`accounts.end_session`: the clean-up of an expired session."""
    await end_session(job.tao, payload["user_id"], payload["session_id"])


async def session_problem(tao: Tao, session_id: int, user_id: int) -> str | None:
    """Why the session no longer authorizes `user_id` (a sentence for the client), or None if it
    still does. A fresh read of the session object (one cache round trip, not a loader's copy):
    long-lived connections call it at every operation and before every event they deliver."""
    obj = (await tao.obj_get([session_id])).get(session_id)
    session = record_of(obj) if obj is not None else None
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
    invalid = AuthenticationError("The session token is not valid (wrong, logged out or revoked): log in again.")
    if not check_object_id(session_id, ctx.tao.n_shards):
        raise invalid
    session = await ctx.loaders.object_by_id.load(session_id)
    if not isinstance(session, AuthSession) or not hmac.compare_digest(session.token_hash, token_hash(secret)):
        raise invalid
    if session.expires_at <= int(time.time() * 1000):
        # Clean up in the background (durably, on the session's shard); the answer is the same.
        await ctx.tao.enqueue(session.id, END_SESSION_JOB, {"session_id": session.id, "user_id": session.user_id})
        raise AuthenticationError("The session has expired: log in again.")
    ctx.viewer_id = session.user_id
    ctx.session_id = session_id
    ctx.reset_loaders()
    if await ctx.loaders.object_by_id.load(ctx.viewer_id) is None:
        ctx.viewer_id = ctx.session_id = None
        ctx.reset_loaders()
        raise AuthenticationError("The account of this session no longer exists.")
