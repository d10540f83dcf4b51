"""Generated queries and mutations, and malformed requests, never get a 500, a fault or a leak.

A short run of `tests/fuzz/probe.py` (which also kills a shard under load when run on its own):
documents generated from the printed schema, valid and with one violation each, sent anonymous
and as each seeded user; then the raw bad requests. The MariaDB backend only: the SQLite one
answers the same resolvers, and the faults found so far lived above the store.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis_graphql import Mode

from tests.fuzz.probe import Findings, bad_requests, generate, run, seed
from tests.schema.client import graphql_settings, running_app

pytestmark = pytest.mark.slow


def _report(findings: Findings) -> str:
    return findings.summary() + "".join(f"\n--- {status} {doc[:300]}\n    {str(body)[:300]}"
                                        for doc, status, body in findings.bad[:10])


async def test_generated_documents_get_no_fault(services, test_id, tmp_path):
    s = graphql_settings("mysql", services, test_id, tmp_path)
    s.limits.cost_budget = 10**9  # the budget is tested on its own; here it would hide faults
    async with running_app(s) as gql:
        seeded = await seed(gql)
        docs = (await asyncio.to_thread(generate, 150, seeded.ids, mode=Mode.POSITIVE, seed=7)
                + await asyncio.to_thread(generate, 150, seeded.ids, mode=Mode.NEGATIVE, seed=7))
        findings = await run(gql, docs, seeded)
    assert findings.sent == 300
    assert not findings.bad, _report(findings)


async def test_malformed_requests_get_a_graphql_shaped_error(services, test_id, tmp_path):
    async with running_app(graphql_settings("mysql", services, test_id, tmp_path)) as gql:
        findings = Findings()
        await bad_requests(gql, findings)
    assert not findings.bad, _report(findings)
    assert findings.statuses[200] <= 3, findings.statuses  # only the GraphQL-level refusals answer 200
