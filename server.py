"""The taogram HTTP server: GraphQL over HTTP and WebSocket, GraphiQL, /healthz, /version.

    python server.py          # settings from TAOGRAM_CONFIG, else the embedded default

`create_app(settings)` builds the aiohttp app (tests build it with their own settings). The
store is opened on start-up and closed on clean-up (`cleanup_ctx`), with the domain's job
handlers registered before the in-process worker (started by `open_tao` per `JobSettings`)
can claim a job. This module is the top of the import graph: nothing imports it.

Endpoints:
- `/graphql`: POST (queries, mutations), GET (queries only, for caching proxies), WebSocket
  (`graphql-transport-ws`; the session token in the `connection_init` payload). A browser
  asking for HTML gets GraphiQL, whose assets are served from `/static/` (vendored, no CDN).
- `/healthz`: pings every shard and reads the cache tier's health; 200, or 503 with detail.
- `/version`: the package version.
- `/media/...` (with `media.backend = "local"`): the local store's signed URLs, `GET` an object
  and `PUT` an upload part (bounded body), mounted at the path of `media.local_base_url`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tomllib
import uuid
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from strawberry.aiohttp.views import GraphQLView
from strawberry.exceptions import ConnectionRejectionError
from cross_web import HTTPException
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from config import Settings, load_settings
from config.runtime import tune_gc
from media_pipeline import handle_local_request
from resolvers.accounts import authenticate
from resolvers.context import RequestContext
from resolvers.errors import AuthenticationError
from resolvers.jobs import register_job_handlers
from resolvers.media import MediaServices, media_services, run_sweeper
from resolvers.throttle import FailureThrottle
from schema import build_schema
from tao import Tao, open_tao

log = logging.getLogger("taogram.server")

STATIC_DIR = Path(__file__).resolve().parent / "schema" / "static"
TAO_KEY = web.AppKey("tao", Tao)
SETTINGS_KEY = web.AppKey("settings", Settings)
MEDIA_KEY = web.AppKey("media", MediaServices)
LOGIN_FAILURES, LOGIN_WINDOW_SECONDS = 10, 15 * 60
HEALTH_TIMEOUT = 2.0  # seconds; a health check must answer even when a shard hangs
# Read once at import, never on the event loop.
GRAPHIQL_HTML = (STATIC_DIR / "graphiql.html").read_text()
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _version() -> str:
    try:
        return metadata.version("taogram")
    except metadata.PackageNotFoundError:  # running from a checkout that is not pip-installed
        try:
            with open(Path(__file__).resolve().parent / "pyproject.toml", "rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


def _json_error(status: int, message: str, code: str, request_id: str | None = None) -> web.Response:
    """A transport-level failure, shaped like a GraphQL response so clients parse one format."""
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": {"code": code}}]}
    headers = {"X-Request-Id": request_id} if request_id else None
    return web.json_response(body, status=status, headers=headers)


class _Rejected(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None when absent."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("The Authorization header must be `Bearer <token>`.")
    return token.strip()


class TaogramView(GraphQLView):
    """strawberry's aiohttp view with taogram's context, auth, GraphiQL page and error bodies."""

    def __init__(self, schema: Any, settings: Settings) -> None:
        super().__init__(
            schema=schema,
            graphql_ide="graphiql" if settings.server.graphiql else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.settings = settings
        # At most 10 failed log-ins per account per 15 minutes, per process.
        self.login_throttle = FailureThrottle(LOGIN_FAILURES, LOGIN_WINDOW_SECONDS)

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        return web.Response(text=GRAPHIQL_HTML, content_type="text/html")

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self.run(request=request)
        except _Rejected as e:
            return e.response
        except HTTPException as e:  # malformed JSON, wrong method, mutation over GET, ...
            return _json_error(e.status_code, e.reason, "BAD_REQUEST")

    async def get_context(self, request: web.Request, response: Any) -> RequestContext:
        rid = request.headers.get("X-Request-Id", "")
        ctx = RequestContext(
            tao=request.app[TAO_KEY],
            settings=self.settings,
            request_id=rid if _REQUEST_ID_RE.match(rid) else uuid.uuid4().hex,
            client_key=request.remote or "unknown",
            request=request,
            response=response,
            login_throttle=self.login_throttle,
            media=request.app.get(MEDIA_KEY),
        )
        if isinstance(response, web.Response):
            response.headers["X-Request-Id"] = ctx.request_id
            try:
                await authenticate(ctx, _bearer(request.headers.get("Authorization")))
            except AuthenticationError as e:
                raise _Rejected(_json_error(401, e.message, e.code, ctx.request_id)) from None
        return ctx

    async def on_ws_connect(self, context: RequestContext) -> Any:
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        raw = params.get("Authorization") or params.get("authorization")
        try:
            token = _bearer(raw) if raw else params.get("token")
            await authenticate(context, token if isinstance(token, str) else None)
        except AuthenticationError as e:
            raise ConnectionRejectionError({"message": e.message, "code": e.code}) from None
        return {"viewer": context.viewer_id is not None}


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


async def version(request: web.Request) -> web.Response:
    return web.json_response({"name": "taogram", "version": _version()})


MEDIA_READ_TIMEOUT = 120.0  # seconds to receive one upload part from a client
MEDIA_CHUNK = 256 * 1024


def _media_route(settings: Settings) -> tuple[str, int]:
    """(mount path, largest accepted body) of the local store's URLs."""
    m = settings.media
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


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or load_settings()
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[SETTINGS_KEY] = settings

    async def store(app: web.Application) -> AsyncIterator[None]:
        tao = await open_tao(settings, start_worker=False)
        register_job_handlers(tao)
        if settings.jobs.in_process_worker:
            tao.outbox.start()
        app[TAO_KEY] = tao
        try:
            yield
        finally:
            await tao.close()

    async def media(app: web.Application) -> AsyncIterator[None]:
        async with media_services(settings.media) as services:
            app[MEDIA_KEY] = services
            # Processes that run background work also sweep abandoned uploads (idempotent).
            sweeper = asyncio.create_task(run_sweeper(services)) if settings.jobs.in_process_worker else None
            try:
                yield
            finally:
                if sweeper is not None:
                    sweeper.cancel()
                    await asyncio.gather(sweeper, return_exceptions=True)

    app.cleanup_ctx.append(media)
    app.cleanup_ctx.append(store)
    view = TaogramView(build_schema(settings.limits), settings)
    app.router.add_route("*", "/graphql", view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/version", version)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    if settings.media.backend == "local":
        path, max_body = _media_route(settings)
        handler = media_handler(max_body)
        app.router.add_get(path + "/{key:.+}", handler)
        app.router.add_put(path + "/{key:.+}", handler)
    return app


async def _tune_gc(app: web.Application) -> None:
    tune_gc()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    host, port = settings.server.host, settings.server.port
    print(f"taogram {_version()}: GraphQL at http://{host}:{port}/graphql"
          + (" (open it in a browser for GraphiQL)" if settings.server.graphiql else ""), flush=True)
    app = create_app(settings)
    app.on_startup.append(_tune_gc)  # runs after the cleanup contexts have opened everything
    web.run_app(app, host=host, port=port, print=None)


if __name__ == "__main__":
    main()
