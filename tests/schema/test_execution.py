"""The execution context's direct path for plain leaves answers exactly what graphql-core's would.

A plain leaf (a scalar or enum read off an attribute, `schema.execution.plain_attribute_fields`) is
answered without graphql-core's field machinery; anything off the plain case must still get
graphql-core's answer and error: a null where the type is non-null, an attribute that raises, a
value the scalar refuses, an enum member, a datetime, a resolver wrapped after marking."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema import build_schema
from schema.execution import TaogramExecutionContext, plain_attribute_fields


@strawberry.enum
class Mood(enum.Enum):
    CALM = "calm"
    LOUD = "loud"


@strawberry.type
class Thing:
    name: str
    nickname: str | None
    count: int
    mood: Mood
    at: datetime
    score: float

    @property
    def broken(self) -> str:
        raise ValueError("no broken today")


@strawberry.type
class Broken:
    name: str = strawberry.field(name="broken")
    count: int


class _Source:
    """A source object whose attributes are whatever the test sets."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


THING = _Source(name="ada", nickname=None, count=3, mood=Mood.LOUD, at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                score=1.5)


@strawberry.type
class Query:
    @strawberry.field
    def thing(self) -> Thing:
        return THING  # type: ignore[return-value]

    @strawberry.field
    def nameless(self) -> Thing:
        return _Source(name=None, nickname=None, count=1, mood=Mood.CALM, at=THING.at, score=0.0)  # type: ignore

    @strawberry.field
    def wrong_count(self) -> Thing:
        return _Source(name="x", nickname="y", count="many", mood=Mood.CALM, at=THING.at, score=0.0)  # type: ignore

    @strawberry.field
    def raising(self) -> Broken | None:
        class Raises:
            count = 1

            @property
            def name(self) -> str:
                raise ValueError("no name today")
        return Raises()  # type: ignore[return-value]


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    """The same types executed by graphql-core's own path and by the direct one."""
    plain = strawberry.Schema(query=Query)
    direct = strawberry.Schema(query=Query, execution_context_class=TaogramExecutionContext)
    assert plain_attribute_fields(direct._schema) >= 6
    return plain, direct


QUERIES = [
    "{ thing { name nickname count mood at score } }",
    "{ nameless { count name } }",
    "{ wrongCount { name count } }",
    "{ raising { count broken } }",
    "{ thing { name alias: name } other: thing { count } }",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_the_direct_path_answers_and_errs_as_graphql_core_does(query: str):
    plain, direct = _schemas()
    expected, got = await plain.execute(query), await direct.execute(query)
    assert got.data == expected.data
    assert [(e.message, e.path) for e in got.errors or []] == [(e.message, e.path) for e in expected.errors or []]


async def test_the_direct_path_is_taken_and_a_field_wrapped_after_marking_is_not():
    _, direct = _schemas()
    field = direct._schema.type_map["Thing"].fields["name"]  # type: ignore[attr-defined]
    assert field.plain_leaf is not None and field.plain_leaf[0] is field.resolve
    calls = []
    marked = field.resolve

    def wrapped(source: object, info: object, **kwargs: object) -> object:
        calls.append(1)
        return "wrapped:" + marked(source, info, **kwargs)
    field.resolve = wrapped
    result = await direct.execute("{ thing { name count } }")
    assert result.data == {"thing": {"name": "wrapped:ada", "count": 3}} and calls == [1]


def test_the_app_schema_marks_its_plain_leaves():
    schema = build_schema()._schema
    ring = schema.type_map["StoryRing"].fields  # type: ignore[attr-defined]
    assert ring["hasUnseen"].plain_leaf is not None and ring["latestStoryAt"].plain_leaf is not None
    assert ring["user"].plain_leaf is None  # an object: graphql-core's path


async def test_plain_leaves_skip_graphql_cores_field_machinery(monkeypatch: pytest.MonkeyPatch):
    _, direct = _schemas()
    slow: list[str] = []
    base = StrawberryGraphQLCoreExecutionContext.execute_field

    def counted(self: object, parent_type: object, *args: object) -> object:
        slow.append(parent_type.name)  # type: ignore[attr-defined]
        return base(self, parent_type, *args)  # type: ignore[arg-type]
    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", counted)
    result = await direct.execute("{ thing { name nickname count mood at score } }")
    assert result.data is not None and result.data["thing"]["mood"] == "LOUD"
    assert slow == ["Query"]  # `thing` itself has a resolver; none of its six leaves went the slow way
