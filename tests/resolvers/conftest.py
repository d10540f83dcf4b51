"""Domain tests run real GraphQL against the real app and store: reuse the schema tests' `gql`."""

from tests.schema.conftest import gql, gql_app, gql_settings  # noqa: F401  (fixtures)
