"""One typed, validated Settings object for the whole app (pydantic models, one per section).

Every field has its one default here (the embedded default: SQLite shards, an in-process cache,
a local media directory, an in-process job worker); no other module restates a default. Values
are checked when they are loaded or constructed: types strictly (a TOML string is not a number),
ranges per field, and the rules between fields in each section's validator. `config.loading`
builds a Settings from a TOML file and `TAOGRAM_*` environment variables and turns what
pydantic refuses into one sentence per bad value (`ConfigError`).

Sections are plain mutable models: tests and scripts may assign to fields after loading, and
such assignments are not re-validated (a rule between two fields would fail half-way through
changing both). docs/configuration.md lists every section.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# Ids carry the logical shard in 13 bits (tao/ids.py).
MAX_LOGICAL_SHARDS = 8192
# A feed session is one object (about 40 bytes per candidate); object data is limited to 60 KB.
MAX_PAGE_CANDIDATES = 600
# memcached reads a longer expiry as a unix timestamp.
MAX_CACHE_TTL = 30 * 24 * 3600


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names it and says what is allowed."""


# ---- value types with their ranges ----------------------------------------------------------------

def _range(lo: float, hi: float | None = None) -> Any:
    """A closed range `lo..hi` (no upper bound when `hi` is None), for `Annotated[int, ...]`."""
    return Field(ge=lo) if hi is None else Field(ge=lo, le=hi)


Port = Annotated[int, _range(1, 65535)]
Count = Annotated[int, _range(1)]  # something there must be at least one of
Positive = Annotated[float, Field(gt=0)]  # a timeout, an interval, a rate: never zero
Weight = Annotated[float, _range(0)]
Share = Annotated[float, Field(gt=0, le=1)]
Bytes = Annotated[int, _range(1)]
Pixels = Annotated[int, _range(1, 16384)]


class _Section(BaseModel):
    # strict: a TOML string is never read as a number, nor 1 as true; ints are accepted for floats.
    model_config = ConfigDict(extra="forbid", strict=True)


class StoreBackend(StrEnum):
    SQLITE = "sqlite"  # the embedded default
    MYSQL = "mysql"  # MySQL protocol servers (tested on MariaDB)


class MySQLDriver(StrEnum):
    ASYNCMY = "asyncmy"  # its protocol core compiled (Cython): the store's default
    AIOMYSQL = "aiomysql"  # pure Python over PyMySQL: the same API, ~1.6x the client CPU a transaction


class CacheBackend(StrEnum):
    LOCAL = "local"  # an in-process LRU, the embedded default
    MEMCACHED = "memcached"


class MediaBackend(StrEnum):
    LOCAL = "local"  # a local directory served by the app with signed URLs
    S3 = "s3"


class BrokerBackend(StrEnum):
    LOCAL = "local"  # an in-process bus: one process serves and runs jobs
    REDIS = "redis"  # Redis pub/sub, shared by every server and worker process


# ---- sections -------------------------------------------------------------------------------------

class MySQLServer(_Section):
    host: str = "127.0.0.1"
    port: Port = 3306
    user: str = "root"
    password: str = ""
    unix_socket: str = ""


class StoreSettings(_Section):
    backend: StoreBackend = Field(StoreBackend.SQLITE, strict=False)  # the enum from its value's string
    # Logical shards. Each is its own database; ids carry the logical shard (13 bits, < 8192).
    logical_shards: Annotated[int, _range(1, MAX_LOGICAL_SHARDS)] = 8
    # SQLite: the directory holding one file per logical shard.
    sqlite_dir: str = "var/shards"
    # MySQL: the physical servers, and which logical shards live on which server.
    mysql_servers: list[MySQLServer] = Field(default_factory=list)
    # Explicit map "server index -> list of logical shards"; empty means round-robin.
    shard_map: dict[str, list[int]] = Field(default_factory=dict)
    database_prefix: str = "taogram"
    # The asyncio MySQL driver (tao/backends/mysql.py). Both speak the same API; asyncmy parses
    # the protocol in compiled code, which measured 170-224 us of client CPU against aiomysql's
    # 274-328 for a three-round-trip transaction (docs/sharding.md, "The driver").
    mysql_driver: MySQLDriver = Field(MySQLDriver.ASYNCMY, strict=False)
    # Connections per (process, MySQL server).
    pool_max: Annotated[int, _range(1, 1000)] = 10
    connect_timeout: Positive = 3.0
    acquire_timeout: Positive = 3.0
    query_timeout: Positive = 5.0
    # The store's clock (tao/clock.py) re-reads shard 0's server time this often and
    # extrapolates with the monotonic clock in between.
    clock_sync_seconds: Positive = 60.0
    # Each process leases an id slot on each database server (tao/id_leases.py) for this long
    # and renews it every third of it. A crashed process's slots are free again after it; a
    # process paused (or cut off from a server) longer makes no ids for that server's shards
    # until it has renewed (or replaced) its lease there.
    id_lease_seconds: Positive = 30.0

    @model_validator(mode="after")
    def _servers_and_map(self) -> Self:
        if self.backend is StoreBackend.MYSQL and not self.mysql_servers:
            raise ValueError('store.mysql_servers must list at least one server when store.backend is "mysql"')
        if not self.shard_map:
            return self
        n_servers = len(self.mysql_servers) if self.backend is StoreBackend.MYSQL else 1
        seen: set[int] = set()
        for server, shards in self.shard_map.items():
            if not (server.isdigit() and int(server) < n_servers):
                raise ValueError(f"store.shard_map: {server!r} is not a server index (0..{n_servers - 1})")
            for shard in shards:
                if not 0 <= shard < self.logical_shards:
                    raise ValueError(f"store.shard_map: shard {shard} is not in 0..{self.logical_shards - 1} "
                                     "(store.logical_shards)")
                if shard in seen:
                    raise ValueError(f"store.shard_map: shard {shard} is mapped twice")
                seen.add(shard)
        if len(seen) != self.logical_shards:
            missing = sorted(set(range(self.logical_shards)) - seen)
            raise ValueError(f"store.shard_map: shards {missing[:10]} are not mapped to a server")
        return self


