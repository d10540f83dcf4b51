"""Observability shared by every process: Prometheus metrics (`metrics`), JSON logs (`logs`),
OpenTelemetry spans (`traces`), and the per-operation and per-job records built from them
(`requests`, `jobs`). It sits with `config` at the bottom of the layers, so the store, the media
pipeline and the server all report through it; docs/operations.md describes what it exports.
"""

from __future__ import annotations

from typing import Any


def setup_process(settings: Any, role: str) -> None:
    """Logging and tracing for one process (`settings`: a `config.Settings`), as configured."""
    from config.observability.logs import configure_logging
    from config.observability.traces import configure_tracing

    configure_logging(settings.logging, role=role)
    configure_tracing(settings.tracing, role=role)
