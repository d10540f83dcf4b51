"""GraphQL-shaped answers for whatever the HTTP layer refuses, and the request id of every request.

Owns `json_error` (the one shape: `{"errors": [{"message", "extensions": {"code"}}],
"extensions": {"requestId"}}` plus the `X-Request-Id` header), the `transport_errors`
middleware (a request id for every request; aiohttp's refusals such as 404, 405 and 413
reshaped; unexpected exceptions logged with the id and masked as 500s) and
`answer_parser_errors_as_graphql` (the same for what aiohttp's HTTP parser refuses before any
route or middleware runs). Invariant: no response of the server is a text error page, a bare 500
or an exception's text. `server.py` uses it; nothing else imports it.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("taogram.server")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

REQUEST_ID = web.RequestKey("request_id", str)
MAX_REQUEST_BODY = 2 * 1024 * 1024  # bytes of one HTTP request (media parts have their own bound)
UNAVAILABLE_MESSAGE = "Part of the data is temporarily unavailable; retry shortly."
# extensions.code of a transport-level failure, by HTTP status.
STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 408: "REQUEST_TIMEOUT", 413: "PAYLOAD_TOO_LARGE",
                415: "UNSUPPORTED_MEDIA_TYPE", 431: "BAD_REQUEST", 503: "UNAVAILABLE"}


def json_error(status: int, message: str, code: str, request_id: str | None = None) -> web.Response:
    """A failure before or around execution, shaped like a GraphQL response (with the request id
    in `extensions.requestId` and the `X-Request-Id` header) so clients parse one format."""
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": {"code": code}}]}
    headers = {}
    if request_id:
        body["extensions"] = {"requestId": request_id}
        headers["X-Request-Id"] = request_id
    return web.json_response(body, status=status, headers=headers)


def internal_error(request_id: str) -> web.Response:
    return json_error(500, f"Internal error; quote request id {request_id} when reporting it.",
                      "INTERNAL_SERVER_ERROR", request_id)


def _transport_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 413:
        return (f"The request body is larger than {MAX_REQUEST_BODY} bytes; send a smaller one "
                "(media goes through `startUpload`'s part URLs, not /graphql).")
    if exc.status == 404:
        return f"Nothing is served at {request.path}; the GraphQL API is at /graphql."
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}."
    return exc.reason


@web.middleware
async def transport_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Give every request its id, and answer what fails outside GraphQL execution in GraphQL's
    error shape: aiohttp's own refusals (unknown path, wrong method, a body over
    `MAX_REQUEST_BODY`) keep their status; an unexpected exception is logged with the request id
    and masked as a 500 `INTERNAL_SERVER_ERROR`. Never aiohttp's plain-text pages."""
    rid = request.headers.get("X-Request-Id", "")
    rid = rid if _REQUEST_ID_RE.match(rid) else uuid.uuid4().hex
    request[REQUEST_ID] = rid
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect is not an error
            raise
        code = STATUS_CODES.get(exc.status, "BAD_REQUEST" if exc.status < 500 else "INTERNAL_SERVER_ERROR")
        return json_error(exc.status, _transport_message(request, exc), code, rid)
    except Exception:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            raise  # the handshake was answered: no HTTP response can follow (the view closes sockets itself)
        log.exception("request %s: unexpected error in %s %s", rid, request.method, request.path)
        return internal_error(rid)
    if not response.prepared and "X-Request-Id" not in response.headers:
        response.headers["X-Request-Id"] = rid
    return response


class _GraphQLShapedProtocol(RequestHandler):
    """aiohttp's connection handler, answering what its parser refuses before any route or
    middleware runs (a URL or header line over 8190 bytes, too many headers, a malformed request
    line) in GraphQL's error shape rather than a text page echoing the client's bytes."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: a response is under way, the connection is broken
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        rid = uuid.uuid4().hex
        if status >= 500:
            log.error("request %s: unexpected error from %s", rid, request.remote, exc_info=exc)
            response = internal_error(rid)
        else:  # the client's mistake: not worth a traceback in the log
            log.info("request %s: refused a malformed request from %s: %s", rid, request.remote, exc)
            response = json_error(
                status, "The request line or headers are malformed or too large (a URL or header line "
                "is at most 8190 bytes): send the query and variables in a POST body.",
                STATUS_CODES.get(status, "BAD_REQUEST"), rid)
        response.force_close()  # the parser's state is unknown: this connection is done
        return response


class _GraphQLShapedServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _GraphQLShapedProtocol(self, loop=self._loop, **self._kwargs)


def answer_parser_errors_as_graphql(app: web.Application) -> None:
    """Make every runner of `app` (`web.run_app`, aiohttp's TestServer) use
    `_GraphQLShapedProtocol`. aiohttp has no public hook for the parser's error page: this
    wraps the app's handler factory (private API; tests/test_http_errors.py fails if it changes)."""
    make_handler = app._make_handler

    def make(**kwargs: Any) -> web.Server:
        server = make_handler(**kwargs)
        server.__class__ = _GraphQLShapedServer  # a subclass adding no state: only __call__ differs
        return server

    app._make_handler = make  # type: ignore[method-assign]
