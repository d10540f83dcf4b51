"""One GraphQL operation over HTTP, observed: its metrics, its log line and its span.

    with observe_operation(names, request.headers, operation_name, query) as op:
        result = await execute(...)
        op.finish(context, result)

Over the WebSocket (`graphql-transport-ws`), each operation of a socket gets one line too, when it
ends (`observe_ws_operation`): a query or mutation when its result is sent, a subscription when
it completes, is stopped by the client, or its socket closes; with `transport: "ws"`, the events
it delivered and the error codes they carried.

The log line (`taogram.request`, one per operation) holds the request id (also in the response's
`extensions.requestId`), the viewer id, the operation name, the duration, the cost the operation
was charged, the outcome and the error codes: never the document, its variables or a header.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any

from config.observability import metrics, traces
from config.observability.logs import log_fields, request_log

# The first named operation of a document (a request that names none runs its only operation).
# A label, not a parse: a document that fools it is only counted under another name.
_FIRST_NAMED_OPERATION = re.compile(r"\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")


def operation_name_of(operation_name: str | None, query: str | None) -> str | None:
    """The request's `operationName`, else the name of the document's first operation."""
    if operation_name or not query:
        return operation_name
    match = _FIRST_NAMED_OPERATION.search(query, 0, 2000)
    return match.group(1) if match else None


class Operation:
    """What `finish()` learnt about an operation; reported when the `with` block ends."""

    def __init__(self, name: str | None, label: str) -> None:
        self.name = name
        self.label = label
        self.outcome = "error"  # until finish() says otherwise (an exception escaped, a rejection)
        self.codes: list[str] = []
        self.request_id: str | None = None
        self.viewer_id: int | None = None
        self.cost: int | None = None
        self.span: Any = None

    def finish(self, context: Any, result: Any) -> None:
        """Read the outcome from a strawberry/graphql-core ExecutionResult and the request context."""
        self.request_id = getattr(context, "request_id", None)
        self.viewer_id = getattr(context, "viewer_id", None)
        errors = result.errors or ()
        self.codes = [str((e.extensions or {}).get("code", "UNKNOWN")) for e in errors]
        self.outcome = "ok" if not errors else "partial" if result.data is not None else "error"
        cost = (result.extensions or {}).get("cost") if isinstance(result.extensions, dict) else None
        if isinstance(cost, dict):
            self.cost = cost.get("requestedQueryCost")
        if errors:
            traces.mark_error(self.span, ", ".join(sorted(set(self.codes))))


@contextlib.contextmanager
def observe_operation(names: metrics.OperationNames, headers: Any, operation_name: str | None,
                      query: str | None = None) -> Iterator[Operation]:
    name = operation_name_of(operation_name, query)
    op = Operation(name, names.label(name))
    began = time.perf_counter()
    carrier = headers if headers is not None and "traceparent" in headers else None
    try:
        with traces.span_from(carrier, "graphql.request", {"graphql.operation.name": op.label}) as s:
            op.span = s
            yield op
    finally:
        seconds = time.perf_counter() - began
        metrics.REQUESTS.labels(op.label, op.outcome).inc()
        metrics.REQUEST_SECONDS.labels(op.label).observe(seconds)
        for code in op.codes:
            metrics.GRAPHQL_ERRORS.labels(code).inc()
        if op.span is not None and op.span.is_recording():
            op.span.set_attribute("taogram.request_id", op.request_id or "")
        request_log.info("request", extra=log_fields(
            request_id=op.request_id, viewer_id=op.viewer_id, operation=op.name, duration_ms=round(seconds * 1000, 2),
            cost=op.cost, outcome=op.outcome, error_codes=op.codes))


def observe_rejection(request_id: str | None, status: int, code: str) -> None:
    """A request refused before any operation ran (401, 400, 405, ...): counted and logged once."""
    metrics.REQUESTS.labels("-", "rejected").inc()
    metrics.GRAPHQL_ERRORS.labels(code).inc()
    request_log.info("request", extra=log_fields(request_id=request_id, viewer_id=None, operation=None,
                                                status=status, outcome="rejected", error_codes=[code]))


class WSOperation:
    """One operation on a socket, observed through the messages sent for it (`saw`)."""

    def __init__(self, name: str | None, label: str) -> None:
        self.name, self.label = name, label
        self.results = 0  # `next` messages sent: a query's one result, a subscription's events
        self.codes: list[str] = []
        self.outcome = "ok"

    def saw(self, message: Any) -> None:
        kind = message.get("type")
        if kind == "next":
            self.results += 1
            payload = message.get("payload") or {}
            errors = payload.get("errors") or ()
            if errors:
                self.outcome = "partial" if payload.get("data") is not None else "error"
        elif kind == "error":  # refused before it ran (validation, a limit): no result
            errors = message.get("payload") or ()
            self.outcome = "error"
        else:
            return
        self.codes += [str((e.get("extensions") or {}).get("code", "UNKNOWN")) for e in errors if isinstance(e, dict)]


@contextlib.contextmanager
def observe_ws_operation(names: metrics.OperationNames, operation_name: str | None, query: str | None,
                         request_id: str, viewer_id: int | None) -> Iterator[WSOperation]:
    """One WebSocket operation: counted and logged when it ends (see the module docstring). No
    latency sample: a subscription's lifetime is not a response time."""
    name = operation_name_of(operation_name, query)
    op = WSOperation(name, names.label(name))
    began = time.perf_counter()
    try:
        yield op
    finally:
        metrics.REQUESTS.labels(op.label, op.outcome).inc()
        for code in op.codes:
            metrics.GRAPHQL_ERRORS.labels(code).inc()
        request_log.info("request", extra=log_fields(
            request_id=request_id, viewer_id=viewer_id, operation=op.name, transport="ws",
            duration_ms=round((time.perf_counter() - began) * 1000, 2), results=op.results, outcome=op.outcome,
            error_codes=op.codes))
