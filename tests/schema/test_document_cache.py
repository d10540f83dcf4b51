"""Documents a client sends again are neither parsed nor validated again (`schema.document_cache`),
and everything that depends on more than the document's text still runs for every request."""

from __future__ import annotations

import asyncio

import pytest
import strawberry.schema.schema as strawberry_schema

from config import LimitSettings
from schema import build_schema
from schema.document_cache import DocumentCache


async def built(limits: LimitSettings | None = None):
    """The schema, built off the event loop: strawberry resolves lazy types by file path (os.stat)."""
    return await asyncio.to_thread(build_schema, limits)


@pytest.fixture
def counted(monkeypatch):
    """How many times strawberry parsed and validated a document."""
    counts = {"parse": 0, "validate": 0}
    parse, validate = strawberry_schema.parse, strawberry_schema.validate_document

    def counting_parse(*args, **kwargs):
        counts["parse"] += 1
        return parse(*args, **kwargs)

    def counting_validate(*args, **kwargs):
        counts["validate"] += 1
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "parse", counting_parse)
    monkeypatch.setattr(strawberry_schema, "validate_document", counting_validate)
    return counts


async def test_a_document_seen_before_is_neither_parsed_nor_validated(counted):
    schema = await built()
    first = await schema.execute("query Q { __typename }")
    second = await schema.execute("query Q { __typename }")
    assert first.data == second.data == {"__typename": "Query"}
    assert counted == {"parse": 1, "validate": 1}
    await schema.execute("query Q { __typename  }")  # another text is another document
    assert counted == {"parse": 2, "validate": 2}


async def test_invalid_documents_are_refused_every_time_and_never_cached(counted):
    schema = await built()
    for _ in range(2):
        result = await schema.execute("{ noSuchField }")
        assert result.errors[0].extensions["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert counted == {"parse": 2, "validate": 2}


async def test_a_cached_document_still_needs_an_operation_name_when_it_has_several():
    schema = await built()
    doc = "query A { __typename } query B { __typename }"
    assert (await schema.execute(doc, operation_name="A")).data == {"__typename": "Query"}
    refused = await schema.execute(doc)
    assert refused.errors[0].extensions["code"] == "BAD_REQUEST"


async def test_a_cached_document_still_has_its_string_literals_checked(counted):
    schema = await built(LimitSettings(max_string_length=5))
    for _ in range(2):
        result = await schema.execute('{ __type(name: "much too long") { name } }')
        assert result.errors[0].extensions["code"] == "BAD_USER_INPUT"
    assert counted["validate"] == 1  # valid GraphQL: cached; the literal is refused each time


async def test_a_cached_document_is_still_paid_for():
    schema = await built(LimitSettings(cost_budget=3, cost_window_seconds=3600))
    codes = []
    for _ in range(5):
        result = await schema.execute("{ __typename }")
        codes.append(result.errors[0].extensions["code"] if result.errors else None)
    assert codes[:3] == [None, None, None] and codes[3:] == ["THROTTLED", "THROTTLED"]


def test_the_cache_is_bounded_and_keeps_the_recently_used():
    cache = DocumentCache(max_entries=2)
    cache.put("a", object())
    cache.put("b", object())
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", object())
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2


async def test_a_cached_document_takes_one_look_at_the_budget(monkeypatch):
    """The peek before validation protects validation's work, which a cached document does not
    redo: it spends once, before execution (one rate-limiter round trip, Redis in production)."""
    schema = await built(LimitSettings(cost_budget=100, cost_window_seconds=3600))
    budget = schema.extensions[0].keywords["budget"]
    modes: list[str] = []
    take = budget.local.take

    async def counting_take(buckets, amount, mode):
        modes.append(mode.name)
        return await take(buckets, amount, mode)
    monkeypatch.setattr(budget.local, "take", counting_take)
    lefts = []
    for _ in range(3):
        result = await schema.execute("{ __typename }")
        assert result.errors is None
        lefts.append(result.extensions["cost"]["throttleStatus"]["currentlyAvailable"])
    # Validated once (peeked once); spent every time, from points taken a few requests' worth
    # at a time (CostBudget: one take for the three).
    assert modes == ["PEEK", "TAKE"]
    assert lefts[0] > lefts[1] > lefts[2]


def test_the_cache_holds_a_bounded_number_of_characters() -> None:
    """A document's tokens are capped (`max_tokens`), its text only by the request's size (2 MiB):
    a comment or whitespace pads a valid document to megabytes, and each padding is another key.
    Before, the cache was bounded by entries alone: 1 000 such documents, sent in seconds by any
    client (over HTTP or a WebSocket), held about 2 GB in each server process."""
    from graphql import parse

    cache = DocumentCache()
    document = parse("{ __typename }")
    pad = "#" + "x" * 1_000_000 + "\n"
    for i in range(60):
        cache.put(f"{pad}query Q{i} {{ __typename }}", document)
    held = sum(map(len, cache._documents))
    assert held <= cache.max_chars <= 16 * 2**20 and held == cache.chars, held
    small = "query Small { __typename }"
    cache.put(small, document)
    assert cache.get(small) is document  # ordinary documents are still kept
    huge = "#" + "x" * (cache.max_chars + 1) + "\n{ __typename }"
    cache.put(huge, document)  # larger than the whole bound: not kept, and evicts nothing
    assert cache.get(huge) is None and cache.get(small) is document
