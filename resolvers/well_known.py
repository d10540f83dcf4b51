"""Well-known objects: one object of a type for the whole deployment (the feed's registry of big
accounts, the trending hashtags' registry), found by a unique key and created by whichever
process asks first.

The race is settled by the unique key: each contender creates an object and claims the key; the
losers delete theirs and read the winner's. The id never changes once claimed, so each process
remembers it (per store).
"""

from __future__ import annotations

import weakref

from tao import Tao

_known: weakref.WeakKeyDictionary[Tao, dict[tuple[str, str], int]] = weakref.WeakKeyDictionary()


async def well_known_id(tao: Tao, otype: str, ns: str, key: str) -> int:
    """The id of the one `otype` object named `key` in the unique-key namespace `ns`."""
    ids = _known.setdefault(tao, {})
    found = ids.get((ns, key))
    if found is not None:
        return found
    oid = (await tao.key_get_many(ns, [key])).get(key)
    if not oid:
        mine = await tao.obj_add(otype, {})
        if await tao.key_claim(ns, key, mine):
            oid = mine
        else:
            await tao.obj_delete(mine)
            oid = (await tao.key_get_many(ns, [key]))[key]
    ids[(ns, key)] = oid
    return oid
