"""A thread member's state (the HAS_MEMBER edge's data: read marker, `declined`), written
compare-and-set.

Invariant: a change is computed from the edge it is written over. The write is checked under
the member list's lock (`ListCheck`, read in the lock's own statements) against the edge the
change was computed from, and computed again from the edge the lock found if another write
moved it. A plain read-then-`assoc_add` lost updates (a decline undone by a racing
`markThreadRead`, a read marker moved back by an older mark or a mark racing the member's own
send).
"""

from __future__ import annotations

from collections.abc import Callable

from tao import Assoc, ConflictError, ListCheck, Tao, shard_of

MAX_STATE_TRIES = 8  # a checked write is redone only when another write changed what it read


async def set_member_state(tao: Tao, thread_id: int, user_id: int, *, jobs: list[tuple] | None = None,
                           **changes) -> bool:
    """Merge `changes` into a member's edge data (None removes a key), keeping its join time;
    `jobs` commit with the change. False (and no jobs) if nothing changed or they are no member."""
    return await update_member_state(tao, thread_id, user_id, lambda data: {**data, **changes}, jobs=jobs)


class _StateMoved(Exception):
    """The member's edge changed between the read an update was computed from and its write."""

    def __init__(self, edge: Assoc | None) -> None:
        super().__init__("the member's state changed")
        self.edge = edge


async def update_member_state(tao: Tao, thread_id: int, user_id: int, change: Callable[[dict], dict | None], *,
                              jobs: list[tuple] | None = None) -> bool:
    """Write `change(data)` (None values dropped; `change` returning None: no write) as the
    member's edge data, keeping its join time; `jobs` commit with it. False (and no jobs) if
    nothing changed or they are no member.

    A compare-and-set: the write is checked under the member list's lock (`ListCheck`, read in
    the lock's own statements: no round trip more than a plain `assoc_add`) against the edge
    `change` was computed from, and computed again from the edge found if another write moved
    it. A plain read-then-`assoc_add` lost updates: a `markThreadRead` racing a decline wrote
    the data it had read back over the decline (the declined request came back), and two marks
    (two devices) or a mark racing the member's own send moved the read marker back."""
    edge = (await tao.assoc_get(thread_id, "HAS_MEMBER", [user_id])).get(user_id)
    for _ in range(MAX_STATE_TRIES):
        if edge is None:
            return False
        wanted = change(dict(edge.data))
        data = None if wanted is None else {k: v for k, v in wanted.items() if v is not None}
        if data is None or data == edge.data:
            return False
        seen = (edge.time, edge.data)

        def same_edge(current: list[Assoc], seen: tuple = seen) -> None:
            now = next((a for a in current if a.id2 == user_id), None)
            if now is None or (now.time, now.data) != seen:
                raise _StateMoved(now)
        try:
            await tao.assoc_add_and_append([(thread_id, "HAS_MEMBER", user_id, edge.time, data)], [],
                                           check=ListCheck(thread_id, "HAS_MEMBER", same_edge),
                                           jobs_by_shard={shard_of(thread_id): jobs} if jobs else None)
            return True
        except _StateMoved as moved:
            edge = moved.edge
    raise ConflictError(f"the state of member {user_id} of thread {thread_id} kept changing; try again")
