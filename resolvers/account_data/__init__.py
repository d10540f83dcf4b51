"""A user's data as one thing: export it (a zip in object storage), delete it (deactivate, then
purge after a grace period), and prove nothing remains (residue). Domains plug in by registering
their kinds (`registry.register_kind`); see docs/accounts.md."""

from resolvers.account_data.registry import DataContext, DataKind, ExportFile, kinds, register_kind

__all__ = ["DataContext", "DataKind", "ExportFile", "kinds", "register_kind"]
