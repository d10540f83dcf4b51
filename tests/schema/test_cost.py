"""The query cost model (schema/cost.py): every list field is costed by its bound, an item of an
interface or union by the most any of its types selects, and the app's own queries fit the limits."""

from __future__ import annotations

from graphql import GraphQLInterfaceType, GraphQLObjectType, get_named_type, is_composite_type, parse

from bench.app_queries import TRAY_QUERY
from config import Settings
from schema import build_schema
from schema.cost import is_page_list, list_bound, query_cost, returns_list
from tests.resolvers.messages_client import INBOX
from tests.schema.client import running_app

# A rich inbox client's subscription: a new message with its sender, reply and reactions and the
# thread's members; reactions, receipts, typing and changes of its threads.
RICH_INBOX_EVENTS = """subscription { inboxEvents { __typename cursor eventId
  ... on NewMessageEvent { message { id text sender { id username profilePicture { ... on Media { url(width: 150) } } }
      replyTo { text } reactions { emoji user { id } } } thread { id name isGroup members { id username } } }
  ... on MessageReactionEvent { message { id reactions { emoji user { id username } } } user { username } }
  ... on ReadReceiptEvent { thread { id } user { username } upToMessageId }
  ... on TypingEvent { thread { id } user { username } typing }
  ... on ThreadChangedEvent { thread { id name members { id username } } added } } }"""


def test_every_list_of_objects_has_a_bound() -> None:
    """A list field of objects without `first` or a list argument must declare the most items it
    holds (`register_list_bound`), or be a connection's page: before, each cost 1 whatever its
    length (a thread's 32 members, a highlight's 100 stories), and one without a bound is now
    costed at the page limit. This lists any new one that forgot."""
    schema = build_schema()._schema
    missing = []
    for type_name, gql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(gql_type, (GraphQLObjectType, GraphQLInterfaceType)):
            continue
        for name, field_def in gql_type.fields.items():
            if not returns_list(field_def) or not is_composite_type(get_named_type(field_def.type)):
                continue
            if field_def.args or is_page_list(gql_type, name) or (name == "errors" and type_name.endswith("Payload")):
                continue
            if list_bound(type_name, name, Settings()) is None:
                missing.append(f"{type_name}.{name}")
    assert missing == [], f"register_list_bound for: {missing}"


async def test_the_inbox_is_costed_by_its_threads_members(gql) -> None:
    """`inbox { threads { nodes { ... members { username } } } }`: 20 threads of up to 32 members
    each. It cost 42 points, each `members` counted as one object; now each thread's members
    count 32."""
    token, _ = await gql.sign_up("ada")
    body = await gql(INBOX, {"f": "INBOX"}, token)
    assert "errors" not in body, body
    # inbox + threads + 20 x (node + lastMessage + 32 members)
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 20 * (1 + 1 + 32)


async def test_a_bound_read_from_the_settings_follows_them(gql_settings) -> None:
    """`messages.max_members` sets a group's size, so it sets the members' bound too."""
    gql_settings.messages.max_members = 8
    async with running_app(gql_settings) as g:
        token, _ = await g.sign_up("ada")
        body = await g("{ inbox { threads(first: 10) { nodes { members { id } } } } }", None, token)
        assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 10 * (1 + 8)


async def test_plain_lists_count_their_items(gql) -> None:
    """A list of objects read by its arguments counts each item, not only what is below it:
    `nodes(ids:)` with 50 ids and only `id` selected cost 1, for 50 object reads."""
    from schema.relay import to_global_id

    ids = [to_global_id("User", 1000 + i) for i in range(50)]
    body = await gql("query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids})
    assert body["extensions"]["cost"]["requestedQueryCost"] == 50


def test_an_abstract_item_costs_what_its_costliest_type_selects() -> None:
    """An event is one type: a selection with a fragment per event type costs the largest
    fragment, not their sum (which would refuse a rich client's subscription); fragments on
    another type cost nothing where they cannot apply."""
    schema = build_schema()._schema
    settings = Settings()

    def cost(doc: str) -> int:
        return query_cost(schema, parse(doc), None, {}, 100, settings).points

    new_message = cost("subscription { inboxEvents { ... on NewMessageEvent { thread { members { id } } } } }")
    changed = cost("subscription { inboxEvents { ... on ThreadChangedEvent { thread { members { id } } } } }")
    both = cost("subscription { inboxEvents { ... on NewMessageEvent { thread { members { id } } } "
                "... on ThreadChangedEvent { thread { members { id } } } } }")
    assert new_message == changed == both == 1 + 1 + 32
    assert cost(RICH_INBOX_EVENTS) <= settings.limits.max_subscription_cost


def test_the_app_s_queries_fit_the_limits() -> None:
    """The tray page and the inbox, as the app sends them, under `max_query_cost` with room for a
    few a minute in the budget."""
    schema = build_schema()._schema
    settings = Settings()
    tray = query_cost(schema, parse(TRAY_QUERY), None, {}, 100, settings).points
    inbox = query_cost(schema, parse(INBOX), None, {"f": "INBOX"}, 100, settings).points
    assert tray == 1061 and inbox == 682
    assert max(tray, inbox) <= settings.limits.max_query_cost
    assert tray + inbox <= settings.limits.cost_budget / 5


async def test_introspection_costs_what_it_returns(gql_with) -> None:
    """`__schema` and `__type` were free: 12 aliases of `__schema { types { fields { args } } }`
    cost their 132 selections and took ~0.25 s of CPU and 600 KB of answer (27 of them ~0.55 s
    for 300 points). `__schema` now costs the whole schema's size (a point per type, field,
    argument and enum value), `__type` its largest type's; GraphiQL's own query still runs."""
    from graphql import get_introspection_query

    one = "__schema { types { name fields { name args { name type { name } } type { name } } } }"
    async with gql_with(max_query_cost=5000) as g:
        full = await g(get_introspection_query())
        assert "errors" not in full and full["data"]["__schema"]["queryType"]["name"] == "Query"
        size = full["extensions"]["cost"]["requestedQueryCost"]
        assert size == sum(1 + len(t["fields"] or ()) + sum(len(f["args"]) for f in t["fields"] or ())
                           + len(t["enumValues"] or ()) + len(t["inputFields"] or ())
                           for t in full["data"]["__schema"]["types"])
        body = await g("{ " + " ".join(f"a{i}: {one}" for i in range(12)) + " }")
        assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED", body
        assert body["extensions"]["cost"]["requestedQueryCost"] == 12 * size


async def test_a_scalar_that_scans_costs_what_it_reads(gql_with) -> None:
    """Scalars are free, but a story's `viewerCount` (and `viewerCountIsExact`) reads up to 1 000
    viewer edges and their visibility each time it is asked, an alias asking again: 30 aliases
    over a viewer's up to 100 stories cost 101 points for 6 000 such scans. Each now costs 10."""
    async with gql_with(max_query_cost=5000) as g:
        token, _ = await g.sign_up("ada")
        aliases = " ".join(f"a{i}: viewerCount" for i in range(30))
        body = await g("{ viewer { stories(first: 100) { nodes { %s } } } }" % aliases, None, token)
        assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED", body
        assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 100 * (1 + 30 * 10)
        one = await g("{ viewer { stories(first: 100) { nodes { viewerCount viewerCountIsExact } } } }", None, token)
        assert "errors" not in one and one["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 100 * (1 + 20)
