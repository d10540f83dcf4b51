"""Failure throttling (log-in attempts): at most `max_failures` per key within a sliding window.

In process memory, per server process: `LoginThrottle` bounds online password guessing against
one account, and the password checks one client address can cause, to a number of failures per
window per process, on top of argon2's cost per attempt.
"""

from __future__ import annotations

import time
from collections import deque

MAX_KEYS = 100_000


class FailureThrottle:
    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 if it may now."""
        now = time.monotonic()
        q = self._recent(key, now)
        if len(q) < self.max_failures:
            return 0.0
        return q[0] + self.window - now

    def record_failure(self, key: str) -> None:
        now = time.monotonic()
        if len(self._failures) >= MAX_KEYS:  # forget the quietest keys rather than grow without bound
            for k in [k for k, q in self._failures.items() if q[-1] <= now - self.window]:
                del self._failures[k]
        self._failures.setdefault(key, deque()).append(now)

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginThrottle:
    """Failed log-ins counted per username and per client address; either one over its limit
    refuses further attempts (before any password is checked) until its window passes.

    The address bound is what stops a flood of unknown or varied usernames, each of which
    stays under the per-username limit. A success resets its username's count only: the
    address's count is not a secret the client can clear by logging in to its own account.
    """

    def __init__(self, per_username: int, per_address: int, window_seconds: float) -> None:
        self.usernames = FailureThrottle(per_username, window_seconds)
        self.addresses = FailureThrottle(per_address, window_seconds)

    def retry_after(self, username: str, address: str) -> tuple[str, float]:
        """("username" or "address", seconds to wait) for the bound that refuses; ("", 0) if none."""
        for what, throttle, key in (("address", self.addresses, address), ("username", self.usernames, username)):
            wait = throttle.retry_after(key)
            if wait > 0:
                return what, wait
        return "", 0.0

    def record_failure(self, username: str, address: str) -> None:
        self.usernames.record_failure(username)
        self.addresses.record_failure(address)

    def record_success(self, username: str) -> None:
        self.usernames.reset(username)
