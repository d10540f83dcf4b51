"""Where an account is logged in: its sessions, listed to their owner and revoked by them.

Invariants:
- Only the account itself sees or ends its sessions. A session id that is not one of the
  actor's (another account's, or no session at all) answers SESSION_NOT_FOUND, the same either
  way so ids cannot be probed, changes nothing, and counts as a failed attempt in the log-in
  throttle of the account and the client's address.
- Revoking ends the session at once (its token resolves to nothing) and its live WebSockets
  close with 4403 (`session.revoked`, resolvers.realtime.sessions), in every process.
"""

from __future__ import annotations

import time

from resolvers.accounts import (
    AccountErrorCode,
    attempt_succeeded,
    end_other_sessions,
    end_session,
    publish_ended,
    take_attempt,
)
from resolvers.errors import UserError
from resolvers.records import AuthSession, User, record_of
from resolvers.throttle import LoginThrottle
from tao import Tao

MAX_LISTED = 100


async def list_sessions(tao: Tao, user_id: int, limit: int = MAX_LISTED) -> list[AuthSession]:
    """The account's live sessions, newest first (at most `limit`; expired ones are left out:
    the job that deletes them may not have run yet)."""
    edges = await tao.assoc_range(user_id, "HAS_SESSION", 0, limit)
    found = await tao.obj_get([e.id2 for e in edges])
    now = int(time.time() * 1000)
    out = []
    for e in edges:
        s = record_of(found[e.id2]) if e.id2 in found else None
        if isinstance(s, AuthSession) and s.user_id == user_id and s.expires_at > now:
            out.append(s)
    return out


async def do_revoke_session(tao: Tao, actor_id: int, session_id: int, *, throttle: LoginThrottle | None = None,
                            address: str = "anonymous", current: int | None = None) -> None:
    """End one of the actor's sessions (their current one included: that is a log-out). Ending
    another one (`current` is the request's) also deletes a ready data export's archive: that
    session may have taken its signed URL."""
    user = record_of((await tao.obj_get([actor_id]))[actor_id])
    assert isinstance(user, User)
    await take_attempt(throttle, user, address)
    session = record_of(obj) if (obj := (await tao.obj_get([session_id])).get(session_id)) is not None else None
    if not isinstance(session, AuthSession) or session.user_id != actor_id:
        raise UserError(AccountErrorCode.SESSION_NOT_FOUND,  # counted as a failed log-in
                        "You have no session with this id: pick one from `viewer { sessions }`.", "id")
    await attempt_succeeded(throttle, user, address)
    await end_session(tao, actor_id, session_id)
    await publish_ended(tao, actor_id, [session_id])
    if session_id != current:
        from resolvers.account_data.export import revoke_export  # account data builds on accounts
        await revoke_export(tao, actor_id)


async def do_revoke_other_sessions(tao: Tao, actor_id: int, keep: int | None) -> int:
    """End every session of the actor but `keep` (the current one); returns how many ended."""
    return len(await end_other_sessions(tao, actor_id, keep))
