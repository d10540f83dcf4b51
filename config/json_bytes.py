"""JSON as UTF-8 bytes, fast: orjson, with the standard library for what orjson refuses (an
integer past 64 bits, say), which takes any. For the server's hot writers: a response body
and a log line a request (the stdlib's encoder was most of a log line's cost, and encoding a
response to text then to bytes ~2 % of a profile page's CPU: docs/BENCHMARKS.md, issue 16)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    try:
        return orjson.dumps(value, default=default)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, default=default, separators=(",", ":")).encode()
