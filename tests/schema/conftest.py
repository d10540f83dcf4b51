"""Fixtures for GraphQL tests: `gql`, the real app on the real store, over both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from config import Settings
from server import create_app
from tests.schema.client import GQL, graphql_settings, running_app


@pytest.fixture(params=["mysql", "sqlite"])
def gql_settings(request, test_id: str, tmp_path) -> Settings:
    services = request.getfixturevalue("services") if request.param == "mysql" else None
    return graphql_settings(request.param, services, test_id, tmp_path)


@pytest.fixture
def gql_app(gql_settings: Settings) -> web.Application:
    return create_app(gql_settings)  # sync: app construction reads files, never on the loop


@pytest.fixture
async def gql(gql_settings: Settings, gql_app: web.Application) -> AsyncIterator[GQL]:
    async with running_app(gql_settings, gql_app) as client:
        yield client


@pytest.fixture
def gql_with(gql_settings: Settings):
    """`async with gql_with(max_depth=3, ...) as g:` — the app with these `LimitSettings` changed."""

    def make(**limits):
        for name, value in limits.items():
            assert hasattr(gql_settings.limits, name), name
            setattr(gql_settings.limits, name, value)
        return running_app(gql_settings)

    return make
