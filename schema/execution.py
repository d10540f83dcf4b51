"""How graphql-core executes this schema's operations: its execution context, with two changes.

1. **No cyclic garbage per request** (`build_response`). graphql-core's execution context refers
   to itself (its `async_helpers` hold two of its own bound methods), and it holds the request's
   context, so a request's whole graph (the context, its loaders, every record they read) was
   garbage only the cycle collector could free: ~1 800 objects a tray page, promoted to
   generation 1 by the gen-0 passes landing mid-request, until every tenth pass walked and freed
   ~50 requests' worth: 11-22 ms of CPU, inside the slowest 1 % of tray pages
   (docs/BENCHMARKS.md, "Stories"). Dropping the helpers once the response is built lets
   reference counting free the request as soon as its caller lets go. (Only a plain result: an
   incremental one, @defer/@stream, which this schema does not enable, still runs.)

2. **Plain leaves answered directly** (`execute_fields`). Most fields of a page are scalars read
   off an attribute (`username`, `postedAt`, `hasUnseen`: ~460 of the ~640 fields of the app's
   story tray query). graphql-core runs each through the whole field machinery: a resolve-info
   tuple of 15 members, the argument check, the resolver call, an awaitable check, and
   `complete_value`'s walk through the non-null wrapper to the leaf. For a field marked by
   `mark_plain_leaves` (strawberry's basic field: no resolver, no arguments, no field extension,
   a scalar or enum type) this context reads the attribute and coerces it as `complete_leaf_value`
   does, and nothing else. Whatever is not the plain case (the attribute missing or raising, a
   null, a value the scalar refuses, an awaitable) goes down graphql-core's own path, which then
   gives the usual answer and error (the attribute is read a second time: plain attributes are
   data, not computations). A leaf a page's builder prefetched (`schema/prefetch.py`: a media's
   `url(width:, aspect:)` on every avatar of a page) is answered the same way, from the value it
   stored, its arguments coerced once per request and field node instead of once per object.
   The selection loop itself (`execute_fields`) answers them, with each selection's fields
   looked up once per request (`_plan`): a plain leaf costs no `Path`, no `execute_field` call
   and no awaitable check (3.5-6.6 % of the tray page's CPU, measured side by side in one
   process against answering them in `execute_field`: `bench/tray_ab.py`, docs/BENCHMARKS.md).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema import prefetch

# The Python types a plain leaf may hold for the direct path; anything else (an exception as a
# value, an awaitable, an object the scalar may refuse) takes graphql-core's path.
_PLAIN_VALUES = (str, int, float, datetime, Enum)


class TaogramExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def build_response(self, data: Any) -> Any:
        response = super().build_response(data)
        if isinstance(response, ExecutionResult):
            self.__dict__.pop("async_helpers", None)
        return response

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A field's arguments are the same every time its node is executed in this request (the
        # variables are fixed): coerced once per (field, node), not once per object of a list.
        self._arguments: dict[tuple[int, int], dict[str, Any]] = {}
        self._plans: dict[int, tuple[GraphQLObjectType, Any, list[tuple[str, Any, Any, Any]]]] = {}

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Any,
                       grouped_field_set: Any, position_context: Any) -> Any:
        """graphql-core's `execute_fields`, with plain leaves answered in the loop itself: no
        `Path`, no `execute_field` call, no schema lookup and no awaitable check for them (a
        list of 184 rings runs this loop 184 times over the same fields)."""
        plan = self._plan(parent_type, grouped_field_set)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        type_name = parent_type.name
        try:
            for response_name, field_details_list, field_def, leaf in plan:
                if leaf is not None:
                    value = self._plain_value(source_value, leaf, field_def, field_details_list[0])
                    if value is not Undefined:
                        results[response_name] = value
                        continue
                result = self.execute_field(parent_type, source_value, field_details_list,
                                            Path(path, response_name, type_name), position_context,
                                            plain_checked=True)
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:  # as graphql-core: settle the other fields' awaitables
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[tuple[str, Any, Any, Any]]:
        """Each field of a selection on `parent_type`: (response name, its details, its
        definition, its plain-leaf mark or None). Once per request and selection: graphql-core
        memoizes a selection's grouped field set per request, so its identity is the key (the
        set is kept with the plan, so the identity cannot be reused)."""
        cached = self._plans.get(id(grouped_field_set))
        if cached is not None and cached[0] is parent_type:
            return cached[2]
        plan = []
        for response_name, field_details_list in grouped_field_set.items():
            field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
            plan.append((response_name, field_details_list, field_def, self._leaf_of(field_def)))
        self._plans[id(grouped_field_set)] = (parent_type, grouped_field_set, plan)
        return plan

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, path: Any,
                      position_context: Any, plain_checked: bool = False) -> Any:
        if not plain_checked:  # called by graphql-core itself (a mutation's serial fields)
            details = field_details_list[0]
            field_def = self.schema.get_field(parent_type, details.node.name.value)
            leaf = self._leaf_of(field_def)
            if leaf is not None:
                value = self._plain_value(source, leaf, field_def, details)
                if value is not Undefined:
                    return value
        return super().execute_field(parent_type, source, field_details_list, path, position_context)

    def _leaf_of(self, field_def: Any) -> tuple[Any, str, Any, bool, bool] | None:
        """The field's plain-leaf mark, if it may take the direct path in this execution: its
        resolver still the one marked (a field whose resolver was wrapped since is not plain),
        and no middleware (strawberry always passes a manager, with none in it for this schema)."""
        leaf = getattr(field_def, "plain_leaf", None)
        if leaf is None or leaf[0] is not field_def.resolve:
            return None
        middleware = self.middleware_manager
        return leaf if middleware is None or not middleware.middlewares else None

    def _plain_value(self, source: Any, leaf: tuple[Any, str, Any, bool, bool], field_def: Any,
                     details: Any) -> Any:
        """A plain leaf's answer, or Undefined: then graphql-core's path answers (and reports
        any error, located)."""
        _, name, leaf_type, non_null, prefetched = leaf
        if prefetched:
            value = self._prefetched(source, name, field_def, details)
        else:
            try:
                value = getattr(source, name)
            except Exception:  # graphql-core's path reads it again and reports the error, located
                return Undefined
        if value is None:
            return Undefined if non_null else None
        if isinstance(value, _PLAIN_VALUES):
            try:
                coerced = leaf_type.coerce_output_value(value)
            except Exception:  # graphql-core's path reports it, located
                return Undefined
            if coerced is not None:
                return coerced
        return Undefined

    def _prefetched(self, source: Any, name: str, field_def: Any, details: Any) -> Any:
        """The value a page's builder prefetched for this field of `source` (schema/prefetch.py),
        or Undefined: then the field's resolver runs (and finds it, or loads it itself)."""
        found = getattr(source, "prefetched", None)
        if not found or details.fragment_variable_values is not None:
            return Undefined
        key = (id(field_def), id(details.node))
        arguments = self._arguments.get(key)
        if arguments is None:
            try:
                arguments = get_argument_values(field_def, details.node, self.variable_values, None,
                                                self.hide_suggestions)
            except Exception:  # a bad argument: graphql-core's path reports it
                return Undefined
            self._arguments[key] = arguments
        return found.get(prefetch.field_key(name, arguments), Undefined)


