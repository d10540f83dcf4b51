"""`register_job_handlers`: one context and one set of handlers per store, and nothing of them
outlives the store."""

from __future__ import annotations

import gc
import weakref

from resolvers.jobs import HANDLERS, register_job_handlers
from tests.tao.conftest import backend, open_store, store_settings  # noqa: F401  (fixtures)


async def test_registering_again_updates_the_one_context(store_settings):
    tao = await open_store(store_settings)
    try:
        job = register_job_handlers(tao)
        handlers = dict(tao.outbox.handlers)
        assert set(HANDLERS) <= set(handlers)
        media = object()
        assert register_job_handlers(tao, media=media) is job and job.media is media
        assert tao.outbox.handlers == handlers  # the same callables: `register` refuses others
    finally:
        await tao.close()


async def test_a_closed_store_with_its_job_handlers_is_freed(store_settings):
    """The handlers refer to their store (through its `JobContext`): a table of this module that
    kept them, keyed by the store, kept every store ever registered (pools, caches, its loop)."""
    tao = await open_store(store_settings)
    register_job_handlers(tao)
    await tao.close()
    ref = weakref.ref(tao)
    del tao
    gc.collect()
    assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