class CacheSettings(_Section):
    backend: CacheBackend = Field(CacheBackend.LOCAL, strict=False)  # the enum from its value's string
    servers: list[str] = Field(default_factory=list)  # "host:port"
    key_prefix: str = "tg"
    # Timeout of one memcached call: past it the read goes to SQL and the write is repaired later.
    # Only a stall this long can fail a call, so it is also what the heartbeat calls a fault
    # (and a process that could not watch a server this long distrusts it alone, without a
    # flush): docs/caching.md. Only the first calls to a server that stalls wait this long:
    # the server is then bypassed until it answers again.
    timeout: Positive = 1.0
    connect_timeout: Positive = 1.0
    # Entries expire after this, bounding staleness if an update is ever lost.
    ttl_seconds: Annotated[int, _range(1, MAX_CACHE_TTL)] = 3600
    # How many newest edges of (id1, atype) a cached association list holds.
    list_limit: Count = 200
    # Entries kept by the in-process tier.
    local_max_entries: Count = 200_000
    # Threads that run the rare blocking pymemcache calls (flush, delete, key scans); reads and
    # installs run on the event loop (tao.cache.aio).
    threads: Annotated[int, _range(1, 256)] = 8
    # How often each process probes every memcached server (seconds); at most timeout/4.
    heartbeat_interval: Positive = 0.1

    @model_validator(mode="after")
    def _memcached(self) -> Self:
        if self.backend is not CacheBackend.MEMCACHED:
            return self
        if not self.servers:
            raise ValueError('cache.servers must list at least one "host:port" when cache.backend is "memcached"')
        if self.heartbeat_interval > self.timeout / 4:
            raise ValueError(
                f"cache.heartbeat_interval ({self.heartbeat_interval}) must be at most cache.timeout/4 "
                f"({self.timeout / 4}), so a stall long enough to time out a call is always seen by the heartbeat")
        return self


class JobSettings(_Section):
    # Run a worker inside the server process (embedded default); production runs `python -m tao worker`.
    in_process_worker: bool = True
    poll_interval: Positive = 0.2
    batch_size: Annotated[int, _range(1, 10_000)] = 50
    max_attempts: Count = 20
    backoff_base: Positive = 0.5
    backoff_max: Positive = 300.0
    lease_seconds: Positive = 120.0
    # Modules whose `register(tao)` adds job handlers; a `python -m tao worker` process imports
    # them so it can run the domain's jobs (feed fan-out, media processing) without tao importing
    # the domain. The server registers the same handlers itself.
    handler_modules: list[str] = Field(default_factory=lambda: ["resolvers.jobs"])
    # Jobs whose handler's name starts with one of these wait in a lane of their own (the
    # outbox's `lane` column: the handler's name), polled only by the process that runs them (a
    # search partition's one writer). Every other worker's poll reads the general lane, so it
    # never reads past a backlog it does not run (docs/sharding.md, "Lanes"). Migration 3 put the
    # queued jobs of the default prefix in their lanes. The same in every process of a
    # deployment, batch jobs included (a job in the general lane is still found by its runner,
    # which reads past the general lane's due jobs to find it).
    own_lane_prefixes: list[str] = Field(default_factory=lambda: ["search.index.p"])

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.backoff_base > self.backoff_max:
            raise ValueError(f"jobs.backoff_base ({self.backoff_base}) must be at most jobs.backoff_max "
                             f"({self.backoff_max})")
        # "" would give every handler a lane of its own: a worker would then poll one lane per
        # handler it runs, dozens of statements a poll.
        if any(not prefix for prefix in self.own_lane_prefixes):
            raise ValueError("jobs.own_lane_prefixes must not hold an empty prefix (it would give every job a lane "
                             "of its own)")
        return self


DEV_MEDIA_SIGNING_KEY = "dev-only-change-me"


