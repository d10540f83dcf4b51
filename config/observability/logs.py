"""Process logging: JSON lines (production) or text, and the one-line-per-request/per-job records.

`configure_logging()` sets up the root logger once per process. With `logging.format = "json"`
every record is one JSON object: `ts`, `level`, `logger`, `msg`, the process's `role` and `pid`,
the current trace and span ids when tracing is on, an `exc` string for exceptions, and the
record's structured fields (`log_fields(...)` passed as `extra`).

What never reaches a log: request variables and documents (where passwords, tokens, TOTP codes
and message texts travel), headers, payloads of jobs. The request and job lines are built from an
allow-list of fields, and any structured field whose name looks like a secret is replaced by
"[redacted]" all the same (`SECRET_FIELDS`), so a careless `extra=` cannot leak one.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from opentelemetry import trace as otel_trace

from config import json_bytes
from config.settings import LogFormat, LoggingSettings

FIELDS_ATTR = "taogram_fields"
# Substrings of field names whose values are never written (case-insensitive).
SECRET_FIELDS = ("password", "token", "secret", "totp", "otp", "authorization", "cookie", "text", "body",
                 "variables", "query", "payload")

request_log = logging.getLogger("taogram.request")
job_log = logging.getLogger("taogram.job")


def log_fields(**fields: Any) -> dict[str, Any]:
    """`extra=` for a logging call: structured fields the JSON formatter writes as keys."""
    return {FIELDS_ATTR: fields}


def _safe(name: str, value: Any) -> Any:
    lowered = name.lower()
    if any(s in lowered for s in SECRET_FIELDS):
        return "[redacted]"
    return value


class JSONFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "role": self.role,
            "pid": record.process,
        }
        span = otel_trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = format(span.trace_id, "032x")
            out["span_id"] = format(span.span_id, "016x")
        for name, value in (getattr(record, FIELDS_ATTR, None) or {}).items():
            out[name] = _safe(name, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json_bytes.dumps(out, default=str).decode()  # a line per request: the fast encoder


def configure_logging(settings: LoggingSettings, *, role: str = "server", stream: Any = None) -> None:
    """Root logger to `stream` (stderr) at `settings.level`, as JSON lines or text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.format is LogFormat.JSON:
        handler.setFormatter(JSONFormatter(role))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{role} %(process)d] %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(str(settings.level))
    for name in (request_log.name, job_log.name):
        logging.getLogger(name).disabled = not settings.requests
