"""OpenTelemetry spans: off unless configured, and then one span per unit of I/O, never per field.

Spans taogram makes: `graphql.request` (one HTTP operation; joins the caller's trace when the
request carries a W3C `traceparent`), `graphql.parse` / `graphql.validate` / `graphql.execute`,
`tao.<verb>` (one store call, outermost only), `sql` (one statement on one shard),
`cache.get` / `cache.install` (one cache tier round trip), `job <handler>` (one job run).
A job's span continues the trace of the request that enqueued it: `Outbox.add` stores the
context in the job's payload (`with_trace_context`), the worker takes it out (`pop_trace_context`).

While tracing is off (`tracer is None`), `span()` returns one shared no-op context manager and
no payload is touched, so the request path pays a function call and an `is None` test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from config.settings import TracingSettings

# The payload key a job's trace context travels under; the worker removes it before the handler runs.
TRACE_KEY = "_trace"

tracer: Tracer | None = None
_provider: TracerProvider | None = None
_propagator = TraceContextTextMapPropagator()
_NOOP = contextlib.nullcontext()


def configure_tracing(settings: TracingSettings, *, role: str = "server",
                      exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on when `settings.otlp_endpoint` is set (batched OTLP/HTTP export), or with
    `exporter` (tests: the SDK's InMemorySpanExporter, exported as each span ends). Returns
    whether tracing is on. Calling it again replaces the previous configuration."""
    global tracer, _provider
    shutdown_tracing()
    processor: SpanProcessor
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter)
    elif settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
    else:
        return False
    resource = Resource.create({"service.name": settings.service_name, "taogram.role": role})
    _provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
    _provider.add_span_processor(processor)
    tracer = _provider.get_tracer("taogram")
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter (process exit), and turn tracing off."""
    global tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    tracer = _provider = None


def span(name: str, attributes: dict[str, Any] | None = None) -> contextlib.AbstractContextManager[Any]:
    """A span around a block (the current span its parent), or a no-op when tracing is off.
    An exception leaving the block marks the span as an error."""
    if tracer is None:
        return _NOOP
    return tracer.start_as_current_span(name, attributes=attributes)


@contextlib.contextmanager
def span_from(carrier: dict[str, str] | None, name: str, attributes: dict[str, Any] | None = None) -> Iterator[Any]:
    """A span whose parent is the context in `carrier` (W3C headers: `traceparent`), if any."""
    if tracer is None:
        yield None
        return
    parent = _propagator.extract(carrier) if carrier else None
    with tracer.start_as_current_span(name, context=parent, attributes=attributes) as s:
        yield s


def mark_error(s: Span | None, description: str) -> None:
    """Mark span `s` failed without an exception (an operation answered with errors)."""
    if s is not None and s.is_recording():
        s.set_status(StatusCode.ERROR, description)


def with_trace_context(payload: dict) -> dict:
    """`payload` with the current trace context added (a copy), or `payload` itself when tracing
    is off or no span is current. The job that carries it runs as a child of this span."""
    if tracer is None:
        return payload
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, otel_context.get_current())
    return {**payload, TRACE_KEY: carrier} if carrier else payload


def pop_trace_context(payload: dict) -> dict[str, str] | None:
    """Remove and return the trace context a job's payload carries (handlers never see it)."""
    carrier = payload.pop(TRACE_KEY, None)
    return carrier if isinstance(carrier, dict) else None
