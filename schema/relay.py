"""Relay conventions: the `Node` interface, opaque global ids, cursors and connections.

A global id is base64("Type:id"); clients must treat it and cursors as opaque strings. Decoding
anything malformed is a top-level BAD_USER_INPUT error that says where to get a valid one. Node
types register themselves (`register_node`), so `node(id:)`/`nodes(ids:)` resolve any of them,
through privacy, with no code here per type.

Invariant: a keyset cursor is valid only in the list that issued it. It is base64 of a 6-byte
tag of its list (a hash of the connection's name and owner: `list_cursors("User.followers",
user_id)`), a byte naming the cursor key that sealed it, the position (time, id2) packed in 16
bytes and sealed (below), and a 4-byte keyed check; the head of a list is the tag alone.

Invariant: a cursor tells a client nothing it was not shown. A page's `endCursor` is the position
of the last edge *read* (resolvers/pagination.py), which may be an edge the viewer may not see:
a private account's post on a hashtag's or a place's page, a blocked account's comment. Its
position is that post's id and time, so an open position told a stranger that a private account
posted under the tag, when, and the post's id, page after page (`first: 1` walked them all:
found by probe4). The 16 bytes are therefore one AES block, encrypted under the deployment's
cursor key (`seal_cursors`, set by `server.create_app` from `server.cursor_keys`) after XOR with a
hash of the list's tag, so equal positions in two lists differ too.

Invariant: a cursor opens at the position it was made for, or not at all (never a wrong page).
It names its key, so during a rotation any configured key opens what it sealed; one whose key is
not configured, or that was altered (the check), or that was sealed before cursors named their
key, is BAD_USER_INPUT `CURSOR_EXPIRED: ...` (start the list again). Before, cursors were sealed
under a key derived from `messages`' active key: while it rotated, a cursor from a process on the
other key opened as another position of the same list (docs/graphql.md, "Cursor keys").
A connection decodes `after` with its own list's cursors, so a cursor of another list (another
user's followers, a following list, the tray) is BAD_USER_INPUT like a garbage one, before any
read. Every connection here pages through `ListCursors`: there is no untagged cursor to decode.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from resolvers.errors import BadInputError
from resolvers.ids import check_object_id
from resolvers.pagination import Cursor, Page


@strawberry.interface(description="An object with a globally unique, opaque id, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID


NodeT = TypeVar("NodeT")

# Every `first` argument (connections and short lists alike) is this type, and its one range
# check is `resolvers.pagination.check_first` (0 to `limits.max_page_size`, BAD_USER_INPUT).
First = Annotated[int, strawberry.argument(description="Page size, 0 to 100.")]

# typename -> (otype, converter from the domain's record (`resolvers.records`) to the strawberry type)
_NODE_TYPES: dict[str, tuple[str, Callable[[Any], Any]]] = {}


def register_node(typename: str, otype: str, from_record: Callable[[Any], Any]) -> None:
    _NODE_TYPES[typename] = (otype, from_record)


def node_types() -> dict[str, tuple[str, Callable[[Any], Any]]]:
    return _NODE_TYPES


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    if len(text) > 200:
        raise ValueError("too long")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


@functools.lru_cache(maxsize=65_536)  # a page names the same users and posts request after request
def to_global_id(typename: str, obj_id: int) -> strawberry.ID:
    return strawberry.ID(_b64(f"{typename}:{obj_id}"))


def from_global_id(global_id: str, n_shards: int, expected: str | None = None, arg: str = "id") -> tuple[str, int]:
    """(typename, store id) of a global id; BAD_USER_INPUT if malformed or of the wrong type."""
    try:
        typename, _, raw = _unb64(global_id).partition(":")
        obj_id = int(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInputError(f"`{arg}` is not a valid id: pass an `id` returned by this API.") from None
    if typename not in _NODE_TYPES or not check_object_id(obj_id, n_shards):
        raise BadInputError(f"`{arg}` is not a valid id: pass an `id` returned by this API.")
    if expected is not None and typename != expected:
        raise BadInputError(f"`{arg}` must be the id of a {expected}, but it is the id of a {typename}.")
    return typename, obj_id


_TAG_BYTES = 6  # 48 bits: two lists share a tag about once in 2**48 pairs (a wrong page, never a leak)
_KEY_BYTES = 1  # which cursor key sealed it (`_key_byte` of its id; no two configured keys share one)
_CHECK_BYTES = 4  # a keyed check over the rest: a retired key's or an altered cursor is refused
_POSITION = struct.Struct(">qQ")  # (time or rank, id2): signed 64-bit, unsigned 64-bit (ids use all 64 bits)
_SEALED = _TAG_BYTES + _KEY_BYTES + _POSITION.size + _CHECK_BYTES
_UNNAMED = _TAG_BYTES + _POSITION.size  # sealed before cursors named their key (fifteenth session)
_BAD_CURSOR = "`{arg}` is not a valid cursor: pass a `cursor` or `pageInfo.endCursor` from this API."
_OTHER_LIST = ("`{arg}` is a cursor of another list: pass a `cursor` or `pageInfo.endCursor` of this same "
               "list, or leave `{arg}` out to start at the top.")
_CANNOT_OPEN = ("CURSOR_EXPIRED: `{arg}` cannot be opened here (it was sealed under a cursor key this server "
                "no longer has, or altered): leave `{arg}` out to start at the top of the list, then page on.")
MIN_CURSOR_KEY_BYTES = 16


def _key_byte(key_id: str) -> bytes:
    return hashlib.blake2b(key_id.encode(), digest_size=_KEY_BYTES, person=b"taogram-curkey").digest()


class _Sealer:
    """One cursor key: AES-128 over one 16-byte block (a permutation: nothing to pad, nothing to
    store) and a keyed 4-byte check over the whole cursor."""

    __slots__ = ("key_byte", "seal", "open", "_check")

    def __init__(self, key_id: str, secret: bytes) -> None:
        material = hashlib.blake2b(secret, digest_size=32, person=b"taogram-cursor").digest()
        cipher = Cipher(algorithms.AES(material[:16]), modes.ECB())  # one block a message: ECB is plain AES
        self.seal = cipher.encryptor().update
        self.open = cipher.decryptor().update
        self._check = hashlib.blake2b(digest_size=_CHECK_BYTES, key=material[16:])  # copied: cheaper than keying
        self.key_byte = _key_byte(key_id)

    def check(self, data: bytes) -> bytes:
        h = self._check.copy()
        h.update(data)
        return h.digest()


class _CursorKeys:
    __slots__ = ("active", "by_byte")

    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        sealers = {key_id: _Sealer(key_id, secret) for key_id, secret in keys.items()}
        self.active = sealers[active]
        self.by_byte = {s.key_byte: s for s in sealers.values()}


def cursor_key_material(keys: dict[str, str], active: str) -> dict[str, bytes]:
    """The secrets of `server.cursor_keys` (base64, at least 16 bytes each), checked: ValueError
    saying what to fix."""
    if active not in keys:
        raise ValueError(f"server.cursor_key {active!r} is not in server.cursor_keys ({', '.join(sorted(keys))})")
    out: dict[str, bytes] = {}
    seen: dict[bytes, str] = {}
    for key_id, value in keys.items():
        try:
            secret = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise ValueError(f"server.cursor_keys[{key_id!r}] is not base64") from None
        if len(secret) < MIN_CURSOR_KEY_BYTES:
            raise ValueError(f"server.cursor_keys[{key_id!r}] must be at least {MIN_CURSOR_KEY_BYTES} bytes "
                             f"(base64 of random bytes), not {len(secret)}")
        other = seen.setdefault(_key_byte(key_id), key_id)
        if other != key_id:  # a cursor names its key by one byte of its id's hash
            raise ValueError(f"server.cursor_keys {other!r} and {key_id!r} cannot both be configured "
                             "(their ids hash alike): rename the newer one")
        out[key_id] = secret
    return out


def seal_cursors(keys: dict[str, str], active: str) -> None:
    """Seal every cursor under `keys[active]` and open those of any key in `keys` (the
    deployment's `server.cursor_keys` and `server.cursor_key`, the same in every process but for
    the steps of a rotation: docs/graphql.md, "Cursor keys"). ValueError if they cannot be used."""
    global _keys
    _keys = _CursorKeys(cursor_key_material(keys, active), active)


# Replaced at start-up by `seal_cursors` with the deployment's keys (`server.create_app`).
_keys = _CursorKeys({"dev": b"dev-only-cursor-key-change-me!!!"}, "dev")


class ListCursors:
    """The cursors of one list. `encode` is what `_PagedEdge` calls lazily, so it is one pack and
    one base64 (the tag is made once per list, `list_cursors`); `decode` refuses a cursor of any
    other list. The head (None: no edge read yet) is the `endCursor` of an empty page read from
    the start (`first: 0`, or an empty list), so `endCursor` is always set; `after` it is the
    first page."""

    __slots__ = ("_tag", "_head", "_mask")

    def __init__(self, tag: bytes) -> None:
        self._tag = tag
        self._head = base64.urlsafe_b64encode(tag).decode().rstrip("=")
        self._mask = int.from_bytes(hashlib.blake2b(tag, digest_size=_POSITION.size).digest())

    def _xor(self, block: bytes) -> bytes:
        return (int.from_bytes(block) ^ self._mask).to_bytes(_POSITION.size)

    def encode(self, position: Cursor | None) -> str:
        if position is None:
            return self._head
        key = _keys.active
        body = self._tag + key.key_byte + key.seal(self._xor(_POSITION.pack(*position)))
        return base64.urlsafe_b64encode(body + key.check(body)).decode().rstrip("=")

    def decode(self, cursor: str | None, arg: str = "after") -> Cursor | None:
        """The position of `cursor` in this list (None: the head, or no cursor); BAD_USER_INPUT if
        it is malformed, another list's, or cannot be opened here (CURSOR_EXPIRED: its key is not
        configured, or it was altered): never another position."""
        if cursor is None:
            return None
        try:
            if len(cursor) > 100:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, binascii.Error):
            raise BadInputError(_BAD_CURSOR.format(arg=arg)) from None
        if len(raw) not in (_TAG_BYTES, _UNNAMED, _SEALED):
            raise BadInputError(_BAD_CURSOR.format(arg=arg))
        if raw[:_TAG_BYTES] != self._tag:
            raise BadInputError(_OTHER_LIST.format(arg=arg))
        if len(raw) == _TAG_BYTES:
            return None
        key = _keys.by_byte.get(raw[_TAG_BYTES:_TAG_BYTES + _KEY_BYTES]) if len(raw) == _SEALED else None
        body = raw[:-_CHECK_BYTES]
        if key is None or not hmac.compare_digest(key.check(body), raw[-_CHECK_BYTES:]):
            raise BadInputError(_CANNOT_OPEN.format(arg=arg))
        t, id2 = _POSITION.unpack(self._xor(key.open(body[_TAG_BYTES + _KEY_BYTES:])))
        return t, id2


# Cached: a page names the same lists request after request (a hit ~0.15 us, a miss ~1.3 us: the
# hash); 8 192 entries of ~300 bytes bound the cache at a few MB per process.
@functools.lru_cache(maxsize=8_192)
def list_cursors(name: str, owner: int) -> ListCursors:
    """The cursors of the list `name` (the connection's `Type.field`, plus any argument that makes
    it another list, e.g. the inbox folder) of `owner` (the user, post, story… it hangs off; the
    viewer for the viewer's own lists)."""
    return ListCursors(hashlib.blake2b(f"{name}:{owner}".encode(), digest_size=_TAG_BYTES).digest())


@strawberry.type(description="Where a page sits in its list (forward keyset pagination).")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None = strawberry.field(
        description="Pass as `after` to get the next page. Set even when the page shows no edges."
    )


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="A page of a list, newest first. `first` is at most 100.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo

    @strawberry.field(description="The nodes of `edges`, for clients that need no cursors.")
    def nodes(self) -> list[NodeT]:
        return [e.node for e in self.edges]


class _PagedEdge(Edge[Any]):
    """An `Edge` whose cursor string is encoded when first read: many queries read a page's
    nodes through `nodes` and never its cursors (the profile page's 60 comment edges; encoding
    every cursor was ~1 % of that page's CPU, docs/BENCHMARKS.md issue 16). The GraphQL type is
    `Edge`'s (no type of its own; `Edge` has no interface, so graphql-core checks nothing)."""

    def __init__(self, position: Cursor, node: Any, cursors: ListCursors) -> None:
        self._position = position
        self._cursors = cursors
        self._cursor: str | None = None
        self.node = node

    @property
    def cursor(self) -> str:  # type: ignore[override]  # read-only here: computed from the position
        if self._cursor is None:
            self._cursor = self._cursors.encode(self._position)
        return self._cursor


def connection_from_page(page: Page[Any], convert: Callable[[Any], Any], cursors: ListCursors) -> Connection[Any]:
    """The connection of a page read with `cursors.decode(after)`: its cursors are that list's."""
    edges: list[Edge[Any]] = [_PagedEdge(c, convert(n), cursors) for c, n in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=cursors.encode(page.end_cursor),
        ),
    )
