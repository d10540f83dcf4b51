"""Settings of the observability sections: `[metrics]`, `[logging]`, `[tracing]`.

Kept in their own module so the three sections read as one unit; `config.settings.Settings`
holds one of each.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MetricsSettings:
    # Serve `/metrics` (Prometheus text format). Several processes (server processes, workers)
    # report together when every one of them has PROMETHEUS_MULTIPROC_DIR set to the same
    # empty directory at start (prometheus_client reads it at import): docs/operations.md.
    enabled: bool = True
    # The outbox's depth and oldest job are read from every shard at most this often (seconds),
    # by the process that answers the scrape.
    outbox_sample_seconds: float = 15.0
    # Distinct GraphQL operation names used as label values per process; later names count as
    # "other" (clients choose the names: an unbounded label would grow Prometheus without end).
    max_operation_names: int = 200


@dataclass
class LoggingSettings:
    # "json": one JSON object per line (production); "text": the classic human-readable line.
    format: str = "text"
    level: str = "INFO"
    # One line per GraphQL request (logger `taogram.request`) and per job (`taogram.job`).
    requests: bool = True


@dataclass
class TracingSettings:
    # OTLP/HTTP endpoint spans are exported to (e.g. "http://otel-collector:4318/v1/traces").
    # Empty: tracing is off and costs nothing on the request path.
    otlp_endpoint: str = ""
    service_name: str = "taogram"
    # Fraction of new traces recorded (a trace that arrives with a sampled parent is kept).
    sample_ratio: float = 1.0
