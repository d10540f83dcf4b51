"""Usernames that look alike: each account holds its username's confusable *skeleton* too.

Two usernames whose shown forms a reader can mistake for each other ("adaI", with a capital i,
and "adal") are one name: the second sign-up or rename answers USERNAME_TAKEN saying so. The
skeleton is Unicode TR39's (UTS #39 §4, `skeleton(X)`: map each character to its prototype in
confusables.txt), restricted to the characters a username may hold (`accounts.USERNAME_RE`:
ASCII letters, digits, `.` and `_`), then lower-cased, because a username is one account
case-insensitively. In confusables.txt exactly four of those characters
have a prototype other than themselves (checked against the table `confusable-homoglyphs` 3.3.1
ships):

    0 -> O    1 -> l    I -> l    m -> rn

so `skeleton("adaI") == skeleton("adal") == "adal"`, `skeleton("b0b") == "bob"` and
`skeleton("rnia") == skeleton("mia")`. Lower-casing after the mapping keeps TR39's judgement of
the shown form (a capital I is an l, a lower-case i is not: "adai" and "adal" are both allowed),
and a case-only rename that changes the skeleton ("adai" -> "adaI" while "adal" exists) is
refused like any rename to a taken name. Cyrillic or Greek look-alikes (а, ο) cannot occur while
usernames are ASCII; if they ever allow more, this must become the full TR39 skeleton (NFD, the
whole confusables table, NFD: ICU's `SpoofChecker.getSkeleton`), with every existing skeleton
claimed again.

The skeleton is a unique key (`username_skeleton`, skeleton -> USER id) claimed with the
username's own key (`username`, lower-cased name). Accounts made before it hold none until
`python -m resolvers username-skeletons` claims theirs; two existing accounts that already look
alike both keep working (the first keeps the skeleton; the command lists the others). An
account pending deletion keeps its skeleton until its purge, as it keeps its username.

Renames (`do_update_profile`) keep the old name for its previous owner: its claims (name and
skeleton) stay with the account for `auth.username_hold_seconds` (14 days, as Instagram does),
recorded on the USER as `username_holds` ({lower-cased name: {name, until}}), so nobody can take
it to pose as the account to its followers, and the owner may take it back meanwhile. A held
name resolves to nobody (`UserIdByUsernameLoader` checks the account still bears it). The hold
ends with the `usernames.release_hold` job, which releases a name only if the account neither
bears nor holds it then (`release_if_unused`); `usernames.check_claim`, committed before a rename
claims its new name, does the same for that name `CLAIM_CHECK_MS` later, so a claim whose rename
never completed (a crash, a lost race) is released: no name stays claimed for good by nobody.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tao import JobNotDueError, Tao, VersionConflictError

if TYPE_CHECKING:
    from resolvers.job_context import JobContext

log = logging.getLogger(__name__)

SKELETON_KEYS = "username_skeleton"  # unique-key namespace: skeleton(username) -> USER id
USERNAME_KEYS = "username"  # unique-key namespace: lower-cased username -> USER id
HOLD_JOB = "usernames.release_hold"  # at a hold's end (its id is kept on the hold: a purge deletes it)
CHECK_JOB = "usernames.check_claim"  # a rename's new claim, checked once the rename is surely over
# A rename's new claim is checked this long after it was made (a rename takes milliseconds; one
# that died between its claim and its write left the name claimed by an account not bearing it).
CLAIM_CHECK_MS = 10 * 60 * 1000

# TR39 confusables.txt rows whose source is a username character and whose prototype differs.
_PROTOTYPES = str.maketrans({"0": "O", "1": "l", "I": "l", "m": "rn"})


def skeleton(username: str) -> str:
    """The confusable skeleton of a (valid, ASCII) username; equal for names that look alike."""
    return username.translate(_PROTOTYPES).lower()


def similar_error_message(username: str) -> str:
    return (
        f"The username {username!r} looks like one that is taken (I, l and 1, 0 and O, or m and rn "
        "look alike): pick another."
    )


async def claim_skeleton(tao: Tao, username: str, user_id: int) -> bool:
    """Claim `username`'s skeleton for the user; False if another account's name looks the same."""
    return await tao.key_claim(SKELETON_KEYS, skeleton(username), user_id)


async def release_skeleton(tao: Tao, username: str, user_id: int) -> None:
    await tao.key_release(SKELETON_KEYS, skeleton(username), user_id)


async def claim_existing_skeletons(tao: Tao, *, page: int = 500) -> AsyncIterator[tuple[int, str, int | None]]:
    """Claim the skeleton of every USER on every shard (idempotent); yields (user id, username,
    holder) for each account whose skeleton another account holds (both keep working)."""
    from resolvers.records import User, record_of

    for shard in range(tao.n_shards):
        after = 0
        while True:
            objs = await tao.obj_scan(shard, "USER", after, page)
            if not objs:
                break
            after = objs[-1].id
            for obj in objs:
                user = record_of(obj)
                if not isinstance(user, User):
                    continue
                if not await claim_skeleton(tao, user.username, user.id):
                    holder = (await tao.key_get_many(SKELETON_KEYS, [skeleton(user.username)])).get(
                        skeleton(user.username)
                    )
                    yield user.id, user.username, holder


def holds_of(data: dict) -> dict[str, dict]:
    """The names an account holds after renames: {lower-cased name: {"name", "until" (ms)}}."""
    return dict(data.get("username_holds") or {})


def _now_ms() -> int:
    return int(time.time() * 1000)


async def release_if_unused(tao: Tao, user_id: int, name: str, *, until: int | None = None) -> bool:
    """Release `name` (and its skeleton) if the account neither bears it nor holds it now (an
    expired hold is dropped from the account first: one whose end is at most `until`, or now);
    True if it released the name. Idempotent.
    A rename claims its name before writing it, then writes the USER by a compare-and-set of the
    version it read before its claim: this release first moves that version (a fence), so a
    rename stalled across it cannot land its write; one that read the USER after the fence
    checks its claim again after its write (`confirm_claims`)."""
    key = name.lower()
    for _ in range(10):
        obj = (await tao.obj_get([user_id])).get(user_id)
        if obj is None:  # purged: its claims go with it (erase_rows); a no-op if another holds it
            await tao.key_release(USERNAME_KEYS, key, user_id)
            await release_skeleton(tao, name, user_id)
            return True
        bears = str(obj.data.get("username", ""))
        holds = holds_of(obj.data)
        if bears.lower() == key:
            return False
        hold = holds.get(key)
        if hold is not None and int(hold["until"]) > (_now_ms() if until is None else until):
            return False  # held still, or again (its own release job comes at its end)
        if hold is not None:
            holds.pop(key)
        # A fence, written even with no hold to drop: the USER's version moves before the name is
        # let go, so a rename that claimed it and read the USER before this (stalled since, its
        # compare-and-set not yet landed) finds its write refused and tries again from what is
        # there: the name visibly another's by then, it answers USERNAME_TAKEN having written
        # nothing. Without it the stalled write landed, wearing a name another account had taken.
        try:
            await tao.obj_update(user_id, {"username_holds": holds or None} if hold is not None else {},
                                 version=obj.version)
        except VersionConflictError:
            continue
        await tao.key_release(USERNAME_KEYS, key, user_id)
        kept = {skeleton(bears), *(skeleton(str(h["name"])) for h in holds.values())}
        if skeleton(name) not in kept:
            await release_skeleton(tao, name, user_id)
        return True
    raise VersionConflictError(f"user {user_id} kept changing while releasing {name!r}: retried later")


async def release_job(job: JobContext, payload: dict) -> None:
    """`usernames.release_hold` and `usernames.check_claim`: a hold's end, or the check of a
    rename's claim. Run before a hold's end (a drain of delayed jobs), it is put back for then."""
    until = payload.get("until")
    if until is not None and _now_ms() < int(until):
        raise JobNotDueError(int(until))
    await release_if_unused(job.tao, int(payload["user"]), str(payload["name"]),
                            until=int(until) if until is not None else None)


async def confirm_claims(tao: Tao, user_id: int, username: str) -> bool:
    """After a rename's write: its name (and skeleton) must still be the account's. A release
    of the same name (a hold's end, a claim check) running between the claim and the write may
    have let it go; claim it again. Returns False when one was lost meanwhile to another account
    (a window of milliseconds, after a rename to this name stalled for `CLAIM_CHECK_MS`): the
    rename then takes itself back (`users._rename`), logged.

    A later rename may have renamed the account away from it meanwhile and released it (no
    hold): claimed again here, it would be claimed for good by an account not bearing it. So
    the claims are judged once more after (`release_if_unused`: whichever of the two runs last
    sees the other's write)."""
    kept = True
    if not await tao.key_claim(USERNAME_KEYS, username.lower(), user_id):
        log.error("user %s bears the username %r, which another account claimed meanwhile: the rename is "
                  "taken back", user_id, username)
        kept = False
    elif not await claim_skeleton(tao, username, user_id):
        log.error("user %s bears the username %r, whose look-alike another account claimed meanwhile: the "
                  "rename is taken back", user_id, username)
        kept = False
    await release_if_unused(tao, user_id, username)
    return kept
