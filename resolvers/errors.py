"""The domain's errors: `AppError` is the root of everything `resolvers` raises on purpose.

Two kinds, kept apart because clients handle them differently:
- top-level errors (`AuthenticationError`, `PermissionDeniedError`, `BadInputError`,
  `UnavailableError`, `ThrottledError`) abort a field and reach the client in the response's `errors` list with
  `extensions.code`; the schema's error extension lets exactly these through unmasked;
- `UserError` is an expected failure of a mutation (username taken, not following, ...): the
  schema turns it into the payload's typed `errors: [{code, message, field}]`, with `code` a
  member of the enum its domain owns (`FollowErrorCode.CANNOT_FOLLOW_SELF`).

Store errors become domain errors here, once (`domain_error`): the loaders translate each failed
key's error, and the schema's error policy asks `domain_error` about anything else that
escaped a field, so `schema/` never needs to know the store's errors.

Every message says what the client can do next.
"""

from __future__ import annotations

import enum

from tao import IdLeaseLostError, ShardUnavailableError

LOGIN_REQUIRED = "You must be logged in: send `Authorization: Bearer <token>` with a token from `logIn` or `signUp`."


class AppError(Exception):
    """Root of the errors `resolvers` raises deliberately; anything else is a fault and is masked."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationError(AppError):
    """No valid session: the token is missing where one is required, unknown, or expired."""

    code = "UNAUTHENTICATED"


class PermissionDeniedError(AppError):
    """The viewer is authenticated but may not see or do this."""

    code = "FORBIDDEN"


class BadInputError(AppError):
    """An argument is malformed (an id, a cursor, a page size) in a way the type system cannot catch."""

    code = "BAD_USER_INPUT"


class UnavailableError(AppError):
    """A backend shard is down; other data still answers. Safe to retry."""

    code = "UNAVAILABLE"


class ThrottledError(AppError):
    """A rate limit refused the request (an action limit, the cost budget); nothing was done.
    `retry_after`: seconds until the same request would pass (`extensions.retryAfter`)."""

    code = "THROTTLED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UserError(AppError):
    """An expected failure of a mutation; becomes one entry of the payload's `errors`."""

    def __init__(self, code: enum.Enum, message: str, field: str | None = None, *,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[assignment]  # a domain enum member, not a string
        self.field = field
        # Seconds until a throttled attempt may be retried (payload errors that have `retryAfter`).
        self.retry_after = retry_after


TOP_LEVEL_ERRORS = (AuthenticationError, PermissionDeniedError, BadInputError, UnavailableError, ThrottledError)

UNAVAILABLE_MESSAGE = "Part of the data is temporarily unavailable; retry shortly."


def domain_error(exc: BaseException) -> BaseException:
    """The domain's error for a store error that has one (a shard down or too slow, or no id
    can be made until the process's id lease is renewed, is `UnavailableError`, whose message
    names no shard); any other exception unchanged."""
    if isinstance(exc, (ShardUnavailableError, IdLeaseLostError)):  # timeouts included
        error = UnavailableError(UNAVAILABLE_MESSAGE)
        error.__cause__ = exc
        return error
    return exc
