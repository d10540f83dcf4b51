"""Accounts and sessions: `signUp`, `logIn`, `logOut`.

`signUp` and `logIn` return a session `token` once: the client sends it as
`Authorization: Bearer <token>` (HTTP) or `{"Authorization": "Bearer <token>"}` in the WebSocket
`connection_init` payload.
"""

from __future__ import annotations

import strawberry
from strawberry import Info

from resolvers import accounts
from resolvers.context import RequestContext
from schema.cost import register_field_cost
from schema.errors import Error
from schema.mutations import actor, mutation
from schema.users import User

# The domain's enum is the GraphQL enum: strawberry.enum marks the class in place (the alias stays a type).
AccountErrorCode = accounts.AccountErrorCode
strawberry.enum(accounts.AccountErrorCode)
Ctx = Info[RequestContext, None]

# One argon2id hash or check at the default cost takes ~0.12 s of CPU (argon2-cffi, time_cost 3,
# 64 MiB, 4 lanes), far more than reading a page: priced so that the default budget (10 000
# points a minute) pays for 20 of them per viewer a minute. Each may appear once per document,
# so aliases cannot multiply that work inside one priced request.
PASSWORD_CHECK_COST = 500
register_field_cost("Mutation", "logIn", PASSWORD_CHECK_COST, once_per_document=True)
register_field_cost("Mutation", "signUp", PASSWORD_CHECK_COST, once_per_document=True)


@strawberry.type
class AccountError(Error):
    code: AccountErrorCode
    message: str
    field: str | None
    retry_after: float | None = strawberry.field(
        default=None, description="With TOO_MANY_ATTEMPTS: seconds until an attempt is allowed again.")


@strawberry.input
class AccountSignUpInput:
    username: str = strawberry.field(description="1-30 letters, digits, periods, underscores; unique ignoring case.")
    password: str = strawberry.field(description="8-256 characters.")
    full_name: str = ""


@strawberry.input
class AccountLogInInput:
    username: str
    password: str


@strawberry.input
class AccountLogOutInput:
    all_sessions: bool = strawberry.field(
        default=False, description="End every session of the account, not just this one.")


@strawberry.type(description="On success `token` is set; it is shown only once. With two-factor log-in on, "
                             "`logIn` sets `challenge` instead: send it with a code to `completeLogIn`.")
class AccountSessionPayload:
    user: User | None = None
    token: str | None = None
    challenge: str | None = strawberry.field(
        default=None, description="Two-factor log-in: pass it to `completeLogIn` with a code before it expires.")
    challenge_expires_at: float | None = strawberry.field(default=None, description="ms since the epoch.")
    errors: list[AccountError] = strawberry.field(default_factory=list)


@strawberry.type
class AccountLogOutPayload:
    ok: bool = False
    errors: list[AccountError] = strawberry.field(default_factory=list)


def client_of(ctx: RequestContext) -> accounts.Client:
    """Who opens a session: the client's address and User-Agent."""
    return accounts.Client(ctx.client_key, ctx.user_agent)


@strawberry.type
class AccountsMutation:
    @mutation(description="Create an account and log in.", anonymous=True)
    async def sign_up(self, info: Ctx, input: AccountSignUpInput) -> AccountSessionPayload:
        ctx = info.context
        user, token = await accounts.do_sign_up(ctx.tao, input.username, input.password, input.full_name,
                                                client_of(ctx))
        return AccountSessionPayload(user=User.from_record(user), token=token)

    @mutation(description="Open a session with a username and password.", anonymous=True)
    async def log_in(self, info: Ctx, input: AccountLogInInput) -> AccountSessionPayload:
        ctx = info.context
        result = await accounts.do_log_in(ctx.tao, input.username, input.password,
                                          throttle=ctx.login_throttle, client=client_of(ctx))
        if result.challenge is not None:  # two-factor: no user until the second step
            return AccountSessionPayload(challenge=result.challenge,
                                         challenge_expires_at=float(result.challenge_expires_at or 0))
        return AccountSessionPayload(user=User.from_record(result.user), token=result.token)

    @mutation(description="End the current session (or all of them); its token stops working at once.")
    async def log_out(self, info: Ctx, input: AccountLogOutInput | None = None) -> AccountLogOutPayload:
        ctx = info.context
        assert ctx.session_id is not None  # a viewer always comes with their session
        await accounts.do_log_out(ctx.tao, actor(info), ctx.session_id,
                                  all_sessions=bool(input and input.all_sessions))
        return AccountLogOutPayload(ok=True)
