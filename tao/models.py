"""The store's values: objects and associations, as read from a shard or the cache, and the
encoding of the `data` they carry (a small JSON dict).

They are read-only by convention, not `frozen`: a frozen dataclass builds itself through
`object.__setattr__`, 1.2 us per value against 0.18 us, and a feed refresh builds over a
thousand of them. Nothing in the code base assigns to their fields, and every caller gets its
own copies (the cache tier decodes a fresh value for each caller).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tao.errors import InvalidDataError


@dataclass(slots=True)
class Obj:
    id: int
    otype: str
    version: int
    created: int  # ms since the Unix epoch
    updated: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlannedObj:
    """An object to be created inside an edge write's transaction (`Tao.obj_plan`, then
    `assoc_add_and_append(create=...)`): its id and time are taken now, nothing is written yet.
    `obj` is the object as that write stores it."""
    shard: int
    code: int  # the otype's
    text: str  # its data, encoded as stored
    obj: Obj


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


@dataclass(frozen=True, slots=True)
class ListCheck:
    """A condition on a whole small list, checked inside a write's transaction under the list's
    lock (`Tao.assoc_add_and_append(check=)`): `check(edges)` gets the list's edges as they stand
    there (newest first) and raises to abort the write, which then commits nothing and lets the
    exception through. It may instead return edges of the write, as (id1, atype, id2), to leave
    out of it (an edge the list's current state makes stale: a read marker already past the one
    the write would set); the rest commits. No writer of the list can commit between the check
    and the write's commit. For lists of at most `MAX_CHECKED` edges (a thread's members)."""
    id1: int
    atype: str
    check: Callable[[list[Assoc]], Iterable[tuple[int, str, int]] | None]


MAX_CHECKED = 1_000
MAX_DATA_BYTES = 60_000
MAX_MANY_KEYS = 10_000


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_data(data: Any) -> str:
    """Object or edge data as the JSON text the store keeps: a dict of at most `MAX_DATA_BYTES`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidDataError(f"data must be a dict, got {type(data).__name__}")
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"data must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidDataError("data is nested too deeply to store; keep it shallow") from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # an unpaired surrogate: not Unicode text, so not storable as UTF-8
        raise InvalidDataError("data holds a string that is not valid Unicode (an unpaired surrogate)") from None
    try:
        # Every reader decodes with orjson, which reads an integer past 64 bits as a float (10**30
        # came back as 1e30) or not at all (10**400: the row, already committed, then failed every
        # read and scan of it), and no nesting past its depth limit. Refused here, before any write.
        # A key that is not a string (1, True, None, 1.5) is written by JSON as a string ("1",
        # "true", "null", "1.5"): the dict read back is another one, and a batch job that wrote
        # {1: x} and looks up 1 finds nothing. Refused as well (orjson, unlike json, refuses them).
        orjson.dumps(data)
    except orjson.JSONEncodeError:
        key = _non_string_key(data)
        if key is not None:
            stored = next(iter(json.loads(json.dumps({key[1]: 0}))))
            raise InvalidDataError(
                f"data keys must be strings: {key[0]} has the key {key[1]!r} ({type(key[1]).__name__}), which "
                f"would be stored, and read back, as the string {stored!r}; convert it (str(key)) before "
                "writing") from None
        _readable(data)  # keys of a str subclass (a StrEnum) are stored as their text: allowed
    if size > MAX_DATA_BYTES:
        raise InvalidDataError(f"data is {size} bytes encoded; the limit is {MAX_DATA_BYTES}")
    return text


def _readable(data: Any) -> None:
    try:
        orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise InvalidDataError(f"data cannot be read back as stored ({exc}): integers must fit in 64 bits "
                               "(store larger ones as strings) and nesting must be under 255 levels") from None


def _non_string_key(data: Any) -> tuple[str, Any] | None:
    """The first key that is not a string in `data` (dicts within dicts and lists), as (where it
    is, e.g. `data["a"][0]`, the key); None when every key is a string. Walked without recursion:
    only after a write was refused, so it costs a write that passes nothing."""
    stack: list[tuple[str, Any]] = [("data", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    return where, k
                stack.append((f"{where}[{json.dumps(k, ensure_ascii=False)}]", v))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
    return None


def edge_time(value: Any) -> int:
    """An edge's time as given to a write (ms since the epoch, or now for None): a number, whole
    ms kept, within the signed 64 bits the column holds; anything else is InvalidDataError (a
    string was a bare ValueError, an out-of-range number a driver error)."""
    if value is None:
        return now_ms()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidDataError(f"an edge's time must be ms since the epoch (an integer), got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise InvalidDataError(f"an edge's time must fit in a signed 64-bit integer, got {value!r}")
    return int(value)


def check_count(name: str, value: Any, most: int) -> int:
    """A page size or position argument: an integer in 0..most (InvalidDataError naming it)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise InvalidDataError(f"{name} must be an integer in 0..{most}, got {value!r}")
    return value


def check_many(keys: Sequence[Any]) -> None:
    """The bound on the keys of one many-keys read."""
    if len(keys) > MAX_MANY_KEYS:
        raise InvalidDataError(f"{len(keys)} keys in one call; the limit is {MAX_MANY_KEYS}")
