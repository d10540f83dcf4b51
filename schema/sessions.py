"""Sessions and devices, password change, two-factor log-in: `viewer { sessions twoFactor }`,
`revokeSession`, `revokeOtherSessions`, `changePassword`, `completeLogIn`, `startTwoFactor`,
`confirmTwoFactor`, `disableTwoFactor`.

Every mutation here that checks a password or a code (argon2id through the password pool) is
priced like `logIn` and may appear once per document.
"""

from __future__ import annotations

import strawberry
from strawberry import Info

from resolvers import accounts, privacy, sessions, two_factor
from resolvers.context import RequestContext
from resolvers.records import AuthSession, User
from schema.accounts import PASSWORD_CHECK_COST, AccountError, AccountSessionPayload
from schema.cost import register_field_cost
from schema.mutations import actor, mutation
from schema.relay import Node, from_global_id, register_node, to_global_id
from schema.users import User as UserType

Ctx = Info[RequestContext, None]

for _name in ("completeLogIn", "changePassword", "startTwoFactor", "disableTwoFactor"):
    register_field_cost("Mutation", _name, PASSWORD_CHECK_COST, once_per_document=True)
# Ten recovery codes are hashed when two-factor is confirmed.
register_field_cost("Mutation", "confirmTwoFactor", 4 * PASSWORD_CHECK_COST, once_per_document=True)


@strawberry.type(description="A place your account is logged in: only you see your sessions.")
class Session(Node):
    id: strawberry.ID
    device: str = strawberry.field(description="Browser and system named from the User-Agent, e.g. "
                                               "\"Chrome 120 on Mac OS X 10.15 (Mac)\"; \"Unknown device\" if none.")
    ip_address: str = strawberry.field(description="The client address that logged in.")
    created_at: float = strawberry.field(description="When it logged in (ms since the epoch).")
    last_used_at: float = strawberry.field(description="When it was last used (ms since the epoch; "
                                                       "updated at most once a minute).")
    current: bool = strawberry.field(description="True for the session making this request.")

    @classmethod
    def from_record(cls, s: AuthSession, current_id: int | None = None) -> Session:
        return cls(id=to_global_id("Session", s.id), device=s.device or "Unknown device", ip_address=s.ip,
                   created_at=float(s.created),
                   # never shown before its creation: the store stamps `created` a moment after the log-in
                   # took its time for `last_used`
                   last_used_at=float(max(s.last_used, s.created)), current=s.id == current_id)


register_node("Session", "SESSION", Session.from_record)


async def _session_rule(ctx: RequestContext, obj: AuthSession) -> bool:
    return ctx.viewer_id is not None and obj.user_id == ctx.viewer_id


privacy.register_object_rule("SESSION", _session_rule)


@strawberry.type(description="Your two-factor log-in settings.")
class TwoFactorStatus:
    enabled: bool
    recovery_codes_left: int


async def user_sessions(info: Ctx, user_id: int) -> list[Session]:
    info.context.require_self(user_id, "sessions")
    found = await sessions.list_sessions(info.context.tao, user_id)
    return [Session.from_record(s, info.context.session_id) for s in found]


async def user_two_factor(info: Ctx, user: UserType) -> TwoFactorStatus:
    info.context.require_self(user.store_id, "two-factor settings")
    record = await info.context.loaders.object_by_id.load(user.store_id)
    assert isinstance(record, User)
    tf = record.two_factor
    return TwoFactorStatus(enabled=bool(tf and tf.enabled), recovery_codes_left=two_factor.recovery_codes_left(record))


# ---- inputs and payloads -----------------------------------------------------------------------

@strawberry.input
class SessionRevokeInput:
    id: strawberry.ID = strawberry.field(description="A session's id from `viewer { sessions { id } }`.")


@strawberry.type
class SessionRevokePayload:
    ok: bool = False
    errors: list[AccountError] = strawberry.field(default_factory=list)


@strawberry.type
class SessionRevokeOthersPayload:
    revoked_count: int = 0
    errors: list[AccountError] = strawberry.field(default_factory=list)


@strawberry.input
class AccountPasswordChangeInput:
    current_password: str
    new_password: str = strawberry.field(description="8-256 characters.")


@strawberry.type(description="Your other sessions were ended; this one goes on.")
class AccountPasswordChangePayload:
    ok: bool = False
    errors: list[AccountError] = strawberry.field(default_factory=list)


@strawberry.input
class AccountLogInCompleteInput:
    challenge: str = strawberry.field(description="The `challenge` `logIn` returned.")
    code: str = strawberry.field(description="The 6-digit code of your authenticator app, or an unused "
                                             "recovery code.")