class MediaSettings(_Section):
    backend: MediaBackend = Field(MediaBackend.LOCAL, strict=False)  # the enum from its value's string
    local_dir: str = "var/media"
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "taogram-media"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    # Signing key for the local store's URLs (and the app's own media URLs). With the local
    # backend the server refuses to start on the built-in one where the messages have real keys
    # (server.check_media_signing_key): anyone could sign a URL to any stored object.
    signing_key: str = DEV_MEDIA_SIGNING_KEY
    url_ttl_seconds: Count = 3600
    cdn_base_url: str = ""
    # Upload part size (S3 itself needs at least 5 MiB for every part but the last).
    part_size: Annotated[int, _range(1024)] = 8 * 1024 * 1024
    max_image_bytes: Bytes = 30 * 1024 * 1024
    max_video_bytes: Bytes = 1024 * 1024 * 1024
    max_video_seconds: Positive = 180.0
    max_image_pixels: Count = 64_000_000
    # A pending upload older than this is abandoned: the sweep aborts it and deletes its parts.
    abandoned_upload_seconds: Count = 24 * 3600
    # Every server process sweeps abandoned uploads this often (jittered between half and all of it).
    sweep_interval_seconds: Positive = 3600.0
    # Where the app mounts the local store's signed URLs (part uploads and downloads); the
    # local store hands out URLs under this base. Empty: `http://<server.host>:<server.port>/media`
    # (see `Settings.media_served`); set it when clients reach the server at another address
    # (a proxy, a public host name, a server bound to 0.0.0.0). Unused with the S3 backend.
    local_base_url: str = ""
    # boto3 timeouts (seconds) and connection pool; every S3 call runs on this many threads.
    s3_connect_timeout: Positive = 5.0
    s3_read_timeout: Positive = 60.0
    s3_max_attempts: Annotated[int, _range(1, 20)] = 3
    io_threads: Annotated[int, _range(1, 256)] = 8
    # Transcoding worker processes per process that calls `process_media` / `complete_upload`.
    workers: Annotated[int, _range(1, 256)] = 2
    # Scratch space for jobs (empty: the system temp dir). A killed job's leftovers are removed
    # by its retry, which reuses the same per-job directory.
    work_dir: str = ""
    # A job still running after this long is aborted inside its worker (JobTimeoutError).
    job_timeout_seconds: Positive = 1800.0
    # "module:function" of the moderation check (see media_pipeline/moderation.py).
    moderation_hook: str = "media_pipeline.moderation:allow_all"
    # Image variants: target widths, never upscaled; JPEG and WebP of each.
    image_widths: Annotated[list[Pixels], Field(min_length=1)] = Field(default_factory=lambda: [1080, 640, 320])
    # Surface crops (square grid, 4:5 feed, 9:16 story), made where the source's aspect differs:
    # widths of each (JPEG + WebP), never upscaled. Video posters get the same crops.
    crop_widths: dict[str, list[Pixels]] = Field(
        default_factory=lambda: {"square": [640, 320], "feed": [1080], "story": [1080]})
    jpeg_quality: Annotated[int, _range(1, 100)] = 85
    webp_quality: Annotated[int, _range(1, 100)] = 80
    # Video ladder: target heights of the short side (1080p/720p/480p), never upscaled.
    video_heights: list[Pixels] = Field(default_factory=lambda: [1080, 720, 480])
    max_video_dimension: Pixels = 4096
    x264_preset: str = "veryfast"
    x264_crf: Annotated[int, _range(0, 51)] = 23
    x264_profile: str = "high"
    # Keyframe interval in seconds (GOP = round(fps * this)).
    gop_seconds: Positive = 2.0
    # libx264 threads per rung (0 = x264's own choice).
    x264_threads: Annotated[int, _range(0, 128)] = 0
    audio_bitrate: Annotated[int, _range(8_000, 512_000)] = 128_000
    # The AV1 rung (libsvtav1, `av1_<short side>`), made in the ladder's single decode for
    # clients that ask for it (`Media.url(codecs:)`). Settings chosen by bench/media_bench.py
    # (docs/BENCHMARKS.md, "AV1 rung").
    av1: bool = True
    av1_short_side: Pixels = 720
    av1_preset: Annotated[int, _range(0, 13)] = 6
    av1_crf: Annotated[int, _range(1, 63)] = 37
    # Voice messages (kind "audio"): transcoded to AAC mono at this bitrate; at most this long.
    audio_voice_bitrate: Annotated[int, _range(8_000, 512_000)] = 64_000
    max_audio_seconds: Positive = 300.0
    max_audio_bytes: Bytes = 50 * 1024 * 1024
    thumbnails: Annotated[int, _range(0, 100)] = 3
    thumbnail_width: Pixels = 320
    # Also package the ladder as HLS (remuxed, segments of 2 GOPs); needs cdn_base_url to be played.
    hls: bool = False

    @model_validator(mode="after")
    def _s3(self) -> Self:
        if self.backend is MediaBackend.S3 and not self.s3_bucket:
            raise ValueError('media.s3_bucket must be set when media.backend is "s3"')
        return self


class FeedSettings(_Section):
    # Authors with more followers than this are not fanned out: readers pull their posts.
    fanout_threshold: Annotated[int, _range(0)] = 10_000
    # Followers handled by one fan-out job (one keyset page of FOLLOWED_BY); the next page is a new job.
    fanout_batch: Count = 1000
    # Followers not seen for this long are skipped at fan-out; their feed is rebuilt when they return.
    inactive_days: Positive = 30.0
    # `last_active` on the USER object is rewritten at most this often by the viewer's feed reads.
    active_touch_seconds: Count = 3600
    # Candidates ranked into one feed session (the snapshot later pages read from). At most 600:
    # a session is one object (post and author ids, ~40 bytes each, and score rows for
    # developers), and object data is limited to 60 KB.
    page_candidates: Annotated[int, _range(1, MAX_PAGE_CANDIDATES)] = 500
    # Candidates given the full score (their like and comment counts read): the best this many by
    # every other signal. The rest of the snapshot follows in that first-pass order.
    rank_depth: Count = 150
    # Candidates are posts younger than this (FEED edges and pulled AUTHORED posts alike).
    window_days: Positive = 14.0
    # FEED edges a viewer's list keeps (its newest, younger than window_days): the hourly trim
    # committed with `last_active` deletes the rest. At least page_candidates (reads take those).
    keep_edges: Count = 1000
    # Newest posts pulled per big account (and per followed account on the rebuild/pull path).
    pull_per_author: Count = 20
    # A follow, an approved request or an unmute stores the author's newest this many posts
    # (younger than window_days) in the viewer's FEED list (docs/feed.md, "Backfill"). 0: none.
    backfill_posts: Annotated[int, _range(0)] = 20
    # Followed accounts (newest follows first) read by the pull path of a returning viewer and by a rebuild.
    rebuild_followings: Count = 1000
    # How long a feed session (ranked snapshot) stays readable by its cursors.
    session_ttl_seconds: Count = 3600
    # newPostsCount looks back this far before the snapshot for posts fanned out after it.
    new_posts_lookback_seconds: Annotated[int, _range(0)] = 3600
    weight_recency: Weight = 1.0
    weight_engagement: Weight = 0.6
    weight_affinity: Weight = 0.8
    weight_content_type: Weight = 0.3
    recency_half_life_hours: Positive = 12.0
    # (likes + 2*comments) per hour of age at which the engagement signal is 0.5.
    engagement_half_rate: Positive = 5.0
    max_same_author_run: Count = 2
    max_content_type_share: Share = 0.6
    # Diversity rules hold over each aligned block of this many items (clients page by multiples of it).
    diversity_window: Count = 10

    @model_validator(mode="after")
    def _kept_edges_cover_a_session(self) -> Self:
        if self.keep_edges < self.page_candidates:
            raise ValueError(f"feed.keep_edges ({self.keep_edges}) must be at least feed.page_candidates "
                             f"({self.page_candidates}): a feed session reads that many edges")
        return self


