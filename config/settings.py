"""One typed Settings object for the whole app, loaded from TOML and the environment.

Precedence, lowest first: the defaults below (the embedded default: SQLite shards, an
in-process cache, a local media directory, an in-process job worker), then a TOML file
(`TAOGRAM_CONFIG=path` or `load_settings(path)`), then environment variables named
`TAOGRAM_<SECTION>__<FIELD>` (e.g. `TAOGRAM_CACHE__BACKEND=memcached`). Values from the
environment are parsed as TOML values when they parse (numbers, booleans, arrays), else kept
as strings.

Nothing here does I/O beyond reading the file; every other package reads its section.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "TAOGRAM_"


class ConfigError(ValueError):
    """A setting is missing, unknown or of the wrong type; the message names it."""


@dataclass
class MySQLServer:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    unix_socket: str = ""


@dataclass
class StoreSettings:
    # "sqlite" (embedded default) or "mysql".
    backend: str = "sqlite"
    # Logical shards. Each is its own database; ids carry the logical shard (13 bits, < 8192).
    logical_shards: int = 8
    # SQLite: the directory holding one file per logical shard.
    sqlite_dir: str = "var/shards"
    # MySQL: the physical servers, and which logical shards live on which server.
    mysql_servers: list[MySQLServer] = field(default_factory=list)
    # Explicit map "server index -> list of logical shards"; empty means round-robin.
    shard_map: dict[str, list[int]] = field(default_factory=dict)
    database_prefix: str = "taogram"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 3.0
    acquire_timeout: float = 3.0
    query_timeout: float = 5.0


@dataclass
class CacheSettings:
    # "local" (in-process LRU, embedded default) or "memcached".
    backend: str = "local"
    servers: list[str] = field(default_factory=list)  # "host:port"
    key_prefix: str = "tg"
    # Timeout of one memcached call: past it the read goes to SQL and the write is repaired later.
    # Only a stall this long can fail a call, so it is also what the heartbeat calls a fault
    # (and a process that could not watch a server this long distrusts it alone, without a
    # flush): docs/caching.md. Only the first calls to a server that stalls wait this long:
    # the server is then bypassed until it answers again.
    timeout: float = 1.0
    connect_timeout: float = 1.0
    # Entries expire after this, bounding staleness if an update is ever lost.
    ttl_seconds: int = 3600
    # How many newest edges of (id1, atype) a cached association list holds.
    list_limit: int = 200
    # Entries kept by the in-process tier.
    local_max_entries: int = 200_000
    # Threads that run the blocking pymemcache calls.
    threads: int = 8
    # How often each process probes every memcached server (seconds).
    heartbeat_interval: float = 0.1


@dataclass
class JobSettings:
    # Run a worker inside the server process (embedded default); production runs `python -m tao worker`.
    in_process_worker: bool = True
    poll_interval: float = 0.2
    batch_size: int = 50
    max_attempts: int = 20
    backoff_base: float = 0.5
    backoff_max: float = 300.0
    lease_seconds: float = 120.0
    # Modules whose `register(tao)` adds job handlers; a `python -m tao worker` process imports
    # them so it can run the domain's jobs (feed fan-out, media processing) without tao importing
    # the domain. The server registers the same handlers itself.
    handler_modules: list[str] = field(default_factory=lambda: ["resolvers.jobs"])


@dataclass
class MediaSettings:
    backend: str = "local"  # "local" or "s3"
    local_dir: str = "var/media"
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "taogram-media"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    # Signing key for the local store's URLs (and the app's own media URLs).
    signing_key: str = "dev-only-change-me"
    url_ttl_seconds: int = 3600
    cdn_base_url: str = ""
    part_size: int = 8 * 1024 * 1024
    max_image_bytes: int = 30 * 1024 * 1024
    max_video_bytes: int = 1024 * 1024 * 1024
    max_video_seconds: float = 180.0
    max_image_pixels: int = 64_000_000
    abandoned_upload_seconds: int = 24 * 3600
    # Where the app mounts the local store's signed URLs (part uploads and downloads); the
    # local store hands out URLs under this base. Empty: `http://<server.host>:<server.port>/media`
    # (see `Settings.media_served`); set it when clients reach the server at another address
    # (a proxy, a public host name, a server bound to 0.0.0.0). Unused with the S3 backend.
    local_base_url: str = ""
    # boto3 timeouts (seconds) and connection pool; every S3 call runs on this many threads.
    s3_connect_timeout: float = 5.0
    s3_read_timeout: float = 60.0
    s3_max_attempts: int = 3
    io_threads: int = 8
    # Transcoding worker processes per process that calls `process_media` / `complete_upload`.
    workers: int = 2
    # Scratch space for jobs (empty: the system temp dir). A killed job's leftovers are removed
    # by its retry, which reuses the same per-job directory.
    work_dir: str = ""
    # A job still running after this long is aborted inside its worker (JobTimeoutError).
    job_timeout_seconds: float = 1800.0
    # "module:function" of the moderation check (see media_pipeline/moderation.py).
    moderation_hook: str = "media_pipeline.moderation:allow_all"
    # Image variants: target widths, never upscaled; JPEG and WebP of each.
    image_widths: list[int] = field(default_factory=lambda: [1080, 640, 320])
    # Surface crops (square grid, 4:5 feed, 9:16 story), made where the source's aspect differs:
    # widths of each (JPEG + WebP), never upscaled. Video posters get the same crops.
    crop_widths: dict[str, list[int]] = field(
        default_factory=lambda: {"square": [640, 320], "feed": [1080], "story": [1080]})
    jpeg_quality: int = 85
    webp_quality: int = 80
    # Video ladder: target heights of the short side (1080p/720p/480p), never upscaled.
    video_heights: list[int] = field(default_factory=lambda: [1080, 720, 480])
    max_video_dimension: int = 4096
    x264_preset: str = "veryfast"
    x264_crf: int = 23
    x264_profile: str = "high"
    # Keyframe interval in seconds (GOP = round(fps * this)).
    gop_seconds: float = 2.0
    # libx264 threads per rung (0 = x264's own choice).
    x264_threads: int = 0
    audio_bitrate: int = 128_000
    # The AV1 rung (libsvtav1, `av1_<short side>`), made in the ladder's single decode for
    # clients that ask for it (`Media.url(codecs:)`). Settings chosen by bench/media_bench.py
    # (docs/BENCHMARKS.md, "AV1 rung").
    av1: bool = True
    av1_short_side: int = 720
    av1_preset: int = 6
    av1_crf: int = 37
    # Voice messages (kind "audio"): transcoded to AAC mono at this bitrate; at most this long.
    audio_voice_bitrate: int = 64_000
    max_audio_seconds: float = 300.0
    max_audio_bytes: int = 50 * 1024 * 1024
    thumbnails: int = 3
    thumbnail_width: int = 320
    # Also package the ladder as HLS (remuxed, segments of 2 GOPs); needs cdn_base_url to be played.
    hls: bool = False


@dataclass
class FeedSettings:
    # Authors with more followers than this are not fanned out: readers pull their posts.
    fanout_threshold: int = 10_000
    # Followers handled by one fan-out job (one keyset page of FOLLOWED_BY); the next page is a new job.
    fanout_batch: int = 1000
    # Followers not seen for this long are skipped at fan-out; their feed is rebuilt when they return.
    inactive_days: float = 30.0
    # `last_active` on the USER object is rewritten at most this often by the viewer's feed reads.
    active_touch_seconds: int = 3600
    # Candidates ranked into one feed session (the snapshot later pages read from). At most ~600:
    # a session is one object (post and author ids, ~40 bytes each, and score rows for
    # developers), and object data is limited to 60 KB.
    page_candidates: int = 500
    # Candidates given the full score (their like and comment counts read): the best this many by
    # every other signal. The rest of the snapshot follows in that first-pass order.
    rank_depth: int = 150
    # Candidates are posts younger than this (FEED edges and pulled AUTHORED posts alike).
    window_days: float = 14.0
    # FEED edges a viewer's list keeps (its newest, younger than window_days): the hourly trim
    # committed with `last_active` deletes the rest. At least page_candidates (reads take those).
    keep_edges: int = 1000
    # Newest posts pulled per big account (and per followed account on the rebuild/pull path).
    pull_per_author: int = 20
    # A follow, an approved request or an unmute stores the author's newest this many posts
    # (younger than window_days) in the viewer's FEED list (docs/feed.md, "Backfill"). 0: none.
    backfill_posts: int = 20
    # Followed accounts (newest follows first) read by the pull path of a returning viewer and by a rebuild.
    rebuild_followings: int = 1000
    # How long a feed session (ranked snapshot) stays readable by its cursors.
    session_ttl_seconds: int = 3600
    # newPostsCount looks back this far before the snapshot for posts fanned out after it.
    new_posts_lookback_seconds: int = 3600
    weight_recency: float = 1.0
    weight_engagement: float = 0.6
    weight_affinity: float = 0.8
    weight_content_type: float = 0.3
    recency_half_life_hours: float = 12.0
    # (likes + 2*comments) per hour of age at which the engagement signal is 0.5.
    engagement_half_rate: float = 5.0
    max_same_author_run: int = 2
    max_content_type_share: float = 0.6
    # Diversity rules hold over each aligned block of this many items (clients page by multiples of it).
    diversity_window: int = 10


@dataclass
class AuthSettings:
    session_ttl_seconds: int = 30 * 24 * 3600
    # argon2id cost (argon2-cffi's defaults, RFC 9106's low-memory profile). Tests lower them.
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 65536
    argon2_parallelism: int = 4
    # Password hashes (and checks) run at most this many at a time per process, in their own
    # threads: one argon2id check is ~0.1 s of CPU, so a flood of log-ins must queue rather
    # than take every core from the event loop.
    password_hash_workers: int = 1
    # Failed log-ins allowed per window, per username and per client address (the address
    # bound stops floods of unknown or varied usernames); then TOO_MANY_ATTEMPTS until the window passes.
    login_failures_per_username: int = 10
    login_failures_per_address: int = 50
    login_window_seconds: int = 15 * 60


@dataclass
class LimitSettings:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_page_size: int = 100
    cost_budget: int = 10_000  # points per viewer per window
    cost_window_seconds: int = 60
    max_query_cost: int = 5000
    introspection: bool = True
    field_suggestions: bool = True
    max_string_length: int = 10_000
    # JSON objects/arrays may nest this deep in a request (a body, a GET's `variables`, a
    # WebSocket message); deeper is a 400 (a 4400 close on a WebSocket) before anything runs.
    max_json_depth: int = 64
    # Field selections (fields, fragment spreads, inline fragments; a fragment counted wherever it
    # is spread) per document, counted before validation, whose work grows with the square of
    # this number. GraphQL's full introspection query has 239.
    max_selections: int = 300


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    graphiql: bool = True
    debug: bool = False
    # aiohttp server processes sharing the port (SO_REUSEPORT), each with its own event loop,
    # pools and cache clients. 1: serve in the process that runs `server.py`; 0: one per core.
    processes: int = 1
    # On SIGTERM/SIGINT: seconds in-flight requests get to finish after WebSockets are closed.
    shutdown_timeout: float = 10.0


@dataclass
class BrokerSettings:
    # "local": an in-process bus (the embedded default: one process serves and runs jobs);
    # "redis": Redis pub/sub, shared by every server and worker process.
    backend: str = "local"
    url: str = "redis://127.0.0.1:6379/0"
    # Every channel name starts with this (a deployment's namespace; tests use their own).
    channel_prefix: str = "tg"
    # A publish waits at most this long; past it the event is left to the store (subscribers
    # find it by cursor), the write is never failed by the broker.
    publish_timeout: float = 0.25
    connect_timeout: float = 1.0
    # Reconnect attempts after Redis is lost start here and double up to the max.
    reconnect_min: float = 0.1
    reconnect_max: float = 2.0


@dataclass
class RealtimeSettings:
    # Live operations (subscriptions, and queries or mutations in flight) per WebSocket.
    max_subscriptions: int = 20
    # Client messages per WebSocket: a token bucket of `message_burst` refilled at this rate.
    messages_per_second: float = 20.0
    message_burst: int = 60
    # Events queued for one subscription before its client counts as a slow consumer and the
    # socket is closed (with 4429 "slow consumer"); the client resumes by cursor.
    queue_size: int = 256
    # Events replayed from the store on resume; more missed than this: CURSOR_EXPIRED (refetch).
    max_replay: int = 1000
    # A resume cursor older than this is refused (CURSOR_EXPIRED: refetch, then subscribe anew),
    # and a user's stream keeps at most `stream_keep` events younger than this (a trim job
    # follows about one append in `stream_trim_every`). stream_keep must exceed max_replay.
    replay_window_days: float = 7.0
    stream_keep: int = 5000
    stream_trim_every: int = 100
    # Each socket re-reads its session at least this often (besides at every operation's start
    # and on a session-revoked event), so an expiry closes it even when nothing happens.
    session_check_seconds: float = 30.0
    # The delivery job re-runs a stream event after this long if the writer's own delivery
    # right after the commit did not happen (a crash, a shard down).
    redeliver_after_ms: int = 5000


@dataclass
class MessageSettings:
    # A message's text, in characters.
    max_length: int = 1000
    # Members of a group thread, the creator included.
    max_members: int = 32
    # Message bodies are sealed with AES-256-GCM under `encryption_keys[active_key]`; each
    # ciphertext stores its key id, so older keys decrypt what they sealed until it is
    # re-encrypted (docs/messages.md, "Key rotation"). Values: 32 bytes, base64. The default key
    # is for `make run` and tests only: production configs must set their own.
    encryption_keys: dict[str, str] = field(default_factory=lambda: {"dev": "ZGV2LW9ubHktbWVzc2FnZS1rZXktY2hhbmdlLW1lISE="})
    active_key: str = "dev"
    # A thread's unread count is exact up to this many messages (then reported as this number).
    unread_cap: int = 100
    # Spam limits, on metadata only. A message request is a first message to someone who does
    # not follow the sender; a new recipient is someone the sender has not messaged before.
    requests_per_hour: int = 20
    new_recipients_per_day: int = 50
    # Accounts younger than this get the stricter limits below.
    new_account_days: float = 7.0
    new_account_requests_per_hour: int = 5
    new_account_new_recipients_per_day: int = 15


@dataclass
class NotificationSettings:
    # Web Push (RFC 8030/8291, VAPID RFC 8292). The VAPID private key: base64url of the raw
    # 32-byte P-256 key, or of its DER; empty: no push is sent (subscriptions are still kept).
    vapid_private_key: str = ""
    vapid_subject: str = "mailto:push@taogram.invalid"
    # Pushes for a group are batched: at most one per group per this many seconds (mentions
    # and message requests go at once).
    push_batch_seconds: float = 30.0
    push_ttl_seconds: int = 86_400
    push_timeout_seconds: float = 10.0
    push_max_attempts: int = 5
    # Endpoints must be https; tests and local receivers turn this off.
    push_https_only: bool = True
    max_push_subscriptions: int = 20


@dataclass
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    messages: MessageSettings = field(default_factory=MessageSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)

    def media_served(self) -> MediaSettings:
        """`media` as the server uses it: an empty `local_base_url` becomes the server's own
        address, so the local store's URLs follow `server.port` (a wildcard host becomes the
        loopback address, which only local clients can reach: set `local_base_url` then)."""
        if self.media.local_base_url:
            return self.media
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.server.host, self.server.host)
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        return dataclasses.replace(self.media, local_base_url=f"http://{host}:{self.server.port}/media")


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build Settings from defaults, then the TOML file, then `TAOGRAM_*` variables."""
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {}
    path = path or env.get(ENV_PREFIX + "CONFIG")
    if path:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        raw.setdefault(section, {})[key] = _parse_env_value(value)
    return _build(Settings, raw, "")


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'settings'}: expected a table, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(f"{where or 'settings'}: unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where + ".")
    origin = getattr(hint, "__origin__", None)
    if origin is list:
        (item,) = hint.__args__
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint in (int, float, str) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def resolve_path(p: str, base: str | os.PathLike[str] | None = None) -> Path:
    """A relative path in settings is relative to `base` (default: the working directory)."""
    path = Path(p)
    return path if path.is_absolute() else Path(base or os.getcwd()) / path
