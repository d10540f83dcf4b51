"""Prefetched fields: what a page's builder loaded in one batched round, served as plain attributes.

graphql-core resolves an `async` field by wrapping it in a coroutine, and a list of objects with
async fields by gathering their items as tasks: on the profile page (20 posts, each with its author,
counts, the viewer's like and 3 comments with their authors) that was ~280 tasks and ~1 000
event-loop callbacks per request, and cost more CPU than the whole query does on plain attributes
(docs/BENCHMARKS.md, "GraphQL execution against its floor").

So the builder of a page (`User.posts`, ...) looks at what the request selects under the page's
nodes and, for each selected field that has a *batch fetcher* registered here, loads that field for
every node at once (one `load_many` per loader, as the per-field resolvers would have batched) and
stores the result on the node (`prefetched`). The field's resolver is wrapped once, when the schema
is built: it answers from `prefetched` when the value is there and runs the field's own resolver
otherwise, so a node built anywhere else (`node(id:)`, a mutation's payload) and any field or
argument combination nobody prefetched behave exactly as before. A fetch that failed for one node
stores nothing for it, so that field resolves (and reports its error) the ordinary way.

Fetchers recurse: a field whose value holds other objects (a post's `comments` page, its `author`)
names the type of those objects, and what the request selects of *them* is prefetched over all of
them together (every post's comments' authors in one batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    is_leaf_type,
)
from graphql.execution.values import VariableValues, get_argument_values

from resolvers.context import RequestContext

MISSING: Any = object()

# fetch(ctx, objects, arguments) -> one value per object (MISSING where it could not be fetched)
Fetch = Callable[[RequestContext, list[Any], dict[str, Any]], Awaitable[list[Any]]]


@dataclass(frozen=True)
class _Fetcher:
    fetch: Fetch
    child_type: str | None  # the GraphQL type of the objects the value holds, to prefetch within
    connection: bool  # the value is a Connection (children under edges.node / nodes), else an object or list


_FETCHERS: dict[tuple[str, str], _Fetcher] = {}


def batch_fetcher(type_name: str, field_name: str, *, child_type: str | None = None,
                  connection: bool = False) -> Callable[[Fetch], Fetch]:
    """Register `fetch` as the batched loader of `type_name.field_name` (GraphQL names)."""
    def register(fetch: Fetch) -> Fetch:
        _FETCHERS[(type_name, field_name)] = _Fetcher(fetch, child_type, connection)
        return fetch
    return register


def field_key(field_name: str, arguments: dict[str, Any]) -> Any:
    if not arguments:
        return field_name
    return field_name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in arguments.items()))


def install(schema: GraphQLSchema) -> None:
    """Wrap the resolver of every field with a fetcher: the prefetched value if present, else its own."""
    for type_name, field_name in _FETCHERS:
        graphql_type = schema.type_map.get(type_name)
        if not isinstance(graphql_type, GraphQLObjectType) or field_name not in graphql_type.fields:
            raise LookupError(f"batch_fetcher for {type_name}.{field_name}: no such field in the schema")
        field = graphql_type.fields[field_name]
        field.resolve = _answer_prefetched(field_name, field.resolve)
        # A scalar or enum field: the execution context answers it from `prefetched` directly
        # (schema/execution.py), when the value is there; else this resolver runs.
        non_null = isinstance(field.type, GraphQLNonNull)
        inner = field.type.of_type if non_null else field.type
        field.plain_leaf = (field.resolve, field_name, inner, non_null, True) if is_leaf_type(inner) else None


def _answer_prefetched(field_name: str, resolve: Any) -> Any:
    def resolve_prefetched(source: Any, info: Any, **arguments: Any) -> Any:
        prefetched = getattr(source, "prefetched", None)
        if prefetched:
            value = prefetched.get(field_key(field_name, arguments), MISSING)
            if value is not MISSING:
                return value
        return resolve(source, info, **arguments)
    return resolve_prefetched


# ---- what the request selects -------------------------------------------------------------------

def _collect(info: Any, selection_sets: Iterable[SelectionSetNode | None], out: dict[str, list[FieldNode]]) -> None:
    """Fields selected in these selection sets, fragments expanded, grouped by field name.

    Type conditions and @skip/@include are not evaluated: prefetching a field the request then
    skips costs a load, never a wrong answer (the resolver only reads what it is asked for)."""
    for selection_set in selection_sets:
        if selection_set is None:
            continue
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.setdefault(selection.name.value, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                _collect(info, [selection.selection_set], out)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = info.fragments.get(selection.name.value)
                if fragment is not None:
                    _collect(info, [fragment.selection_set], out)


def _children(info: Any, nodes: list[FieldNode], connection: bool) -> list[SelectionSetNode | None]:
    """The selection sets that apply to the objects a field's value holds."""
    if not connection:
        return [n.selection_set for n in nodes]
    page: dict[str, list[FieldNode]] = {}
    _collect(info, [n.selection_set for n in nodes], page)
    edges: dict[str, list[FieldNode]] = {}
    _collect(info, [e.selection_set for e in page.get("edges", [])], edges)
    return [n.selection_set for n in edges.get("node", []) + page.get("nodes", [])]


