"""The GraphQL-over-HTTP spec's rules for `/graphql`, as a base class of the server's view.

strawberry's aiohttp view answers `application/json` with status 200 for everything it executes.
`GraphQLOverHTTPView` adds what the spec (graphql.github.io/graphql-over-http, after its
2025-01-01 watershed) asks of a server, and persisted documents (`schema.persisted`):

- **Media type from `Accept`** (`negotiate`): `application/graphql-response+json` and
  `application/json`, by q-value, then specificity, then the order listed. No `Accept` header
  means `application/graphql-response+json` (the spec's post-watershed default); a bare `*/*`
  (browsers, curl, most HTTP libraries) means `application/json`, which every legacy client
  understands. A header that lists neither (nor a range covering them) is a 406, before
  anything runs. `Content-Type` says which was chosen, with `charset=utf-8`.
- **Status codes.** With `application/json`, every well-formed request is a 200, request errors
  included (parse and validation failures, an operation that cannot be chosen, variables that
  do not coerce), as the spec asks. With `application/graphql-response+json`, a response without
  `data` is a 4xx/5xx: a request error drops `data` and answers 400 (429 `THROTTLED`, 503
  `UNAVAILABLE`, 401/403, 500 for a fault); a response with `data` (even null, even with field
  errors) is a 200. Malformed requests are 400 with either type (`schema.request`).
- **A mutation over GET is a 405** with `Allow: POST`; nothing runs.
- **Persisted documents**: APQ's `extensions.persistedQuery`, the spec's `documentId`, and the
  trusted-documents manifest of `server.trusted_documents` (`load_persisted_documents`).

`server.TaogramView` derives from it; the request's media type is `request[RESPONSE_TYPE]`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeGuard

from aiohttp import web
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult

from config import ServerSettings, json_bytes
from config.settings import resolve_path
from http_errors import REQUEST_ID, STATUS_CODES, json_error
from schema.persisted import PersistedDocumentError, PersistedDocuments

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# Ties (e.g. a bare `*/*`) go to the first: the type every legacy client reads.
SUPPORTED = (JSON, GRAPHQL_RESPONSE)
RESPONSE_TYPE = web.RequestKey("response_media_type", str)
_SUB_RESPONSE_TYPE = web.ResponseKey("response_media_type", str)
# With application/graphql-response+json, the status of a request error by its code (else 400).
REQUEST_ERROR_STATUS = {"THROTTLED": 429, "UNAVAILABLE": 503, "INTERNAL_SERVER_ERROR": 500,
                        "UNAUTHENTICATED": 401, "FORBIDDEN": 403}


class _RequestError(Exception):
    """The spec's "operation cannot be determined": a request error of a well-formed request."""

    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The response's media type for this `Accept` header, or None when it accepts neither."""
    if accept is None or not accept.strip():
        return GRAPHQL_RESPONSE
    ranges = _media_ranges(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for media in SUPPORTED:
        kind = media.split("/")[0]
        match = None  # (specificity, q, position) of the most specific range covering `media`
        for position, (listed, q) in enumerate(ranges):
            specificity = 2 if listed == media else 1 if listed == f"{kind}/*" else 0 if listed == "*/*" else -1
            if specificity >= 0 and (match is None or specificity > match[0]):
                match = (specificity, q, position)
        if match is None or match[1] <= 0:
            continue
        rank = (match[1], match[0], -match[2])
        if best is None or rank > best:
            best, chosen = rank, media
    return chosen


def is_request_error(result: ExecutionResult) -> bool:
    """Nothing ran: no data, and every error is about the request itself (none has a path)."""
    return result.data is None and bool(result.errors) and all(e.path is None for e in result.errors)


def http_status(result: ExecutionResult, media: str) -> int:
    if media != GRAPHQL_RESPONSE or not is_request_error(result):
        return 200
    code = (result.errors[0].extensions or {}).get("code", "")
    return REQUEST_ERROR_STATUS.get(code, 400)


def load_persisted_documents(server: ServerSettings) -> PersistedDocuments:
    """The trusted-documents manifest named by `server.trusted_documents` (none: APQ only).
    Read at start-up, never on the event loop; a bad manifest stops the start with one sentence."""
    trusted: dict[str, str] = {}
    if server.trusted_documents:
        path = resolve_path(server.trusted_documents)
        try:
            trusted = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"server.trusted_documents: cannot read {path} as a JSON object of "
                             f"hash -> document ({e})") from None
        if not isinstance(trusted, dict):
            raise SystemExit(f"server.trusted_documents: {path} must hold a JSON object of hash -> document")
    elif server.trusted_documents_only:
        raise SystemExit("server.trusted_documents_only needs server.trusted_documents "
                         "(the manifest of allowed documents)")
    try:
        return PersistedDocuments(trusted, trusted_only=server.trusted_documents_only)
    except ValueError as e:
        raise SystemExit(f"server.trusted_documents: {e}") from None


