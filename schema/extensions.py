"""Request-wide policies as strawberry schema extensions: limits, cost, and what errors say.

- `OperationGuard`: fresh loaders per operation; before validation, refuses documents with
  more than `max_selections` selections (validation's work grows with their square) and
  viewers whose budget cannot pay for validating them, and charges the budget for documents
  that fail validation; before execution, refuses bad string inputs (too long, NUL,
  unpaired surrogates: `schema.input_strings`), a second once-per-document
  field (`logIn`, `signUp`), and operations over the cost limit or the viewer's remaining
  budget. Reports `extensions.cost` (Shopify's shape) and `extensions.requestId` on every response.
- `OperationChoice`: a document of several operations needs `operationName` (the
  GraphQL-over-HTTP spec's request error, code `BAD_REQUEST`; graphql-core alone would run the
  first one), on every surface.
- `ErrorPolicy`: every error gets `extensions.code`. Deliberate top-level errors
  (`resolvers.errors.TOP_LEVEL_ERRORS`) and GraphQL's own syntax/validation errors keep their
  message; anything else is a fault: its message becomes "Internal error" with the request id,
  and the original is logged (by `TaogramSchema.process_errors`) with that id.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import MaskErrors, SchemaExtension

from config import LimitSettings
from resolvers.errors import TOP_LEVEL_ERRORS, AppError, ThrottledError, domain_error
from schema.cost import CostBudget, document_size, once_per_document_fields, query_cost
from schema.input_strings import string_input_error

log = logging.getLogger("taogram.graphql")
# Fragments spreading fragments: graphql-core's validation recurses once per level and gives up
# ("Validation aborted.", no reason given) a few hundred levels down; clients nest a handful.
MAX_FRAGMENT_NESTING = 50


def _original(error: GraphQLError) -> BaseException | None:
    """What a field raised, as the domain names it (a store error that escaped a resolver is
    translated here by the domain's own table)."""
    original = error.original_error
    return None if original is None else domain_error(original)


def is_unexpected(error: GraphQLError) -> bool:
    """True for a fault (to mask and log), False for an error meant for the client."""
    original = _original(error)
    if original is None or isinstance(original, GraphQLError):
        return False  # parse, validation, coercion: GraphQL's own, safe to show
    return not isinstance(original, TOP_LEVEL_ERRORS)


def _code(error: GraphQLError) -> str:
    original = _original(error)
    if isinstance(original, AppError):
        return str(original.code)
    if error.extensions and "code" in error.extensions:
        return str(error.extensions["code"])
    if original is None or isinstance(original, GraphQLError):
        return "GRAPHQL_PARSE_FAILED" if error.message.startswith("Syntax Error") else "GRAPHQL_VALIDATION_FAILED"
    return "INTERNAL_SERVER_ERROR"


class ErrorPolicy(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected)

    def _request_id(self) -> str:
        return getattr(self.execution_context.context, "request_id", "-")

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out = []
        for error in errors:
            code, original = _code(error), _original(error)
            if is_unexpected(error):
                message = f"Internal error; quote request id {self._request_id()} when reporting it."
            elif isinstance(original, AppError):
                message = original.message  # a translated store error says it in the domain's words
            else:
                message = error.message
            extensions = {**(error.extensions or {}), "code": code}
            if isinstance(original, ThrottledError):
                extensions["retryAfter"] = original.retry_after
            out.append(GraphQLError(
                message, nodes=error.nodes, source=error.source, positions=error.positions,
                path=error.path, original_error=None, extensions=extensions,
            ))
        return out


class OperationChoice(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        # strawberry's `operation_name` falls back to the first operation's name (and hands that
        # to graphql-core, which is how the first one ran); only the name the client gave counts.
        # (Private attribute: tests/test_http_errors.py fails if strawberry renames it.)
        given = getattr(ec, "_provided_operation_name", ec.operation_name)
        if given is None and ec.graphql_document is not None:
            names = [d.name.value if d.name else "(anonymous)" for d in ec.graphql_document.definitions
                     if isinstance(d, OperationDefinitionNode)]
            if len(names) > 1:
                listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                # Set before validation runs, so the document is refused without being validated.
                ec.pre_execution_errors = [GraphQLError(
                    f"The document defines {len(names)} operations ({listed}): "
                    "name the one to run in `operationName`.", extensions={"code": "BAD_REQUEST"})]
        yield


def _refuse(message: str, code: str) -> GraphQLExecutionResult:
    return GraphQLExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])


