"""The request's loaders (resolvers/loaders.py): aiodataloader's contract, with one future per call.

Keys asked for in the same few event-loop ticks, by any mix of `load`, `load_many` and
`load_each`, reach one call of the batch function, each key once; a key's exception is that
key's alone; a batch function that raises fails its batch and nothing of it is remembered."""

from __future__ import annotations

import asyncio

import pytest

from resolvers.loaders import Loaders, _StoreLoader, load_each


class Squares(_StoreLoader):
    """n -> n*n; a negative n fails alone; the key "boom" fails the whole batch."""

    def __init__(self) -> None:
        self._keep = Loaders(None)  # type: ignore[arg-type]  # no store: the batch function is ours
        super().__init__(self._keep)
        self.calls: list[list] = []

    async def batch_load_fn(self, keys: list) -> list:
        self.calls.append(list(keys))
        await asyncio.sleep(0)
        if "boom" in keys:
            raise ConnectionError("the whole batch failed")
        return [ValueError(f"no square of {k}") if k < 0 else k * k for k in keys]


async def test_siblings_in_the_same_ticks_share_one_batch_each_key_once() -> None:
    sq = Squares()

    async def field(keys: list) -> list:
        return await load_each(sq, keys)
    one, two, three, four = await asyncio.gather(sq.load(2), sq.load_many([3, 2]), field([4, 3, 5]), sq.load(5))
    assert (one, two, three, four) == (4, [9, 4], [16, 9, 25], 25)
    assert len(sq.calls) == 1 and sorted(sq.calls[0]) == [2, 3, 4, 5]


async def test_loaded_keys_answer_without_a_batch() -> None:
    sq = Squares()
    assert await load_each(sq, [1, 2]) == [1, 4]
    assert await sq.load_many([2, 1]) == [4, 1] and await sq.load(1) == 1
    assert sq.calls == [[1, 2]]


async def test_a_failed_key_fails_alone() -> None:
    sq = Squares()
    answers = await load_each(sq, [3, -1, 4])
    assert answers[0] == 9 and answers[2] == 16 and isinstance(answers[1], ValueError)
    with pytest.raises(ValueError, match="no square of -1"):
        await sq.load(-1)
    with pytest.raises(ValueError):
        await sq.load_many([3, -1])
    assert await sq.load(4) == 16
    assert sq.calls == [[3, -1, 4]]  # the failed key's answer is remembered for the request too


async def test_a_failed_batch_fails_its_keys_and_is_not_remembered() -> None:
    sq = Squares()
    results = await asyncio.gather(sq.load("boom"), sq.load(6), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert isinstance((await load_each(sq, [6]))[0], int)  # retried, in a batch of its own
    assert sq.calls == [["boom", 6], [6]]


async def test_clear_and_prime() -> None:
    sq = Squares()
    assert await sq.load(3) == 9
    sq.prime(3, 100)  # already loaded: priming does not replace it
    assert await sq.load(3) == 9
    sq.clear(3).prime(3, 100)
    assert await sq.load(3) == 100
    sq.clear_all()
    assert await sq.load_many([3, 7]) == [9, 49]
    assert sq.calls == [[3], [3, 7]]


async def test_a_key_cleared_while_loading_is_not_answered_by_the_old_batch() -> None:
    """A write in the request clears a key whose read is in flight: a load after the clear reads
    again; the earlier caller still gets what its batch read."""
    sq = Squares()
    first = sq.load(8)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the batch is running now
    assert sq.calls == [[8]]
    sq.clear(8)
    second = sq.load(8)
    assert await first == 64 and await second == 64
    assert sq.calls == [[8], [8]]


async def test_records_are_shared_per_version_and_a_write_gives_a_new_one(gql) -> None:
    """`ObjectByIdLoader` hands every request the same record for one version of a user, post or
    comment (records are immutable), and the new version's record after a write."""
    from resolvers.records import User

    _, global_id = await gql.sign_up("shared")
    user_id = (await gql.tao.key_get_many("username", ["shared"]))["shared"]
    first = await Loaders(gql.tao).object_by_id.load(user_id)
    again = await Loaders(gql.tao).object_by_id.load(user_id)
    assert isinstance(first, User) and again is first
    await gql.tao.obj_update(user_id, {"full_name": "Renamed"})
    after = await Loaders(gql.tao).object_by_id.load(user_id)
    assert after is not first and after.full_name == "Renamed" and after.version == first.version + 1


async def test_media_records_are_shared_and_read_only(gql) -> None:
    """A media record (the tray's avatars and story media) is shared like a user's: its renditions
    are read-only mappings, so no request can change what another reads."""
    from resolvers.records import Media

    _, global_id = await gql.sign_up("pictured")
    owner = (await gql.tao.key_get_many("username", ["pictured"]))["pictured"]
    m = await gql.tao.obj_add("MEDIA", {"kind": "image", "status": "ready", "owner": owner, "width": 640,
                                        "height": 640, "variants": [{"name": "jpeg_640", "key": "media/a/640.jpg",
                                                                     "width": 640, "height": 640,
                                                                     "content_type": "image/jpeg"}]}, owner=owner)
    first = await Loaders(gql.tao).object_by_id.load(m)
    again = await Loaders(gql.tao).object_by_id.load(m)
    assert isinstance(first, Media) and again is first and first.variants[0]["key"] == "media/a/640.jpg"
    with pytest.raises(TypeError):
        first.variants[0]["key"] = "media/b/640.jpg"  # type: ignore[index]
