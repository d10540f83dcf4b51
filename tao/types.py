"""taogram's object and association types, declared once (validated at import).

Codes are stored in the database: never renumber. Append new types with fresh codes.
Primary types are listed with their derived inverse; callers write only the primary side.
"""

from __future__ import annotations

from tao.registry import Registry

REGISTRY = Registry()
_o = REGISTRY.object_type
_a = REGISTRY.assoc_type
_uncached_keys = REGISTRY.uncached_key_namespace

# Objects
USER = _o("USER", 1)
SESSION = _o("SESSION", 2)
POST = _o("POST", 3)
COMMENT = _o("COMMENT", 4)
HASHTAG = _o("HASHTAG", 5)
LOCATION = _o("LOCATION", 6)
MEDIA = _o("MEDIA", 7)
STORY = _o("STORY", 8)
THREAD = _o("THREAD", 9)
MESSAGE = _o("MESSAGE", 10)
NOTIFICATION = _o("NOTIFICATION", 11)
HIGHLIGHT = _o("HIGHLIGHT", 13)  # a named, ordered set of a user's stories (resolvers.stories)
UNIQUE_KEY = _o("UNIQUE_KEY", 12)  # reserved: the store's key_claim rows are not objects
FEED_SESSION = _o("FEED_SESSION", 60)  # a viewer's ranked feed snapshot (resolvers.feed.sessions)
FEED_REGISTRY = _o("FEED_REGISTRY", 61)  # the well-known object holding the BIG_ACCOUNT list
PUSH_SUBSCRIPTION = _o("PUSH_SUBSCRIPTION", 64)  # a Web Push endpoint and keys (resolvers.notifications.push)
LOGIN_CHALLENGE = _o("LOGIN_CHALLENGE", 70)  # a pending two-factor log-in (resolvers.two_factor)
EXPLORE_SESSION = _o("EXPLORE_SESSION", 110)  # a viewer's Explore snapshot (resolvers.explore.sessions)
TREND_REGISTRY = _o("TREND_REGISTRY", 111)    # the well-known object of trending hashtags (resolvers.explore.trends)
TREND_BUCKET = _o("TREND_BUCKET", 112)        # one hashtag's distinct accounts in one time bucket
TEST_NODE = _o("TEST_NODE", 99)    # the store's own tests and benchmarks

# The follow graph
# FOLLOWS is read whole (the story tray on every app open, the feed's rebuild, Explore), so its
# cached list holds a whole following up to Instagram's cap of 7 500 (~45 bytes an edge: ~340 KB
# at the cap); FOLLOWED_BY, a celebrity's millions, keeps the default window.
_a("FOLLOWS", 1, inverse="FOLLOWED_BY", inverse_code=2, window=7500)
_a("FOLLOW_REQUESTED", 3, inverse="FOLLOW_REQUESTED_BY", inverse_code=4)
_a("BLOCKS", 5, inverse="BLOCKED_BY", inverse_code=6)
_a("MUTES", 7, inverse="MUTED_BY", inverse_code=8)
_a("CLOSE_FRIEND", 9, inverse="CLOSE_FRIEND_OF", inverse_code=10)

# Content
_a("AUTHORED", 20, inverse="AUTHORED_BY", inverse_code=21)
_a("LIKES", 22, inverse="LIKED_BY", inverse_code=23)
_a("HAS_COMMENT", 24, inverse="COMMENT_ON", inverse_code=25)
_a("HAS_REPLY", 26, inverse="REPLY_TO", inverse_code=27)
_a("TAGGED_WITH", 28, inverse="TAGS", inverse_code=29)           # post -> hashtag
_a("MENTIONS", 30, inverse="MENTIONED_IN", inverse_code=31)      # post/comment -> user
_a("AT_LOCATION", 32, inverse="LOCATION_OF", inverse_code=33)    # post -> location
_a("HAS_MEDIA", 34, inverse="MEDIA_OF", inverse_code=35)         # post -> media
_a("HAS_SESSION", 36, inverse="SESSION_OF", inverse_code=37)     # user -> session
_a("COMMENT_LIKES", 38, inverse="COMMENT_LIKED_BY", inverse_code=39)
_a("UPLOADED", 40, inverse="UPLOADED_BY", inverse_code=41)       # user -> media
# The same tags and places, for public posts only (visible, by a public account): what a
# hashtag's or location's `postCount` counts, the same for every viewer.
_a("PUBLIC_TAGGED_WITH", 46, inverse="PUBLIC_TAGS", inverse_code=47)          # public post -> hashtag
_a("PUBLIC_AT_LOCATION", 48, inverse="PUBLIC_LOCATION_OF", inverse_code=49)   # public post -> location

# Feed (no inverse: a viewer's feed list; id2 = post)
# FEED is written in bulk by fan-out (assoc_add_to_objects) and read in 500-candidate pages from
# SQL; nothing shows its count, so it keeps none (see docs/feed.md, "Writing FEED edges").
_a("FEED", 60, cached=False, counted=False)
# 61 was SEEN (retired before any data: seen marks live on FEED edges). Never reuse it.
_a("VISITED", 62)       # viewer -> user whose profile they opened (time = latest visit): feed affinity
_a("BIG_ACCOUNT", 63)   # feed registry -> author above feed.fanout_threshold (pulled at read time)

# Real time: each user's stream of events, oldest to newest in commit order (written only with
# assoc_append_many, so an edge's time is the event's resume cursor); id2 = the event's id, data
# = its kind and the ids it names. Never cached: a replay reads SQL, the authority.
_a("STREAM_EVENT", 70, cached=False)

