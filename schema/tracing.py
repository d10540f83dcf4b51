"""`OperationSpans`: one OpenTelemetry span each for parsing, validating and executing an
operation, children of the request's span. Added to the schema only while tracing is on
(server.py), and never per field: strawberry's own OpenTelemetry extension makes a span per
resolver, several times slower on a wide query."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from config.observability import traces


class OperationSpans(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        with traces.span("graphql.parse"):
            yield

    def on_validate(self) -> Iterator[None]:
        with traces.span("graphql.validate"):
            yield

    def on_execute(self) -> Iterator[None]:
        with traces.span("graphql.execute", {"graphql.operation.name": self.execution_context.operation_name or ""}):
            yield