class SearchSettings(_Section):
    # Where the index partitions live (one tantivy index per partition: <index_dir>/p<n>). Every
    # server process reads them; one process writes each (docs/search.md, "Partitions").
    index_dir: str = "var/search"
    # Partitions (a document's is a hash of its id). Changing it needs `search-rebuild` of every partition.
    partitions: Annotated[int, _range(1, 1024)] = 2
    # The partitions this process may write (run the indexer for): "any" (whichever partitions'
    # lock it can take: the embedded default, a single host), "" (none: a server that only
    # reads), or a list of numbers and ranges ("0-3,6").
    writer_partitions: str = "any"
    # The writer gathers index jobs for this long before one commit (group commit).
    commit_delay_ms: Annotated[int, _range(0, 10_000)] = 50
    # tantivy writer memory per partition (bytes; tantivy's floor is 15 MB for one thread).
    writer_heap_bytes: Annotated[int, _range(15_000_000)] = 50_000_000
    # A dedicated indexer (`python -m resolvers search-indexer`) polls each shard's outbox at least
    # this often (seconds) when idle: with the commit delay and reload interval, the index's lag.
    indexer_max_idle: Annotated[float, _range(0.01, 10)] = 0.25
    # A reader checks for a newer commit at most this often (seconds).
    reload_interval: Annotated[float, _range(0, 60)] = 0.2
    # Longest query accepted (characters, after trimming); longer is a GraphQL error.
    max_query_chars: Annotated[int, _range(1, 1000)] = 100
    # Hits taken from each partition per kind before the graph and privacy re-rank.
    candidates: Annotated[int, _range(1, 1000)] = 50
    # Recent searches kept per account.
    recent_max: Annotated[int, _range(1, 500)] = 30

    def writer_set(self) -> set[int] | None:
        """The partitions `writer_partitions` names (None: any)."""
        text = self.writer_partitions.strip()
        if text == "any":
            return None
        out: set[int] = set()
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
        return out

    @model_validator(mode="after")
    def _writer_partitions_exist(self) -> Self:
        try:
            wanted = self.writer_set() or set()
        except ValueError:
            raise ValueError(f"search.writer_partitions must be \"any\", \"\" or numbers and ranges like \"0-3,6\" "
                             f"(got {self.writer_partitions!r})") from None
        bad = sorted(p for p in wanted if not 0 <= p < self.partitions)
        if bad:
            raise ValueError(f"search.writer_partitions {bad} do not exist (search.partitions = {self.partitions})")
        return self
class ExploreSettings(_Section):
    """Explore, suggested accounts and trending hashtags (docs/explore.md)."""

    # ---- the candidate pool (precomputed per viewer by the `explore.build_pool` job) ----
    # Candidates kept in a viewer's pool (one edge's data: ~60 bytes each, edge data <= 60 KB).
    pool_candidates: Annotated[int, _range(1, 600)] = 500
    # A pool older than this is still served, and a rebuild is enqueued by the read.
    pool_ttl_seconds: Count = 900
    # A viewer without a pool (their first Explore): false serves the trending posts at once and
    # enqueues the build; true builds the pool inline (slower first page, personal at once).
    cold_build_inline: bool = False
    # Candidates are posts younger than this.
    window_days: Positive = 7.0
    # Source "liked by people who like what you like": the viewer's newest likes looked at,
    # likers read per liked post, newest likes read per liker.
    seed_likes: Count = 30
    likers_per_post: Count = 20
    likes_per_liker: Count = 20
    # Source "followed by many of the accounts you follow": followings scanned, follows read per
    # following, authors kept (most co-followed first), newest posts taken per author.
    followings_scanned: Count = 200
    follows_per_following: Count = 50
    fof_authors: Count = 50
    posts_per_author: Count = 3
    # Source "hashtags you engage with": tags kept (most liked first), newest public posts per tag.
    engaged_tags: Count = 10
    posts_per_tag: Count = 20
    # First-pass weight of each source (a candidate found by several sources adds them up).
    weight_colike: Weight = 1.0
    weight_fof: Weight = 0.8
    weight_trending: Weight = 0.6
    weight_tag: Weight = 0.7

    # ---- ranking and pages ----
    # Candidates given the second (fine) pass: their like and comment counts are read.
    rank_depth: Count = 100
    weight_recency: Weight = 0.5
    weight_engagement: Weight = 1.0
    weight_content_type: Weight = 0.3
    recency_half_life_hours: Positive = 24.0
    # (likes + 2*comments) per hour of age at which the engagement signal is 0.5.
    engagement_half_rate: Positive = 2.0
    # No kind (photo, video, carousel) takes more than this share of an aligned block of
    # `diversity_window` grid cells (relaxed when nothing else is left). Authors: at most one post
    # per author in a whole snapshot, so in every page.
    max_content_type_share: Share = 0.5
    diversity_window: Count = 12
    # How long an Explore session (snapshot) stays readable by its cursors.
    session_ttl_seconds: Count = 3600
    # Posts served on Explore are never served again for this long...
    seen_ttl_days: Positive = 30.0
    # ...up to this many per viewer (the newest; older marks are trimmed by a job).
    seen_max: Annotated[int, _range(1, 10_000)] = 3000

    # ---- suggested accounts ----
    # Suggestions kept in the pool; a dismissed account is not suggested again for dismiss_days.
    suggestions: Annotated[int, _range(1, 200)] = 50
    dismiss_days: Positive = 90.0
    # Followers scanned for "follows you" suggestions (newest first).
    followers_scanned: Count = 200

    # ---- trending hashtags (Mastodon's Trends::Tags, per bucket instead of per day) ----
    # Distinct accounts using a tag are counted per bucket of this many minutes.
    trend_bucket_minutes: Count = 60
    # The expected count is the mean of this many previous buckets (at least 1.0).
    trend_baseline_buckets: Count = 24
    # Fewer distinct accounts than this in the current bucket never trend.
    trend_threshold: Count = 5
    # A tag's score is its best (observed - expected)^2 / expected, halved every this many hours
    # since it was reached, and forgotten after the cooldown.
    trend_halflife_hours: Positive = 4.0
    trend_cooldown_hours: Positive = 48.0
    # Decayed scores under this are not trending.
    trend_min_score: Weight = 1.0
    # The tallies are re-scored at most this often (the first post after it enqueues a refresh).
    trend_refresh_seconds: Count = 300
    # Tags re-scored per refresh (the most recently used) and trending tags kept.
    trend_max_tags: Annotated[int, _range(1, 10_000)] = 2000
    trend_keep: Annotated[int, _range(1, 200)] = 50
    # Trending posts for Explore: the newest public posts of the best trending tags.
    trend_post_tags: Count = 10
    trend_posts_per_tag: Count = 10