# Direct messages (resolvers/messages). A thread's members are the primary side (on the thread's
# shard, where sends read them); each edge's data is that member's state (read marker, declined).
_a("HAS_MEMBER", 100, inverse="MEMBER_OF", inverse_code=101)  # thread -> user
_a("HAS_MESSAGE", 102)                    # thread -> message (time = sent; data: sender); thread's shard
_a("INBOX", 103)                          # user -> thread (time = last activity): the primary folder
_a("DM_REQUESTS", 104)                    # user -> thread (time = last activity): message requests
_a("UNREAD_THREAD", 105)                  # user -> thread with a message the user has not read
_a("MUTED_THREAD", 106)                   # user -> thread whose notifications are off
_a("REACTED_BY", 107)                     # message -> user (data: emoji); message's shard
_a("DM_REQUEST_SENT", 108)                # sender -> user sent a message request (time: when; spam limits)
_a("DM_CONTACTED", 109)                   # sender -> user, time = first message (spam limits)

# Search (resolvers/search): the results a user chose, newest first (time = last chosen).
_a("RECENT_SEARCH", 180, inverse="RECENT_SEARCHED_BY", inverse_code=181)  # user -> user, hashtag or location
# Explore (resolvers/explore). EXPLORE_SEEN: posts served on Explore (time = when), read whole
# by each new snapshot, trimmed to explore.seen_max / seen_ttl_days; never counted or cached.
_a("EXPLORE_SEEN", 170, cached=False, counted=False)       # viewer -> post
_a("EXPLORE_POOL", 171)          # viewer -> viewer (self edge; data: the precomputed candidates and suggestions)
_a("DISMISSED_SUGGESTION", 172)  # viewer -> user they dismissed from suggestedUsers (time = when)
_a("TREND_USER", 173)            # TREND_BUCKET -> user who used its tag in its bucket (count = distinct accounts)
_a("TREND_RECENT", 174, cached=False, counted=False)       # TREND_REGISTRY -> hashtag (time = last use)

# The store's own tests and benchmarks
_a("TEST_LINK", 90, inverse="TEST_LINK_OF", inverse_code=91)
_a("TEST_PLAIN", 92)
_a("TEST_UNIQUE", 93, unique=True)
_a("TEST_UNCACHED", 94, cached=False)
_a("TEST_UNCOUNTED", 95, cached=False, counted=False)

# Notifications (resolvers/notifications). A NOTIFICATION is one group (a like of post P in one
# window, new followers on one day, one comment); it lives on its recipient's shard.
_a("NOTIFIED", 140)         # user -> notification (time = latest update: the list's order)
_a("NOTIF_ACTOR", 141)      # notification -> actor (time = when they joined): exact distinct count
_a("NOTIF_READ", 142)       # user -> user (self edge; data: {"upto": ms}): the read marker
_a("NOTIF_PREFS", 143)      # user -> user (self edge; data: per-type levels and push switches)
_a("HAS_PUSH_SUB", 144)     # user -> PUSH_SUBSCRIPTION (a browser's Web Push endpoint); at most 20

# Stories (resolvers/stories). A STORY and a HIGHLIGHT live on their author's shard.
_a("STORY_LIVE", 160)       # author -> story (time = postedAt; data {"cf": 1} if close friends): the live list
_a("STORY_ARCHIVE", 161)    # author -> story moved out of STORY_LIVE by the expiry job (same time and data)
_a("STORY_SEEN", 162)       # viewer -> story the viewer has seen (time = first seen); viewer's shard
_a("STORY_VIEWER", 163)     # story -> viewer, newest view first: exact only up to stories.exact_viewers
_a("STORY_MUTES", 164)      # viewer -> author whose stories the viewer muted (apart from MUTES: posts)
_a("HAS_HIGHLIGHT", 165)    # user -> highlight (time = created)
_a("IN_HIGHLIGHT", 166, inverse="HIGHLIGHT_OF", inverse_code=167)  # story -> highlight
_a("RESTRICTS", 168)        # user -> user they restrict (no inverse: the restricted never learn of it)
_a("PENDING_COMMENT", 169)  # post -> a restricted account's comment awaiting the post author's approval
# While an account's deletion is pending, its likes and comments are tallied on what they count
# toward, and counts subtract the tallies (resolvers/dormant.py).
_a("DORMANT_LIKER", 182, inverse="DORMANT_LIKED", inverse_code=183)                  # post -> liker
_a("DORMANT_COMMENT_LIKER", 184, inverse="DORMANT_COMMENT_LIKED", inverse_code=185)  # comment -> liker
_a("DORMANT_COMMENT", 186)   # post -> its top-level comment by an account pending deletion
_a("DORMANT_REPLY", 187)     # top-level comment -> its reply by an account pending deletion
_a("DORMANT_COMMENTS", 188)  # account -> its tallied comments (data: the tally's id1 and atype)
_a("DORMANT_FOLLOWER", 189, inverse="DORMANT_FOLLOWER_OF", inverse_code=190)  # user -> follower
_a("DORMANT_FOLLOWEE", 191, inverse="DORMANT_FOLLOWEE_OF", inverse_code=192)  # user -> account they follow

# Unique-key namespaces the cache never holds (tao/unique_keys.py)
# A message's idempotency key ("sender:clientMessageId" -> message): almost always unclaimed when
# read and rarely read again, so a fill and an install would cost each send two cache exchanges
# that no reader uses.
DM_CLIENT_KEYS = _uncached_keys("dm_client")
# An account deletion's outcome ("<user>:<requested_at>" -> the user id: its purge started; any
# other id: a log-in cancelled it), claimed once by whichever comes first
# (resolvers.account_data.deletion). Read only by a deactivated account's log-in: SQL alone.
DELETION_OUTCOME_KEYS = _uncached_keys("deletion_outcome")