class OperationGuard(SchemaExtension):
    def __init__(self, *, limits: LimitSettings, budget: CostBudget) -> None:
        self.limits = limits
        self.budget = budget
        self.cost: dict[str, Any] | None = None
        self.selections = 0

    def on_operation(self) -> Iterator[None]:
        reset = getattr(self.execution_context.context, "reset_loaders", None)
        if reset is not None:
            reset()  # a WebSocket connection keeps its context: never share loaders between operations
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        ec = self.execution_context
        refusal = await self._check_document()
        if refusal is not None:
            ec.pre_execution_errors = [refusal]  # strawberry then skips validation
            yield
            return
        yield
        if ec.pre_execution_errors:  # refused by validation, after doing its work: charge that work
            self._report(self.selections, await self.budget.charge(self._limiter(), self._key(), self.selections))

    async def on_execute(self) -> AsyncIterator[None]:
        refusal = await self._check()
        if refusal is not None:
            self.execution_context.result = refusal
        yield

    def _key(self) -> str:
        return getattr(self.execution_context.context, "cost_key", "anonymous")

    def _limiter(self) -> Any:
        """The store's shared rate limiter (tao.rate_limits); None: the budget's own, in memory."""
        return getattr(getattr(self.execution_context.context, "tao", None), "rate_limits", None)

    def _report(self, cost: int, left: float) -> None:
        self.cost = {
            "requestedQueryCost": cost,
            "maximumQueryCost": self.limits.max_query_cost,
            "throttleStatus": {
                "maximumAvailable": self.budget.capacity,
                "currentlyAvailable": int(left),
                "restoreRate": round(self.budget.rate, 3),
            },
        }

    def _throttled(self, cost: int, left: float) -> GraphQLError:
        wait = max(0.001, (cost - left) / self.budget.rate)
        return GraphQLError(
            f"Query cost budget exhausted: this query needs {cost} points and {int(left)} are left; "
            f"retry in {wait:.1f} s or send cheaper queries.",
            extensions={"code": "THROTTLED", "retryAfter": round(wait, 3)})

    async def _check_document(self) -> GraphQLError | None:
        """Before validation, whose work grows with the square of the document's selections:
        refuse documents over `max_selections` (charged as if validated) and viewers whose
        budget cannot pay for validating this one."""
        document = self.execution_context.graphql_document
        if document is None:
            return None
        size = document_size(document)
        self.selections = n = size.selections
        cap = self.limits.max_selections
        if n > cap:
            self._report(n, await self.budget.charge(self._limiter(), self._key(), n))
            return GraphQLError(
                f"This document has {n} field selections (fragments counted wherever they are spread), "
                f"more than the limit of {cap}, so it was not validated: validating grows with the square "
                "of that number. Split it into several requests, or ask for fewer repeated fields.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"})
        if size.fragment_nesting > MAX_FRAGMENT_NESTING:
            self._report(n, await self.budget.charge(self._limiter(), self._key(), n))
            return GraphQLError(
                f"This document's fragments spread one another {size.fragment_nesting} levels deep, more "
                f"than the limit of {MAX_FRAGMENT_NESTING}, so it was not validated: inline the inner ones.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"})
        left = await self.budget.available(self._limiter(), self._key())
        if n > left:
            self._report(n, left)
            return self._throttled(n, left)
        return None

    async def _check(self) -> GraphQLExecutionResult | None:
        ec = self.execution_context
        bad_string = string_input_error(ec.graphql_document, ec.variables, self.limits.max_string_length)
        if bad_string is not None:
            return GraphQLExecutionResult(data=None, errors=[bad_string])
        if ec.graphql_document is None:
            return None
        estimate = query_cost(ec.schema._schema, ec.graphql_document, ec.operation_name, ec.variables,
                              self.limits.max_page_size)
        if len(estimate.once_fields) > 1:
            return _refuse(
                f"A request may contain only one of {', '.join(once_per_document_fields())}, and this one "
                f"has {len(estimate.once_fields)} ({', '.join(estimate.once_fields)}): send each in its own request.",
                "BAD_USER_INPUT")
        cost = max(estimate.points, self.selections)  # at least what validating it cost
        self.cost = {"requestedQueryCost": cost, "maximumQueryCost": self.limits.max_query_cost}
        if cost > self.limits.max_query_cost:
            return _refuse(
                f"This query costs {cost} points, more than the limit of {self.limits.max_query_cost}: "
                "ask for smaller pages (`first`) or split it into several queries.", "MAX_COST_EXCEEDED")
        ok, left = await self.budget.try_spend(self._limiter(), self._key(), cost)
        self._report(cost, left)
        if not ok:
            return GraphQLExecutionResult(data=None, errors=[self._throttled(cost, left)])
        return None

    def get_results(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requestId": getattr(self.execution_context.context, "request_id", None)}
        if self.cost is not None:
            out["cost"] = self.cost
        return out
