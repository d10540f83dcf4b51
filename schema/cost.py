"""Query cost: a static estimate of how much work an operation can cause, before it runs.

The model (Shopify's, simplified): every object costs 1, scaled by the sizes of the lists it
sits under; scalars are free; each mutation field costs `MUTATION_COST` more; a few expensive
fields cost more than 1 (`register_field_cost`). Introspection costs the size of what it can
return (`introspection_cost`). How many items a field
can return (its *bound*):
- a field with a `first` argument: `first` (capped at the page limit);
- any other field with list arguments (`nodes(ids:)`): the length of its longest list;
- a connection's `edges` and `nodes` (and a list its parent pages, `register_list_bound(...,
  page=True)`): the `first` of the field above, already counted there;
- any other list of objects: its documented maximum, registered beside its type with
  `register_list_bound` (a thread's members: `messages.max_members`, 32). Every such list must
  have one (tests/schema/test_cost.py fails on a list without); one that has none is costed at
  the page limit.
A field returning an object with a bound (a connection) costs 1 + bound x (what is below it); a
list of objects costs bound x (1 + what is below each item): every item is an object. So
`followers(first: 50) { edges { node { username } } }` costs 1 + 50 * 2 = 101 and a thread's
`members { username }` 32.

Arguments are costed as execution will see them: coerced by graphql-core from the literals,
the request's variables and the operation's variable defaults, and the field's own defaults.
A document also costs at least one point per selection in it (`document_size`): that is
the work of validating it, which every document causes, valid or not.

`CostBudget` is a token bucket per viewer (anonymous clients by address), refilled evenly over
`LimitSettings.cost_window_seconds`, kept in `tao.rate_limits`: shared by every server process
through Redis when the broker is Redis (N processes give one budget, not N), in process memory
in the embedded default.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_argument_values,
    get_named_type,
    get_operation_ast,
    get_variable_values,
    is_abstract_type,
    is_composite_type,
)
from graphql.execution.values import VariableValues

from resolvers.throttle import PointsAhead, cost_bucket
from tao import Bucket, Mode
from tao.rate_limits import LocalRateLimiter, RateLimiter

if TYPE_CHECKING:
    from config import Settings

MUTATION_COST = 10

# Fields whose resolution costs far more than one object (typename, field) -> points, charged per
# occurrence like an object field. Domains register theirs with `register_field_cost`.
_FIELD_COSTS: dict[tuple[str, str], int] = {}
# Fields of which a document may contain one, once (typename, field): the mutations that check a
# password. Their work is priced per request; aliases or fragments repeating them would multiply it.
_ONCE_PER_DOCUMENT: set[tuple[str, str]] = set()


# Lists of objects without `first`: (typename, field) -> (the most items it holds, the setting that
# sets that maximum or None). A `page` list's items are counted by its parent's `first`: bound 1.
_LIST_BOUNDS: dict[tuple[str, str], tuple[int, Callable[[Settings], int] | None]] = {}


def register_list_bound(typename: str, field: str, bound: int = 1, *,
                        setting: Callable[[Settings], int] | None = None, page: bool = False) -> None:
    """Declare the most items the list field `typename.field` can return: `bound`, or what
    `setting` reads from the server's settings when it is configurable (`bound` is then its
    default, used when no settings are at hand). `page=True`: its items are the page of the
    field above it, whose `first` counts them already."""
    if page:
        bound, setting = 1, None
    _LIST_BOUNDS[(typename, field)] = (bound, setting)


def list_bound(typename: str, field: str, settings: Settings | None) -> int | None:
    """The registered bound of a list field (None: none registered)."""
    entry = _LIST_BOUNDS.get((typename, field))
    if entry is None:
        return None
    bound, setting = entry
    return setting(settings) if setting is not None and settings is not None else bound


def is_page_list(parent: Any, field: str) -> bool:
    """A connection's `edges`/`nodes`: items counted by the connection's `first`."""
    return (field in ("edges", "nodes") and getattr(parent, "name", "").endswith("Connection")
            and "pageInfo" in getattr(parent, "fields", {}))


def returns_list(field_def: GraphQLField) -> bool:
    t = field_def.type
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    return isinstance(t, GraphQLList)


def register_field_cost(typename: str, field: str, cost: int, *, once_per_document: bool = False) -> None:
    _FIELD_COSTS[(typename, field)] = cost
    if once_per_document:
        _ONCE_PER_DOCUMENT.add((typename, field))


@dataclass(frozen=True)
class DocumentSize:
    # Fields, fragment spreads and inline fragments, a fragment counted again wherever it is spread.
    selections: int
    # The longest chain of fragments spreading fragments (0: no fragment is spread).
    fragment_nesting: int


def document_size(document: DocumentNode) -> DocumentSize:
    """The document's selections (validation rules walk each spread, so a fragment counts
    wherever it is spread) and its fragments' nesting. Linear in the document's size and without
    recursion, so cheap and safe to run before validation, whose work grows faster and whose
    recursion a deep chain of fragments exhausts; fragments that spread each other in a cycle
    are expanded once (validation refuses them)."""
    fragments: dict[str, tuple[int, list[str]]] = {}
    operations: list[tuple[int, list[str]]] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = _count_written(definition.selection_set)
        elif isinstance(definition, OperationDefinitionNode):
            operations.append(_count_written(definition.selection_set))
    sizes: dict[str, int] = {}
    depths: dict[str, int] = {}
    done: set[str] = set()
    for name in fragments:  # post-order over the spread graph, with an explicit stack
        stack = [(name, False)]
        while stack:
            current, children_done = stack.pop()
            if children_done:
                written, spreads = fragments[current]
                sizes[current] = written + sum(sizes.get(s, 0) for s in spreads)
                depths[current] = 1 + max((depths.get(s, 0) for s in spreads), default=0)
                continue
            if current in done:
                continue
            done.add(current)
            stack.append((current, True))
            stack.extend((s, False) for s in fragments[current][1] if s in fragments and s not in done)
    # Validation walks every fragment definition, spread or not: an unused fragment of 1 200
    # repeated fields took 1.4 s of validation (the overlapping-fields rule) for 1 point, since
    # only what the operations spread was counted. Each one no operation reaches counts too.
    reached: set[str] = set()
    todo = [s for _, spreads in operations for s in spreads]
    while todo:
        spread = todo.pop()
        if spread in fragments and spread not in reached:
            reached.add(spread)
            todo.extend(fragments[spread][1])
    unreached = [f for f in fragments if f not in reached]
    return DocumentSize(
        selections=sum(written + sum(sizes.get(s, 0) for s in spreads) for written, spreads in operations)
        + sum(sizes[f] for f in unreached),
        fragment_nesting=max([depths.get(s, 0) for _, spreads in operations for s in spreads]
                             + [depths[f] - 1 for f in unreached], default=0),
    )


def _count_written(selection_set: SelectionSetNode) -> tuple[int, list[str]]:
    """(selections written under `selection_set`, names of the fragments spread there)."""
    count, spreads = 0, []
    stack = [selection_set]
    while stack:
        for sel in stack.pop().selections:
            count += 1
            if isinstance(sel, FragmentSpreadNode):
                spreads.append(sel.name.value)
            elif isinstance(sel, (FieldNode, InlineFragmentNode)) and sel.selection_set is not None:
                stack.append(sel.selection_set)
    return count, spreads


def once_per_document_fields() -> list[str]:
    return sorted(name for _, name in _ONCE_PER_DOCUMENT)


@dataclass
class OperationCost:
    points: int
    # Each occurrence of a once-per-document field (by name), in document order.
    once_fields: list[str] = field(default_factory=list)


def query_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
               variables: dict[str, Any] | None, max_page: int, settings: Settings | None = None) -> OperationCost:
    op = get_operation_ast(document, operation_name)
    if op is None:
        return OperationCost(0)
    root = {OperationType.QUERY: schema.query_type, OperationType.MUTATION: schema.mutation_type,
            OperationType.SUBSCRIPTION: schema.subscription_type}[op.operation]
    if root is None:
        return OperationCost(0)
    coerced = get_variable_values(schema, op.variable_definitions or (), variables or {}, max_errors=1)
    if isinstance(coerced, list):
        return OperationCost(0)  # the variables do not coerce: execution refuses the operation
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walker = _Walker(schema, fragments, coerced, max_page, settings)
    points, once = walker.selection_cost(root, op.selection_set)
    if op.operation == OperationType.MUTATION:
        points += MUTATION_COST * sum(1 for s in op.selection_set.selections if isinstance(s, FieldNode))
    return OperationCost(points, once)


def event_costs(schema: GraphQLSchema, field_node: FieldNode, fragments: dict[str, FragmentDefinitionNode],
                variables: VariableValues, max_page: int, settings: Settings | None) -> dict[str, int]:
    """A subscription field's cost per event it delivers, by the event's type name: the event
    (1) and what the field's selection selects on that type (its selection runs again for each)."""
    field_type = get_named_type(schema.subscription_type.fields[field_node.name.value].type) \
        if schema.subscription_type is not None else None
    if field_type is None or not is_composite_type(field_type):
        return {}
    types = schema.get_possible_types(field_type) if is_abstract_type(field_type) else [field_type]
    walker = _Walker(schema, fragments, variables, max_page, settings)
    return {t.name: 1 + walker.selection_cost(t, field_node.selection_set)[0] for t in types}


