"""How every mutation runs: declared permissions, and one mapping of domain errors to payloads.

`@mutation(...)` is `strawberry.mutation` plus:
- `IsAuthenticated` (a strawberry permission class), unless `anonymous=True`: an anonymous
  request gets the top-level UNAUTHENTICATED error before any argument is looked at;
- `DomainErrorsToPayload` (a field extension): with `action=`, the viewer's per-user limit for
  that action is taken first (`resolvers.throttle.take_action`: THROTTLED, top-level, with
  `extensions.retryAfter`); the request's loaders are dropped before the resolver runs, so the
  payload reads the action's writes (actions read through loaders of their own,
  `resolvers.actor`); and a `resolvers.errors.UserError` raised by the resolver becomes the
  payload's `errors: [{code, message, field}]`, the error type being the one its payload's
  `errors` field lists. Top-level errors and faults pass through untouched.

A resolver then only parses its input, calls one `do_<verb>_<noun>` action and builds the
payload from the result. A payload that carries data with an error (ALREADY_COMPLETED's media)
passes `on_error`, which returns the payload's other fields for that error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission
from strawberry.types.base import StrawberryList, StrawberryOptional
from strawberry.types.field import StrawberryField

from resolvers.errors import LOGIN_REQUIRED, AuthenticationError, UserError
from resolvers.throttle import Action, take_action


class IsAuthenticated(BasePermission):
    """The request has a viewer (a valid session); otherwise a top-level UNAUTHENTICATED error."""

    message = LOGIN_REQUIRED

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return info.context.viewer_id is not None

    def on_unauthorized(self) -> None:
        raise AuthenticationError(self.message)


OnError = Callable[[UserError], dict[str, Any]]


class DomainErrorsToPayload(FieldExtension):
    """Fresh loaders for the mutation, and its `UserError` as its payload's `errors` (see the module docstring)."""

    def __init__(self, on_error: OnError | None = None, action: Action | None = None) -> None:
        self.on_error = on_error
        self.action = action
        self.field: StrawberryField | None = None

    def apply(self, field: StrawberryField) -> None:
        self.field = field

    def resolve(self, next_: Callable[..., Any], source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        raise TypeError("mutation resolvers are async")  # pragma: no cover

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: strawberry.Info,
                            **kwargs: Any) -> Any:
        ctx = info.context
        ctx.reset_loaders()
        if self.action is not None and ctx.viewer_id is not None:
            # Per-user action limits (resolvers.throttle): refused before anything runs.
            await take_action(ctx.tao, ctx.settings.throttle, ctx.viewer_id, self.action)
        try:
            return await next_(source, info, **kwargs)
        except UserError as e:
            return self.payload(e)

    def payload(self, e: UserError) -> Any:
        assert self.field is not None
        payload_type: Any = self.field.type
        if isinstance(payload_type, StrawberryOptional):
            payload_type = payload_type.of_type
        errors_type = payload_type.__strawberry_definition__.get_field("errors").type
        assert isinstance(errors_type, StrawberryList), f"{payload_type.__name__}.errors must be a list"
        error_type: Any = errors_type.of_type
        fields = error_type.__strawberry_definition__
        extra_error = {"retry_after": e.retry_after} if fields.get_field("retry_after") is not None else {}
        error = error_type(code=e.code, message=e.message, field=e.field, **extra_error)
        extra = self.on_error(e) if self.on_error is not None else {}
        return payload_type(errors=[error], **extra)


def actor(info: strawberry.Info) -> int:
    """The viewer, as the actor of a mutation that `IsAuthenticated` let through."""
    viewer: int | None = info.context.viewer_id
    assert viewer is not None, "only for fields declared with IsAuthenticated"
    return viewer


def mutation(*, description: str | None = None, anonymous: bool = False, on_error: OnError | None = None,
             action: Action | None = None) -> Any:
    """`strawberry.mutation` with the viewer required (unless `anonymous`), `UserError` mapped to
    the payload, and, with `action`, the viewer's limits for that action taken first."""
    return strawberry.mutation(
        description=description,
        permission_classes=[] if anonymous else [IsAuthenticated],
        extensions=[DomainErrorsToPayload(on_error, action)],
    )


def authenticated_field(*, description: str | None = None) -> Any:
    """`strawberry.field` for a field only a logged-in viewer may ask for."""
    return strawberry.field(description=description, permission_classes=[IsAuthenticated])
