"""Query cost: a static estimate of how many objects an operation can return, before it runs.

The model (Shopify's, simplified): every field that returns an object costs 1, scaled by the
page sizes of the connections it sits under; scalars are free; a field with a `first` argument
multiplies everything below it by `first` (its default when not given); `nodes(ids:)` by the
number of ids; each mutation field costs `MUTATION_COST` more; a few expensive fields cost more
than 1 (`register_field_cost`). Introspection is free. So
`followers(first: 50) { edges { node { username } } }` costs 1 + 50 * 2 = 101.

`CostBudget` is a token bucket per viewer (anonymous clients by address), refilled evenly over
`LimitSettings.cost_window_seconds`; it lives in the server process (each process enforces its
own share when several run).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
    is_composite_type,
    value_from_ast,
)

MUTATION_COST = 10

# Fields whose resolution costs far more than one object (typename, field) -> points, charged per
# occurrence like an object field. Domains register theirs with `register_field_cost`.
_FIELD_COSTS: dict[tuple[str, str], int] = {}


def register_field_cost(typename: str, field: str, cost: int) -> None:
    _FIELD_COSTS[(typename, field)] = cost


def query_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
               variables: dict[str, Any] | None, max_page: int) -> int:
    op = get_operation_ast(document, operation_name)
    if op is None:
        return 0
    root = {OperationType.QUERY: schema.query_type, OperationType.MUTATION: schema.mutation_type,
            OperationType.SUBSCRIPTION: schema.subscription_type}[op.operation]
    if root is None:
        return 0
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walker = _Walker(schema, fragments, variables or {}, max_page)
    cost = walker.selection_cost(root, op.selection_set, 1)
    if op.operation == OperationType.MUTATION:
        cost += MUTATION_COST * sum(1 for s in op.selection_set.selections if isinstance(s, FieldNode))
    return cost


class _Walker:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any], max_page: int) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_page = max_page

    def selection_cost(self, parent: Any, selection_set: SelectionSetNode | None, mult: int) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                total += self.field_cost(parent, sel, mult)
            elif isinstance(sel, InlineFragmentNode):
                cond = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                total += self.selection_cost(cond or parent, sel.selection_set, mult)
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is not None:
                    cond = self.schema.get_type(frag.type_condition.name.value) or parent
                    total += self.selection_cost(cond, frag.selection_set, mult)
        return total

    def field_cost(self, parent: Any, node: FieldNode, mult: int) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return 0
        field = parent.fields.get(name)
        if field is None:
            return 0
        named = get_named_type(field.type)
        own = _FIELD_COSTS.get((parent.name, name))
        if not is_composite_type(named):
            return mult * own if own else 0
        args = {a.name.value: a for a in node.arguments or ()}
        child_mult = mult
        if "first" in field.args:
            child_mult = mult * self._int_arg(args.get("first"), field.args["first"])
        elif "ids" in field.args and "ids" in args:
            ids = value_from_ast(args["ids"].value, field.args["ids"].type, self.variables)
            child_mult = mult * (len(ids) if isinstance(ids, list) else 1)
        return mult * (own or 1) + self.selection_cost(named, node.selection_set, child_mult)

    def _int_arg(self, node: Any, arg_def: Any) -> int:
        value = value_from_ast(node.value, arg_def.type, self.variables) if node is not None else arg_def.default_value
        if not isinstance(value, int) or isinstance(value, bool):
            return 1
        # Over-large pages are refused when they run; cost them at the cap, not the ask.
        return max(0, min(value, self.max_page))


class CostBudget:
    """Token buckets of query-cost points, one per key; thread-safe, in process memory."""

    def __init__(self, capacity: int, window_seconds: float) -> None:
        self.capacity = capacity
        self.rate = capacity / window_seconds  # points restored per second
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def try_spend(self, key: str, cost: int) -> tuple[bool, float]:
        """Spend `cost` points if available; returns (spent, points left)."""
        now = time.monotonic()
        with self._lock:
            level, at = self._buckets.get(key, (float(self.capacity), now))
            level = min(float(self.capacity), level + (now - at) * self.rate)
            ok = cost <= level
            if ok:
                level -= cost
            self._buckets[key] = (level, now)
            if len(self._buckets) > 100_000:  # forget full buckets: they carry no information
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.capacity}
            return ok, level
