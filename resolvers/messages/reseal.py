"""Key rotation's second half: re-seal stored message bodies under the active key.

Rotation (docs/messages.md, "Key rotation"): add a new key to `messages.encryption_keys`, make
it `active_key` on every process (new bodies use it; old ones still open under their own key
id), then run `reseal_thread` over every thread (a batch job: `python -c` with `open_tao`, or
an outbox job per thread). A body is re-sealed with `obj_update`, so its version moves forward
and the cache follows; re-running is harmless (a body already under the active key is left
alone). Retire an old key only once no body names it.
"""

from __future__ import annotations

from config.settings import MessageSettings
from resolvers.messages.model import cipher, is_message
from resolvers.records import record_of
from tao import Tao

PAGE = 100


async def reseal_thread(tao: Tao, settings: MessageSettings, thread_id: int) -> int:
    """Re-seal the thread's bodies that are not under the active key; returns how many."""
    box = cipher(settings)
    done, after = 0, None
    while True:
        page = await tao.assoc_time_range(thread_id, "HAS_MESSAGE", limit=PAGE, after=after)
        if not page:
            return done
        objs = await tao.obj_get([a.id2 for a in page])
        for a in page:
            obj = record_of(objs[a.id2]) if a.id2 in objs else None
            if not is_message(obj):
                continue
            msg = obj
            if msg.body is None or not box.needs_reseal(msg.body):
                continue
            text = box.open(msg.body, msg.thread, msg.sender)
            await tao.obj_update(msg.id, {"body": box.seal(text, msg.thread, msg.sender)})
            done += 1
        after = (page[-1].time, page[-1].id2)
