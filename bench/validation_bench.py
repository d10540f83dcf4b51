"""Validation benchmark: the worst documents the selection cap lets through, timed in validation.

    PYTHONPATH=. .venv/bin/python bench/validation_bench.py            # the default cap (300)
    PYTHONPATH=. .venv/bin/python bench/validation_bench.py --cap 200 --repeat 9

Validation runs on the event loop and its work grows with the square of a document's
selections (graphql-core's OverlappingFieldsCanBeMerged compares every pair of fields sharing a
response name), so `LimitSettings.max_selections` bounds the time one request can hold the loop
before it is charged anything. For each shape below, the largest document whose selection count
(`schema.cost.document_size`, as the guard counts it) is within the cap is validated with the
production rules (GraphQL's, strawberry's, and the depth and alias limiters) `--repeat` times;
prints the median and the worst CPU time per shape, the time the guard's own count takes, and,
for scale, the uncapped document from issue 9 (`{ viewer { id } }` x 1000). No servers needed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator

from graphql import get_introspection_query, parse, specified_rules
from strawberry.schema.schema import validate_document

from config import LimitSettings
from schema import build_schema
from schema.cost import document_size
from schema.extensions import limit_rules


def _selections(document) -> int:
    return document_size(document).selections


def shapes() -> Iterator[tuple[str, Callable[[int], str]]]:
    """(name, n -> document with about n repetitions of the shape's unit)."""
    yield "same field repeated: { viewer { id } } x n", lambda n: "{" + " viewer { id }" * n + "}"
    yield "same alias, different arguments", lambda n: "{" + "".join(
        f' a: user(username: "u{i}") {{ id }}' for i in range(n)) + "}"
    yield "nested 4 deep, repeated", lambda n: "{" + " viewer { followers { nodes { id } } }" * n + "}"
    yield "inline fragments repeated", lambda n: "{" + " ... on Query { viewer { id } }" * n + "}"
    yield "n fragments, each spread once", lambda n: "{" + "".join(f" ...F{i}" for i in range(n)) + "}" + "".join(
        f" fragment F{i} on Query {{ viewer {{ id }} }}" for i in range(n))
    yield "one fragment spread n times", lambda n: "{" + " ...F" * n + "} fragment F on Query { viewer { id } }"
    yield "scalars: { viewer { id x n } }", lambda n: "{ viewer {" + " id" * n + " } }"


def largest_within(make: Callable[[int], str], cap: int) -> str:
    """The document of `make(n)` for the largest n whose selection count is within `cap`."""
    lo, hi = 1, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _selections(parse(make(mid), no_location=True)) <= cap:
            lo = mid
        else:
            hi = mid - 1
    return make(lo)


def time_validation(schema, rules, query: str, repeat: int) -> tuple[float, float]:
    document = parse(query, no_location=True)
    times = []
    for _ in range(repeat):
        started = time.thread_time()  # CPU time: what the loop loses, and steadier than wall time on a busy box
        validate_document(schema, document, rules)
        times.append(time.thread_time() - started)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap", type=int, default=LimitSettings().max_selections)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    limits = LimitSettings()
    schema = build_schema(limits)._schema
    rules = (*specified_rules, *limit_rules(limits))  # what the server validates with

    print(f"validation time of the largest documents within max_selections = {args.cap} "
          f"(CPU ms, median / worst of {args.repeat})")
    worst = 0.0
    for name, make in shapes():
        query = largest_within(make, args.cap)
        median, slowest = time_validation(schema, rules, query, args.repeat)
        worst = max(worst, slowest)
        n = _selections(parse(query))
        print(f"  {name:<45} {n:>4} selections {len(query):>6} bytes  {median * 1000:7.1f} / {slowest * 1000:7.1f}")
    introspection = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                            schema_description=True, input_value_deprecation=True)
    median, slowest = time_validation(schema, rules, introspection, args.repeat)
    print(f"  {'full introspection query':<45} {_selections(parse(introspection)):>4} selections"
          f" {len(introspection):>6} bytes  {median * 1000:7.1f} / {slowest * 1000:7.1f}")
    print(f"worst validation within the cap: {worst * 1000:.1f} ms")

    uncapped = "{" + " viewer { id }" * 1000 + "}"
    document = parse(uncapped, no_location=True)
    started = time.thread_time()
    for _ in range(args.repeat):
        _selections(document)
    counted = (time.thread_time() - started) / args.repeat
    median, _ = time_validation(schema, rules, uncapped, 1)
    print(
        f"issue 9's document ({_selections(document)} selections, {len(uncapped)} bytes): "
        f"the guard counts it in {counted * 1000:.2f} ms and refuses it; "
        f"validating it would take {median * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
