"""The committed `schema.graphql` is the schema the code builds: CI fails when they drift.

To update it after changing the schema:
`python -c "from schema import printed_schema; open('schema.graphql', 'w').write(printed_schema())"`.
"""

from __future__ import annotations

from pathlib import Path

from schema import build_schema, printed_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_graphql_is_up_to_date():
    assert SCHEMA_FILE.read_text() == printed_schema(), (
        "schema.graphql is out of date: regenerate it (see this test's docstring) and commit it"
    )


def test_limits_do_not_change_the_schema():
    # Settings switch policies (introspection, suggestions, limits), never the types.
    from config import LimitSettings

    assert (
        build_schema(LimitSettings(introspection=False, field_suggestions=False, max_depth=3)).as_str()
        == build_schema().as_str()
    )
