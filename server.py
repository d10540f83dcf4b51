"""The taogram HTTP server: GraphQL over HTTP and WebSocket, GraphiQL, /healthz, /version.

    python server.py          # settings from TAOGRAM_CONFIG, else the embedded default

With `server.processes` > 1 this process supervises that many server processes on one port
(SO_REUSEPORT), each with its own event loop, pools and cache clients (`supervise`); see
docs/realtime.md for why not gunicorn.

`create_app(settings)` builds the aiohttp app (tests build it with their own settings). The
store is opened on start-up and closed on clean-up (`cleanup_ctx`), with the domain's job
handlers registered before the in-process worker (started by `open_tao` per `JobSettings`)
can claim a job. This module is the top of the import graph: nothing imports it.

Endpoints:
- `/graphql`: POST (queries, mutations), GET (queries only, for caching proxies), WebSocket
  (`graphql-transport-ws`; the session token in the `connection_init` payload). A browser
  asking for HTML gets GraphiQL, whose assets are served from `/static/` (vendored, no CDN).
- `/healthz`: pings every shard and reads the cache tier's health; 200, or 503 with detail.
- `/version`: the package version, and the pid of the server process that answered.
- `/media/...` (with `media.backend = "local"`): the local store's signed URLs, `GET` an object
  and `PUT` an upload part (bounded body), mounted at the path of `media.local_base_url` (by
  default the server's own address: `Settings.media_served()`).

Invariant: every answer that is not a GraphQL execution result is still GraphQL-shaped JSON
with a request id (`docs/graphql.md`, "Requests that cannot run"): the view decodes requests
through `schema.request` (400s that say what to fix), the `transport_errors` middleware reshapes
aiohttp's refusals and masks unexpected exceptions (500), and `answer_parser_errors_as_graphql`
does the same for what aiohttp's parser refuses before any route runs (all in `http_errors.py`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
import tomllib
import uuid
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from admission import BUSY_MESSAGE, RETRY_AFTER_SECONDS, SHEDDER_KEY, LoadShedder, Place
from config import ConfigError, MediaSettings, Settings, load_settings, load_settings_or_exit
from config.observability import metrics as obs_metrics
from config.observability import setup_process, traces
from config.observability.requests import observe_operation, observe_rejection
from config.runtime import tune_gc
from config.settings import DEV_CURSOR_KEY, DEV_MEDIA_SIGNING_KEY, DEV_MESSAGE_KEY
from graphql_http import GRAPHQL_RESPONSE, RESPONSE_TYPE, GraphQLOverHTTPView, load_persisted_documents
from http_errors import (
    MAX_REQUEST_BODY,
    REQUEST_ID,
    STATUS_CODES,
    UNAVAILABLE_MESSAGE,
    answer_parser_errors_as_graphql,
    json_error,
    transport_errors,
)
from media_pipeline import MediaError, handle_local_request
from media_pipeline import open_store as open_media_store
from resolvers.accounts import authenticate
from resolvers.context import RequestContext
from resolvers.errors import AuthenticationError, UnavailableError
from resolvers.jobs import register_job_handlers
from resolvers.media import MediaServices, media_services, run_sweeper
from resolvers.messages.model import check_keys
from resolvers.passwords import LEND_PLACE
from resolvers.realtime import CLOSE_RATE_LIMITED
from resolvers.search.engine import close_indexes
from resolvers.search.engine import indexes_for as search_indexes_for
from resolvers.throttle import LoginThrottle, address_key
from schema import build_schema
from schema.relay import seal_cursors
from schema.request import BadRequestError, decode_json, parse_request
from schema.tracing import OperationSpans
from server_ws import TaogramWSHandler
from server_ws import install as install_websockets
from tao import ShardUnavailableError, Tao, open_tao
from tao.startup import explain_startup_error

log = logging.getLogger("taogram.server")

STATIC_DIR = Path(__file__).resolve().parent / "schema" / "static"
TAO_KEY = web.AppKey("tao", Tao)
SETTINGS_KEY = web.AppKey("settings", Settings)
MEDIA_KEY = web.AppKey("media", MediaServices)
HEALTH_TIMEOUT = 2.0  # seconds; a health check must answer even when a shard hangs
# Read once at import, never on the event loop.
GRAPHIQL_HTML = (STATIC_DIR / "graphiql.html").read_text()


@functools.cache  # reads package metadata or pyproject.toml: once, in create_app, never on the loop
def _version() -> str:
    try:
        return metadata.version("taogram")
    except metadata.PackageNotFoundError:  # running from a checkout that is not pip-installed
        try:
            with open(Path(__file__).resolve().parent / "pyproject.toml", "rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


class _Rejected(Exception):
    def __init__(self, response: web.Response, code: str = "UNAUTHENTICATED") -> None:
        self.response = response
        self.code = code


def _bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None when absent."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("The Authorization header must be `Bearer <token>`.")
    return token.strip()


def _init_token(params: dict) -> str | None:
    """The token of a `connection_init` payload: `{"Authorization": "Bearer <token>"}` or
    `{"token": "<token>"}`; None when neither is given. A credential that is not a string is
    refused (AuthenticationError, 4403): it crashed the handshake (1011, logged as a server
    fault) before, and a `token` that was not a string opened an anonymous socket."""
    raw = params.get("Authorization") or params.get("authorization")
    name, value = ("Authorization", raw) if raw else ("token", params.get("token"))
    if value is None:
        return None
    if not isinstance(value, str):
        raise AuthenticationError(f"`{name}` in `connection_init` must be a string.")
    return _bearer(value) if name == "Authorization" else value


class TaogramView(GraphQLOverHTTPView):
    """strawberry's aiohttp view (with the GraphQL-over-HTTP spec's rules: `graphql_http.py`) with
    taogram's context, auth, request parsing, GraphiQL page and error bodies: whatever a client
    sends, the answer is GraphQL-shaped with a request id."""

    graphql_transport_ws_handler_class = TaogramWSHandler

    def __init__(self, schema: Any, settings: Settings) -> None:
        super().__init__(
            schema=schema,
            graphql_ide="graphiql" if settings.server.graphiql else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.settings = settings
        self.persisted_documents = load_persisted_documents(settings.server)
        self.max_json_depth = settings.limits.max_json_depth
        # Observability: operation names as metric labels, bounded per process.
        self.operation_names = obs_metrics.OperationNames(settings.metrics.max_operation_names)

    async def create_websocket_response(self, request: web.Request, subprotocol: str | None) -> web.WebSocketResponse:
        # A heartbeat (docs/realtime.md): aiohttp pings every `heartbeat_seconds` and drops a
        # connection whose pong does not come; strawberry's own response has none. A message is
        # at most what one HTTP request may be (aiohttp's default is twice that): larger, 1009.
        ws = web.WebSocketResponse(protocols=[subprotocol] if subprotocol else [],
                                   heartbeat=self.settings.realtime.heartbeat_seconds,
                                   max_msg_size=MAX_REQUEST_BODY)
        await ws.prepare(request)
        return ws

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        return web.Response(text=GRAPHIQL_HTML, content_type="text/html")

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        websocket = self.is_websocket_request(request)
        if not (websocket or request.method == "POST" or request.query_string):
            return await self._run(request)  # the GraphiQL page, a bare GET: no operation to shed
        shedder = request.app[SHEDDER_KEY]
        if websocket:
            return await self._run_websocket(request) if shedder.admit_socket() else _overloaded(request)
        if not await shedder.enter():
            return _overloaded(request)
        place = Place(shedder)
        LEND_PLACE.set(place.release)  # this request's task: given back while it waits on the password pool
        try:
            return await self._run(request)
        finally:
            place.release()

    async def _run_websocket(self, request: web.Request) -> web.StreamResponse:
        """At most `realtime.max_sockets_per_address` open sockets per client address over every
        server process (a shared hold per socket, `tao.holds`, key `ws-addr:<address>`): one more
        is refused before the upgrade (429), so it holds nothing. The hold is given back when the
        socket's handler ends (`run` returns when the socket has closed)."""
        address = request.remote or "unknown"
        cap = self.settings.realtime.max_sockets_per_address
        holds = request.app[TAO_KEY].holds
        got = await holds.acquire(f"ws-addr:{address_key(address)}", 1, cap, cap)  # IPv6: its /64
        if got.hold is None:
            rid = request.get(REQUEST_ID)
            observe_rejection(rid, 429, "TOO_MANY_SOCKETS")  # counted and logged once, as other refusals
            return json_error(429, f"At most {cap} WebSockets may be open from one address: close one, "
                                   "or retry later.", "TOO_MANY_SOCKETS", rid)
        try:
            return await self._run(request)
        finally:
            holds.release(got.hold)

    async def _run(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except _Rejected as e:
            observe_rejection(e.response.headers.get("X-Request-Id"), e.response.status, e.code)
            return e.response
        except HTTPException as e:  # malformed request, wrong method, mutation over GET, ...
            code = STATUS_CODES.get(e.status_code, "BAD_REQUEST")
            observe_rejection(request.get(REQUEST_ID), e.status_code, code)
            return json_error(e.status_code, e.reason, code, request.get(REQUEST_ID))

    # -- requests: the one place a request's JSON is decoded and its shape checked

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        try:
            if request.method == "GET":
                params: dict[str, Any] = dict(request.query_params)
                for name in ("variables", "extensions"):
                    if params.get(name):
                        params[name] = decode_json(params[name], f"The `{name}` query parameter",
                                                   self.max_json_depth)
                return parse_request(params)
            content_type = request.content_type or ""
            if content_type != "application/json":  # what clients send; else parse it (email's parser is slow)
                content_type, _ = parse_content_type(content_type)
            if content_type != "application/json":
                raise BadRequestError(
                    f"Send a POST's GraphQL request as JSON with `Content-Type: application/json` "
                    f"(got {content_type or 'no content type'!r}).")
            return parse_request(decode_json(await request.get_body(), "The request body", self.max_json_depth))
        except BadRequestError as e:
            raise HTTPException(400, e.message) from None

    def decode_json(self, data: str | bytes) -> object:
        """WebSocket messages (HTTP bodies go through `parse_http_body`): a malformed or too
        deeply nested one closes the socket with 4400, as the protocol says."""
        try:
            return decode_json(data, "The message", self.max_json_depth)
        except BadRequestError as e:
            raise json.JSONDecodeError(e.message, data if isinstance(data, str) else "", 0) from None

    async def execute_single(self, request: web.Request, request_adapter: AsyncHTTPRequestAdapter,
                             sub_response: web.Response, context: Any, root_value: Any,
                             request_data: GraphQLRequestData) -> ExecutionResult:
        # Observability: one metrics sample, log line and span per operation (config/observability).
        # The status code (graphql_http) is set by the base class.
        with observe_operation(self.operation_names, request.headers, request_data.operation_name,
                               request_data.query) as op:
            result = await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                                  request_data)
            op.finish(context, result)
        return result

    # -- context and authentication

    async def get_context(self, request: web.Request, response: Any) -> RequestContext:
        ctx = RequestContext(
            tao=request.app[TAO_KEY],
            settings=self.settings,
            request_id=request.get(REQUEST_ID) or uuid.uuid4().hex,
            client_key=request.remote or "unknown",
            request=request,
            response=response,
            # Failed log-ins per account and per client address, shared by every process
            # (`AuthSettings.login_*`, resolvers.throttle).
            login_throttle=LoginThrottle(request.app[TAO_KEY], self.settings.auth),
            user_agent=request.headers.get("User-Agent", "")[:512],
            media=request.app.get(MEDIA_KEY),
        )
        if isinstance(response, web.Response):  # HTTP; a WebSocket authenticates in on_ws_connect
            response.headers["X-Request-Id"] = ctx.request_id
            try:
                await authenticate(ctx, _bearer(request.headers.get("Authorization")))
            except AuthenticationError as e:
                raise _Rejected(json_error(401, e.message, e.code, ctx.request_id), str(e.code)) from None
            except (ShardUnavailableError, UnavailableError) as e:  # the session's shard is down
                # The same answer as a shard failing during execution (a 200 whose error says
                # UNAVAILABLE: retry), not a server fault: nothing ran, and a retry may succeed.
                log.warning("request %s: authentication failed: %s", ctx.request_id, e)
                # A response without `data` is never a 2xx in application/graphql-response+json.
                status = 503 if request.get(RESPONSE_TYPE) == GRAPHQL_RESPONSE else 200
                raise _Rejected(json_error(status, UNAVAILABLE_MESSAGE, "UNAVAILABLE", ctx.request_id),
                                "UNAVAILABLE") from None
        return ctx

    async def on_ws_connect(self, context: RequestContext) -> Any:
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        # strawberry keeps the payload in the context for the socket's life; only its token is
        # read, here. Kept, any payload (up to a message's 2 MiB, anonymous sockets too) stayed
        # in memory while the socket lived.
        context.connection_params = None
        try:
            await authenticate(context, _init_token(params))
        except AuthenticationError as e:
            raise ConnectionRejectionError({"message": e.message, "code": e.code}) from None
        except Exception as e:
            # A fault is not a refusal (4403): close with WebSocket's own "try again later" (1013)
            # or "internal error" (1011), the request id in the reason, then stop the handshake.
            if isinstance(e, (ShardUnavailableError, UnavailableError)):
                log.warning("request %s: WebSocket authentication failed: %s", context.request_id, e)
                code, reason = 1013, f"Temporarily unavailable; retry shortly (request id {context.request_id})."
            else:
                log.exception("request %s: unexpected error in connection_init", context.request_id)
                code, reason = 1011, f"Internal error; quote request id {context.request_id} when reporting it."
            await context.response.close(code=code, message=reason.encode())
            error_code = "UNAVAILABLE" if code == 1013 else "INTERNAL_SERVER_ERROR"
            raise ConnectionRejectionError({"code": error_code}) from None
        if context.viewer_id is not None:
            # At most `max_sockets_per_user` sockets an account, over every process: each holds a
            # session watch, and the per-address cap alone let an account on many addresses hold
            # any number. Given back by the handler's shut-down (server_ws).
            cap = self.settings.realtime.max_sockets_per_user
            got = await context.tao.holds.acquire(f"ws-socks:{context.viewer_id}", 1, cap, cap)
            if got.hold is None:
                reason = f"At most {cap} WebSockets may be open for one account: close one, or retry later."
                await context.response.close(code=CLOSE_RATE_LIMITED, message=reason.encode())
                raise ConnectionRejectionError({"code": "TOO_MANY_SOCKETS"})
            context.socket_hold = got.hold
        return {"viewer": context.viewer_id is not None}


