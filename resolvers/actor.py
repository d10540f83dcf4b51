"""What a domain action reads through: `acting_as(tao, actor_id)`.

Actions (`do_<verb>_<noun>(tao, actor_id, ...)`) take plain arguments so a job, a batch script
or a test can call them as well as a mutation. Their checks are the reads every surface uses
(`resolvers.privacy`, the loaders), which take a context; `acting_as` builds one for the actor:
the store, the settings the store was opened with, the actor as viewer, and loaders of its own.

Invariant: an action's loaders are its own, so nothing it cached outlives it, and it never
reads through (or invalidates) a caller's loaders. A caller that keeps loaders across the call
(a GraphQL operation) drops them after the action (`schema.mutations`).
"""

from __future__ import annotations

from typing import Any

from resolvers.context import RequestContext
from tao import Tao


def acting_as(tao: Tao, actor_id: int | None, *, media: Any = None) -> RequestContext:
    """The context an action by `actor_id` checks and reads through (None: an anonymous actor)."""
    return RequestContext(tao=tao, settings=tao.settings, viewer_id=actor_id, media=media)
