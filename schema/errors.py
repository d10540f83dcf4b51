"""Typed mutation errors: every payload's `errors` list holds objects implementing `Error`.

Each domain declares its own error type with a `code` from the enum its resolvers own
(`FollowError.code: FollowErrorCode`); `schema.mutations` turns a `resolvers.errors.UserError`
into one of them, in the payload's `errors`. An empty `errors` list means the mutation did what
it was asked.
"""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An expected failure of a mutation; `field` names the input field at fault.")
class Error:
    message: str
    field: str | None
