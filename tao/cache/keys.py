"""Cache keys: the one module that builds them, so every reader and writer agrees byte for byte.

Layout (`prefix` is the caller's namespace, e.g. the deployment's or a test's; may be empty):

    {prefix}:o:{id}                    an object
    {prefix}:l:{id1}:{atype}           an association list: newest K edges + count + "complete"
    {prefix}:n:{id1}:{atype}           an association list's count alone (same version as the list)
    {prefix}:e:{id1}:{atype}:{id2}     one edge, or its cached absence
    {prefix}:u:{ns}:{digest}           a unique key's claim (usernames, ...): ns + hex digest
    {prefix}:u:{namespace}:{digest}    a claimed unique key (username, session-token hash, ...)

Invariant: every key is printable ASCII without whitespace or control characters and at most
`MAX_KEY_LENGTH` bytes, which leaves room for a memcached tier's own wire prefix
(`MAX_TIER_PREFIX`) within memcached's 250-byte limit. Bad input raises `ValueError` here,
at build time, never as a protocol error on the wire.
"""

from __future__ import annotations

import re

MEMCACHED_MAX_KEY = 250
# A tier may prepend its own namespace on the wire (`MemcachedCache(key_prefix=...)`).
MAX_TIER_PREFIX = 40
MAX_KEY_LENGTH = MEMCACHED_MAX_KEY - MAX_TIER_PREFIX
MAX_PREFIX_LENGTH = 64
MAX_ID = 2**64 - 1

_PREFIX_RE = re.compile(r"[!-~]*")  # printable ASCII, no space
_ATYPE_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_NS_RE = re.compile(r"[a-z0-9_]{1,32}")
_DIGEST_RE = re.compile(r"[0-9a-f]{8,64}")


# The four keys every read builds (hundreds per page) are f-strings over checked parts: an id is
# at most 20 digits and an atype at most 64 characters, so with a checked prefix they are far
# below MAX_KEY_LENGTH (`_join`'s guard is for the general form).

def obj_key(prefix: str, id: int) -> str:
    return f"{_prefix(prefix)}o:{_id(id)}"


def list_key(prefix: str, id1: int, atype: str) -> str:
    return f"{_prefix(prefix)}l:{_id(id1)}:{_atype(atype)}"


def count_key(prefix: str, id1: int, atype: str) -> str:
    return f"{_prefix(prefix)}n:{_id(id1)}:{_atype(atype)}"


def edge_key(prefix: str, id1: int, atype: str, id2: int) -> str:
    return f"{_prefix(prefix)}e:{_id(id1)}:{_atype(atype)}:{_id(id2)}"


def unique_key(prefix: str, ns: str, digest: str) -> str:
    """A unique-key claim; `digest` is a hex hash of the key (the key itself may hold anything)."""
    if not isinstance(ns, str) or not _NS_RE.fullmatch(ns):
        raise ValueError(f"unique-key namespace {ns!r} must be 1-32 of [a-z0-9_]")
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise ValueError(f"unique-key digest {digest!r} must be 8-64 lowercase hex digits")
    return _join(prefix, "u", ns, digest)


def check_prefix(prefix: str) -> str:
    """Validate a namespace prefix (also used by the tiers for their wire prefix)."""
    if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX_LENGTH or not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"cache key prefix {prefix!r} must be at most {MAX_PREFIX_LENGTH} printable ASCII "
            "characters without spaces"
        )
    return prefix


def _join(prefix: str, *parts: str) -> str:
    key = ":".join((check_prefix(prefix), *parts)) if prefix else ":".join(parts)
    if len(key) > MAX_KEY_LENGTH:  # unreachable with the limits above; kept as the invariant's guard
        raise ValueError(f"cache key too long ({len(key)} > {MAX_KEY_LENGTH}): {key[:60]!r}...")
    return key


def _prefix(prefix: str) -> str:
    """The prefix with its separator ("" for none), checked."""
    return f"{check_prefix(prefix)}:" if prefix else ""


def _id(value: int) -> str:
    if type(value) is not int or not 0 <= value <= MAX_ID:  # `type`, not isinstance: no bools
        raise ValueError(f"cache key id must be an int in [0, 2**64): {value!r}")
    return str(value)


_CHECKED_ATYPES: set[str] = set()  # names already matched (a process has a few dozen)


def _atype(atype: str) -> str:
    if type(atype) is str and atype in _CHECKED_ATYPES:
        return atype
    if not isinstance(atype, str) or not _ATYPE_RE.fullmatch(atype):
        raise ValueError(f"association type {atype!r} must be an UPPER_SNAKE name of at most 64 characters")
    if type(atype) is str and len(_CHECKED_ATYPES) < 4096:
        _CHECKED_ATYPES.add(atype)
    return atype
