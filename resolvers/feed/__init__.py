"""The home feed (DESIGN §6; docs/feed.md): hybrid fan-out, ranking, stable feed sessions.

Modules, each owning one idea:
  big_accounts  the BIG_ACCOUNT list: authors above `feed.fanout_threshold`, pulled at read time
  activity      `last_active` on USER objects (fan-out skips inactive followers), profile visits
  fanout        the ON_PUBLISH hook and the chained fan-out job (push), the rebuild job
  candidates    a viewer's candidates: FEED list ∪ pulled posts, filtered by privacy at read
  ranking       scores (recency, engagement, affinity, content type), seen-sink, diversity rules
  sessions      the ranked snapshot a viewer scrolls (cursor = session, offset), seen marks
  backfill      the job that stores an author's recent posts on follow, approval or unmute
  removal       jobs that remove posts from stored FEED lists (eventual; reads filter at once)
  service       the read entry points the schema calls
"""