class AuthSettings(_Section):
    session_ttl_seconds: Count = 30 * 24 * 3600
    # argon2id cost (argon2-cffi's defaults, RFC 9106's low-memory profile). Tests lower them.
    argon2_time_cost: Annotated[int, _range(1, 100)] = 3
    argon2_memory_cost_kib: Annotated[int, _range(8, 4 * 1024 * 1024)] = 65536
    argon2_parallelism: Annotated[int, _range(1, 64)] = 4
    # Password hashes (and checks) run at most this many at a time per process, in their own
    # threads: one argon2id check is ~0.1 s of CPU, so a flood of log-ins must queue rather
    # than take every core from the event loop.
    password_hash_workers: Annotated[int, _range(1, 64)] = 1
    # Hashes and checks waiting for (or in) that pool, per process, past which a log-in, sign-up
    # or password change is refused at once (UNAVAILABLE, before its check or write): an operation gives its
    # place in flight back while it waits on the pool (resolvers/passwords.py), so this bounds
    # a flood of log-ins where the server's admission bound did (~0.1 s a check: 32 is ~3 s).
    password_queue_max: Annotated[int, _range(1, 100_000)] = 32
    # Failed log-ins allowed per window (resolvers.throttle.LoginThrottle):
    # - per account from one client address (an IPv6 /64): then that address is refused for
    #   that account (TOO_MANY_ATTEMPTS) until it refills; other addresses are not;
    # - per account from every address together: past it the account is under a spread-out
    #   attack and slows, it never locks: each address gets one failure per window (the owner's
    #   right password still passes); it counts attempts, successes are not given back;
    # - per client address, over any usernames (stops floods of unknown or varied usernames).
    login_failures_per_username: Count = 10
    login_failures_per_username_total: Count = 100
    login_failures_per_address: Count = 50
    login_window_seconds: Count = 15 * 60
    # Every bound above is a token bucket shared by all processes (tao.rate_limits): `N` failures
    # at once, then one more per window/N.
    # A renamed account's old username stays its own this long (seconds; Instagram: 14 days):
    # nobody else can take it meanwhile (to pose as the account to its followers), and the owner
    # can take it back. 0: free at once.
    username_hold_seconds: Annotated[int, _range(0, 365 * 24 * 3600)] = 14 * 24 * 3600
    # Names one account may hold at once, i.e. renames per hold period (Instagram: 2 in 14 days);
    # then USERNAME_CHANGE_LIMIT until the oldest hold ends (taking a held name back is allowed).
    username_changes_per_hold: Annotated[int, _range(1, 100)] = 2
    # A session's `lastUsedAt` is written at most this often (seconds), not on every request.
    session_touch_seconds: Count = 60
    # Two-factor log-in (TOTP, RFC 6238): the issuer shown by authenticator apps, how long the
    # challenge `logIn` returns stays valid, and wrong codes allowed per challenge (then the
    # challenge is spent: log in again). Wrong codes also count as failed log-ins above.
    totp_issuer: str = "taogram"
    two_factor_challenge_seconds: Annotated[int, _range(30, 3600)] = 300
    two_factor_attempts_per_challenge: Count = 5


class LimitSettings(_Section):
    max_depth: Count = 12
    max_aliases: Count = 30
    max_tokens: Count = 5000
    max_page_size: Count = 100
    cost_budget: Count = 10_000  # points per viewer per window
    cost_window_seconds: Count = 60
    max_query_cost: Count = 5000
    # A subscription's selection runs again for every event it delivers, each event charged to
    # the budget: it may cost at most this (an event's work). A rich inbox client's costs 102 (a
    # new message with its sender, reactions and the thread's 32 members), a minimal one 4.
    max_subscription_cost: Count = 200
    introspection: bool = True
    field_suggestions: bool = True
    max_string_length: Count = 10_000
    # Entries of any list input (in the document or the variables), and names of any object in
    # the variables; more is BAD_USER_INPUT before the cost estimate or execution coerces a single
    # one (schema/input_values.py). Fields keep their own smaller caps (`nodes(ids:)` 100); this
    # must be at least `messages.max_members` (a group's members are the largest legitimate list).
    max_list_length: Count = 1024
    # JSON objects/arrays may nest this deep in a request (a body, a GET's `variables`, a
    # WebSocket message); deeper is a 400 (a 4400 close on a WebSocket) before anything runs.
    max_json_depth: Annotated[int, _range(2, 1000)] = 64
    # Field selections (fields, fragment spreads, inline fragments; a fragment counted wherever it
    # is spread) per document, counted before validation, whose work grows with the square of
    # this number. GraphQL's full introspection query has 239.
    max_selections: Count = 300


