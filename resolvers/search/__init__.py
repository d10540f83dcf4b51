"""Search: a real engine (tantivy) over partitioned indexes fed by the outbox (docs/search.md).

- `text`: the one normal form of documents and queries (NFKC, case fold, accents, CJK n-grams).
- `engine`: the partitions (one writer each, readers everywhere), group commit, searching.
- `indexer`: documents from the store, the index jobs writes commit, `deindex_user`, rebuild.
- `query`: `search(...)`: tiers, the viewer's graph, popularity, privacy, cursors.
- `recent`: recent searches (user data: export and deletion cover it).
"""

from resolvers.search import recent as _recent  # noqa: F401  (registers the recent_searches data kind)
from resolvers.search.indexer import deindex_user, deindex_user_jobs, index_jobs, post_jobs

__all__ = ["deindex_user", "deindex_user_jobs", "index_jobs", "post_jobs"]
