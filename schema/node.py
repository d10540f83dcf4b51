"""`node(id:)` and `nodes(ids:)`: any registered node type by global id, through privacy.

A missing object, one the viewer may not see, and an id of the wrong type for its object all
answer null alike, so ids cannot be used to probe for hidden things.
"""

from __future__ import annotations

import asyncio

import strawberry
from strawberry import Info

from resolvers import privacy
from resolvers.context import RequestContext
from resolvers.errors import BadInputError, UnavailableError, domain_error
from schema.relay import Node, from_global_id, node_types

MAX_NODES = 100


async def resolve_node(ctx: RequestContext, store_id: int, typename: str | None = None) -> Node | None:
    obj = await privacy.load_visible_object(ctx, store_id)
    if obj is None:
        return None
    for name, (otype, from_record) in node_types().items():
        if otype == obj.otype and (typename is None or typename == name):
            return from_record(obj)
    return None


async def resolve_global_id(ctx: RequestContext, global_id: str, arg: str = "id") -> Node | None:
    typename, store_id = from_global_id(global_id, ctx.settings.store.logical_shards, arg=arg)
    return await resolve_node(ctx, store_id, typename)


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Fetch any object by its global id; null if it does not "
                                  "exist or is not visible to you.")
    async def node(self, info: Info[RequestContext, None], id: strawberry.ID) -> Node | None:
        return await resolve_global_id(info.context, id)

    @strawberry.field(description="Fetch up to 100 objects by global id, in order; null for "
                                  "each missing or invisible one.")
    async def nodes(self, info: Info[RequestContext, None], ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise BadInputError(f"`ids` holds at most {MAX_NODES} ids; split the request.")
        # An id whose data is unavailable (its shard is down) is an error at its own index, not the
        # whole list's: graphql-core reports an exception in a list's slot as that item's error.
        # Any other failure (a malformed id) is the field's, as it always was.
        found = await asyncio.gather(*(resolve_global_id(info.context, i, "ids") for i in ids), return_exceptions=True)
        for item in found:
            if isinstance(item, BaseException) and not isinstance(domain_error(item), UnavailableError):
                raise item
        return list(found)  # type: ignore[arg-type]  # an UnavailableError stands for its item
