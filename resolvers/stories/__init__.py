"""Stories: 24-hour posts, the tray, views, close friends, restrict and highlights.

    model       STORY and HIGHLIGHT records, error codes, the one rule of time
    visibility  who may see a story or a highlight, at read time on the store's clock
    actions     create and delete; the expiry, purge and cleanup jobs
    tray        the story tray (pulled at read time) and profile rings
    views       seen marks, viewer lists and counts (exact, then HyperLogLog)
    social      close friends, story mutes, restricted accounts
    highlights  highlights
    replies     replies and reactions, delivered as direct messages quoting the story
    account_data  its kinds of user data for export and deletion
See docs/stories.md.
"""

from resolvers.stories import account_data, visibility  # noqa: F401  (registers privacy rules and data kinds)
