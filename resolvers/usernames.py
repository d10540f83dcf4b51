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
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tao import Tao

SKELETON_KEYS = "username_skeleton"  # unique-key namespace: skeleton(username) -> USER id

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
