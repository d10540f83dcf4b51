"""The GraphQL bench's warm-up must leave the pages it measures answered from the cache alone:
the bench reports SQL statements per request as a property of the warm cache, so a prewarm that
misses what a page reads shows up as SQL in the measured windows (the post page's likers and
comments windows did, once counts were cached apart from their lists)."""

from __future__ import annotations

import copy

from bench._graphql_data import make_data, prewarm_body
from bench._graphql_server import prewarm_store
from bench.graphql_bench import QUERIES
from schema.relay import to_global_id
from tests.schema.client import graphql_settings, running_app


async def test_prewarm_leaves_the_post_and_profile_pages_without_sql(services, test_id, tmp_path):
    settings = graphql_settings("mysql", services, test_id, tmp_path)
    async with running_app(settings) as gql:
        data = await make_data(gql.tao, settings, users=40, authors=3, posts_per_author=4, max_likes=8,
                               max_comments=3, viewers=2, seed=3)
        await gql.tao.run_jobs_until_idle()

    s = copy.deepcopy(settings)
    s.cache.key_prefix = test_id + "warm"  # a cold cache, as the bench's server starts with
    async with running_app(s) as gql:
        await prewarm_store(gql.tao, prewarm_body(data))
        for token in data.tokens:  # sessions: the bench's HTTP warm pass reads them
            await gql.ok("{ viewer { id } }", token=token)
        gql.tao.reset_stats()
        for post in data.posts:
            page = await gql.ok(QUERIES["post"], {"id": to_global_id("Post", post)}, data.tokens[0])
            assert page["node"]["id"] == to_global_id("Post", post)
        for author in data.authors:
            page = await gql.ok(QUERIES["profile"], {"u": author}, data.tokens[1])
            assert page["user"]["username"] == author
        assert gql.tao.stats()["sql_queries"] == 0, gql.tao.stats()