def node_selections(info: Any) -> list[SelectionSetNode | None]:
    """What the current field (a connection) selects of its nodes."""
    info = getattr(info, "_raw_info", info)
    return _children(info, list(info.field_nodes), connection=True)


def _held_objects(value: Any, connection: bool) -> list[Any]:
    if value is None:
        return []
    if connection:
        return [edge.node for edge in value.edges]
    return list(value) if isinstance(value, list) else [value]


# ---- fetching ------------------------------------------------------------------------------------

async def prefetch_page(info: Any, type_name: str, connection: Any) -> None:
    """Prefetch what the current field (a connection of `type_name` nodes) selects of its nodes."""
    await prefetch(info, type_name, [edge.node for edge in connection.edges], node_selections(info))


async def prefetch(info: Any, type_name: str, objects: list[Any], selections: list[SelectionSetNode | None]) -> None:
    """Fetch, for all `objects` (of GraphQL type `type_name`) at once, every selected field that
    has a fetcher, then recurse into what those fields' values hold."""
    if not objects:
        return
    info = getattr(info, "_raw_info", info)  # strawberry's Info wraps graphql-core's
    # strawberry hands resolvers the coerced variables as a plain dict; graphql-core's argument
    # coercion wants its VariableValues (the sources only matter for fragment variables).
    variables = info.variable_values
    if isinstance(variables, dict):
        variables = VariableValues({}, variables)
    fields: dict[str, list[FieldNode]] = {}
    _collect(info, selections, fields)
    graphql_type = info.schema.type_map[type_name]
    jobs = []
    for field_name, field_nodes in fields.items():
        fetcher = _FETCHERS.get((type_name, field_name))
        if fetcher is None:
            continue
        by_arguments: dict[Any, tuple[dict[str, Any], list[FieldNode]]] = {}
        field_def: GraphQLField = graphql_type.fields[field_name]
        for node in field_nodes:
            try:
                arguments = get_argument_values(field_def, node, variables)
            except Exception:  # a bad argument: the field's own resolution reports it
                continue
            key = field_key(field_name, arguments)
            by_arguments.setdefault(key, (arguments, []))[1].append(node)
        for key, (arguments, nodes) in by_arguments.items():
            jobs.append(_fetch_field(info, fetcher, key, arguments, nodes, objects))
    if jobs:
        await asyncio.gather(*jobs)


async def _fetch_field(info: Any, fetcher: _Fetcher, key: Any, arguments: dict[str, Any], nodes: list[FieldNode],
                       objects: list[Any]) -> None:
    try:
        values = await fetcher.fetch(info.context, objects, arguments)
    except Exception:
        return
    held: list[Any] = []
    for obj, value in zip(objects, values, strict=True):
        if value is MISSING:
            continue
        if obj.prefetched is None:
            obj.prefetched = {}
        obj.prefetched[key] = value
        held.extend(_held_objects(value, fetcher.connection))
    if fetcher.child_type is not None and held:
        await prefetch(info, fetcher.child_type, held, _children(info, nodes, fetcher.connection))


def values(loaded: Iterable[Any], convert: Callable[[Any], Any] | None = None) -> list[Any]:
    """A batch function's answers as field values: a failed load gives MISSING (its field then
    resolves, and reports the error, the ordinary way); None stays None; the rest is converted."""
    return [MISSING if isinstance(v, BaseException) else v if v is None or convert is None else convert(v)
            for v in loaded]
