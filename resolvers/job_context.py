"""What a durable-job handler is given: `JobContext` (the store, the settings, the media services).

Handlers are `async def handler(job: JobContext, payload: dict) -> None`. Whoever runs a worker
builds one context for its process (`resolvers.jobs.register_job_handlers`), so a handler names
what it uses instead of reaching into the store for settings it does not own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config import Settings
from tao import Tao


@dataclass
class JobContext:
    tao: Tao
    settings: Settings
    # The process's media store and upload service (`resolvers.media.MediaServices`); None when
    # the process serves no media (a handler that needs it says so).
    media: Any = None
