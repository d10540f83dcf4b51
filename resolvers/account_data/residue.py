"""The residue check: proof that nothing about a purged user remains.

`find_residue(tao, settings, media, user_id, ids)` looks in three places and returns what it finds:
- rows: every table of every shard (`tao.residue`): objects, edges (either end), count rows,
  inverse tombstones and unique keys naming the user or `ids` (the ids of what they created, when
  the caller knows them), and any object, edge or queued job whose data holds the user's id;
- cache keys: every key on every cache server (memcached `lru_crawler metadump`) naming the
  user or `ids`, or whose value holds the user's id;
- stored objects: each registered kind's own check (`DataKind.residue`): media originals and
  variants without a MEDIA record, the user's export archives.
`python -m resolvers residue --user ID [--ids ...]` prints the three counts and exits 1 unless
all are 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config import Settings
from resolvers.account_data.registry import DataContext, kinds
from tao import Tao


@dataclass
class ResidueReport:
    rows: list[tuple[int, str, tuple]] = field(default_factory=list)
    cache_keys: list[tuple[str, str]] = field(default_factory=list)
    stored_objects: list[str] = field(default_factory=list)

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.rows), len(self.cache_keys), len(self.stored_objects)

    def summary(self) -> str:
        r, c, o = self.counts
        return f"{r} rows, {c} cache keys, {o} stored objects"


async def find_residue(tao: Tao, settings: Settings, media: Any, user_id: int, ids: list[int] = ()) -> ResidueReport:  # type: ignore[assignment]
    found = await tao.residue([user_id, *ids], [user_id])
    report = ResidueReport(found.rows, found.cache_keys)
    ctx = DataContext(tao, settings, media)
    for kind in kinds():
        if kind.residue is not None:
            report.stored_objects += await kind.residue(ctx, user_id)
    return report
