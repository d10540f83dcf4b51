"""Request-wide policies, run by one strawberry schema extension (`RequestPolicy`): limits, cost,
cached documents, and what errors say.

strawberry's extension runner costs per extension and per hook on every request (it instantiates
each extension, inspects each hook and wraps it in a context manager; strawberry's depth and alias
limiters also build their validation rule classes in `__init__`, per request): seven extensions
were ~2 % of a profile page's CPU (docs/BENCHMARKS.md, issue 16). So the policies are plain
objects, called in a fixed order from one extension's hooks, and the limiters' validation rules
are built once per schema (`limit_rules`):

- The operation guard (`_Guard`): fresh loaders per operation; before validation, refuses documents with
  more than `max_selections` selections (validation's work grows with their square) and
  viewers whose budget cannot pay for validating them (a peek at the budget: skipped for a
  document the cache holds, which is not validated again and whose execution spends from the
  same budget, refused there if short: one Redis round trip less per request), and charges the budget for documents
  that fail validation; before execution, refuses bad string inputs (too long, NUL,
  unpaired surrogates) and lists over `max_list_length` (`schema.input_values`), a second once-per-document
  field (`logIn`, `signUp`), and operations over the cost limit or the viewer's remaining
  budget. Reports `extensions.cost` (Shopify's shape) and `extensions.requestId` on every response.
- The operation choice (`operation_choice_error`): a document of several operations needs `operationName` (the
  GraphQL-over-HTTP spec's request error, code `BAD_REQUEST`; graphql-core alone would run the
  first one), on every surface.
- The document cache (`schema.document_cache.CachedDocuments`): no parse or validation of a
  document seen before.
- The limits on documents (`limit_rules`): depth, aliases (validation rules), tokens (parser),
  introspection when it is off.
- The error policy (`mask_errors`, after everything else): every error gets `extensions.code`.
  Deliberate top-level errors (`resolvers.errors.TOP_LEVEL_ERRORS`) and GraphQL's own
  syntax/validation errors keep their message; anything else is a fault: its message becomes
  "Internal error" with the request id, and the original is logged (by
  `TaogramSchema.process_errors`) with that id.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from graphql import ASTValidationRule, GraphQLError, OperationDefinitionNode
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, QueryDepthLimiter
from strawberry.extensions.disable_introspection import DisableIntrospection
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from config import LimitSettings
from resolvers.errors import TOP_LEVEL_ERRORS, AppError, ThrottledError, domain_error
from schema.cost import CostBudget, document_size, once_per_document_fields, query_cost
from schema.document_cache import CachedDocuments, DocumentCache
from schema.input_values import input_error

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


def mask_errors(errors: list[GraphQLError], request_id: str) -> list[GraphQLError]:
    """The errors as the client sees them: each with `extensions.code`, faults masked."""
    out = []
    for error in errors:
        code, original = _code(error), _original(error)
        if is_unexpected(error):
            message = f"Internal error; quote request id {request_id} when reporting it."
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


def operation_choice_error(ec: ExecutionContext) -> GraphQLError | None:
    """A document of several operations with no `operationName`: the request error to answer."""
    # strawberry's `operation_name` falls back to the first operation's name (and hands that
    # to graphql-core, which is how the first one ran); only the name the client gave counts.
    # (Private attribute: tests/test_http_errors.py fails if strawberry renames it.)
    given = getattr(ec, "_provided_operation_name", ec.operation_name)
    if given is None and ec.graphql_document is not None:
        names = [d.name.value if d.name else "(anonymous)" for d in ec.graphql_document.definitions
                 if isinstance(d, OperationDefinitionNode)]
        if len(names) > 1:
            listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            return GraphQLError(
                f"The document defines {len(names)} operations ({listed}): "
                "name the one to run in `operationName`.", extensions={"code": "BAD_REQUEST"})
    return None


def _refuse(message: str, code: str) -> GraphQLExecutionResult:
    return GraphQLExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])


class _Guard:
    """The operation guard of one operation (see the module docstring)."""

    def __init__(self, ec: ExecutionContext, limits: LimitSettings, budget: CostBudget) -> None:
        self.execution_context = ec
        self.limits = limits
        self.budget = budget
        self.cost: dict[str, Any] | None = None
        self.selections = 0

    async def after_validation(self) -> None:
        if self.execution_context.pre_execution_errors:  # refused by validation, after its work: charge that work
            self._report(self.selections, await self.budget.charge(self._limiter(), self._key(), self.selections))

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

    async def check_document(self, validated: bool) -> GraphQLError | None:
        """Before validation, whose work grows with the square of the document's selections:
        refuse documents over `max_selections` (charged as if validated) and viewers whose
        budget cannot pay for validating this one. A document already `validated` (the document
        cache's) is not validated again: no validation to pay for, so no peek at the budget
        (`check_execution` spends at least as many points, and refuses if they are not there)."""
        document = self.execution_context.graphql_document
        if document is None:
            return None
        size = document_size(document)
        self.selections = n = size.selections
        cap = self.limits.max_selections
        if n > cap:
            self._report(n, await self.budget.charge(self._limiter(), self._key(), n))
            return GraphQLError(
                f"This document has {n} field selections (fragments counted wherever they are spread, unused "
                f"ones once), more than the limit of {cap}, so it was not validated: validating grows with the square "
                "of that number. Split it into several requests, or ask for fewer repeated fields.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"})
        if size.fragment_nesting > MAX_FRAGMENT_NESTING:
            self._report(n, await self.budget.charge(self._limiter(), self._key(), n))
            return GraphQLError(
                f"This document's fragments spread one another {size.fragment_nesting} levels deep, more "
                f"than the limit of {MAX_FRAGMENT_NESTING}, so it was not validated: inline the inner ones.",
                extensions={"code": "GRAPHQL_VALIDATION_FAILED"})
        if validated:
            return None
        left = await self.budget.available(self._limiter(), self._key())
        if n > left:
            self._report(n, left)
            return self._throttled(n, left)
        return None

    async def check_execution(self) -> GraphQLExecutionResult | None:
        """Before execution: the result to answer instead of executing (a refusal), or None."""
        ec = self.execution_context
        if ec.operation_type is OperationType.SUBSCRIPTION and getattr(ec.context, "socket", None) is None:
            # Over HTTP strawberry executed a subscription as a query: its field's event stream was
            # no value, and the answer a masked fault (INTERNAL_SERVER_ERROR, logged), after its cost.
            return _refuse("Subscriptions run over a WebSocket: connect to /graphql with the subprotocol "
                           "graphql-transport-ws and subscribe there; over HTTP, send queries and mutations.",
                           "BAD_REQUEST")
        bad_input = input_error(ec.graphql_document, ec.variables, self.limits)
        if bad_input is not None:
            return GraphQLExecutionResult(data=None, errors=[bad_input])
        if ec.graphql_document is None:
            return None
        estimate = query_cost(ec.schema._schema, ec.graphql_document, ec.operation_name, ec.variables,
                              self.limits.max_page_size, getattr(ec.context, "settings", None))
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
        if cost > self.limits.max_subscription_cost and self.execution_context.operation_type is \
                OperationType.SUBSCRIPTION:
            # Spent once here, but its selection runs for every event it delivers, as often as
            # others' cheap writes (a message, a reaction) send one.
            return _refuse(
                f"This subscription costs {cost} points, and its selection runs again for every event it "
                f"delivers: the limit is {self.limits.max_subscription_cost} points. Select less on each event "
                "(ids and what you show), and query more when you need it.", "MAX_COST_EXCEEDED")
        ok, left = await self.budget.try_spend(self._limiter(), self._key(), cost)
        self._report(cost, left)
        if not ok:
            return GraphQLExecutionResult(data=None, errors=[self._throttled(cost, left)])
        return None

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requestId": getattr(self.execution_context.context, "request_id", None)}
        if self.cost is not None:
            out["cost"] = self.cost
        return out


def _skip_introspection(ctx: IgnoreContext) -> bool:
    # GraphiQL's own introspection query is deeper than any sensible data query.
    return ctx.field_name.startswith("__")


def limit_rules(limits: LimitSettings) -> tuple[type[ASTValidationRule], ...]:
    """The validation rules of the depth and alias limits (and of disabled introspection), built
    once per schema: the rule classes keep no state between validations."""
    rules = (*QueryDepthLimiter(max_depth=limits.max_depth, should_ignore=_skip_introspection).validation_rules,
             *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules)
    if not limits.introspection:
        rules += tuple(DisableIntrospection().validation_rules)
    return rules


class RequestPolicy(MaskErrors):
    """Every request-wide policy, as the schema's one extension (see the module docstring). The
    order is the one the separate extensions had: the error policy outermost (its masking runs
    last, over every other policy's errors), then the document cache, the operation choice, the
    limits and the operation guard."""

    def __init__(self, *, limits: LimitSettings, budget: CostBudget, documents: DocumentCache,
                 rules: tuple[type[ASTValidationRule], ...]) -> None:
        super().__init__(should_mask_error=is_unexpected)
        self.limits = limits
        self.budget = budget
        self.rules = rules
        self.documents = CachedDocuments(documents)
        self.guard: _Guard | None = None

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return mask_errors(errors, getattr(self.execution_context.context, "request_id", "-"))

    def on_operation(self) -> Iterator[None]:
        ec = self.execution_context
        ec.validation_rules = ec.validation_rules + self.rules
        ec.parse_options["max_tokens"] = self.limits.max_tokens
        reset: Callable[[], None] | None = getattr(ec.context, "reset_loaders", None)
        if reset is not None:
            reset()  # a WebSocket connection keeps its context: never share loaders between operations
        self.guard = _Guard(ec, self.limits, self.budget)
        yield from super().on_operation()  # the error policy: masks what the operation answers

    def on_parse(self) -> Iterator[None]:
        self.documents.before_parse(self.execution_context)
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        ec = self.execution_context
        assert self.guard is not None
        self.documents.before_validate(ec)
        choice = operation_choice_error(ec)
        if choice is not None:  # set before validation runs, so the document is refused without being validated
            ec.pre_execution_errors = [choice]
        refusal = await self.guard.check_document(validated=self.documents.hit)
        if refusal is not None:
            ec.pre_execution_errors = [refusal]  # strawberry then skips validation
            yield
        else:
            yield
            await self.guard.after_validation()
        self.documents.after_validate(ec)

    async def on_execute(self) -> AsyncIterator[None]:
        assert self.guard is not None
        refusal = await self.guard.check_execution()
        if refusal is not None:
            if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
                # strawberry subscribes whatever `result` holds (a query or mutation is skipped):
                # a subscription refused here ran anyway, over budget or with bad input. An error
                # raised by this hook is what it answers instead (its one error, as for the others).
                assert refusal.errors
                raise refusal.errors[0]
            self.execution_context.result = refusal
        yield

    def get_results(self) -> dict[str, Any]:
        if self.guard is None:
            return {"requestId": getattr(self.execution_context.context, "request_id", None)}
        return self.guard.results()
