"""Key placement on the memcached ring: rendezvous (highest-random-weight) hashing.

pymemcache's own `RendezvousHash` hashes `f"{node}-{key}"` with a pure-Python murmur3 for
every node: 67 us per key with two servers on our (slow, shared) test box, so a 1000-key
`get_many` would hold the event loop for ~70 ms. This hasher keeps the interface
(`HashClient(hasher=...)`) and the property (adding or removing a server moves only the keys
that land on / came from it) for a fraction of that: one C hash (crc32) of the key, a 64-bit
mix per node, and a bounded memo of recent placements (hot keys repeat).

The memcached tier never removes a node (its ring is fixed; see `tao.cache.memcached`);
`remove_node` exists only to honour pymemcache's hasher interface.
"""

from __future__ import annotations

import hashlib
import zlib

_MASK = (1 << 64) - 1
_MEMO_MAX = 200_000  # placements remembered; the memo is dropped whole when full
JOB_WORKER_MEMO = 4_096  # what `python -m tao worker` keeps (limit_placement_memo)


def limit_placement_memo(entries: int) -> None:
    """Cap every ring's placement memo in this process. For job workers: their jobs (a purge, an
    export) touch most keys once, so a memo near its 200 000-entry cap buys little, and its keys,
    inserted all through a run, pin CPython's small-object arenas (measured: a purge worker of
    the account bench's big account 150.5 MB with the default, 127.6 MB capped at 4 096, against
    121.4 MB for the small one; docs/BENCHMARKS.md, "Account export and purge")."""
    global _MEMO_MAX
    _MEMO_MAX = max(1, int(entries))


def _digest64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _mix(x: int) -> int:
    """splitmix64's finaliser: spreads every input bit over the whole 64-bit score."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class FastRendezvousHash:
    def __init__(self) -> None:
        self.nodes: list[str] = []
        self._seeds: list[tuple[int, str]] = []
        self._memo: dict[str | bytes, str | None] = {}

    def add_node(self, node: str) -> None:
        if node not in self.nodes:
            self.nodes.append(node)
            self._seeds.append((_digest64(node.encode()), node))
            self._memo = {}

    def remove_node(self, node: str) -> None:
        if node not in self.nodes:
            raise ValueError(f"No such node {node} to remove")
        self.nodes.remove(node)
        self._seeds = [(s, n) for s, n in self._seeds if n != node]
        self._memo = {}

    def get_node(self, key: str | bytes) -> str | None:
        winner = self._memo.get(key)
        if winner is not None:
            return winner
        winner = self.place(key)
        if len(self._memo) >= _MEMO_MAX:
            self._memo = {}
        self._memo[key] = winner
        return winner

    def place(self, key: str | bytes) -> str | None:
        """The key's node, computed and not remembered: for keys used once (erasure deletes the
        keys of deleted ids, ~100 a id; memoized, they would fill the memo to its cap, ~22 MB,
        and push out the hot keys it is for)."""
        # crc32 alone is linear, so it would make poor per-node scores; mixed with a
        # per-node 64-bit seed it is only the key's identity, and _mix does the spreading.
        h = zlib.crc32(key.encode() if isinstance(key, str) else key)
        best = -1
        winner: str | None = None
        for seed, node in self._seeds:
            score = _mix(h ^ seed)
            if score > best or (score == best and winner is not None and node > winner):
                best, winner = score, node
        return winner
