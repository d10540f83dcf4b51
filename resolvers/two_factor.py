"""Two-factor log-in: TOTP (RFC 6238, pyotp) with ten single-use recovery codes.

Enrolment: `do_start_two_factor` (the password again) stores a new secret, not yet enabled,
and answers its provisioning URI (and a QR code of it); `do_confirm_two_factor` with a code
from the app enables it and answers ten recovery codes, shown once. `do_disable_two_factor`
(the password again) removes it all.

Log-in: with two-factor on, `logIn` answers a challenge (`tgc_<id>_<secret>`, a
LOGIN_CHALLENGE object on the user's shard holding only the secret's sha256, alive
`AuthSettings.two_factor_challenge_seconds`); `do_complete_log_in` with a TOTP code or a
recovery code opens the session.

Invariants:
- A TOTP code is accepted for the current 30-second step or one step either side, and only for
  a step after the last one accepted: a code, once used, is refused (a reused code, or an older
  one). Each accepted step is a unique key (`totp_step`, `<user>:<step>`) claimed by the
  challenge (or session) that used it, so two processes racing with one code cannot both win.
- Recovery codes are 16 characters (80 bits) stored as argon2id hashes through the password
  pool (off the event loop), each with its first 4 characters in clear as a hint, so a check
  costs one hash, as a log-in does (an unknown hint costs a dummy one). A code is used once:
  its use claims a unique key (`recovery_used`, `<user>:<generation>:<index>`) before the user
  is updated, so a code used twice, even at once, works once. Each enrolment has a generation
  of its own (the time it started), so codes of a later enrolment never meet an earlier one's keys.
- Brute force: each challenge allows `two_factor_attempts_per_challenge` wrong codes, then it is
  deleted (log in again, with the password); every wrong code also counts as a failed log-in of
  the account and the address (`LoginThrottle`), whose limits refuse the second step too.
- A challenge is the password's: it records a digest of the password hash that earned it
  (`password_tag`), and once the password has changed it is refused (CHALLENGE_INVALID) and deleted.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from urllib.parse import quote

import pyotp
import qrcode
import qrcode.image.svg

from resolvers.accounts import (
    AccountErrorCode,
    attempt_succeeded,
    check_own_password,
    open_session,
    password_tag,
    take_attempt,
    throttle_key,
    token_hash,
)
from resolvers.devices import Device
from resolvers.errors import UserError
from resolvers.ids import check_object_id
from resolvers.job_context import JobContext
from resolvers.passwords import hash_password, verify_password
from resolvers.records import LogInChallenge, RecoveryCode, TwoFactor, User, record_of
from resolvers.throttle import LoginThrottle
from tao import ObjectNotFoundError, Tao

CHALLENGE_PREFIX = "tgc_"
END_CHALLENGE_JOB = "accounts.end_challenge"
STEP_KEYS = "totp_step"
RECOVERY_KEYS = "recovery_used"
RECOVERY_CODES = 10
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols, no 0/O or 1/I
HINT = 4


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    provisioning_uri: str
    qr_svg_data_uri: str


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def _qr_svg(uri: str) -> str:
    img = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage)
    svg = img.to_string(encoding="unicode")
    return "data:image/svg+xml;utf8," + quote(svg)


def _matching_step(two_factor: TwoFactor, code: str, now: float | None = None) -> int | None:
    """The time step `code` belongs to (now, or one step either side) if it is after the last
    step accepted; None otherwise."""
    code = code.strip()
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = _totp(two_factor.secret)
    step = int((time.time() if now is None else now) // totp.interval)
    for s in (step - 1, step, step + 1):
        if s > two_factor.last_step and hmac.compare_digest(totp.generate_otp(s), code):
            return s
    return None


def _new_codes() -> list[str]:
    return ["".join(secrets.choice(_ALPHABET) for _ in range(16)) for _ in range(RECOVERY_CODES)]


def _normalize_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def display_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


async def _load_user(tao: Tao, user_id: int) -> User:
    user = record_of((await tao.obj_get([user_id]))[user_id])
    assert isinstance(user, User)
    return user


async def _accept_step(tao: Tao, user: User, step: int, holder: int) -> bool:
    """Claim the step for `holder`; False if a racing use of the same code got it first."""
    assert user.two_factor is not None
    if not await tao.key_claim(STEP_KEYS, f"{user.id}:{step}", holder):
        return False
    await tao.obj_update(user.id, {"two_factor": replace(user.two_factor, last_step=step).encode()})
    if user.two_factor.last_step:  # the previous step's key: codes of it are refused by last_step now
        held = (await tao.key_get_many(STEP_KEYS, [f"{user.id}:{user.two_factor.last_step}"]))
        for key, owner in held.items():
            await tao.key_release(STEP_KEYS, key, owner)
    return True


# ---- enrolment -----------------------------------------------------------------------------------

async def do_start_two_factor(tao: Tao, actor_id: int, password: str, *, throttle: LoginThrottle | None = None,
                              address: str = "anonymous") -> Enrolment:
    """A new secret (replacing an unconfirmed one); two-factor is on once `do_confirm_two_factor` succeeds."""
    user = await _load_user(tao, actor_id)
    if user.two_factor is not None and user.two_factor.enabled:
        raise UserError(AccountErrorCode.TWO_FACTOR_ALREADY_ENABLED,
                        "Two-factor log-in is already on: turn it off first to enrol a new app.", None)
    await check_own_password(tao, user, password, throttle, address, "password")
    secret = pyotp.random_base32()
    # A generation no enrolment of this user had before: turning two-factor off forgets the
    # record (and its generation), while the `recovery_used` keys of its codes stay claimed, so
    # counting from 1 again would refuse a new code at an index used before. Milliseconds of
    # the start grow across enrolments (and +1 over the record's, should the clock step back).
    previous = user.two_factor.generation if user.two_factor is not None else 0
    generation = max(previous + 1, int(time.time() * 1000))
    await tao.obj_update(actor_id, {"two_factor": TwoFactor(secret, False, 0, generation, ()).encode()})
    uri = _totp(secret).provisioning_uri(name=user.username, issuer_name=tao.settings.auth.totp_issuer)
    return Enrolment(secret, uri, await asyncio.to_thread(_qr_svg, uri))


async def do_confirm_two_factor(tao: Tao, actor_id: int, session_id: int, code: str, *,
                                throttle: LoginThrottle | None = None, address: str = "anonymous") -> list[str]:
    """Turn two-factor on with a first code from the app; returns the ten recovery codes (shown once)."""
    user = await _load_user(tao, actor_id)
    tf = user.two_factor
    if tf is None or tf.enabled:
        raise UserError(AccountErrorCode.TWO_FACTOR_NOT_STARTED if tf is None else
                        AccountErrorCode.TWO_FACTOR_ALREADY_ENABLED,
                        "Start with `startTwoFactor` (it gives the secret for your authenticator app)."
                        if tf is None else "Two-factor log-in is already on.", None)
    await take_attempt(throttle, user, address)
    step = _matching_step(tf, code)
    if step is None or not await _accept_step(tao, user, step, session_id):
        raise UserError(AccountErrorCode.INVALID_CODE,  # counted as a failed log-in
                        "The code is wrong or already used: enter the current code from your authenticator app.",
                        "code")
    await attempt_succeeded(throttle, user, address)
    codes = _new_codes()
    hashes = [await hash_password(tao.settings.auth, c) for c in codes]
    stored = tuple(RecoveryCode(c[:HINT], h, False) for c, h in zip(codes, hashes))
    await tao.obj_update(actor_id, {"two_factor": TwoFactor(tf.secret, True, step, tf.generation, stored).encode()})
    return [display_code(c) for c in codes]


async def do_disable_two_factor(tao: Tao, actor_id: int, password: str, *, throttle: LoginThrottle | None = None,
                                address: str = "anonymous") -> None:
    user = await _load_user(tao, actor_id)
    if user.two_factor is None or not user.two_factor.enabled:
        raise UserError(AccountErrorCode.TWO_FACTOR_NOT_ENABLED, "Two-factor log-in is not on.", None)
    await check_own_password(tao, user, password, throttle, address, "password")
    await tao.obj_update(actor_id, {"two_factor": None})


# ---- the second step of a log-in ---------------------------------------------------------------

async def create_challenge(tao: Tao, user: User, device: Device, address: str) -> tuple[str, int]:
    """The challenge a correct password earns when two-factor is on: (token, expires at ms)."""
    secret = secrets.token_urlsafe(32)
    ttl_ms = tao.settings.auth.two_factor_challenge_seconds * 1000
    expires_at = int(time.time() * 1000) + ttl_ms
    cid = await tao.obj_add("LOGIN_CHALLENGE", {
        "user_id": user.id, "token_hash": token_hash(secret), "expires_at": expires_at, "attempts": 0,
        "device_name": device.name, "device_family": device.family, "ip": address[:64],
        "pw": password_tag(user.password_hash)}, owner=user.id,
        jobs=lambda cid: [(END_CHALLENGE_JOB, {"challenge_id": cid}, ttl_ms)])
    return f"{CHALLENGE_PREFIX}{cid}_{secret}", expires_at


async def end_challenge_job(job: JobContext, payload: dict) -> None:
    """`accounts.end_challenge`: an unused challenge is deleted once it has expired."""
    await job.tao.obj_delete(payload["challenge_id"])


def _parse_challenge(token: str, n_shards: int) -> tuple[int, str] | None:
    if not token.startswith(CHALLENGE_PREFIX) or len(token) > 200:
        return None
    cid, _, secret = token[len(CHALLENGE_PREFIX):].partition("_")
    if not cid.isascii() or not cid.isdigit() or len(cid) > 19 or not secret:
        return None
    return (int(cid), secret) if check_object_id(int(cid), n_shards) else None


async def _check_recovery_code(tao: Tao, user: User, code: str, holder: int) -> bool:
    tf = user.two_factor
    assert tf is not None
    code = _normalize_code(code)
    candidates = [i for i, c in enumerate(tf.codes) if not c.used and c.hint == code[:HINT]]
    if not candidates or len(code) != 16:
        await verify_password(tao.settings.auth, None, code)  # the same work as a real check
        return False
    for i in candidates:
        if await verify_password(tao.settings.auth, tf.codes[i].hash, code):
            if not await tao.key_claim(RECOVERY_KEYS, f"{user.id}:{tf.generation}:{i}", holder):
                return False  # used meanwhile, by another log-in
            fresh = (await _load_user(tao, user.id)).two_factor
            if fresh is not None and fresh.generation == tf.generation:
                codes = tuple(replace(c, used=True) if j == i else c for j, c in enumerate(fresh.codes))
                await tao.obj_update(user.id, {"two_factor": replace(fresh, codes=codes).encode()})
            return True
    return False


async def do_complete_log_in(tao: Tao, challenge: str, code: str, *, throttle: LoginThrottle | None = None,
                             address: str = "anonymous") -> tuple[User, str]:
    """The second step: a TOTP code or a recovery code for the challenge; returns (user, session token)."""
    invalid = UserError(AccountErrorCode.CHALLENGE_INVALID,
                        "This log-in challenge is unknown, expired or used up: log in again with your password.",
                        "challenge")
    parsed = _parse_challenge(challenge, tao.n_shards)
    if parsed is None:
        raise invalid
    cid, secret = parsed
    obj = (await tao.obj_get([cid])).get(cid)
    pending = record_of(obj) if obj is not None else None
    if (not isinstance(pending, LogInChallenge) or not hmac.compare_digest(pending.token_hash, token_hash(secret))
            or pending.expires_at <= int(time.time() * 1000)):
        raise invalid
    user = await _load_user(tao, pending.user_id)
    if pending.password_tag is not None and pending.password_tag != password_tag(user.password_hash):
        # The password changed since this challenge was earned: what the old one began ends
        # (it could be finished with a code or a recovery code before probe3).
        await tao.obj_delete(cid)
        raise invalid
    await take_attempt(throttle, user, address)
    auth = tao.settings.auth
    if throttle is not None and not await throttle.challenge_try(cid, auth.two_factor_attempts_per_challenge,
                                                                 auth.two_factor_challenge_seconds):
        await tao.obj_delete(cid)  # its tries are spent (by codes sent at once): log in again
        raise UserError(AccountErrorCode.CHALLENGE_INVALID,
                        "Too many wrong codes for this log-in: log in again with your password.", "code")
    tf = user.two_factor
    ok = False
    if tf is not None and tf.enabled:
        step = _matching_step(tf, code)
        if step is not None:
            ok = await _accept_step(tao, user, step, cid)
        elif len(_normalize_code(code)) >= HINT and not code.strip().isdigit():
            ok = await _check_recovery_code(tao, user, code, cid)
    if not ok:  # the attempt stays counted: a failed log-in of the account and the address
        attempts = pending.attempts + 1
        left = tao.settings.auth.two_factor_attempts_per_challenge - attempts
        if left <= 0:
            await tao.obj_delete(cid)
            raise UserError(AccountErrorCode.CHALLENGE_INVALID,
                            "Too many wrong codes for this log-in: log in again with your password.", "code")
        try:
            await tao.obj_update(cid, {"attempts": attempts})
        except ObjectNotFoundError:  # ended meanwhile (completed, expired, or out of tries): it was a 500
            raise invalid from None
        raise UserError(AccountErrorCode.INVALID_CODE,
                        f"The code is wrong or already used ({left} more tries for this log-in): enter the current "
                        "code from your authenticator app, or an unused recovery code.", "code")
    if not await tao.obj_delete(cid):  # completed meanwhile by a racing request: one session per challenge
        raise invalid
    if throttle is not None:
        await throttle.record_success(throttle_key(user), address)
    token = await open_session(tao, user.id, Device(pending.device_name, pending.device_family), pending.ip,
                               password=password_tag(user.password_hash))
    return user, token


def recovery_codes_left(user: User) -> int:
    tf = user.two_factor
    return sum(1 for c in tf.codes if not c.used) if tf is not None and tf.enabled else 0
