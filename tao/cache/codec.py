"""Encoding of cached values: compact JSON bytes of a dict carrying an integer version `"v"`.

Both tiers store these bytes, never the caller's dict, so a caller can never alias (and
mutate) a cached value. `decode` returns `None` for bytes that are not a versioned dict (a
foreign or corrupt entry): the tiers treat those as a miss on read and as "present at
version -1" on install, so any install replaces them.
"""

from __future__ import annotations

from typing import Any

import orjson

from tao.cache.base import Value


def encode(value: Value) -> bytes:
    # Values hold data already checked by tao.core.encode_data (str keys, no NaN).
    return orjson.dumps(value)


def decode(data: bytes | None) -> Value | None:
    if data is None:
        return None
    try:
        value: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    version = value.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        return None
    return value


def tombstone(version: int) -> Value:
    """The value a writer installs to drop a key: present, at `version`, never served."""
    return {"v": version, "stale": True}


def is_tombstone(value: Value) -> bool:
    return value.get("stale") is True


def finish(value: Value, version: int) -> Value:
    """Return `value` stamped with `version` (a copy: `make` may have returned the old dict)."""
    if not isinstance(value, dict):
        raise TypeError(f"Install.make must return a dict, got {type(value).__name__}")
    out = dict(value)
    out["v"] = version
    return out


def plan_install(version: int, make: Any, raw: bytes | None) -> bytes | None:
    """The bytes to store for an install at `version` over the cached `raw` (None: absent),
    or None when the cache already holds `version` or newer (the install is a no-op).

    This is the one place the versioned-install rule lives; both tiers call it.
    A tombstone counts as present at its version, but `make` receives None for it, and a value
    (not another tombstone) at the tombstone's own version replaces it: that value was read
    from the very SQL state the tombstone stands for, so it is not older. Without this, a list
    a writer tombstoned at version n could not be refilled until the next write, which
    tombstones it again: a busy list would never be served from the cache.
    """
    current = decode(raw)
    if current is not None and (current["v"] > version or (current["v"] == version and not is_tombstone(current))):
        return None
    old = None if current is None or is_tombstone(current) else current
    new = finish(make(old), version)
    if current is not None and current["v"] == version and is_tombstone(new):
        return None  # a tombstone over a tombstone at the same version changes nothing
    return encode(new)
