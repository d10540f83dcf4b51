"""Causes that reach notifications through another domain's hook list rather than an edit of its
action: a post's caption mentions, committed with the write that publishes the post
(`posts.ON_PUBLISH`). Imported by `resolvers.jobs`, which every process that writes imports."""

from __future__ import annotations

from resolvers import posts
from resolvers.notifications import causes
from tao import Obj


def on_publish(post: Obj) -> list[tuple[str, dict]]:
    mentions = [int(u) for u in post.data.get("mentions", [])]
    if not mentions:
        return []
    return causes.caption_mentions(int(post.data["author"]), post.id, mentions, post.updated)


if on_publish not in posts.ON_PUBLISH:
    posts.ON_PUBLISH.append(on_publish)
