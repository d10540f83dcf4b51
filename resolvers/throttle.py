"""Throttles: failed log-ins (per account and per client address), failed second factors, and
per-user action limits (posts, comments, likes, follows, messages per hour and per day).

Every one is a set of token buckets in `tao.rate_limits`: shared by every server process
through Redis when the broker is Redis, in process memory in the embedded default. So N server
processes give one budget, not N.

- `LoginThrottle`: failures per client address, per account from one address, and per account
  from every address (this one slows an attack, it never locks the owner out), `AuthSettings.login_*`. An
  attempt takes its token before any secret is checked (so a burst sent at once is bounded
  too) and a success gives it back; a refused attempt checks no password; a completed log-in
  also refills its username's bucket (never the address's: its count is not a secret a client
  can clear by logging in to its own account). A wrong
  second factor (TOTP or recovery code) counts as a failure of the account and the address too.
- `take_action`: one token from the actor's hourly and daily buckets of that action
  (`ThrottleSettings`), both or neither; refused, it raises `ThrottledError` (top-level
  THROTTLED with `extensions.retryAfter`) before the action runs. Mutations declare theirs:
  `@mutation(action=Action.LIKES)` (schema.mutations).
- `spend_cost_budget`: points of the viewer's query cost budget (`LimitSettings.cost_budget`,
  the bucket `schema.cost.CostBudget` spends from) for work an operation's static cost cannot
  price, e.g. the events a subscription's `after:` replays; refused: `ThrottledError`.
- `EventBudget`: a subscription's points per delivered event (its selection runs again for
  each), from the same budget, taken a few events' worth at a time (one shared-limiter call for
  `EVENTS_PER_TAKE` events, not one each) and what is left over given back when it ends.
- `PointsAhead`: the take-ahead balance both `EventBudget` and `schema.cost.CostBudget` spend from.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import logging
import math

from config import AuthSettings, LimitSettings, ThrottleSettings
from resolvers.errors import ThrottledError
from tao import Bucket, Mode, Taken, Tao
from tao.rate_limits import RateLimiter

log = logging.getLogger("taogram.throttle")

HOUR, DAY = 3600.0, 86_400.0
IPV6_CLIENT_PREFIX = 64  # the least an ISP gives one customer (RFC 6177: often a /56 or a /48)


@functools.lru_cache(maxsize=4096)  # a few µs of parsing, asked at every anonymous request
def address_key(address: str) -> str:
    """What a per-address limit counts a client address under: an IPv6 address by its /64 (one
    customer's network: its every host, and every address a host picks for itself, RFC 8981),
    an IPv4-mapped IPv6 address as its IPv4 address, anything else as it is. Keyed by the whole
    IPv6 address, one client with a /64 was 2**64 clients to every per-address limit (the failed
    log-ins, an anonymous cost budget, the WebSockets per address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scope id (fe80::1%eth0) names no network
    except ValueError:
        return address  # "unknown", a Unix socket's peer, a test's made-up key
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


def cost_bucket(key: str, capacity: float, window: float) -> Bucket:
    """The bucket of one viewer's (or anonymous address's) query cost budget: the schema's cost
    guard and `spend_cost_budget` spend from this one bucket."""
    return Bucket(f"cost:{key}", capacity, window)


async def spend_cost_budget(tao: Tao, limits: LimitSettings, key: str, points: int, what: str) -> None:
    """Spend `points` of the budget under `key` (`RequestContext.cost_key`), or raise
    ThrottledError (nothing spent) when they are not there. `what` names the work, for the message."""
    if points <= 0:
        return
    bucket = cost_bucket(key, float(limits.cost_budget), float(limits.cost_window_seconds))
    taken = await tao.rate_limits.take([bucket], float(points), Mode.TAKE)
    if not taken.ok:
        raise ThrottledError(f"Query cost budget exhausted: {what} needs {points} points and {int(taken.levels[0])} "
                             f"are left; try again in {wait_text(taken.retry_after)}.", round(taken.retry_after, 3))


class PointsAhead:
    """Points of one shared bucket taken ahead of their spending and spent from a balance held
    here: one shared-limiter call for several spends. The one rule of `schema.cost.CostBudget`
    (a process's balance per viewer for its requests) and `EventBudget` (a subscription's events):

    - a spend the balance covers is spent from it, with no call;
    - else the balance goes towards it and the rest is taken from the bucket, with more ahead up
      to `ahead` in all (the caller's few spends' worth); when that does not fit, exactly the rest
      (near the end of the budget every point is usable);
    - points are always taken before they are spent, so nobody is served more than the bucket,
      however many processes spend from it;
    - when a take ahead leaves less than `LOW_SHARE` of the bucket's capacity in it, what was
      taken beyond the spend is given back at once: the viewer's other processes and
      subscriptions then need every point, and points held here would be missing to them.

    The balance towards a spend is set aside before the take is awaited (and put back if the take
    fails), so spends of one balance running at once never spend a point twice. Until the
    seventeenth session CostBudget and EventBudget each had their own copy, and only CostBudget
    gave back a take ahead near the end of the budget."""

    LOW_SHARE = 0.25

    __slots__ = ("balance", "level")

    def __init__(self) -> None:
        self.balance = 0.0  # taken from the bucket, not spent yet
        self.level = 0.0  # the bucket's level after this balance's last take

    @property
    def left(self) -> float:
        """Points left as this balance last saw them: the bucket's level at its last take, plus it."""
        return self.level + self.balance

    async def spend(self, limiter: RateLimiter, bucket: Bucket, points: float, ahead: float) -> Taken | None:
        """Spend `points`; None when the balance paid, else the take that decided (`ok` False:
        nothing spent, `retry_after` says when they would be there)."""
        if points <= self.balance:
            self.balance -= points
            return None
        used, self.balance = self.balance, 0.0
        need = points - used
        taken: Taken | None = None
        for amount in dict.fromkeys((max(ahead - used, need), need)):
            taken = await limiter.take([bucket], float(amount), Mode.TAKE)
            if taken.ok:
                self.level = taken.levels[0]
                if amount > need and self.level < bucket.capacity * self.LOW_SHARE:
                    refunded = await limiter.take([bucket], float(amount - need), Mode.REFUND)
                    amount, self.level = need, refunded.levels[0]
                self.balance += amount - need  # another spend may have changed it meanwhile
                return taken
        assert taken is not None
        self.balance += used
        self.level = taken.levels[0]
        return taken

    def release(self) -> float:
        """Take the unspent balance out (for the caller to give back)."""
        amount, self.balance = self.balance, 0.0
        return amount


class EventBudget:
    """A subscription's charge per delivered event (see the module docstring). `pay(points)`
    spends from points taken ahead (`PointsAhead`), `EVENTS_PER_TAKE` events' worth at a time (no
    more than `MOST_HELD` points); `ThrottledError` when not even this event's points are there.
    `release()` gives back what was taken and not spent."""

    EVENTS_PER_TAKE = 8
    MOST_HELD = 256  # points held ahead by one subscription at most (the rest of the budget stays free)

    def __init__(self, tao: Tao, limits: LimitSettings, key: str) -> None:
        self.tao = tao
        self.bucket = cost_bucket(key, float(limits.cost_budget), float(limits.cost_window_seconds))
        self.held = PointsAhead()

    async def pay(self, points: int, what: str) -> None:
        ahead = points * max(1, min(self.EVENTS_PER_TAKE, self.MOST_HELD // max(points, 1)))
        taken = await self.held.spend(self.tao.rate_limits, self.bucket, points, ahead)
        if taken is not None and not taken.ok:
            raise ThrottledError(f"Query cost budget exhausted: {what} costs {points} points and "
                                 f"{int(self.held.left)} are left", round(taken.retry_after, 3))

    def release(self) -> None:
        """Give back the points taken and not spent (in the background: called as a
        subscription ends, a cancellation included)."""
        amount = self.held.release()
        if amount <= 0:
            return
        task = asyncio.ensure_future(self.tao.rate_limits.take([self.bucket], amount, Mode.REFUND))
        _REFUNDS.add(task)
        task.add_done_callback(_refunded)


_REFUNDS: set[asyncio.Future] = set()  # referenced until done


def _refunded(task: asyncio.Future) -> None:
    _REFUNDS.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("giving back a subscription's unspent cost points failed: %s", task.exception())


def wait_text(seconds: float) -> str:
    """"12 seconds", "3 minutes", "2 hours": rounded up, for messages."""
    if seconds < 60:
        n, unit = max(1, math.ceil(seconds)), "second"
    elif seconds < 3600:
        n, unit = math.ceil(seconds / 60), "minute"
    else:
        n, unit = math.ceil(seconds / 3600), "hour"
    return f"{n} {unit}{'s' if n > 1 else ''}"


class LoginThrottle:
    """Failed log-ins counted in shared buckets, so that a stranger can neither guess a password
    without bound nor lock its owner out:

    - per client address (`login:addr:<address>`, `login_failures_per_address`): any accounts;
    - per account *from one address* (`login:user:<account>:<address>`,
      `login_failures_per_username`): empty, that address is refused for that account only;
    - per account from everywhere (`login:user:<account>`, `login_failures_per_username_total`,
      much higher). Empty, the account is under a spread-out attack: it slows, it does not lock.
      An attempt then also takes the one token of the address's slow bucket for the account
      (`login:slow:<account>:<address>`, one per window): one failure per address per window
      instead of ten, while the owner, from their own network, still logs in with the right
      password (a success gives the token back, so a two-factor log-in's second step passes too).

    `<account>` is `accounts.throttle_key`: the account's id once known, else the typed name.

    Until the sixteenth session the account's bucket counted every address together and its
    10 failures refused the right password from anywhere for 15 minutes: anyone could lock any
    account out (`tests/resolvers/test_login_lockout.py`)."""

    def __init__(self, tao: Tao, auth: AuthSettings) -> None:
        self.tao = tao
        window = float(auth.login_window_seconds)
        self._per_pair = float(auth.login_failures_per_username), window
        self._per_username = float(auth.login_failures_per_username_total), window
        self._per_address = float(auth.login_failures_per_address), window

    def _address(self, address: str) -> Bucket:
        return Bucket(f"login:addr:{address_key(address)}", *self._per_address)

    def _pair(self, username: str, address: str) -> Bucket:
        return Bucket(f"login:user:{username}:{address_key(address)}", *self._per_pair)

    def _account(self, username: str) -> Bucket:
        return Bucket(f"login:user:{username}", *self._per_username)

    def _slow(self, username: str, address: str) -> Bucket:
        return Bucket(f"login:slow:{username}:{address_key(address)}", 1.0, self._per_pair[1])

    async def attempt(self, username: str, address: str) -> tuple[str, float]:
        """Take one attempt before any secret is checked: ("", 0) if taken, else ("address" or
        "username", seconds to wait) for the bound that refuses, and nothing taken. An attempt
        counts as a failure unless `refund` or `record_success` gives it back.

        Taking first makes the bound hold under concurrency: the check used to be a peek, and a
        failure was counted only once its password check had run, so a burst of N guesses sent
        at once all passed the peek and ran N checks, whatever the limit (probe: 30 at once for
        a limit of 10 ran 30)."""
        addr, pair, account = self._address(address), self._pair(username, address), self._account(username)
        rl = self.tao.rate_limits
        taken = await rl.take([addr, pair, account], 1.0, Mode.TAKE)
        if taken.ok:
            return "", 0.0
        if taken.levels[0] < 1.0:
            return "address", max(taken.retry_after, 0.001)
        if taken.levels[1] < 1.0:
            return "username", max(taken.retry_after, 0.001)
        # Only the account's bucket for all addresses is empty: under attack, each address gets
        # one failure per window (its slow bucket), taken with the others at once (atomic: two
        # sent together from one address do not both pass).
        slow = await rl.take([addr, pair, self._slow(username, address)], 1.0, Mode.TAKE)
        if not slow.ok:
            return ("address" if slow.levels[0] < 1.0 else "username"), max(slow.retry_after, 0.001)
        return "", 0.0

    async def challenge_try(self, challenge_id: int, tries: int, ttl_seconds: float) -> bool:
        """Take one of a two-factor challenge's `tries` (False: none left). A bucket of its own,
        refilling half a try over the challenge's life: the count kept on the challenge is read
        and written back, so codes sent at once all read the same count and were all checked."""
        bucket = Bucket(f"login:challenge:{challenge_id}", float(tries), 2.0 * ttl_seconds * tries)
        return (await self.tao.rate_limits.take([bucket], 1.0, Mode.TAKE)).ok

    async def refund(self, username: str, address: str) -> None:
        """The attempt succeeded: it does not count (a right password to change it, say)."""
        # Not the account's count from every address: under attack the attempt did not take
        # from it, and a token given back there would be one more guess for the attacker. It
        # counts attempts (100 a window by default) and only slows: successes pass anyway.
        await self.tao.rate_limits.take([self._address(address), self._pair(username, address),
                                         self._slow(username, address)], 1.0, Mode.REFUND)

    async def record_success(self, username: str, address: str) -> None:
        """A log-in completed: its attempt is given back to the address and the account's bucket
        for this address refills (the address's count is not a secret a client can clear by
        logging in; nor is the account's count from every address, which a log-in of the owner
        in the middle of an attack would otherwise hand back to the attacker)."""
        await self.tao.rate_limits.take([self._address(address)], 1.0, Mode.REFUND)
        await self.tao.rate_limits.reset([self._pair(username, address).key, self._slow(username, address).key])


class Action(enum.Enum):
    POSTS = "posts"
    COMMENTS = "comments"
    LIKES = "likes"
    FOLLOWS = "follows"
    MESSAGES = "messages"
    STORIES = "stories"


_NOUN = {Action.POSTS: "posts", Action.COMMENTS: "comments", Action.LIKES: "likes", Action.FOLLOWS: "follows",
         Action.MESSAGES: "messages", Action.STORIES: "stories"}


async def take_action(tao: Tao, settings: ThrottleSettings, actor_id: int, action: Action) -> None:
    """Count one `action` by `actor_id`; ThrottledError (nothing counted) when over a limit."""
    if not settings.enabled:
        return
    per_hour = getattr(settings, f"{action.value}_per_hour")
    per_day = getattr(settings, f"{action.value}_per_day")
    buckets = [Bucket(f"act:{action.value}:h:{actor_id}", float(per_hour), HOUR),
               Bucket(f"act:{action.value}:d:{actor_id}", float(per_day), DAY)]
    taken = await tao.rate_limits.take(buckets, 1.0, Mode.TAKE)
    if taken.ok:
        return
    which = f"{per_hour} {_NOUN[action]} an hour" if taken.levels[0] < 1.0 else f"{per_day} {_NOUN[action]} a day"
    raise ThrottledError(f"You have reached the limit of {which}: try again in {wait_text(taken.retry_after)}.",
                         round(taken.retry_after, 3))
