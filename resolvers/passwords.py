"""Password hashing: argon2id, off the event loop, in a bounded pool of threads; and what a new
password must not be (`weakness`).

Invariants:
- No hash or check ever runs on the event loop: each runs in the process's password pool
  (argon2-cffi releases the GIL), whose size `AuthSettings.password_hash_workers` bounds how
  many run at once; a flood of log-ins queues there instead of taking every core from the loop.
- A check against no stored hash (an unknown username) still verifies once, against a dummy
  hash made with the same parameters, so it costs what a wrong password costs: response time
  does not tell which usernames exist.
- A new password (sign-up, change) is refused, before anything is written, when it is easy to
  guess whatever its length (NIST SP 800-63B's "commonly used, expected or compromised" check):
  one of the `COMMON_TOP` most common passwords (the head of the ranked list of leaked passwords
  the `zxcvbn` package ships, compared without case), the account's username, or one character
  repeated. Not more: no composition rules (a digit, a capital), which NIST advises against.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import islice

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config import AuthSettings


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def _hasher_for(auth: AuthSettings) -> PasswordHasher:
    return _hasher(auth.argon2_time_cost, auth.argon2_memory_cost_kib, auth.argon2_parallelism)


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    # One per process and size, for its life: its threads are idle between log-ins.
    return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="taogram-password")


async def _run(auth: AuthSettings, fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_pool(auth.password_hash_workers), fn, *args)


async def hash_password(auth: AuthSettings, password: str) -> str:
    return await _run(auth, _hasher_for(auth).hash, password)


_DUMMY: dict[tuple[int, int, int], str] = {}


def _dummy_hash(auth: AuthSettings) -> str:
    """A hash of a random password with `auth`'s parameters (made once; runs in the pool)."""
    key = (auth.argon2_time_cost, auth.argon2_memory_cost_kib, auth.argon2_parallelism)
    if key not in _DUMMY:
        _DUMMY[key] = _hasher_for(auth).hash(secrets.token_urlsafe(16))
    return _DUMMY[key]


async def verify_password(auth: AuthSettings, stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; with no stored hash, the same work and False."""
    hasher = _hasher_for(auth)

    def verify() -> bool:
        try:
            return hasher.verify(stored or _dummy_hash(auth), password)
        except (VerificationError, InvalidHashError):
            return False

    ok = await _run(auth, verify)
    return ok and stored is not None


# Strength ----------------------------------------------------------------------------------------

COMMON_TOP = 10_000  # the most common passwords refused (of the ~30 000 the list ranks)


def _common_passwords() -> frozenset[str]:
    # zxcvbn's ranked list of leaked passwords (Mark Burnett's 10 million, via xato), lower case,
    # most common first. Read once, at import: ~75 ms and ~1 MB kept, never on the event loop.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    ranked = FREQUENCY_LISTS["passwords"]
    words = ranked.split(",") if isinstance(ranked, str) else ranked
    return frozenset(islice(words, COMMON_TOP))


_COMMON = _common_passwords()


def weakness(password: str, username: str | None = None) -> str | None:
    """Why `password` is too easy to guess (a phrase for an error message), or None."""
    if len(set(password)) == 1:
        return "is one character repeated"
    folded = password.casefold()
    if username is not None and folded == username.casefold():
        return "is your username"
    if folded in _COMMON:
        return f"is one of the {COMMON_TOP:,} most common passwords".replace(",", " ")
    return None
