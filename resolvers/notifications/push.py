"""Web Push: browsers' subscriptions, and the worker job that sends one push per group update.

Subscriptions: a PUSH_SUBSCRIPTION object on the user's shard, data {"endpoint", "p256dh",
"auth", "session"}, listed by `(user, HAS_PUSH_SUB, sub)` (at most `max_push_subscriptions`), and claimed
per (user, endpoint) by the unique key `push_endpoint`, so registering one endpoint twice keeps
one subscription. A subscription belongs to the session that registered it (the latest one, if
registered again): ending that session removes it (`forget_sessions`, called by
`resolvers.accounts.end_session`), and a push goes only to subscriptions whose session is still
live. Ending every other session (a password change, `revokeOtherSessions`) removes every other
subscription, those stored before subscriptions named their session included.

Sending: when an event joins a group and the recipient wants pushes of its type, `schedule`
claims the group's batch slot (`push_batch`: the group and the batch window) and the first
claimer enqueues `notifications.push`, due at the window's end (at once for mentions and
message requests). So a group gets at most one push per window whatever its number of events.
The job reads the group as the recipient sees it then (privacy, the exact count: a push carries
no more than the app would show), checks the preferences again, and sends it to each endpoint
through a `PushSender`. 404/410: the endpoint is gone and removed. Endpoints reach public
addresses only (`resolvers.notifications.egress`): a private one is refused on registering, and
a name that resolves to one is treated as gone when sending. Any other failure: the job is
enqueued again for the failed endpoints with exponential backoff, up to `push_max_attempts`.

Only Web Push is built (`WebPushSender`, pywebpush: RFC 8291 aes128gcm payloads, VAPID RFC 8292
headers). APNs and FCM would be other `PushSender`s behind the same interface; they are not built.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

from resolvers.actor import acting_as
from resolvers.errors import UserError
from resolvers.job_context import JobContext
from resolvers.notifications import egress, prefs
from resolvers.notifications.errors import NotificationErrorCode
from resolvers.notifications.model import IMMEDIATE_PUSH, Event, NotificationType
from resolvers.notifications.reads import notification_view, preview_text
from tao import Obj, Tao
from tao.models import now_ms

log = logging.getLogger("taogram.notifications.push")

PUSH_JOB = "notifications.push"
LIST = "HAS_PUSH_SUB"
ENDPOINT_NS = "push_endpoint"
BATCH_NS = "push_batch"
ENDPOINT_MAX = 2048


@dataclass(frozen=True)
class PushSubscription:
    id: int
    endpoint: str
    p256dh: str
    auth: str
    session: int | None = None  # the session that registered it (None: stored before they were bound)


def decode(obj: Obj | None) -> PushSubscription | None:
    """The PUSH_SUBSCRIPTION codec: the only reader of its stored dict."""
    if obj is None or obj.otype != "PUSH_SUBSCRIPTION":
        return None
    d = obj.data
    session = d.get("session")
    return PushSubscription(obj.id, str(d["endpoint"]), str(d["p256dh"]), str(d["auth"]),
                            int(session) if session is not None else None)


# ---- registering -------------------------------------------------------------------------------

def _b64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _check(tao: Tao, endpoint: str, p256dh: str, auth: str) -> None:
    cfg = tao.settings.notifications
    url = urlparse(endpoint)
    schemes = ("https",) if cfg.push_https_only else ("https", "http")
    if len(endpoint) > ENDPOINT_MAX or url.scheme not in schemes or not url.netloc:
        raise UserError(NotificationErrorCode.INVALID_ENDPOINT,
                        f"`endpoint` must be an {' or '.join(schemes)} URL of at most {ENDPOINT_MAX} characters, "
                        "as the browser's PushSubscription gives it.", "endpoint")
    if (egress.is_private_host(url.hostname) and not cfg.push_private_addresses) or egress.is_never_reachable(
            url.hostname or ""):
        raise UserError(NotificationErrorCode.INVALID_ENDPOINT,
                        "`endpoint` must be on a public host, as a browser's push service is "
                        "(not localhost or a private, loopback or link-local address).", "endpoint")
    if url.hostname and ":" in url.hostname:
        # VAPID's `aud` claim cannot name an IPv6 literal (py_vapid refuses it): such an endpoint
        # could never be pushed to, and every push to the account failed on it.
        raise UserError(NotificationErrorCode.INVALID_ENDPOINT,
                        "`endpoint` must name its host by a DNS name, as a browser's push service "
                        "does (not an IPv6 address).", "endpoint")
    try:
        key, secret = _b64(p256dh), _b64(auth)
    except (ValueError, binascii.Error):
        key, secret = b"", b""
    if len(key) != 65 or key[0] != 4 or len(secret) != 16:
        raise UserError(NotificationErrorCode.INVALID_KEYS,
                        "`keys` must be the subscription's `p256dh` (a 65-byte P-256 point) and `auth` "
                        "(16 bytes), base64url as the browser gives them.", "keys")


def _endpoint_key(user_id: int, endpoint: str) -> str:
    return f"{user_id}:{hashlib.sha1(endpoint.encode()).hexdigest()}"


async def do_register_push_subscription(tao: Tao, actor_id: int, endpoint: str, p256dh: str, auth: str,
                                        session_id: int | None = None) -> int:
    """Register (or refresh the keys of) this browser's endpoint for the session `session_id`
    (ending that session removes it); returns the subscription id."""
    _check(tao, endpoint, p256dh, auth)
    key = _endpoint_key(actor_id, endpoint)
    data = {"endpoint": endpoint, "p256dh": p256dh, "auth": auth, "session": session_id}
    existing = (await tao.key_get_many(ENDPOINT_NS, [key])).get(key)
    if existing:
        await tao.obj_update(existing, data)
        return existing
    limit = tao.settings.notifications.max_push_subscriptions
    if await tao.assoc_count(actor_id, LIST) >= limit:
        raise UserError(NotificationErrorCode.TOO_MANY_SUBSCRIPTIONS,
                        f"At most {limit} devices can receive pushes: unregister one first.", "endpoint")
    sub = await tao.obj_add("PUSH_SUBSCRIPTION", data, owner=actor_id)
    if not await tao.key_claim(ENDPOINT_NS, key, sub):
        await tao.obj_delete(sub)  # a racing registration of the same endpoint won
        return (await tao.key_get_many(ENDPOINT_NS, [key]))[key]
    await tao.assoc_add(actor_id, LIST, sub)
    return sub


async def _remove(tao: Tao, user_id: int, sub: PushSubscription) -> None:
    await tao.assoc_delete(user_id, LIST, sub.id)
    await tao.key_release(ENDPOINT_NS, _endpoint_key(user_id, sub.endpoint), sub.id)
    await tao.obj_delete(sub.id)


async def do_unregister_push_subscription(tao: Tao, actor_id: int, endpoint: str) -> None:
    key = _endpoint_key(actor_id, endpoint)
    sub_id = (await tao.key_get_many(ENDPOINT_NS, [key])).get(key)
    sub = decode((await tao.obj_get([sub_id])).get(sub_id)) if sub_id else None
    if sub is None:
        raise UserError(NotificationErrorCode.SUBSCRIPTION_NOT_FOUND, "This endpoint is not registered.", "endpoint")
    await _remove(tao, actor_id, sub)


async def subscriptions(tao: Tao, user_id: int) -> list[PushSubscription]:
    edges = await tao.assoc_range(user_id, LIST, 0, tao.settings.notifications.max_push_subscriptions)
    objs = await tao.obj_get([e.id2 for e in edges]) if edges else {}
    return [s for s in (decode(objs.get(e.id2)) for e in edges) if s is not None]


async def forget_sessions(tao: Tao, user_id: int, ended: Iterable[int] = (), *, keep: int | None = None,
                          others: bool = False) -> int:
    """Remove the user's subscriptions registered by the `ended` sessions (with `others`: every
    subscription not registered by `keep`, unbound ones included). Returns how many went."""
    ended = set(ended)
    gone = [s for s in await subscriptions(tao, user_id)
            if s.session in ended or (others and (s.session is None or s.session != keep))]
    for sub in gone:
        await _remove(tao, user_id, sub)
    return len(gone)


async def _live(tao: Tao, user_id: int, subs: list[PushSubscription]) -> list[PushSubscription]:
    """The subscriptions whose session is still live; those of an ended one are removed (a crash
    between a session's end and its subscriptions' removal)."""
    from resolvers.accounts import session_record_problem  # accounts ends sessions through this module
    from resolvers.records import record_of

    bound = [s.session for s in subs if s.session is not None]
    found = await tao.obj_get(bound) if bound else {}
    live = []
    for sub in subs:
        obj = found.get(sub.session) if sub.session is not None else None
        if sub.session is not None and session_record_problem(record_of(obj) if obj else None, user_id):
            await _remove(tao, user_id, sub)
        else:
            live.append(sub)
    return live


# ---- scheduling ---------------------------------------------------------------------------------

async def schedule(tao: Tao, event: Event, notification_id: int) -> bool:
    """After `event` joined its group: make sure one push for the group is due in this batch
    window. Returns whether this call enqueued it."""
    cfg = tao.settings.notifications
    if not cfg.vapid_private_key:
        return False
    if not (await prefs.load_preferences(tao, event.recipient)).push_on(event.type):
        return False
    if event.type in IMMEDIATE_PUSH:
        due, slot = 0, f"{notification_id}:now"
    else:
        window = max(1, int(cfg.push_batch_seconds * 1000))
        now = now_ms()
        slot = f"{notification_id}:{now // window}"
        due = window - now % window
    # A claim by a fresh id: only the first claimer of the slot gets True (a claim by the id that
    # holds the key is True again).
    if not await tao.key_claim(BATCH_NS, slot, tao.ids.next_id(tao.shard(event.recipient))):
        return False  # another event of this window scheduled it
    await tao.enqueue(event.recipient, PUSH_JOB, {"r": event.recipient, "n": notification_id, "t": event.type.value},
                      delay_ms=due)
    return True


# ---- sending ------------------------------------------------------------------------------------

class PushSender(Protocol):
    """Sends one encrypted push; returns the push service's HTTP status (201: accepted)."""

    async def send(self, sub: PushSubscription, body: bytes, ttl: int) -> int: ...


