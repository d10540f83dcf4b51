"""The GraphQL schema: strawberry types, inputs, payloads, errors and permissions; no I/O of its own.

`build_schema(limits)` is the one way to get a schema: the root types plus the request-wide
policies (limits, cost, error masking), configured from `LimitSettings`.
"""

from __future__ import annotations

import copy
import functools
import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig

from config import LimitSettings
from schema import prefetch
from schema.cost import CostBudget
from schema.document_cache import DocumentCache
from schema.execution import TaogramExecutionContext, plain_attribute_fields
from schema.extensions import RequestPolicy, is_unexpected, limit_rules
from schema.realtime import EVENT_TYPES
from schema.root import SUBSCRIPTION, Mutation, Query

log = logging.getLogger("taogram.graphql")


class TaogramSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log faults with the request id; errors meant for the client are not faults."""
        request_id = getattr(getattr(execution_context, "context", None), "request_id", "-")
        for error in errors:
            if is_unexpected(error):
                log.error("request %s: unexpected error at %s", request_id, error.path,
                          exc_info=error.original_error)


def build_schema(limits: LimitSettings | None = None) -> TaogramSchema:
    """A schema of its own for one app: its own cost budget, document cache and extensions
    (`schema.extensions` may be changed on it alone, as server.py does for tracing).

    The GraphQL types (strawberry's conversion of every type, its validation of the schema, the
    resolvers `plain_attribute_fields` and `prefetch` install) are built once per process and
    shared by every schema built with the same `field_suggestions` (`_converted`): they hold no
    state of any request or app, and building them takes ~35 ms of CPU, which the test suite paid
    for each of the thousands of apps it builds."""
    limits = limits or LimitSettings()
    budget = CostBudget(limits.cost_budget, limits.cost_window_seconds)
    documents = DocumentCache()  # per schema: validation's verdict depends on its rules
    schema = copy.copy(_converted(limits.field_suggestions))
    # One extension for every policy: strawberry's runner costs per extension and hook, per request.
    schema.extensions = (functools.partial(RequestPolicy, limits=limits, budget=budget, documents=documents,
                                           rules=limit_rules(limits)),)
    return schema


@functools.cache
def _converted(field_suggestions: bool) -> TaogramSchema:
    """The schema's types, with no extension: `build_schema` gives each app a shallow copy with its
    own. A strawberry schema's other attributes are set once here and only read after, the
    GraphQL types included (and `info.schema`, which reaches this instance, only looks types up);
    `config` is per instance of this cache, since `disable_field_suggestions` is read at run time."""
    schema = TaogramSchema(
        query=Query,
        mutation=Mutation,
        subscription=SUBSCRIPTION,
        types=EVENT_TYPES,  # implementations of StreamEvent that no field names directly
        extensions=(),
        execution_context_class=TaogramExecutionContext,
        config=StrawberryConfig(disable_field_suggestions=not field_suggestions),
    )
    plain_attribute_fields(schema._schema)  # before prefetch wraps some of them
    prefetch.install(schema._schema)  # fields a page may have loaded for all its nodes at once
    return schema


def printed_schema() -> str:
    """The SDL committed as `schema.graphql` (types in the order the root types reach them)."""
    return build_schema().as_str() + "\n"