class GraphQLOverHTTPView(GraphQLView):
    # APQ alone by default; the server sets its own from `ServerSettings` (`load_persisted_documents`).
    persisted_documents: PersistedDocuments = PersistedDocuments()

    def _refusal(self, request: web.Request, status: int, message: str, code: str,
                 headers: dict[str, str] | None = None) -> web.Response:
        response = json_error(status, message, code, request.get(REQUEST_ID))
        if request.get(RESPONSE_TYPE) == GRAPHQL_RESPONSE:
            response.content_type = GRAPHQL_RESPONSE
        response.headers.update(headers or {})
        return response

    async def run(self, request: web.Request, *args: Any, **kwargs: Any) -> Any:
        if not self.is_websocket_request(request):
            adapter = self.request_adapter_class(request)
            if not (request.method == "GET" and self.should_render_graphql_ide(adapter)):
                media = negotiate(request.headers.get("Accept"))
                if media is None:
                    return self._refusal(
                        request, 406, f"This endpoint answers {GRAPHQL_RESPONSE} or {JSON}; "
                        "list one of them in the Accept header.", "NOT_ACCEPTABLE")
                request[RESPONSE_TYPE] = media
        try:
            return await super().run(request, *args, **kwargs)
        except (PersistedDocumentError, _RequestError) as e:
            # Well-formed requests that name no runnable document or operation: request errors,
            # 200 in application/json, 400 in application/graphql-response+json.
            well_formed = isinstance(e, _RequestError) or e.code != "BAD_REQUEST"
            status = 200 if well_formed and request.get(RESPONSE_TYPE) != GRAPHQL_RESPONSE else 400
            return self._refusal(request, status, e.message, e.code)
        except HTTPException as e:
            headers = None
            if e.status_code == 405:  # a mutation over GET, or a method other than GET and POST
                headers = {"Allow": "POST" if request.method == "GET" else "GET, POST"}
            return self._refusal(request, e.status_code, e.reason,
                                 STATUS_CODES.get(e.status_code, "BAD_REQUEST"), headers)

    def is_websocket_request(self, request: web.Request) -> TypeGuard[web.Request]:
        # strawberry asks three times per request, each time building a WebSocketResponse whose
        # handshake check raises (and catches) an HTTPBadRequest for a plain POST: ~1 % of a
        # profile page's CPU. No `Upgrade: websocket` header fails that check's first step, so
        # answer that case at once; anything else goes through the full check.
        if request.headers.get("Upgrade", "").lower().strip() != "websocket":
            return False
        return super().is_websocket_request(request)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted document has no `query` parameter, yet is a GraphQL request.
        params = request.query_params
        return (super().should_render_graphql_ide(request)
                and params.get("extensions") is None and params.get("documentId") is None)

    async def get_sub_response(self, request: web.Request) -> web.Response:
        response = await super().get_sub_response(request)
        response[_SUB_RESPONSE_TYPE] = request.get(RESPONSE_TYPE, JSON)
        return response

    async def execute_single(self, request: web.Request, request_adapter: AsyncHTTPRequestAdapter,
                             sub_response: web.Response, context: Any, root_value: Any,
                             request_data: GraphQLRequestData) -> ExecutionResult:
        query = self.persisted_documents.resolve(request_data.query, getattr(request_data, "document_id", None),
                                                 request_data.extensions)
        if query != request_data.query:
            request_data = dataclasses.replace(request_data, query=query)
        try:
            result = await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                                  request_data)
        except HTTPException as e:
            if isinstance(e.__cause__, CannotGetOperationTypeError):  # an operationName the document lacks
                raise _RequestError(e.reason) from None
            if isinstance(e.__cause__, InvalidOperationTypeError) and request_adapter.method == "GET":
                raise HTTPException(405, "A mutation cannot be sent with GET (it only runs queries): "
                                         "send it with POST.") from None
            raise
        sub_response.set_status(http_status(result, sub_response[_SUB_RESPONSE_TYPE]))
        return result

    async def process_result(self, request: web.Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if request.get(RESPONSE_TYPE) == GRAPHQL_RESPONSE and is_request_error(result):
            response.pop("data", None)  # the spec: a request error has no `data` entry
        return response

    def encode_json(self, data: object) -> str:
        # A WebSocket message (strawberry's transport encodes each with this): text, as the
        # graphql-transport-ws protocol's messages are (bytes would go out as a binary frame),
        # through the fast encoder rather than the stdlib's: ~1 % of a server's CPU at load.
        return json_bytes.dumps(data).decode()

    def create_response(self, response_data: Any, sub_response: web.Response) -> web.Response:
        # The body as UTF-8 bytes at once, not strawberry's json.dumps to text and then encoded.
        sub_response.body = json_bytes.dumps(response_data)
        sub_response.content_type = GRAPHQL_RESPONSE if sub_response[_SUB_RESPONSE_TYPE] == GRAPHQL_RESPONSE else JSON
        sub_response.charset = "utf-8"
        return sub_response
