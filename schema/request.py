"""A GraphQL request as a client sends it: its JSON decoded and its shape checked before anything runs.

`decode_json` is the one decoder of request JSON (POST bodies, the `variables`/`extensions` query
parameters of a GET, WebSocket messages); `parse_request` checks the decoded body's shape.
Invariant: whatever bytes arrive, the result is either a request whose `query` and
`operationName` are strings or null and whose `variables` and `extensions` are objects or null,
with no JSON nested deeper than `LimitSettings.max_json_depth`, or a `BadRequestError` whose
message says what to fix. Nothing here recurses over client data, so no input can raise
`RecursionError` later (in cost, coercion or the size checks, which walk the same values).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from strawberry.http import GraphQLRequestData


@dataclass
class RequestData(GraphQLRequestData):
    """strawberry's request, plus the GraphQL-over-HTTP spec's `documentId` (a persisted document)."""

    document_id: str | None = None


class BadRequestError(ValueError):
    """The request is not a well-formed GraphQL request; the message is for the client."""

    @property
    def message(self) -> str:
        return str(self.args[0])


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) does not, nor does GraphQL's Float.
    raise ValueError(f"{name} is not a JSON value")


# One decoder for every request: `json.loads(..., parse_constant=...)` builds a new decoder (and
# its scanner) per call, a cost every GraphQL request paid twice (body and variables).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_json(data: bytes | str, what: str, max_depth: int) -> Any:
    """`data` as JSON (bytes must be UTF-8), nested at most `max_depth` levels deep.

    `what` names the data in messages ("The request body", "The `variables` parameter").
    """
    raw = data
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRequestError(f"{what} is not valid UTF-8 (at byte {e.start}); encode it as UTF-8.") from None
    if len(data) > MAX_JSON_VALUES and _holds_too_many(raw):  # before decoding it: see `_holds_too_many`
        raise _too_many(what)
    try:
        value = _DECODER.decode(data)
    except json.JSONDecodeError as e:
        raise BadRequestError(f"{what} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}).") from None
    except ValueError as e:  # NaN / Infinity
        raise BadRequestError(f"{what} is not valid JSON: {e}.") from None
    except RecursionError:  # the decoder's own bound, far above max_depth
        raise _too_deep(what, max_depth) from None
    problem = _shape_problem(value, max_depth)
    if problem == "deep":
        raise _too_deep(what, max_depth)
    if problem == "many":
        raise _too_many(what)
    return value


def _too_many(what: str) -> BadRequestError:
    return BadRequestError(f"{what} holds more than {MAX_JSON_VALUES} values (array entries and object "
                           "members); a GraphQL request needs far fewer: send less.")


def _too_deep(what: str, max_depth: int) -> BadRequestError:
    return BadRequestError(
        f"{what} nests JSON objects and arrays more than {max_depth} levels deep; "
        "flatten `variables` and `extensions`.")


# Values (array entries, object members) a request's JSON may hold. Walking every value of a 2 MiB
# body of small arrays (340 000 of [0, 0], a million values) took ~0.8 s of CPU on the event loop
# (a loaded 2-core box), before any budget was charged; the walk now stops at this many (~0.01 s).
# Larger than what the
# request checks refuse by name: a 100 000-entry list is one `schema.input_values` names
# (BAD_USER_INPUT, "the list at `$ids` ..."), and it sees only 4 x `max_list_length` values in all.
MAX_JSON_VALUES = 262_144
# Decoding such a body was still ~0.2 s of CPU before the walk could refuse it (a 2 MiB body of
# a million zeros: 150-250 ms to its 400, seventeenth session). So a text that could hold more
# values (it has more characters) is first counted without decoding it (`_holds_too_many`: bytes'
# C methods, ~5-20 ms for 2 MiB; up to ~90 ms for one of 400 000 tiny strings, which the decoder
# took ~60 ms for).
_STRUCTURE = (b",", b"[", b"{")
_WHITESPACE = b" \t\r\n"


def _holds_too_many(data: bytes | str) -> bool:
    """Whether the JSON text holds more than `MAX_JSON_VALUES` values (array entries, object
    members), told without decoding it: the commas, brackets and braces outside its strings, less
    its empty arrays and objects (a container of k values has k - 1 commas and one opening
    bracket). Exact for valid JSON; invalid JSON past the cap is refused as too many values, which
    the decoder would have called invalid (refused either way)."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if sum(raw.count(c) for c in _STRUCTURE) <= MAX_JSON_VALUES:
        return False  # within the cap whatever its strings hold
    if b'"' in raw:  # drop the strings: escapes first (a `\\` pair, then an escaped quote), then every other piece
        raw = b"".join(raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])
    raw = raw.translate(None, _WHITESPACE)
    return sum(raw.count(c) for c in _STRUCTURE) - raw.count(b"[]") - raw.count(b"{}") > MAX_JSON_VALUES


def _shape_problem(value: Any, max_depth: int) -> str | None:
    """"deep" when arrays/objects in `value` nest more than `max_depth` levels, "many" when they
    hold more than `MAX_JSON_VALUES` values, else None (iterative: no recursion; a container's
    size is counted before its values are looked at)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    walked = 0
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return "deep"
        walked += len(item)
        if walked > MAX_JSON_VALUES:
            return "many"
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", bool: "a boolean", int: "a number", float: "a number",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def parse_request(data: Any) -> GraphQLRequestData:
    """A decoded request body (or GET parameters) as a GraphQL request, or `BadRequestError`."""
    if isinstance(data, list):
        raise BadRequestError("Batched requests (a JSON array) are not supported; send one operation per request.")
    if not isinstance(data, dict):
        raise BadRequestError(
            f"The request must be a JSON object like {{\"query\": \"...\", \"variables\": {{...}}}}; "
            f"got {_kind(data)}.")
    for name, allowed, expected in (("query", str, "a string"), ("operationName", str, "a string"),
                                    ("documentId", str, "a string"),
                                    ("variables", dict, "an object"), ("extensions", dict, "an object")):
        value = data.get(name)
        if value is not None and not isinstance(value, allowed):
            raise BadRequestError(f"`{name}` must be {expected} or null; got {_kind(value)}.")
    return RequestData(
        query=data.get("query"),
        variables=data.get("variables"),
        operation_name=data.get("operationName"),
        extensions=data.get("extensions"),
        document_id=data.get("documentId"),
    )
