"""The store's errors. `TaoError` is the root; driver errors are translated once, at the backend
boundary (`raise ShardUnavailableError(shard) from exc`), so callers never see aiomysql,
aiosqlite or pymemcache exceptions."""

from __future__ import annotations

from typing import Any


class TaoError(Exception):
    """Root of every error the `tao` package raises."""


class UnknownTypeError(TaoError, KeyError):
    """An object or association type that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; say it plainly
        return str(self.args[0]) if self.args else "unknown type"


class InvalidIdError(TaoError, ValueError):
    """An id that is not a valid taogram id (negative, too large, or naming a shard that does not exist)."""


class InvalidDataError(TaoError, ValueError):
    """Object or association data that is not a small JSON-able dict."""


class ObjectNotFoundError(TaoError, LookupError):
    """The object does not exist (or was deleted)."""


class ShardUnavailableError(TaoError, ConnectionError):
    """A shard's server cannot be reached or failed mid-call. Other shards keep serving."""

    def __init__(self, shard: int, detail: str = "") -> None:
        self.shard = shard
        # True when it failed before anything was sent (so nothing was written): see placement.
        self.unsent = False
        super().__init__(f"shard {shard} is unavailable" + (f": {detail}" if detail else ""))


class ShardTimeoutError(ShardUnavailableError, TimeoutError):
    """A shard did not answer within its acquire or query timeout."""


class ConflictError(TaoError):
    """A write lost a race it cannot settle by itself (e.g. a uniqueness constraint); retrying may succeed."""


class VersionConflictError(ConflictError):
    """A versioned write (`obj_update(..., version=)`, `obj_delete(..., version=)`) found the
    object at another version: nothing was written. `current` is the object as it stands (None
    if it is gone), read in the same transaction, so a caller can recompute from it and try again."""

    def __init__(self, message: str, current: Any = None) -> None:
        super().__init__(message)
        self.current = current


class MigrationError(TaoError):
    """A schema migration failed or the database is at an unknown schema version."""


class DuplicateKeyError(ConflictError):
    """An insert hit an existing primary or unique key."""


class DeadlockError(ConflictError):
    """The database chose this transaction as a deadlock victim or a lock wait timed out; the
    store retries such transactions itself."""


class JobNotDueError(TaoError):
    """Raised by a job handler that finds its job is not due yet by the store's clock (a drain
    that runs delayed jobs early, `run_until_idle(include_delayed=True)`): the outbox puts the job
    back for `run_at` (ms on the store's clock), as if it had not run; no attempt is counted."""

    def __init__(self, run_at: int) -> None:
        super().__init__(f"not due until {run_at}")
        self.run_at = run_at


class IdLeaseLostError(TaoError):
    """No id can be made now for a shard: this process holds no id slot on the shard's database
    server, or its lease there ended (a pause, or that server unreachable, for longer than
    `store.id_lease_seconds`) and is being renewed (tao/ids.py, tao/id_leases.py). Nothing was
    written; retrying shortly succeeds (once that server is reachable)."""


class IdSlotsExhaustedError(TaoError):
    """Every id slot on a database server is leased by a live process (tao/id_leases.py): this
    process cannot make ids for that server's shards."""