def plain_attribute_fields(graphql_schema: GraphQLSchema) -> int:
    """Resolve strawberry's basic fields (no resolver, no field extension) with one `getattr`, and
    mark those of a scalar or enum type as plain leaves (`execute_field`); returns how many leaves.

    strawberry resolves such a field with a closure that calls `StrawberryField.get_result`,
    which checks for a resolver and then calls the config's default resolver (`getattr`): three
    calls per value, for the ~300 plain values of a profile page (docs/BENCHMARKS.md, issue 16).
    Same answer, same errors (an attribute missing raises the same AttributeError)."""
    leaves = 0
    for graphql_type in graphql_schema.type_map.values():
        if not isinstance(graphql_type, (GraphQLObjectType, GraphQLInterfaceType)) or graphql_type.name[:2] == "__":
            continue
        for field in graphql_type.fields.values():
            field.plain_leaf = None  # every field has it: a hit, not a miss
            definition = (field.extensions or {}).get("strawberry-definition")
            # Only strawberry's own basic-field closure (not its resolver wrappers, which also say
            # `_is_default` when a field has extensions or exception handlers but no resolver).
            if not (getattr(field.resolve, "__name__", "") == "_get_basic_result" and definition is not None
                    and definition.default_resolver is getattr and definition.is_basic_field):
                continue
            field.resolve = resolve = _attribute(definition.python_name)
            non_null = isinstance(field.type, GraphQLNonNull)
            inner = field.type.of_type if non_null else field.type
            if not field.args and is_leaf_type(inner):
                field.plain_leaf = (resolve, definition.python_name, inner, non_null, False)
                leaves += 1
    return leaves


def _attribute(name: str) -> Any:
    def resolve(source: Any, info: Any, **_: Any) -> Any:
        return getattr(source, name)
    resolve._is_default = True  # type: ignore[attr-defined]  # as strawberry marks its own
    return resolve
