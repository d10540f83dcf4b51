"""Every mutation is declared the one way (`schema.mutations.mutation`): the viewer required by
the `IsAuthenticated` permission class unless the mutation is one of the anonymous ones, and the
domain's `UserError` mapped to the payload's `errors` by one extension, never by hand."""

from __future__ import annotations

from strawberry.permission import PermissionExtension

from schema.mutations import DomainErrorsToPayload, IsAuthenticated
from schema.root import Mutation

ANONYMOUS = {"sign_up", "log_in", "complete_log_in"}


def _fields() -> dict:
    return {f.python_name: f for f in Mutation.__strawberry_definition__.fields}  # type: ignore[attr-defined]


def test_every_mutation_maps_domain_errors_to_its_payload_and_declares_who_may_call_it():
    fields = _fields()
    assert len(fields) > 30 and ANONYMOUS <= set(fields)
    for name, field in fields.items():
        kinds = [type(e) for e in field.extensions]
        assert kinds.count(DomainErrorsToPayload) == 1, name
        permissions = [p for e in field.extensions if isinstance(e, PermissionExtension) for p in e.permissions]
        if name in ANONYMOUS:
            assert permissions == [], name
        else:
            assert [type(p) for p in permissions] == [IsAuthenticated], name


def test_every_payload_lists_its_domains_error_type():
    """The mapping finds the error type through the payload's `errors` field: each has one."""
    for name, field in _fields().items():
        errors = field.type.__strawberry_definition__.get_field("errors")
        assert errors is not None, name
        assert "code" in {f.python_name for f in errors.type.of_type.__strawberry_definition__.fields}, name