class ThrottleSettings(_Section):
    """Per-user action limits, each a pair of token buckets (per hour, per day) shared by every
    server process (tao.rate_limits). A refused action is a top-level THROTTLED error with
    `extensions.retryAfter` (seconds)."""

    enabled: bool = True
    posts_per_hour: Count = 25
    posts_per_day: Count = 100
    comments_per_hour: Count = 60
    comments_per_day: Count = 500
    likes_per_hour: Count = 300
    likes_per_day: Count = 1500
    follows_per_hour: Count = 60
    follows_per_day: Count = 200
    messages_per_hour: Count = 300
    messages_per_day: Count = 2000
    # A story notifies each of its mention stickers (pushed at once): Instagram's cap is 100 a day.
    stories_per_hour: Count = 50
    stories_per_day: Count = 100

    @model_validator(mode="after")
    def _day_holds_an_hour(self) -> Self:
        for action in ("posts", "comments", "likes", "follows", "messages", "stories"):
            hour, day = getattr(self, f"{action}_per_hour"), getattr(self, f"{action}_per_day")
            if day < hour:
                raise ValueError(f"throttle.{action}_per_day ({day}) must be at least throttle.{action}_per_hour "
                                 f"({hour})")
        return self


DEV_CURSOR_KEY = "ZGV2LW9ubHktY3Vyc29yLWtleS1jaGFuZ2UtbWUhISE="  # b"dev-only-cursor-key-change-me!!!"
DEV_MESSAGE_KEY = "ZGV2LW9ubHktbWVzc2FnZS1rZXktY2hhbmdlLW1lISE="


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 8000
    graphiql: bool = True
    debug: bool = False
    # aiohttp server processes sharing the port (SO_REUSEPORT), each with its own event loop,
    # pools and cache clients. 1: serve in the process that runs `server.py`; 0: one per core.
    processes: Annotated[int, _range(0, 1024)] = 1
    # On SIGTERM/SIGINT: seconds in-flight requests get to finish after WebSockets are closed.
    shutdown_timeout: Annotated[float, _range(0)] = 10.0
    # Each server process runs on uvloop's event loop (libuv) rather than asyncio's own: 5-7 %
    # less CPU a message send, measured side by side (docs/BENCHMARKS.md); false: asyncio's.
    uvloop: bool = True
    # Load shedding (admission.py, docs/operations.md "Load shedding"): HTTP operations one
    # process runs at once (its latency under overload is about this over what it completes a
    # second); 0: no bound. One more waits at most `admission_wait_ms` for a place, then is
    # refused (503 UNAVAILABLE, Retry-After: nothing ran), rather than taken and failed halfway.
    # 8: a process at its knee completes ~100 sends a second, so 8 in flight caps a send's wait
    # near 80 ms; 32 let delivery p99 reach 200-280 ms in the realtime bench's slow spells
    # (docs/BENCHMARKS.md, "Twentieth session"). Raise it where operations wait long on I/O.
    max_requests_in_flight: Annotated[int, _range(0)] = 8
    admission_wait_ms: Annotated[float, _range(0)] = 250.0
    # And with a chance rising from 0 when the event loop's smoothed lag passes this many ms to 1
    # at twice it (subscriptions, jobs and sockets load the loop too); 0: never for lag.
    shed_loop_lag_ms: Annotated[float, _range(0)] = 100.0
    # Trusted documents (schema/persisted.py): a JSON manifest {"<sha256 hex>": "<document>"} of
    # the first-party apps' documents, runnable by `documentId` or APQ hash; "" for none.
    trusted_documents: str = ""
    # Run only the manifest's documents (no other text, no APQ registration).
    trusted_documents_only: bool = False
    # List cursors hide the positions of edges the viewer may not see: they are sealed under
    # `cursor_keys[cursor_key]` and open under any key in `cursor_keys` (a cursor names its key),
    # so a key rotates without a wrong page (docs/graphql.md, "Cursor keys"). Values: at least 16
    # random bytes, base64. The default key is for `make run` and tests only, and is refused by a
    # config that sets its own message keys. Checked when the server builds its app (not at load).
    cursor_keys: dict[str, str] = Field(default_factory=lambda: {"dev": DEV_CURSOR_KEY})
    cursor_key: str = "dev"


class BrokerSettings(_Section):
    backend: BrokerBackend = Field(BrokerBackend.LOCAL, strict=False)  # the enum from its value's string
    url: str = "redis://127.0.0.1:6379/0"
    # Every channel name starts with this (a deployment's namespace; tests use their own).
    channel_prefix: str = "tg"
    # A publish waits at most this long; past it the event is left to the store (subscribers
    # find it by cursor), the write is never failed by the broker.
    publish_timeout: Positive = 0.25
    connect_timeout: Positive = 1.0
    # Shared holds (tao/holds.py: each user's live WebSocket operations and each address's open
    # WebSockets, over every process) are
    # leased for this long and renewed every third of it: a process that dies without giving
    # its holds back frees them within this time.
    hold_lease_seconds: Annotated[float, _range(0.5, 3600)] = 30.0
    # Reconnect attempts after Redis is lost start here and double up to the max.
    reconnect_min: Positive = 0.1
    reconnect_max: Positive = 2.0

    @model_validator(mode="after")
    def _reconnect(self) -> Self:
        if self.reconnect_min > self.reconnect_max:
            raise ValueError(f"broker.reconnect_min ({self.reconnect_min}) must be at most broker.reconnect_max "
                             f"({self.reconnect_max})")
        return self


