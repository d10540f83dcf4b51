"""The GraphQL schema: strawberry types, inputs, payloads, errors and permissions; no I/O of its own.

`build_schema(limits)` is the one way to get a schema: the root types plus the request-wide
policies (limits, cost, error masking), configured from `LimitSettings`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import strawberry
from graphql import ExecutionResult, GraphQLError, GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from config import LimitSettings
from schema import prefetch
from schema.cost import CostBudget
from schema.document_cache import DocumentCache
from schema.extensions import RequestPolicy, is_unexpected, limit_rules
from schema.realtime import EVENT_TYPES
from schema.root import SUBSCRIPTION, Mutation, Query

log = logging.getLogger("taogram.graphql")


class AcyclicExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's execution context refers to itself (its `async_helpers` hold two of its own
    bound methods), and it holds the request's context, so a request's whole graph (the context,
    its loaders, every record they read) was garbage only the cycle collector could free: ~1 800
    objects a tray page, promoted to generation 1 by the gen-0 passes landing mid-request, until
    every tenth pass walked and freed ~50 requests' worth: 11-22 ms of CPU, inside the slowest
    1 % of tray pages (docs/BENCHMARKS.md, "Stories"). Dropping the helpers once the response is
    built lets reference counting free the request as soon as its caller lets go. (Only a plain
    result: an incremental one, @defer/@stream, which this schema does not enable, still runs.)"""

    def build_response(self, data: Any) -> Any:
        response = super().build_response(data)
        if isinstance(response, ExecutionResult):
            self.__dict__.pop("async_helpers", None)
        return response


class TaogramSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log faults with the request id; errors meant for the client are not faults."""
        request_id = getattr(getattr(execution_context, "context", None), "request_id", "-")
        for error in errors:
            if is_unexpected(error):
                log.error("request %s: unexpected error at %s", request_id, error.path,
                          exc_info=error.original_error)


def build_schema(limits: LimitSettings | None = None) -> TaogramSchema:
    limits = limits or LimitSettings()
    budget = CostBudget(limits.cost_budget, limits.cost_window_seconds)
    documents = DocumentCache()  # per schema: validation's verdict depends on its rules
    # One extension for every policy: strawberry's runner costs per extension and hook, per request.
    extensions: list[Any] = [functools.partial(RequestPolicy, limits=limits, budget=budget, documents=documents,
                                               rules=limit_rules(limits))]
    schema = TaogramSchema(
        query=Query,
        mutation=Mutation,
        subscription=SUBSCRIPTION,
        types=EVENT_TYPES,  # implementations of StreamEvent that no field names directly
        extensions=extensions,
        execution_context_class=AcyclicExecutionContext,
        config=StrawberryConfig(disable_field_suggestions=not limits.field_suggestions),
    )
    _plain_attribute_fields(schema._schema)
    prefetch.install(schema._schema)  # fields a page may have loaded for all its nodes at once
    return schema


def _plain_attribute_fields(graphql_schema: GraphQLSchema) -> None:
    """Resolve strawberry's basic fields (no resolver, no field extension) with one `getattr`.

    strawberry resolves such a field with a closure that calls `StrawberryField.get_result`,
    which checks for a resolver and then calls the config's default resolver (`getattr`): three
    calls per value, for the ~300 plain values of a profile page (docs/BENCHMARKS.md, issue 16).
    Same answer, same errors (an attribute missing raises the same AttributeError)."""
    for graphql_type in graphql_schema.type_map.values():
        if not isinstance(graphql_type, (GraphQLObjectType, GraphQLInterfaceType)) or graphql_type.name[:2] == "__":
            continue
        for field in graphql_type.fields.values():
            definition = (field.extensions or {}).get("strawberry-definition")
            # Only strawberry's own basic-field closure (not its resolver wrappers, which also say
            # `_is_default` when a field has extensions or exception handlers but no resolver).
            if (getattr(field.resolve, "__name__", "") == "_get_basic_result" and definition is not None
                    and definition.default_resolver is getattr and definition.is_basic_field):
                field.resolve = _attribute(definition.python_name)


def _attribute(name: str) -> Any:
    def resolve(source: Any, info: Any, **_: Any) -> Any:
        return getattr(source, name)
    resolve._is_default = True  # type: ignore[attr-defined]  # as strawberry marks its own
    return resolve


def printed_schema() -> str:
    """The SDL committed as `schema.graphql` (types in the order the root types reach them)."""
    return build_schema().as_str() + "\n"
