"""Locations: the places posts are tagged at (LOCATION objects), found or created by name.

Invariant: one LOCATION per (lower-cased name, coordinates rounded to ~10 m): like hashtags, a
new one is created and then claimed under the `location` unique key, and the loser of a race
deletes its own and takes the winner's. A post points at its location with AT_LOCATION; the
derived LOCATION_OF list (location -> post) is the place's posts, newest first. As for hashtags,
`postCount` counts the public posts only (PUBLIC_LOCATION_OF), and a location is seen only by a
viewer who may see one of its posts (`resolvers.privacy.listing_visible`).
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any

from resolvers import privacy
from resolvers.errors import UserError
from resolvers.pagination import Cursor, Page, load_assoc_page, make_page
from resolvers.records import Location, Post
from tao import Tao

if TYPE_CHECKING:
    from resolvers.context import RequestContext

LOCATION_NAME_MAX = 100


class LocationErrorCode(enum.Enum):
    # The post that names a bad location reports it with its own code (PostErrorCode.LOCATION_INVALID).
    LOCATION_INVALID = "LOCATION_INVALID"


async def location_for_input(ctx: RequestContext, location_id: int | None, name: str | None,
                             latitude: float | None, longitude: float | None) -> int | None:
    """The LOCATION id for the input: an existing one by id, or one found or created by name."""
    if location_id is not None:
        if name is not None:
            raise UserError(LocationErrorCode.LOCATION_INVALID, "Give `locationId` or `location`, not both.",
                            "location")
        obj = await privacy.load_visible_object(ctx, location_id)  # no probing for hidden places
        if obj is None or obj.otype != "LOCATION":
            raise UserError(LocationErrorCode.LOCATION_INVALID, "No such location: check `locationId`.", "locationId")
        return location_id
    if name is None:
        return None
    name = " ".join(name.split())
    coords_ok = (latitude is None and longitude is None) or (
        latitude is not None and longitude is not None and math.isfinite(latitude) and math.isfinite(longitude)
        and -90 <= latitude <= 90 and -180 <= longitude <= 180)
    if not 1 <= len(name) <= LOCATION_NAME_MAX or not coords_ok:
        raise UserError(LocationErrorCode.LOCATION_INVALID,
                        f"A location has a name of 1 to {LOCATION_NAME_MAX} characters and, optionally, both a "
                        "latitude (-90 to 90) and a longitude (-180 to 180).", "location")
    return await location_id_for(ctx.tao, name, latitude, longitude)


async def location_id_for(tao: Tao, name: str, latitude: float | None, longitude: float | None) -> int:
    """One LOCATION per (name, coordinates to ~10 m), found or created like hashtags."""
    key = name.lower() + (f"|{latitude:.4f}|{longitude:.4f}" if latitude is not None else "")
    found = (await tao.key_get_many("location", [key])).get(key)
    if found is not None:
        return found
    data: dict[str, Any] = {"name": name}
    if latitude is not None:
        data.update(latitude=latitude, longitude=longitude)
    new_id = await tao.obj_add("LOCATION", data)
    if await tao.key_claim("location", key, new_id):
        return new_id
    await tao.obj_delete(new_id)
    return (await tao.key_get_many("location", [key]))[key]


async def location_posts(ctx: RequestContext, location_id: int, first: int, after: Cursor | None) -> Page[Post]:
    assocs, has_next = await load_assoc_page(ctx, location_id, "LOCATION_OF", first, after)
    posts = await privacy.visible_posts(ctx, [a.id2 for a in assocs])
    return make_page(assocs, has_next, {p.id: p for p in posts}, after)


async def get_location(ctx: RequestContext, location_id: int) -> Location | None:
    obj = await privacy.load_visible_object(ctx, location_id)
    return obj if isinstance(obj, Location) else None


async def location_post_count(ctx: RequestContext, location_id: int) -> int:
    """Public posts at it (see the module docstring)."""
    return await ctx.loaders.assoc_count_by_key.load((location_id, "PUBLIC_LOCATION_OF"))