class RealtimeSettings(_Section):
    # Live operations (subscriptions, and queries or mutations in flight) per WebSocket.
    max_subscriptions: Count = 20
    # Live operations of one user over all their sockets, on every server process (tao/holds.py:
    # in Redis with the Redis broker, leased by broker.hold_lease_seconds; in the process in the
    # embedded default). Without it one account held max_sockets_per_address x max_subscriptions of them,
    # and each event for that user is built once per subscription. One more: an `error` message
    # for that operation (TOO_MANY_SUBSCRIPTIONS).
    max_subscriptions_per_user: Count = 100
    # ... and the characters of text (queries, variables, ids) those operations hold in all: a
    # live operation keeps its text while it runs, and a comment pads a valid document to the
    # message's 2 MiB. One more: TOO_MANY_SUBSCRIPTIONS too.
    max_operation_chars_per_user: Count = 4 * 2**20
    # Open WebSockets per client address, over every server process (tao/holds.py, as the per-user
    # caps; while Redis is down, per process). One more is refused before the upgrade with HTTP
    # 429 TOO_MANY_SOCKETS. Many users behind one NAT share an
    # address: size it for that, not for one device.
    max_sockets_per_address: Count = 100
    # Open authenticated WebSockets of one account, over every server process (tao/holds.py). One
    # more is closed with 4429 after `connection_init`. Each holds a session watch.
    max_sockets_per_user: Count = 50
    # Client messages per WebSocket: a token bucket of `message_burst` refilled at this rate.
    messages_per_second: Positive = 20.0
    message_burst: Count = 60
    # Events queued for one subscription before its client counts as a slow consumer and the
    # socket is closed (with 1013 "slow consumer"); the client resumes by cursor.
    queue_size: Count = 256
    # Events replayed from the store on resume; more missed than this: CURSOR_EXPIRED (refetch).
    max_replay: Count = 1000
    # A resume cursor older than this is refused (CURSOR_EXPIRED: refetch, then subscribe anew),
    # and a user's stream keeps at most `stream_keep` events younger than this (a trim job
    # follows about one append in `stream_trim_every`). stream_keep must exceed max_replay.
    replay_window_days: Positive = 7.0
    stream_keep: Count = 5000
    stream_trim_every: Count = 100
    # Each socket re-reads its session at least this often (besides at every operation's start
    # and on a session-revoked event), so an expiry closes it even when nothing happens.
    session_check_seconds: Positive = 30.0
    # A send (or a close) to one socket that cannot finish in this long means a client that does
    # not read: its connection is dropped, so it holds neither a subscription nor a shut-down.
    send_timeout_seconds: Positive = 10.0
    # The server pings every socket this often and drops one whose pong does not come within half
    # of it: a client gone without a word (no FIN: a phone off the network, a NAT that forgot the
    # connection) otherwise holds its subscriptions and listeners until the process stops.
    heartbeat_seconds: Positive = 30.0
    # The delivery job re-runs a stream event after this long if the writer's own delivery
    # right after the commit did not happen (a crash, a shard down).
    redeliver_after_ms: Count = 5000

    @model_validator(mode="after")
    def _stream_outlives_replay(self) -> Self:
        if self.stream_keep <= self.max_replay:
            raise ValueError(f"realtime.stream_keep ({self.stream_keep}) must exceed realtime.max_replay "
                             f"({self.max_replay}), so every replay the server allows is still stored")
        return self


class MessageSettings(_Section):
    # A message's text, in characters.
    max_length: Count = 1000
    # Members of a group thread, the creator included.
    max_members: Annotated[int, _range(2, 1024)] = 32
    # Message bodies are sealed with AES-256-GCM under `encryption_keys[active_key]`; each
    # ciphertext stores its key id, so older keys decrypt what they sealed until it is
    # re-encrypted (docs/messages.md, "Key rotation"). Values: 32 bytes, base64. The default key
    # is for `make run` and tests only: production configs must set their own. The keys are
    # checked when the server starts (resolvers.messages.model.check_keys), not at load, so a
    # config can name a key that a secret store provides later.
    encryption_keys: dict[str, str] = Field(
        default_factory=lambda: {"dev": DEV_MESSAGE_KEY})
    active_key: str = "dev"
    # A thread's unread count is exact up to this many messages (then reported as this number).
    unread_cap: Count = 100
    # `setTyping(typing: true)` repeated within this many seconds (per member and thread, shared
    # by every process) tells the others nothing new and is not published; a stop, and a start
    # after a stop, always are.
    typing_repeat_seconds: Positive = 2.0
    # A member's typing changes (starts and stops, over all their threads) published in a minute,
    # shared by every process; past it a change is accepted and not published. A stop lets the
    # next start out at once, so without it a client alternating true and false had every call
    # published to every other member's subscriptions.
    typing_changes_per_minute: Count = 60
    # Spam limits, on metadata only. A message request is a first message to someone who does
    # not follow the sender; a new recipient is someone the sender has not messaged before.
    requests_per_hour: Count = 20
    new_recipients_per_day: Count = 50
    # Accounts younger than this get the stricter limits below.
    new_account_days: Annotated[float, _range(0)] = 7.0
    new_account_requests_per_hour: Count = 5
    new_account_new_recipients_per_day: Count = 15


class StorySettings(_Section):
    # An expired story stays in its author's archive this long (then it and its media are
    # deleted), unless it is in a highlight.
    archive_days: Annotated[float, _range(0)] = 30.0
    # A story's viewer list and count are exact up to this many viewers; past it (with Redis as
    # the broker) the count is a HyperLogLog estimate and the list keeps the newest
    # `recent_viewers`. Without Redis (the embedded default) they stay exact.
    exact_viewers: Count = 1000
    recent_viewers: Count = 1000
    # The close-friends list of one account holds at most this many people.
    close_friends_max: Count = 10_000
    # Stories in one highlight.
    highlight_max_stories: Annotated[int, _range(1, 100)] = 100
    # Highlights on one profile (checked under the list's lock, so at most 1 000: `ListCheck`).
    max_highlights: Annotated[int, _range(1, 1000)] = 100
    # The tray reads at most this many followed accounts (the newest follows first).
    tray_max_following: Count = 7500


