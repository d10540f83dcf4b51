"""`build_schema` converts the GraphQL types once per process and gives every call a schema of
its own: what one app's schema holds (its cost budget, its document cache, its extensions)
never reaches another's."""

from __future__ import annotations

import asyncio

from config import LimitSettings
from schema import build_schema
from schema.tracing import OperationSpans


async def built(limits: LimitSettings | None = None):
    """Built off the event loop: strawberry resolves lazy types by file path (os.stat)."""
    return await asyncio.to_thread(build_schema, limits)


async def test_schemas_built_alike_share_their_types_and_nothing_else():
    limits = LimitSettings()
    one, two = await built(limits), await built(limits)
    assert one is not two
    assert one._schema is two._schema  # the converted types: built once
    policy_one, policy_two = one.extensions[0].keywords, two.extensions[0].keywords
    assert policy_one["budget"] is not policy_two["budget"]
    assert policy_one["documents"] is not policy_two["documents"]
    one.extensions = (*one.extensions, OperationSpans)  # as server.py does when tracing is on
    assert len(two.extensions) == 1


async def test_each_schema_spends_from_a_budget_of_its_own():
    """Two apps in one process (a test's apps, one after another) each begin with a whole budget."""
    limits = LimitSettings(cost_budget=3, cost_window_seconds=3600)
    one = await built(limits)
    codes = [((await one.execute("{ __typename }")).errors or [None])[0] for _ in range(4)]
    assert codes[:3] == [None, None, None] and codes[3].extensions["code"] == "THROTTLED"
    two = await built(limits)
    assert (await two.execute("{ __typename }")).errors is None
    assert (await one.execute("{ __typename }")).errors[0].extensions["code"] == "THROTTLED"


async def test_field_suggestions_follow_each_schema_s_settings():
    with_suggestions = await built(LimitSettings(field_suggestions=True))
    without = await built(LimitSettings(field_suggestions=False))
    again = await built(LimitSettings(field_suggestions=True))
    messages = [(await s.execute("{ viewe { username } }")).errors[0].message
                for s in (with_suggestions, without, again)]
    assert "Did you mean" in messages[0] and "Did you mean" in messages[2], messages
    assert "Did you mean" not in messages[1], messages
