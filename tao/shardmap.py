"""Which physical server holds which logical shard.

Every logical shard is its own database (`<prefix>_s0042` on MySQL, `s0042.db` on SQLite), so
moving a shard to another server is a copy of one database plus a change of this map.
The map comes from config: `store.shard_map = {"0": [0, 2, ...], "1": [1, 3, ...]}` (server
index -> logical shards), or round-robin over `store.mysql_servers` when empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from config import StoreSettings
from tao.ids import MAX_SHARDS


@dataclass(frozen=True)
class ShardMap:
    n_shards: int
    server_of_shard: tuple[int, ...]  # logical shard -> server index
    database_prefix: str

    @classmethod
    def from_settings(cls, s: StoreSettings) -> ShardMap:
        n = s.logical_shards
        if not 0 < n <= MAX_SHARDS:
            raise ValueError(f"store.logical_shards must be in 1..{MAX_SHARDS}, got {n}")
        n_servers = max(1, len(s.mysql_servers)) if s.backend == "mysql" else 1
        if s.shard_map:
            owner: dict[int, int] = {}
            for server, shards in s.shard_map.items():
                for shard in shards:
                    if shard in owner:
                        raise ValueError(f"store.shard_map: shard {shard} is mapped twice")
                    if not 0 <= int(server) < n_servers:
                        raise ValueError(f"store.shard_map: no server {server}")
                    owner[shard] = int(server)
            missing = sorted(set(range(n)) - set(owner))
            if missing:
                raise ValueError(f"store.shard_map: shards {missing[:10]} are not mapped")
            table = tuple(owner[i] for i in range(n))
        else:
            table = tuple(i % n_servers for i in range(n))
        return cls(n, table, s.database_prefix)

    def database(self, shard: int) -> str:
        return f"{self.database_prefix}_s{shard:04d}"

    def shards_on(self, server: int) -> list[int]:
        return [i for i, s in enumerate(self.server_of_shard) if s == server]
