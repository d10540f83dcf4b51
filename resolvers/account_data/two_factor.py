"""Two-factor log-in's traces in a purge: pending log-in challenges, and the claims of used codes.

Two-factor settings (the secret, the recovery codes' hashes) live on the USER object and go with
the profile. What outlives it:
- LOGIN_CHALLENGE objects not yet completed or expired (they name the user; no edge finds
  them): the `login_challenges` kind deletes them. Their expiry jobs (`accounts.end_challenge`,
  due minutes ahead, naming only the challenge) are declared scheduled, so the purge's barrier
  does not wait for them; run after the purge, one deletes nothing.
- the unique keys of used codes, whose key names the user (`totp_step` `<user>:<step>`,
  `recovery_used` `<user>:<generation>:<index>`), held by a challenge or session since deleted,
  or released (id 0): the purge's finish erases every unique key naming the user
  (`tao.erase_rows(..., naming=[user])`, resolvers.account_data.deletion).
"""

from __future__ import annotations

from resolvers.account_data.registry import DataContext, DataKind, register_kind, register_scheduled_handler
from resolvers.records import LogInChallenge, record_of
from resolvers.two_factor import END_CHALLENGE_JOB


async def _purge_login_challenges(ctx: DataContext, user: int) -> int:
    """A batch of the user's pending log-in challenges (a full scan: they are few and short-lived)."""
    tao = ctx.tao
    found = await tao.obj_scan_naming(user, "LOGIN_CHALLENGE", ctx.batch)
    objs = await tao.obj_get(found)
    mine = [i for i, o in objs.items() if isinstance(c := record_of(o), LogInChallenge) and c.user_id == user]
    for cid in mine:
        await tao.obj_delete(cid)
    await ctx.erase(mine)
    return len(mine)


register_scheduled_handler(END_CHALLENGE_JOB)
register_kind(DataKind("login_challenges", "Pending two-factor log-ins", 11, {}, None, _purge_login_challenges))
