"""The store's values: objects and associations, as read from a shard or the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Obj:
    id: int
    otype: str
    version: int
    created: int  # ms since the Unix epoch
    updated: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assoc:
    id1: int
    atype: str
    id2: int
    time: int  # ms since the Unix epoch; lists are newest-first by (time, id2)
    version: int
    data: dict[str, Any] = field(default_factory=dict)
