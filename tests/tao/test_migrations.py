"""Migrations: applying them again is a no-op that makes the server send no warnings, and a
migrated store passes the start-up schema check."""

import warnings

from tao import open_tao


async def test_migrating_twice_is_quiet(store_settings):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            tao = await open_tao(store_settings, migrate=True, start_worker=False)
            await tao.close()
        tao = await open_tao(store_settings, migrate=False, start_worker=False)  # check_schema passes
        await tao.close()