class WebPushSender:
    """RFC 8030 push with an RFC 8291 (aes128gcm) payload and VAPID (RFC 8292), via pywebpush.
    Connections go to public addresses only unless `private_addresses` (see `egress`)."""

    def __init__(self, private_key: str, subject: str, timeout: float, *, private_addresses: bool = False) -> None:
        from py_vapid import Vapid

        self._vapid = Vapid.from_string(private_key)
        self._subject = subject
        self._timeout = timeout
        self._private_addresses = private_addresses

    async def send(self, sub: PushSubscription, body: bytes, ttl: int) -> int:
        import aiohttp
        from py_vapid import VapidException
        from pywebpush import WebPushException, webpush_async

        connector = egress.PublicOnlyConnector(allow_private=self._private_addresses)
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                resp = await webpush_async({"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                                           body.decode(), vapid_private_key=self._vapid,
                                           vapid_claims={"sub": self._subject}, ttl=ttl, timeout=self._timeout,
                                           aiohttp_session=session)
        except WebPushException as exc:
            return exc.response.status if exc.response is not None else 599
        except VapidException as exc:
            # An endpoint no VAPID claim can name (an IPv6 literal, stored before registering
            # refused them): never a push service. It raised out of the job, which failed for
            # every endpoint of the account and was retried until parked.
            log.warning("push endpoint on %s cannot be signed for (%s): removed", urlparse(sub.endpoint).netloc, exc)
            return 410
        except aiohttp.InvalidURL:  # a legacy numeric address aiohttp refuses: never a push service
            log.warning("push endpoint on %s is not a valid URL: removed", urlparse(sub.endpoint).netloc)
            return 410
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, egress.PrivateAddressError):
                log.warning("push endpoint on %s resolves to no public address: removed", urlparse(sub.endpoint).netloc)
                return 410  # never a push service: forget it as a gone endpoint
            log.info("push to %s failed: %s", urlparse(sub.endpoint).netloc, exc)
            return 599
        except (OSError, TimeoutError) as exc:  # aiohttp's connection errors are OSErrors
            log.info("push to %s failed: %s", urlparse(sub.endpoint).netloc, exc)
            return 599
        return int(resp.status)


