"""Story tests run real GraphQL on both backends, on an injectable clock (`ManualClock`)."""

from tests.schema.conftest import gql, gql_app, gql_settings  # noqa: F401  (fixtures)