@functools.lru_cache(maxsize=16)  # per schema (a few per process): a walk over every type
def _schema_size(schema: GraphQLSchema) -> tuple[int, int]:
    """(the schema's types, fields, arguments and enum values in all; the most a type has)."""
    total = most = 0
    for named in schema.type_map.values():
        size = 1 + len(getattr(named, "fields", None) or {})
        size += sum(len(getattr(f, "args", None) or {}) for f in (getattr(named, "fields", None) or {}).values())
        size += len(getattr(named, "values", None) or {})
        total += size
        most = max(most, size)
    return total, most


def introspection_cost(schema: GraphQLSchema, name: str) -> int:
    """`__schema` costs what it can return, the whole schema (a point per type, field, argument and
    enum value: 1 243 here), and `__type` what its largest type holds, whatever is selected below
    (the answer is the schema's, not the store's, so its size is known). They were free, and
    27 aliases of `__schema { types { fields { args } } }` took ~0.55 s of CPU for 300 points."""
    total, most = _schema_size(schema)
    return total if name == "__schema" else most


class _Walker:
    """Costs selection sets at a multiplier of 1 and scales: a selection's cost is linear in the
    multiplier above it, so each (type, selection set) is costed once, however often fragments
    repeat it (a chain of doubled fragment spreads would otherwise take exponential time)."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: VariableValues, max_page: int, settings: Settings | None = None) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_page = max_page
        self.settings = settings
        self._memo: dict[tuple[str, int], tuple[int, list[str]]] = {}

    def selection_cost(self, parent: Any, selection_set: SelectionSetNode | None) -> tuple[int, list[str]]:
        """The cost of `selection_set` on one `parent`. On an interface or a union, an item is
        one of its object types: the most that any of them selects (a subscription's event, a
        `node`), not the sum of every type's fragment."""
        if selection_set is None:
            return 0, []
        key = (getattr(parent, "name", ""), id(selection_set))
        if key in self._memo:
            return self._memo[key]
        result: tuple[int, list[str]]
        if is_abstract_type(parent):
            result = max((self.selection_cost(t, selection_set) for t in self.schema.get_possible_types(parent)),
                         key=lambda r: r[0], default=(0, []))
        else:
            result = self._object_selection_cost(parent, selection_set)
        self._memo[key] = result
        return result

    def _object_selection_cost(self, parent: Any, selection_set: SelectionSetNode) -> tuple[int, list[str]]:
        total, once = 0, []
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                points, found = self.field_cost(parent, sel)
            elif isinstance(sel, InlineFragmentNode):
                cond = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                points, found = self._fragment_cost(parent, cond, sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                frag = self.fragments[sel.name.value]
                points, found = self._fragment_cost(parent, self.schema.get_type(frag.type_condition.name.value),
                                                    frag.selection_set)
            else:
                continue
            total += points
            once += found
        return total, once

    def _fragment_cost(self, parent: Any, cond: Any, selection_set: SelectionSetNode) -> tuple[int, list[str]]:
        """A fragment on `cond` spread where the item is a `parent`: nothing when it is another type."""
        if isinstance(parent, GraphQLObjectType) and cond is not None and cond is not parent:
            if not (is_abstract_type(cond) and self.schema.is_sub_type(cond, parent)):
                return 0, []
            cond = parent
        return self.selection_cost(cond or parent, selection_set)

    def field_cost(self, parent: Any, node: FieldNode) -> tuple[int, list[str]]:
        name = node.name.value
        if name in ("__schema", "__type"):
            return introspection_cost(self.schema, name), []
        if name.startswith("__") or not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return 0, []
        field_def = parent.fields.get(name)
        if field_def is None:
            return 0, []
        own = _FIELD_COSTS.get((parent.name, name))
        once = [name] if (parent.name, name) in _ONCE_PER_DOCUMENT else []
        named = get_named_type(field_def.type)
        if not is_composite_type(named):
            return own or 0, once
        below, found = self.selection_cost(named, node.selection_set)
        bound = self._bound(parent, name, field_def, node)
        if returns_list(field_def) and not is_page_list(parent, name):
            return bound * ((own or 1) + below), once + found  # each item is an object
        return (own or 1) + bound * below, once + found

    def _bound(self, parent: Any, name: str, field_def: GraphQLField, node: FieldNode) -> int:
        """How many items the field can return (see the module docstring)."""
        bound = self._multiplier(field_def, node)
        if bound is not None:
            return bound
        if not returns_list(field_def) or is_page_list(parent, name):
            return 1
        registered = list_bound(parent.name, name, self.settings)
        if registered is None and name == "errors" and parent.name.endswith("Payload"):
            return 1  # a mutation's errors: the one `UserError` its action raised (schema.mutations)
        return self.max_page if registered is None else registered

    def _multiplier(self, field_def: GraphQLField, node: FieldNode) -> int | None:
        """How many items the field's arguments let it return: its `first` (capped: larger pages
        are refused when they run), else the length of its longest list argument; None when its
        arguments say nothing of it."""
        if not field_def.args:
            return None
        try:
            args = get_argument_values(field_def, node, self.variables)
        except GraphQLError:
            return 1  # execution refuses the field's arguments: nothing below it runs
        first = args.get("first")
        if "first" in field_def.args:
            if not isinstance(first, int) or isinstance(first, bool):
                return 1
            return max(0, min(first, self.max_page))
        lengths = [len(v) for v in args.values() if isinstance(v, list)]
        return max(lengths) if lengths else None


class CostBudget:
    """Token buckets of query-cost points, one per key (`Bucket("cost:<key>", capacity, window)`),
    kept by the store's shared rate limiter (`tao.rate_limits`: Redis when the broker is Redis,
    so every server process spends from one budget; else process memory). A schema executed
    without a store in its context (tests, scripts) keeps its own buckets in memory.

    A request's points are taken from the shared bucket a few requests' worth at a time
    (`REQUESTS_PER_TAKE`, at most `1 / CHUNK_DIVISOR` of the budget) and spent from this
    process's balance for the key (`resolvers.throttle.PointsAhead`, the rule subscriptions'
    events spend by too): one Redis call for several requests, where each request made one (a
    round trip of ~0.13 ms of a server's CPU; a `sendMessage`'s server CPU -1 to -2 %, side by
    side). Points are always taken before they are spent, so a viewer is never served more than
    the budget, across processes too; what a process holds and has not spent yet is unavailable
    to the others (and to the viewer's subscriptions' events, `EventBudget`) until it is spent or
    refills: at most `capacity / CHUNK_DIVISOR` a process and viewer, and nothing once less than
    `PointsAhead.LOW_SHARE` of the budget is left (a take ahead is then given back at once). A
    request the balance does not cover spends the balance and takes the rest, with more ahead,
    or exactly the rest when the bigger take would not fit: near the end of the budget every
    point is still usable."""

    REQUESTS_PER_TAKE = 8
    CHUNK_DIVISOR = 16
    MAX_BALANCES = 50_000  # keys whose balance this process keeps (least recently used dropped)

    def __init__(self, capacity: int, window_seconds: float) -> None:
        self.capacity = capacity
        self.window = float(window_seconds)
        self.rate = capacity / window_seconds  # points restored per second
        self.local = LocalRateLimiter()
        # key -> the points this process took for it and has not spent
        self._balances: OrderedDict[str, PointsAhead] = OrderedDict()

    def _bucket(self, key: str) -> Bucket:
        return cost_bucket(key, float(self.capacity), self.window)  # the one resolvers spend from too

    async def available(self, limiter: RateLimiter | None, key: str) -> float:
        taken = await (limiter or self.local).take([self._bucket(key)], 0.0, Mode.PEEK)
        return taken.levels[0]

    async def try_spend(self, limiter: RateLimiter | None, key: str, cost: int) -> tuple[bool, float]:
        """Spend `cost` points if available; returns (spent, points left: the shared bucket's
        level at this process's last take for the key, plus its balance)."""
        held = self._balances.get(key)
        if held is None:
            held = self._balances[key] = PointsAhead()
            while len(self._balances) > self.MAX_BALANCES:
                self._balances.popitem(last=False)  # its unspent points stay taken until they refill
        self._balances.move_to_end(key)
        ahead = min(cost * self.REQUESTS_PER_TAKE, self.capacity / self.CHUNK_DIVISOR)
        taken = await held.spend(limiter or self.local, self._bucket(key), cost, ahead)
        return taken is None or taken.ok, held.left

    async def charge(self, limiter: RateLimiter | None, key: str, cost: int) -> float:
        """Take `cost` points whether or not they are all there (down to none): for work already
        done, such as a document refused by validation. Returns the points left."""
        taken = await (limiter or self.local).take([self._bucket(key)], float(cost), Mode.FORCE)
        return taken.levels[0]