@strawberry.input
class TwoFactorStartInput:
    password: str


@strawberry.type(description="Add the secret to an authenticator app (scan the QR code or open the URI), "
                             "then confirm with `confirmTwoFactor` and a code it shows.")
class TwoFactorStartPayload:
    secret: str | None = None
    provisioning_uri: str | None = strawberry.field(default=None, description="An otpauth:// URI.")
    qr_code_svg: str | None = strawberry.field(default=None, description="The URI as a QR code: an SVG data: URI.")
    errors: list[AccountError] = strawberry.field(default_factory=list)


@strawberry.input
class TwoFactorConfirmInput:
    code: str


@strawberry.type(description="Two-factor log-in is on. Keep the recovery codes somewhere safe: each works "
                             "once in place of a code, and they are shown only now.")
class TwoFactorConfirmPayload:
    recovery_codes: list[str] | None = None
    errors: list[AccountError] = strawberry.field(default_factory=list)


@strawberry.input
class TwoFactorDisableInput:
    password: str


@strawberry.type
class TwoFactorDisablePayload:
    ok: bool = False
    errors: list[AccountError] = strawberry.field(default_factory=list)


def _session_id(info: Ctx, global_id: str) -> int:
    return from_global_id(global_id, info.context.settings.store.logical_shards, expected="Session")[1]


@strawberry.type
class SessionsMutation:
    @mutation(description="End one of your sessions (on any device); its WebSockets close at once.")
    async def revoke_session(self, info: Ctx, input: SessionRevokeInput) -> SessionRevokePayload:
        ctx = info.context
        await sessions.do_revoke_session(ctx.tao, actor(info), _session_id(info, input.id),
                                         throttle=ctx.login_throttle, address=ctx.client_key, current=ctx.session_id)
        return SessionRevokePayload(ok=True)

    @mutation(description="End every session of yours but this one.")
    async def revoke_other_sessions(self, info: Ctx) -> SessionRevokeOthersPayload:
        n = await sessions.do_revoke_other_sessions(info.context.tao, actor(info), info.context.session_id)
        return SessionRevokeOthersPayload(revoked_count=n)

    @mutation(description="Change your password; every other session of yours ends.")
    async def change_password(self, info: Ctx, input: AccountPasswordChangeInput) -> AccountPasswordChangePayload:
        ctx = info.context
        await accounts.do_change_password(ctx.tao, actor(info), ctx.session_id, input.current_password,
                                          input.new_password, throttle=ctx.login_throttle, address=ctx.client_key)
        return AccountPasswordChangePayload(ok=True)

    @mutation(description="The second step of a log-in with two-factor on: opens the session.", anonymous=True)
    async def complete_log_in(self, info: Ctx, input: AccountLogInCompleteInput) -> AccountSessionPayload:
        ctx = info.context
        user, token = await two_factor.do_complete_log_in(ctx.tao, input.challenge, input.code,
                                                          throttle=ctx.login_throttle, address=ctx.client_key)
        return AccountSessionPayload(user=UserType.from_record(user), token=token)

    @mutation(description="Begin turning on two-factor log-in (asks for your password again).")
    async def start_two_factor(self, info: Ctx, input: TwoFactorStartInput) -> TwoFactorStartPayload:
        ctx = info.context
        e = await two_factor.do_start_two_factor(ctx.tao, actor(info), input.password, throttle=ctx.login_throttle,
                                                 address=ctx.client_key)
        return TwoFactorStartPayload(secret=e.secret, provisioning_uri=e.provisioning_uri,
                                     qr_code_svg=e.qr_svg_data_uri)

    @mutation(description="Turn two-factor log-in on with a code from your authenticator app.")
    async def confirm_two_factor(self, info: Ctx, input: TwoFactorConfirmInput) -> TwoFactorConfirmPayload:
        ctx = info.context
        assert ctx.session_id is not None
        codes = await two_factor.do_confirm_two_factor(ctx.tao, actor(info), ctx.session_id, input.code,
                                                       throttle=ctx.login_throttle, address=ctx.client_key)
        return TwoFactorConfirmPayload(recovery_codes=codes)

    @mutation(description="Turn two-factor log-in off (asks for your password again).")
    async def disable_two_factor(self, info: Ctx, input: TwoFactorDisableInput) -> TwoFactorDisablePayload:
        ctx = info.context
        await two_factor.do_disable_two_factor(ctx.tao, actor(info), input.password, throttle=ctx.login_throttle,
                                               address=ctx.client_key)
        return TwoFactorDisablePayload(ok=True)
