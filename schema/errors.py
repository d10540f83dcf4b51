"""Typed mutation errors: every payload's `errors` list holds objects implementing `Error`.

Each domain declares its own error type with a `code` from the enum its resolvers own
(`FollowError.code: FollowErrorCode`); `user_errors()` converts a `resolvers.errors.UserError`.
An empty `errors` list means the mutation did what it was asked.
"""

from __future__ import annotations

from typing import Any, TypeVar

import strawberry

from resolvers.errors import UserError


@strawberry.interface(description="An expected failure of a mutation; `field` names the input field at fault.")
class Error:
    message: str
    field: str | None


E = TypeVar("E")


def user_errors(error_type: type[E], exc: UserError) -> list[E]:
    kwargs: dict[str, Any] = {"code": exc.code, "message": exc.message, "field": exc.field}
    return [error_type(**kwargs)]
