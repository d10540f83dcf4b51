"""Relay conventions: the `Node` interface, opaque global ids, cursors and connections.

A global id is base64("Type:id") and a cursor base64("cursor:time:id2"): clients must treat
both as opaque strings. Decoding anything malformed is a top-level BAD_USER_INPUT error that
says where to get a valid one. Node types register themselves (`register_node`), so
`node(id:)`/`nodes(ids:)` resolve any of them, through privacy, with no code here per type.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

import strawberry

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


# The position before a list's newest edge: the `endCursor` of an empty page read from the
# start (`first: 0`, or an empty list), so `endCursor` is always set; `after` it is the first page.
HEAD_CURSOR = _b64("cursor:head")


def encode_cursor(cursor: Cursor | None) -> str:
    """A cursor string; None (no edge read yet) is the head of the list."""
    return HEAD_CURSOR if cursor is None else _b64(f"cursor:{cursor[0]}:{cursor[1]}")


def decode_cursor(cursor: str | None) -> Cursor | None:
    if cursor is None or cursor == HEAD_CURSOR:
        return None
    try:
        tag, t, id2 = _unb64(cursor).split(":")
        if tag != "cursor":
            raise ValueError(tag)
        return int(t), int(id2)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInputError("`after` is not a valid cursor: "
                            "pass a `cursor` or `pageInfo.endCursor` from this API.") from None


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

    def __init__(self, position: Cursor, node: Any) -> None:
        self._position = position
        self._cursor: str | None = None
        self.node = node

    @property
    def cursor(self) -> str:  # type: ignore[override]  # read-only here: computed from the position
        if self._cursor is None:
            self._cursor = encode_cursor(self._position)
        return self._cursor


def connection_from_page(page: Page[Any], convert: Callable[[Any], Any]) -> Connection[Any]:
    edges: list[Edge[Any]] = [_PagedEdge(c, convert(n)) for c, n in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=encode_cursor(page.end_cursor),
        ),
    )
