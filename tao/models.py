"""The store's values: objects and associations, as read from a shard or the cache.

They are read-only by convention, not `frozen`: a frozen dataclass builds itself through
`object.__setattr__`, 1.2 us per value against 0.18 us, and a feed refresh builds over a
thousand of them. Nothing in the code base assigns to their fields, and every caller gets its
own copies (the cache tier decodes a fresh value for each caller).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Obj:
    id: int
    otype: str
    version: int
    created: int  # ms since the Unix epoch
    updated: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Assoc:
    id1: int
    atype: str
    id2: int
    time: int  # ms since the Unix epoch; lists are newest-first by (time, id2)
    version: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Appended:
    """One edge of `assoc_append_many`: the edge as stored, the time of the list's newest edge
    before it (None when the edge existed already), and whether this call added it."""
    assoc: Assoc
    prev: int | None
    new: bool
