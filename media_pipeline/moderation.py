"""The moderation hook: a pluggable check run on every probed media before it is processed.

A check is any callable `check(probe: ProbeResult, path: Path) -> Decision`, named in
`MediaSettings.moderation_hook` as "module:function" (a dotted path, so worker processes can
import it). `allow_all` is the default. A `Reject` fails the media with its reason
(`MediaRejectedError`), recorded so a retried job fails the same way without re-running.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from media_pipeline.probe import ProbeResult


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Reject:
    reason: str


Decision = Allow | Reject
ModerationCheck = Callable[[ProbeResult, Path], Decision]


def allow_all(probe: ProbeResult, path: Path) -> Decision:
    """The default check: everything is allowed."""
    return Allow()


def load_check(spec: str) -> ModerationCheck:
    """Import the check named "module:function"."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"media.moderation_hook must be 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)
