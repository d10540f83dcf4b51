"""Data export and account deletion: `requestDataExport`, `dataExport`, `deleteAccount` (docs/accounts.md)."""

from __future__ import annotations

import strawberry
from strawberry import Info

from resolvers.account_data import deletion, export
from resolvers.accounts import AccountErrorCode
from resolvers.context import RequestContext
from schema.accounts import PASSWORD_CHECK_COST, AccountError
from schema.cost import register_field_cost
from schema.errors import Error
from schema.mutations import actor, authenticated_field, mutation

Ctx = Info[RequestContext, None]
DataExportFormat = export.DataExportFormat
strawberry.enum(export.DataExportFormat)
DataExportErrorCode = export.DataExportErrorCode
strawberry.enum(export.DataExportErrorCode)
register_field_cost("Mutation", "deleteAccount", PASSWORD_CHECK_COST, once_per_document=True)
register_field_cost("Mutation", "requestDataExport", PASSWORD_CHECK_COST, once_per_document=True)


@strawberry.type(description="An archive of the viewer's data, being prepared or ready to download.")
class DataExport:
    id: strawberry.ID
    format: DataExportFormat
    status: str = strawberry.field(description="RUNNING, READY or FAILED.")
    requested_at: float
    parts_uploaded: int
    bytes_written: float
    kinds_done: int
    kinds_total: int
    url: str | None = strawberry.field(description="A signed URL of the zip, while it is valid (READY only).")
    expires_at: float | None

    @classmethod
    async def build(cls, ctx: RequestContext, state: dict) -> DataExport:
        url, expires = await export.export_url(ctx.tao, getattr(ctx, "media", None), state)
        return cls(id=strawberry.ID(str(state["id"])), format=export.DataExportFormat(state["format"]),
                   status=state["status"], requested_at=float(state["requested_at"]),
                   parts_uploaded=int(state["parts"]),
                   bytes_written=float(state["bytes"]), kinds_done=int(state["kinds_done"]),
                   kinds_total=int(state["kinds_total"]), url=url, expires_at=float(expires) if expires else None)


@strawberry.type
class DataExportError(Error):
    code: DataExportErrorCode
    message: str
    field: str | None
    retry_after: float | None = strawberry.field(
        default=None, description="With TOO_MANY_ATTEMPTS: seconds until an attempt is allowed again.")


@strawberry.input
class DataExportRequestInput:
    format: DataExportFormat = DataExportFormat.JSON
    password: str | None = strawberry.field(
        default=None, description="The account's current password: required (without it, INVALID_CREDENTIALS).")


@strawberry.type
class DataExportPayload:
    export: DataExport | None = None
    errors: list[DataExportError] = strawberry.field(default_factory=list)


@strawberry.input
class AccountDeleteInput:
    password: str = strawberry.field(description="The account's current password.")


@strawberry.type(description="The account is deactivated now and purged at `purgeAfter` unless you log in before.")
class AccountDeletePayload:
    ok: bool = False
    purge_after: float | None = None
    errors: list[AccountError] = strawberry.field(default_factory=list)


@strawberry.type
class AccountDataQuery:
    @authenticated_field(description="The viewer's latest data export (null: none requested).")
    async def data_export(self, info: Ctx) -> DataExport | None:
        state = await export.export_state(info.context.tao, actor(info))
        return await DataExport.build(info.context, state) if state else None


@strawberry.type
class AccountDataMutation:
    @mutation(description="Start preparing a zip of all your data, given your current password (one at a time; "
              "repeating returns the running one).")
    async def request_data_export(self, info: Ctx, input: DataExportRequestInput | None = None) -> DataExportPayload:
        fmt = input.format if input is not None else DataExportFormat.JSON
        ctx = info.context
        state = await export.do_request_data_export(ctx.tao, actor(info), fmt, input.password if input else None,
                                                    throttle=ctx.login_throttle, address=ctx.client_key)
        return DataExportPayload(export=await DataExport.build(info.context, state))

    @mutation(description="Delete your account: hidden at once, erased after the grace period; log in to cancel.")
    async def delete_account(self, info: Ctx, input: AccountDeleteInput) -> AccountDeletePayload:
        ctx = info.context
        state = await deletion.do_delete_account(ctx.tao, actor(info), input.password,
                                                 throttle=ctx.login_throttle, client_key=ctx.client_key)
        return AccountDeletePayload(ok=True, purge_after=float(state.purge_after))


__all__ = ["AccountDataMutation", "AccountDataQuery", "AccountErrorCode"]
