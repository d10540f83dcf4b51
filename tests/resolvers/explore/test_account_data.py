"""Explore's data joins account export and deletion: the `explore` kind exports the user's seen
posts, dismissed suggestions and pool, and its purge removes them, every Explore session naming
the user (theirs, and others' that list their posts) and their rows among the trending posts."""

from __future__ import annotations

from resolvers.account_data.registry import DataContext, kinds
from resolvers.explore import trends
from resolvers.explore.service import do_dismiss_suggestion
from tests.resolvers.explore.conftest import one_trend_bucket


async def test_export_and_purge(world):
    w = world
    one_trend_bucket(w.settings.explore)
    kind = next(k for k in kinds() if k.name == "explore")
    user, other, ada = await w.user("user"), await w.user("other"), await w.user("ada")
    posters = [await w.user(f"p{i}") for i in range(5)]
    await w.follow(user, ada)
    for p in posters:
        await w.follow(ada, p)
    for p in [*posters, user]:
        await w.tagged_post(p, tags=("dogs",), run=False)
    await w.drain()
    await trends.refresh(w.tao, w.settings.explore)
    served = [i.post.id for i in (await w.explore(user)).items]
    assert served
    other_page = await w.explore(other)  # the trending posts: the user's among them
    assert user in {i.post.author for i in other_page.items}
    await do_dismiss_suggestion(w.tao, user, posters[0])
    ctx = DataContext(w.tao, w.settings, batch=3)
    exported = [r async for r in kind.export(ctx, user)]
    assert {r["type"] for r in exported} == {"EXPLORE_SEEN", "DISMISSED_SUGGESTION", "EXPLORE_POOL"}
    assert {int(r["id"]) for r in exported if r["type"] == "EXPLORE_SEEN"} == set(served)
    while await kind.purge(ctx, user):
        pass
    for atype in ("EXPLORE_SEEN", "DISMISSED_SUGGESTION", "EXPLORE_POOL"):
        assert await w.tao.assoc_range(user, atype, 0, 100) == []
    assert await w.tao.obj_scan_naming(user, "EXPLORE_SESSION", 10) == []
    assert await w.tao.obj_get([other_page.end_cursor[0]]) == {}  # the other's snapshot listed the user's post
    rid = await trends.registry_id(w.tao)
    rows = (await w.tao.obj_get([rid]))[rid].data["posts"]
    assert rows and all(r[1] != user for r in rows)
