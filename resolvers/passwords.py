"""Password hashing: argon2id, off the event loop, in a bounded pool of threads; and what a new
password must not be (`weakness`).

Invariants:
- No hash or check ever runs on the event loop: each runs in the process's password pool
  (argon2-cffi releases the GIL), whose size `AuthSettings.password_hash_workers` bounds how
  many run at once; a flood of log-ins queues there instead of taking every core from the loop.
- The pool's queue is bounded (`AuthSettings.password_queue_max` waiting or running a process):
  one more is refused at once (UNAVAILABLE; no hash or check runs, nor any write after it: a
  log-in's attempt was counted already, as any attempt). An operation waiting on the pool
  holds no place in flight (admission.py): it gives its place back first (`LEND_PLACE`, set by
  the transport), since the server's bound counts the event loop's work and a hash is the
  pool's. So a flood of log-ins fills the pool's queue, never every place of the process, and
  the process's other operations still start.
- A check against no stored hash (an unknown username) still verifies once, against a dummy
  hash made with the same parameters, so it costs what a wrong password costs: response time
  does not tell which usernames exist.
- A new password (sign-up, change) is refused, before anything is written, when it is easy to
  guess whatever its length (NIST SP 800-63B's "commonly used, expected or compromised" check):
  one of the `COMMON_TOP` most common passwords (the head of the ranked list of leaked passwords
  the `zxcvbn` package ships, compared without case), the account's username, or one character
  repeated (`weakness`, cheap, said precisely); then, when none of those, whenever zxcvbn's
  estimate scores it under `MIN_SCORE` with the account's own words (its username, its full name,
  an e-mail address if it had one, and their parts) as `user_inputs`: a common word with a year
  (`sunshine2024`), the username with digits (`lovelace1815`), the name run together. Not more:
  no composition rules (a digit, a capital), which NIST advises against.
- The estimate runs in the password pool, off the event loop, like a hash: zxcvbn is pure Python
  and took up to 63 ms for a 72-character password (best of 3, this box); only the first
  `SCORED_MAX` characters are scored (zxcvbn's own default bound: 256 took up to 680 ms).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from functools import lru_cache
from itertools import islice

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from config import AuthSettings
from resolvers.errors import UnavailableError


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def _hasher_for(auth: AuthSettings) -> PasswordHasher:
    return _hasher(auth.argon2_time_cost, auth.argon2_memory_cost_kib, auth.argon2_parallelism)


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    # One per process and size, for its life: its threads are idle between log-ins.
    return ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="taogram-password")


# Set by the transport for one operation's task (server.py over HTTP, server_ws on a socket;
# contextvars are per task): gives back the operation's place in flight before it waits on the
# pool. Idempotent; the transport's own release at the end is then a no-op.
LEND_PLACE: ContextVar[Callable[[], None] | None] = ContextVar("password_lend_place", default=None)

_queued = Counter[int]()  # per pool (its size): hashes and checks waiting for it or running in it


async def _run(auth: AuthSettings, fn, *args):
    workers = auth.password_hash_workers
    if _queued[workers] >= auth.password_queue_max:
        raise UnavailableError("Too many passwords are being checked on this server right now: retry in a few "
                               "seconds.")
    give_back = LEND_PLACE.get()
    if give_back is not None:
        give_back()
    _queued[workers] += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool(workers), fn, *args)
    finally:
        _queued[workers] -= 1


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


MIN_SCORE = 2  # zxcvbn's scores: 2 is "somewhat guessable" (10^6 to 10^8 guesses); under it, refused
SCORED_MAX = 72  # characters scored (zxcvbn's default bound; its time grows faster than the length)
_WORD_SPLIT = re.compile(r"[^\w]+|_")


def personal_words(*texts: str | None) -> list[str]:
    """The account's own words for zxcvbn's `user_inputs`: each text (username, full name,
    e-mail), lower-cased, whole, run together, and split into its parts of 3 characters or more."""
    words: dict[str, None] = {}
    for text in texts:
        if not text:
            continue
        folded = text.casefold()
        parts = [w for w in _WORD_SPLIT.split(folded) if w]
        words[folded] = None
        words["".join(parts)] = None
        words.update(dict.fromkeys(w for w in parts if len(w) >= 3))
    return [w for w in words if w]


def guessable(password: str, user_inputs: list[str]) -> str | None:
    """Why zxcvbn finds `password` too easy to guess (a phrase for an error message), or None.
    Slow (pure Python): run it in the password pool (`strength_problem`)."""
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:SCORED_MAX], user_inputs=user_inputs)
    if result["score"] >= MIN_SCORE:
        return None
    if any(m.get("dictionary_name") == "user_inputs" for m in result["sequence"]):
        return "is built on your username or name"
    return "is close to common words and patterns"


async def strength_problem(auth: AuthSettings, password: str, *, username: str | None = None,
                           full_name: str | None = None, email: str | None = None) -> str | None:
    """Why a new password is too easy to guess, or None: the cheap checks (`weakness`) on the
    loop, then zxcvbn's estimate with the account's words in the password pool."""
    why = weakness(password, username)
    if why is not None:
        return why
    return await _run(auth, guessable, password, personal_words(username, full_name, email))