def _overloaded(request: web.Request) -> web.Response:
    """A new operation refused by the load shedder (admission.py): nothing ran, retry shortly."""
    rid = request.get(REQUEST_ID)
    observe_rejection(rid, 503, "UNAVAILABLE")
    obs_metrics.REQUESTS_SHED.inc()
    response = json_error(503, BUSY_MESSAGE, "UNAVAILABLE", rid)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def healthz(request: web.Request) -> web.Response:
    tao = request.app[TAO_KEY]
    detail: dict[str, Any] = {}
    try:
        shards = await asyncio.wait_for(tao.ping_shards(), HEALTH_TIMEOUT)
        down = {str(s): err for s, err in shards.items() if err}
        detail["shards"] = {"total": len(shards), "down": down}
    except TimeoutError:
        down = {"*": f"no answer within {HEALTH_TIMEOUT} s"}
        detail["shards"] = {"down": down}
    stats = tao.stats()
    suspect = stats.get("cache_servers_suspect", 0)
    detail["cache"] = {"servers_suspect": suspect}
    ok = not down and not suspect
    detail["status"] = "ok" if ok else "unavailable"
    return web.json_response(detail, status=200 if ok else 503)


OUTBOX_SAMPLER_KEY = web.AppKey("outbox_sampler", obs_metrics.OutboxSampler)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text format: every process sharing PROMETHEUS_MULTIPROC_DIR, and the outbox."""
    sampler = request.app.get(OUTBOX_SAMPLER_KEY)
    outbox = await sampler.sample() if sampler is not None else None
    # Reading the processes' metric files is disk I/O: off the event loop.
    body = await asyncio.to_thread(obs_metrics.render_sync, outbox)
    return web.Response(body=body, headers={"Content-Type": obs_metrics.CONTENT_TYPE})


async def version(request: web.Request) -> web.Response:
    # The pid tells which of `server.processes` processes answered (they share one port).
    return web.json_response({"name": "taogram", "version": _version(), "pid": os.getpid()})


MEDIA_READ_TIMEOUT = 120.0  # seconds to receive one upload part from a client
MEDIA_CHUNK = 256 * 1024


def _media_route(m: MediaSettings) -> tuple[str, int]:
    """(mount path, largest accepted body) of the local store's URLs."""
    path = urlsplit(m.local_base_url).path.rstrip("/") or "/media"
    # Parts are `part_size` bytes, larger only for a file that would need more than 10 000.
    return path, max(m.part_size, -(-max(m.max_image_bytes, m.max_video_bytes) // 10_000))


def media_handler(max_body: int):
    """The local store's route: a thin aiohttp shell over `handle_local_request`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[MEDIA_KEY]
        body = b""
        if request.method == "PUT":
            if (request.content_length or 0) > max_body:
                return web.Response(status=413, text=f"a part is at most {max_body} bytes")
            chunks, size = [], 0
            try:
                async with asyncio.timeout(MEDIA_READ_TIMEOUT):
                    async for chunk in request.content.iter_chunked(MEDIA_CHUNK):
                        size += len(chunk)
                        if size > max_body:
                            return web.Response(status=413, text=f"a part is at most {max_body} bytes")
                        chunks.append(chunk)
            except TimeoutError:
                return web.Response(status=408, text="the part did not arrive in time; send it again")
            body = b"".join(chunks)
        status, headers, out = await handle_local_request(
            services.store, request.method, request.match_info["key"], request.query, body, request.headers)
        if isinstance(out, Path):
            return web.FileResponse(out, status=status, headers=headers)
        return web.Response(status=status, headers=headers, body=out)

    return handle


def check_cursor_keys(settings: Settings) -> None:
    """Cursors hide the positions of edges the viewer may not see (schema/relay.py), under the
    deployment's own cursor keys (`server.cursor_keys`): refuse to start without usable ones, and
    with the built-in development key where the messages have real keys (a production config
    that forgot this one would seal its cursors under a key anyone can read in the source)."""
    server = settings.server
    try:
        seal_cursors(server.cursor_keys, server.cursor_key)
    except ValueError as exc:
        raise ConfigError(f"{exc} (see docs/graphql.md, \"Cursor keys\")") from None
    if (server.cursor_keys[server.cursor_key] == DEV_CURSOR_KEY
            and settings.messages.encryption_keys.get(settings.messages.active_key) != DEV_MESSAGE_KEY):
        raise ConfigError("server.cursor_key is the built-in development key, but the messages have their own keys: "
                          "set server.cursor_keys (TAOGRAM_SERVER__CURSOR_KEYS='{ \"<id>\" = \"<16+ random bytes, "
                          "base64>\" }') and server.cursor_key (see docs/graphql.md, \"Cursor keys\")")


def check_media_signing_key(settings: Settings) -> None:
    """The local object store's URLs (every upload, original and data-export archive) are signed
    with `media.signing_key`: refuse to start with the built-in one where the messages have real
    keys (a production config that forgot it would let anyone sign a URL to any stored object,
    an `exports/<user id>/<export id>.zip` among them: ids are not secrets)."""
    media = settings.media
    if (media.backend == "local" and media.signing_key == DEV_MEDIA_SIGNING_KEY
            and settings.messages.encryption_keys.get(settings.messages.active_key) != DEV_MESSAGE_KEY):
        raise ConfigError("media.signing_key is the built-in development key, but the messages have their own keys: "
                          "set media.signing_key (TAOGRAM_MEDIA__SIGNING_KEY, 32+ random bytes) for the local store's "
                          "signed URLs (see docs/media.md)")


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or load_settings()
    check_keys(settings.messages)  # a misconfigured key fails the start, not the first send
    check_cursor_keys(settings)
    check_media_signing_key(settings)
    _version()  # /version answers from the cache
    app = web.Application(client_max_size=MAX_REQUEST_BODY, middlewares=[transport_errors])
    app[SETTINGS_KEY] = settings
    answer_parser_errors_as_graphql(app)
    srv = settings.server
    shedder = app[SHEDDER_KEY] = LoadShedder(srv.shed_loop_lag_ms, srv.max_requests_in_flight, srv.admission_wait_ms,
                                             report_lag=obs_metrics.EVENT_LOOP_LAG.set)

    async def shed_load(app: web.Application) -> AsyncIterator[None]:
        shedder.start()
        try:
            yield
        finally:
            await shedder.stop()

    async def store(app: web.Application) -> AsyncIterator[None]:
        tao = await open_tao(settings, start_worker=False)
        # The search partitions' paths are resolved on the file system: off the event loop.
        await asyncio.to_thread(search_indexes_for, tao)
        register_job_handlers(tao, media=app.get(MEDIA_KEY))  # the media cleanup context runs first
        if settings.jobs.in_process_worker:
            tao.outbox.start()
        app[TAO_KEY] = tao
        app[OUTBOX_SAMPLER_KEY] = obs_metrics.OutboxSampler(tao.outbox.depth_by_handler,
                                                            settings.metrics.outbox_sample_seconds)
        try:
            yield
        finally:
            await asyncio.to_thread(close_indexes, tao)  # waits for the search writers' merges
            await tao.close()

    async def media(app: web.Application) -> AsyncIterator[None]:
        async with media_services(settings.media_served()) as services:
            app[MEDIA_KEY] = services
            # Every server process sweeps abandoned uploads (idempotent), whether or not it runs jobs.
            sweeper = asyncio.create_task(run_sweeper(services))
            try:
                yield
            finally:
                sweeper.cancel()
                await asyncio.gather(sweeper, return_exceptions=True)

    app.cleanup_ctx.append(shed_load)
    app.cleanup_ctx.append(media)
    app.cleanup_ctx.append(store)
    install_websockets(app)
    schema = build_schema(settings.limits)
    if traces.tracer is not None:  # spans for parse/validate/execute, only while tracing is on
        schema.extensions = (*schema.extensions, OperationSpans)
    view = TaogramView(schema, settings)
    app.router.add_route("*", "/graphql", view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/version", version)
    if settings.metrics.enabled:
        app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    if settings.media.backend == "local":
        path, max_body = _media_route(settings.media_served())
        handler = media_handler(max_body)
        app.router.add_get(path + "/{key:.+}", handler)
        app.router.add_put(path + "/{key:.+}", handler)
    return app


async def _tune_gc(app: web.Application) -> None:
    tune_gc()
    obs_metrics.watch_gc()


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Run one server process until SIGINT/SIGTERM, then shut down in order: stop accepting,
    close WebSockets with 1001 and a reason (`server_ws.close_all`), let in-flight requests
    finish (up to `server.shutdown_timeout`), close the store."""
    app = create_app(settings)
    app.on_startup.append(_tune_gc)  # runs after the cleanup contexts have opened everything
    # With JSON logs the request log (`taogram.request`) replaces aiohttp's access log, whose
    # request line would carry a GET's query string (variables) into the log.
    access_log = None if settings.logging.format == "json" else logging.getLogger("aiohttp.access")
    web.run_app(app, host=settings.server.host, port=settings.server.port, print=None, reuse_port=reuse_port,
                shutdown_timeout=settings.server.shutdown_timeout, access_log=access_log,
                loop=new_event_loop(settings))


def new_event_loop(settings: Settings) -> asyncio.AbstractEventLoop:
    """The server process's loop: uvloop's (`server.uvloop`), whose transports, callbacks and
    timers are C: every round trip to MariaDB, memcached and Redis and every HTTP and WebSocket
    frame passes through them (a send's server CPU 5-7 % lower, docs/BENCHMARKS.md)."""
    if settings.server.uvloop:
        import uvloop  # imported late: tests and tools that build the app run on pytest's loop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _child(index: int) -> None:
    """One of `server.processes` processes: its own event loop, pools and cache clients."""
    _die_with_parent()
    settings = load_settings_or_exit()
    setup_process(settings, role=f"server-{index}")
    serve(settings, reuse_port=True)


def _die_with_parent() -> None:
    """A server process never outlives its supervisor (Linux: PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def supervise(settings: Settings) -> int:
    """Start `server.processes` server processes on one port (SO_REUSEPORT: the kernel spreads
    connections over them), restart one that dies, and on SIGINT/SIGTERM pass SIGTERM on and wait
    for each to shut down in order. Job workers stay separate (`python -m tao worker`)."""
    if settings.broker.backend == "local":
        raise SystemExit("server.processes > 1 needs broker.backend = \"redis\": an in-process bus does not "
                         "reach the other processes' subscribers")
    ctx = multiprocessing.get_context("spawn")
    procs: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False

    def start(i: int) -> None:
        procs[i] = ctx.Process(target=_child, args=(i,), name=f"taogram-server-{i}")
        procs[i].start()

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs.values():
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(settings.server.processes or os.cpu_count() or 1):
        start(i)
    while not stopping:
        for i, p in list(procs.items()):
            if not p.is_alive() and not stopping:
                log.error("server process %d exited with %s; starting it again", i, p.exitcode)
                obs_metrics.process_exited(p.pid)
                time.sleep(1.0)  # a process that cannot start must not spin
                start(i)
        time.sleep(0.2)
    deadline = time.monotonic() + settings.server.shutdown_timeout + 15
    for p in procs.values():
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    return 0


def preflight(settings: Settings) -> None:
    """Check what a start needs before serving: the message keys, every shard reachable and at
    the code's schema (the embedded default migrates itself), the object store reachable."""
    async def check() -> None:
        check_keys(settings.messages)
        tao = await open_tao(settings, start_worker=False)
        await tao.close()
        store = await asyncio.to_thread(open_media_store, settings.media_served())
        try:
            await store.ensure_ready()
        finally:
            store.close()
    asyncio.run(check())


def _exit_with_sentence(settings: Settings, exc: Exception) -> None:
    """A start-up failure an operator can fix: one line naming what to do, exit status 2."""
    sentence = explain_startup_error(exc, settings)
    if sentence is None and isinstance(exc, MediaError):
        sentence = f"object storage: {exc} (check the [media] settings)"
    if sentence is None:
        raise exc
    print(f"taogram: {sentence}", file=sys.stderr, flush=True)
    sys.exit(2)


def main() -> None:
    settings = load_settings_or_exit()
    setup_process(settings, role="server")
    try:
        preflight(settings)
    except Exception as exc:
        _exit_with_sentence(settings, exc)
    host, port, n = settings.server.host, settings.server.port, settings.server.processes
    n = n or os.cpu_count() or 1
    print(f"taogram {_version()}: GraphQL at http://{host}:{port}/graphql"
          + (" (open it in a browser for GraphiQL)" if settings.server.graphiql else "")
          + (f", {n} server processes" if n > 1 else ""), flush=True)
    if n > 1:
        sys.exit(supervise(settings))
    serve(settings)


if __name__ == "__main__":
    main()
