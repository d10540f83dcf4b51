"""The app's GraphQL documents that a bench measures and a test checks: one string each, so the
figure in docs/BENCHMARKS.md and the test's answer are about the very same query.

Plain strings with no imports: `bench/` and `tests/` both import this module (neither is a
package the import-linter contracts in pyproject.toml layer), and nothing under `schema`,
`resolvers`, `tao` or `media_pipeline` may import it.
"""

# The tray as the app asks for it when it opens (docs/stories.md, "The tray's query"): 50 rings,
# each with its account (id, username, avatar URL), its colour (unseen, close friends) and time;
# and, for the rings on the first screen, their stories in full, to play the first at once.
# Measured by bench/stories_bench.py (`graphql_tray`); checked by
# tests/resolvers/stories/test_tray.py (each ring answers what its account alone answers).
TRAY_QUERY = """query StoryTray { viewer {
  storyTray(first: 50) {
    edges { cursor node { hasUnseen isCloseFriends latestStoryAt
      user { id username profilePicture { ... on Media { url(width: 150, aspect: "1:1") } } } } }
    pageInfo { hasNextPage endCursor } }
  opening: storyTray(first: 4) {
    edges { node { stories { id postedAt expiresAt isCloseFriends viewerHasSeen
      media { type width height blurhash url(width: 1080, aspect: "9:16") } } } } } } }"""