class NotificationSettings(_Section):
    # Web Push (RFC 8030/8291, VAPID RFC 8292). The VAPID private key: base64url of the raw
    # 32-byte P-256 key, or of its DER; empty: no push is sent (subscriptions are still kept).
    vapid_private_key: str = ""
    vapid_subject: str = "mailto:push@taogram.invalid"
    # Pushes for a group are batched: at most one per group per this many seconds (mentions
    # and message requests go at once).
    push_batch_seconds: Positive = 30.0
    push_ttl_seconds: Annotated[int, _range(0, 28 * 24 * 3600)] = 86_400
    push_timeout_seconds: Positive = 10.0
    push_max_attempts: Count = 5
    # Endpoints must be https; tests and local receivers turn this off.
    push_https_only: bool = True
    # Endpoints may be on loopback or private addresses (a client-named URL the worker POSTs
    # to: off, it reaches public addresses only; never link-local, the metadata service's, nor
    # the unspecified address); tests and local receivers turn it on.
    push_private_addresses: bool = False
    max_push_subscriptions: Annotated[int, _range(1, 100)] = 20
    # A like's (or unlike's) notification is recorded by its writer right after the commit; the
    # outbox job committed with it is due this much later, the fallback if the writer dies first.
    record_grace_ms: Count = 5000


class AccountDataSettings(_Section):
    """Data export and account deletion (resolvers/account_data, docs/accounts.md)."""

    # After `deleteAccount`, the account is hidden at once and purged after this many seconds;
    # logging in before then cancels the deletion.
    deletion_grace_seconds: Annotated[int, _range(0)] = 30 * 24 * 3600
    # Items one purge step removes per kind (each step is one bounded batch of store writes).
    purge_batch: Annotated[int, _range(1, 10_000)] = 200
    # Batches one run of the purge job does before it re-enqueues itself (bounds a job's run).
    purge_batches_per_run: Annotated[int, _range(1, 100_000)] = 50
    # The export archive: multipart part size (S3 needs >= 5 MiB except the last part) and how
    # long its signed URL (and the archive) stays valid.
    export_part_size: Annotated[int, _range(1024)] = 8 * 1024 * 1024
    export_url_ttl_seconds: Annotated[int, _range(60, 7 * 24 * 3600)] = 4 * 24 * 3600
    # Records an export reads per store page.
    export_page: Annotated[int, _range(1, 1000)] = 200
    # A new export no sooner than this after the last finished one was requested: each is a whole
    # archive (every original) built by a worker and kept in storage (EXPORT_TOO_SOON).
    export_interval_seconds: Annotated[int, _range(0, 30 * 24 * 3600)] = 24 * 3600


# ---- observability: metrics, logs, traces (config/observability/, docs/operations.md) ------------

class MetricsSettings(_Section):
    # Serve `/metrics` (Prometheus text format). Several processes (server processes, workers)
    # report together when every one of them has PROMETHEUS_MULTIPROC_DIR set to the same
    # empty directory at start (prometheus_client reads it at import): docs/operations.md.
    enabled: bool = True
    # The outbox's depth and oldest job are read from every shard at most this often (seconds),
    # by the process that answers the scrape.
    outbox_sample_seconds: Annotated[float, _range(0)] = 15.0
    # Distinct GraphQL operation names used as label values per process; later names count as
    # "other" (clients choose the names: an unbounded label would grow Prometheus without end).
    max_operation_names: Annotated[int, _range(0, 10_000)] = 200
    # `python -m tao worker` serves `/metrics` on this port (0: none). A host that runs workers
    # and no server process has no other way to be scraped; with PROMETHEUS_MULTIPROC_DIR shared
    # by several workers, any one of them answers for all (the others' ports fail to bind and
    # they say so once, then work on).
    worker_port: Annotated[int, _range(0, 65535)] = 0


class LogFormat(StrEnum):
    TEXT = "text"  # the classic human-readable line (`make run`)
    JSON = "json"  # one JSON object per line (production)


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LoggingSettings(_Section):
    format: LogFormat = Field(LogFormat.TEXT, strict=False)
    level: LogLevel = Field(LogLevel.INFO, strict=False)
    # One line per GraphQL request (logger `taogram.request`) and per job (`taogram.job`).
    requests: bool = True


class TracingSettings(_Section):
    # OTLP/HTTP endpoint spans are exported to (e.g. "http://otel-collector:4318/v1/traces").
    # Empty: tracing is off and costs nothing on the request path.
    otlp_endpoint: str = ""
    service_name: str = "taogram"
    # Fraction of new traces recorded (a trace that arrives with a sampled parent is kept).
    sample_ratio: Annotated[float, _range(0, 1)] = 1.0


class Settings(BaseSettings):
    """Every section. `Settings()` is the defaults plus the keyword arguments given (it reads no
    file and no environment); `config.load_settings()` adds the TOML file and `TAOGRAM_*`."""

    model_config = SettingsConfigDict(extra="forbid", strict=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    feed: FeedSettings = Field(default_factory=FeedSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    explore: ExploreSettings = Field(default_factory=ExploreSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    messages: MessageSettings = Field(default_factory=MessageSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    stories: StorySettings = Field(default_factory=StorySettings)
    account_data: AccountDataSettings = Field(default_factory=AccountDataSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @model_validator(mode="after")
    def _lists_hold_a_group(self) -> Self:
        if self.limits.max_list_length < self.messages.max_members:
            raise ValueError(f"limits.max_list_length ({self.limits.max_list_length}) must be at least "
                             f"messages.max_members ({self.messages.max_members}): a group's members are sent "
                             "as one list")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The keyword arguments only: `load_settings` merges the file and the environment into
        # them itself, so the order of precedence is written in one place.
        return (init_settings,)

    def media_served(self) -> MediaSettings:
        """`media` as the server uses it: an empty `local_base_url` becomes the server's own
        address, so the local store's URLs follow `server.port` (a wildcard host becomes the
        loopback address, which only local clients can reach: set `local_base_url` then)."""
        if self.media.local_base_url:
            return self.media
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.server.host, self.server.host)
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        return self.media.model_copy(update={"local_base_url": f"http://{host}:{self.server.port}/media"})


def resolve_path(p: str, base: str | os.PathLike[str] | None = None) -> Path:
    """A relative path in settings is relative to `base` (default: the working directory)."""
    path = Path(p)
    return path if path.is_absolute() else Path(base or os.getcwd()) / path
