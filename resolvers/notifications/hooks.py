"""Causes that reach notifications through another domain's hook list rather than an edit of its
action: a post's caption mentions, committed with the write that publishes the post
(`posts.ON_PUBLISH`). Imported by `resolvers.jobs`, which every process that writes imports."""

from __future__ import annotations

from resolvers import posts
from resolvers.notifications import causes
from resolvers.records import Post


def on_publish(post: Post) -> list[tuple[str, dict]]:
    if not post.mentions:
        return []
    return causes.caption_mentions(post.author, post.id, list(post.mentions), post.published_at or post.updated)


if on_publish not in posts.ON_PUBLISH:
    posts.ON_PUBLISH.append(on_publish)