_SENDERS: dict[str, PushSender] = {}


def sender_for(tao: Tao) -> PushSender:
    cfg = tao.settings.notifications
    key = f"{cfg.vapid_private_key}:{cfg.push_private_addresses}"
    if key not in _SENDERS:
        _SENDERS[key] = WebPushSender(cfg.vapid_private_key, cfg.vapid_subject, cfg.push_timeout_seconds,
                                      private_addresses=cfg.push_private_addresses)
    return _SENDERS[key]


async def push_job(job: JobContext, payload: dict) -> None:
    """`notifications.push`: send the group's current state to the recipient's endpoints."""
    await send_push(job.tao, payload)


async def _body(tao: Tao, recipient: int, notification_id: int) -> bytes | None:
    """What the push says: the notification as the recipient would see it in the app now."""
    view = await notification_view(acting_as(tao, recipient), notification_id)
    if view is None:
        return None  # hidden now (undone, blocked, target gone): nothing to push
    return json.dumps({"notification": notification_id, "type": view.notification.type.value,
                       "count": view.actor_count, "text": preview_text(view), "at": view.updated},
                      separators=(",", ":")).encode()


async def send_push(tao: Tao, payload: dict, sender: PushSender | None = None) -> dict[str, int]:
    """The push job's work; returns how many endpoints got it, were removed, will be retried."""
    recipient, nid = int(payload["r"]), int(payload["n"])
    attempt = int(payload.get("attempt", 0))
    out = {"sent": 0, "removed": 0, "retry": 0}
    if not (await prefs.load_preferences(tao, recipient)).push_on(NotificationType(payload["t"])):
        return out  # turned off or paused since: an opt-out always wins
    body = await _body(tao, recipient, nid)
    if body is None:
        return out
    subs = await _live(tao, recipient, await subscriptions(tao, recipient))
    if payload.get("only") is not None:
        only = {int(s) for s in payload["only"]}
        subs = [s for s in subs if s.id in only]
    sender = sender or sender_for(tao)
    cfg = tao.settings.notifications
    failed = []
    for sub in subs:
        status = await sender.send(sub, body, cfg.push_ttl_seconds)
        if status in (200, 201, 202):
            out["sent"] += 1
        elif status in (404, 410):
            await _remove(tao, recipient, sub)  # the browser unsubscribed: forget the endpoint
            out["removed"] += 1
        else:
            failed.append(sub.id)
    if failed and attempt + 1 < cfg.push_max_attempts:
        delay = int(min(3600.0, 2.0 * 2 ** attempt) * 1000 * random.uniform(0.5, 1.0))
        await tao.enqueue(recipient, PUSH_JOB, {**payload, "only": failed, "attempt": attempt + 1}, delay_ms=delay)
        out["retry"] = len(failed)
    elif failed:
        log.warning("push of notification %s to %d endpoint(s) gave up after %d attempts",
                    nid, len(failed), attempt + 1)
    return out
