"""Notification preferences: per type a level (off, from people I follow, from everyone) and a
push switch, plus "pause all push until". Stored on one self edge of the user's shard,
`(user, NOTIF_PREFS, user)`, data {"l": {type: level}, "push": {type: bool}, "pause": ms}; a type
not named has the default (EVERYONE, push on).

Invariant: preferences are read when an event is recorded (and again when its push is sent);
nothing else decides whether a user hears of an event, so no rule can override an opt-out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resolvers.notifications.model import Level, NotificationType
from tao import Assoc, Tao
from tao.models import now_ms

ATYPE = "NOTIF_PREFS"
MAX_PAUSE_HOURS = 24 * 30


@dataclass(frozen=True)
class Preferences:
    levels: dict[NotificationType, Level] = field(default_factory=dict)
    push: dict[NotificationType, bool] = field(default_factory=dict)
    pause_until: int = 0

    def level(self, kind: NotificationType) -> Level:
        return self.levels.get(kind, Level.EVERYONE)

    def push_on(self, kind: NotificationType, now: int | None = None) -> bool:
        if self.pause_until > (now_ms() if now is None else now):
            return False
        return self.push.get(kind, True) and self.level(kind) is not Level.OFF

    def to_data(self) -> dict:
        return {"l": {k.value: v.value for k, v in self.levels.items()},
                "push": {k.value: v for k, v in self.push.items()}, "pause": self.pause_until}


def decode(edge: Assoc | None) -> Preferences:
    """The preferences edge's codec (None: every default)."""
    if edge is None:
        return Preferences()
    d = edge.data or {}
    levels, push = {}, {}
    for k, v in dict(d.get("l") or {}).items():
        try:
            levels[NotificationType(k)] = Level(v)
        except ValueError:
            continue  # a type or level this version does not know: its default
    for k, v in dict(d.get("push") or {}).items():
        try:
            push[NotificationType(k)] = bool(v)
        except ValueError:
            continue
    return Preferences(levels, push, int(d.get("pause") or 0))


def prefs_key(user_id: int) -> tuple[int, str, int]:
    return (user_id, ATYPE, user_id)


async def load_preferences(tao: Tao, user_id: int) -> Preferences:
    return decode((await tao.assoc_get_many([prefs_key(user_id)]))[prefs_key(user_id)])


async def do_update_notification_preferences(
    tao: Tao, actor_id: int, *, levels: dict[NotificationType, Level] | None = None,
    push: dict[NotificationType, bool] | None = None, pause_push_hours: float | None = None,
) -> Preferences:
    """Change some of the viewer's preferences; the others keep their values. `pause_push_hours`
    0 resumes push at once; N > 0 pauses every push for N hours from now."""
    from resolvers.errors import UserError
    from resolvers.notifications.errors import NotificationErrorCode

    current = await load_preferences(tao, actor_id)
    pause = current.pause_until
    if pause_push_hours is not None:
        if not 0 <= pause_push_hours <= MAX_PAUSE_HOURS:
            raise UserError(NotificationErrorCode.INVALID_PAUSE,
                            f"`pausePushHours` must be between 0 and {MAX_PAUSE_HOURS}.", "pausePushHours")
        pause = now_ms() + int(pause_push_hours * 3_600_000) if pause_push_hours else 0
    updated = Preferences({**current.levels, **(levels or {})}, {**current.push, **(push or {})}, pause)
    await tao.assoc_add(actor_id, ATYPE, actor_id, data=updated.to_data())
    return updated
