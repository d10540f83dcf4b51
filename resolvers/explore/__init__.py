"""Explore (issue 14; docs/explore.md): discovery beyond the follow graph.

Modules, each owning one idea:
  trends    trending hashtags: tallies of distinct accounts per bucket (outbox job on post
            creation), Mastodon-style growth scores with decay, the trending posts
  pool      a viewer's precomputed candidates (four sources) and suggested accounts (a job)
  ranking   the funnel over a pool: first pass, one post per author, second pass, mix of kinds
  sessions  the snapshot a viewer scrolls (stable cursors) and the seen set
  service   the read entry points and `do_dismiss_suggestion`
  jobs      the handlers, and the ON_PUBLISH hook's registration
"""
