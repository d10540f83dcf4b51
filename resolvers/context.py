"""The per-request context every resolver receives as `info.context`.

Invariant: loaders live exactly as long as one operation. The HTTP view builds a context per
request; a WebSocket connection keeps one context for its life, so the schema's operation
extension calls `reset_loaders()` at the start of every operation (and a subscription calls it
per event), so no value cached by one operation is served to another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from resolvers.errors import LOGIN_REQUIRED, AuthenticationError, PermissionDeniedError
from resolvers.loaders import Loaders
from resolvers.throttle import LoginThrottle, address_key
from tao import Tao


@dataclass
class RequestContext:
    tao: Tao
    settings: Settings
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The authenticated viewer, or None for an anonymous request.
    viewer_id: int | None = None
    session_id: int | None = None
    # Who pays for the query's cost when anonymous (the client address).
    client_key: str = "anonymous"
    # The client's User-Agent (truncated), for the device name of a session it opens.
    user_agent: str = ""
    # Transport objects, opaque here (resolvers know nothing of HTTP).
    request: Any = None
    response: Any = None
    # Set by strawberry's graphql-transport-ws handler from the `connection_init` payload.
    connection_params: Any = None
    # Shared by the requests of one server process (see `resolvers.throttle`); None: no throttling.
    login_throttle: LoginThrottle | None = None
    # The process's media store and upload service (`resolvers.media.MediaServices`); None: no media.
    media: Any = None
    # The WebSocket this operation runs on (server.py's; has `async close(code, reason)`), so the
    # real-time layer can close it with a reason (resolvers.realtime); None over HTTP.
    socket: Any = None
    # A WebSocket's hold on one of its account's `realtime.max_sockets_per_user` (tao.holds), given
    # back when the socket's handler shuts down.
    socket_hold: Any = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.reset_loaders()

    def reset_loaders(self) -> None:
        self.loaders = Loaders(self.tao, self.viewer_id)

    @property
    def cost_key(self) -> str:
        """The key the per-viewer cost budget is kept under (an anonymous client's: its address's,
        an IPv6 address by its /64, `resolvers.throttle.address_key`)."""
        return f"user:{self.viewer_id}" if self.viewer_id is not None else f"client:{address_key(self.client_key)}"

    def require_viewer(self) -> int:
        """The viewer's id; a top-level UNAUTHENTICATED error for an anonymous request."""
        if self.viewer_id is None:
            raise AuthenticationError(LOGIN_REQUIRED)
        return self.viewer_id

    def require_self(self, user_id: int, what: str) -> None:
        """For data only its own account may read (sessions, notifications, ...): UNAUTHENTICATED
        for an anonymous request, FORBIDDEN for anyone but `user_id`."""
        if self.require_viewer() != user_id:
            raise PermissionDeniedError(f"Only the account itself can see its {what}: ask for it on `viewer`.")
