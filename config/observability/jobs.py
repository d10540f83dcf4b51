"""One job run, observed: its duration and outcome (metrics), one log line, and a span that
continues the trace of the request that enqueued it (the context travels in the payload)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from config.observability import metrics, traces
from config.observability.logs import job_log, log_fields


@contextlib.contextmanager
def observe_job(handler: str, job_id: int, attempt: int, payload: dict) -> Iterator[None]:
    """Around a handler's run. Removes the trace context from `payload` before the handler sees it."""
    carrier = traces.pop_trace_context(payload)
    began = time.perf_counter()
    outcome = "failed"
    error = None
    try:
        with traces.span_from(carrier, f"job {handler}", {"taogram.job_id": job_id, "taogram.job.attempt": attempt}):
            yield
        outcome = "ok"
    except Exception as exc:
        error = type(exc).__name__
        raise
    finally:
        seconds = time.perf_counter() - began
        metrics.JOB_SECONDS.labels(handler, outcome).observe(seconds)
        if outcome != "ok":
            metrics.JOB_FAILURES.labels(handler).inc()
        job_log.info("job", extra=log_fields(job_id=job_id, handler=handler, attempt=attempt,
                                            duration_ms=round(seconds * 1000, 2), outcome=outcome, error=error))
