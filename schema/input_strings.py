"""The one rule for every string a client sends, checked once per operation before anything runs.

A string input is refused (top-level `BAD_USER_INPUT`, nothing executed, nothing stored) when it
- is longer than `LimitSettings.max_string_length`;
- holds a NUL character (U+0000): C-based tools, logs and databases truncate or reject it, so a
  caption, bio or name with one would show differently everywhere it goes;
- holds an unpaired UTF-16 surrogate (U+D800-U+DFFF alone, which JSON's `\\ud800` escape can
  produce): it is not a Unicode character and cannot be encoded as UTF-8, so it can never be stored.

Every string input reaches the server in one of two places: a string literal in the document
(arguments, input-object fields, list items and variables' default values alike) or a string
anywhere in the request's variables. Both are scanned here, whatever field or type they are for,
so every current and future field with a string (or ID) argument is covered without code of
its own. A field's own limits (a bio's 150 characters) stay with its domain.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

from graphql import DocumentNode, GraphQLError, StringValueNode, visit
from graphql.language import Visitor

CODE = "BAD_USER_INPUT"


def string_problem(value: str, limit: int) -> str | None:
    """What is wrong with one string input, or None if it is acceptable."""
    if len(value) > limit:
        return f"is longer than {limit} characters; shorten it"
    if "\x00" in value:
        return "holds a NUL character (U+0000); remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds an unpaired UTF-16 surrogate (not a Unicode character); send valid Unicode text"
    return None


class _Literals(Visitor):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.error: GraphQLError | None = None

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        problem = string_problem(node.value, self.limit)
        if problem is not None:
            self.error = GraphQLError(f"A string argument {problem}.", nodes=[node], extensions={"code": CODE})
            return self.BREAK
        return None


def _variable_error(variables: dict[str, Any], limit: int) -> GraphQLError | None:
    # Iterative: variables may nest deeply, and a recursion here must not be what fails.
    stack: list[tuple[str, Any]] = [("", variables)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            problem = string_problem(value, limit)
            if problem is not None:
                return GraphQLError(f"The string at `{where}` in the variables {problem}.", extensions={"code": CODE})
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or string_problem(key, limit) is not None:
                    return GraphQLError(f"A name in the variables{f' inside `{where}`' if where else ''} is not valid "
                                        "text; names are letters, digits and underscores.", extensions={"code": CODE})
                stack.append((f"{where}.{key}" if where else f"${key}", item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


# The literals' verdict of each live document, by identity: a cached document
# (schema.document_cache) comes back as the same object, and its literals never change. An entry
# holds its document weakly and goes when the document does (a document cache evicts it, a request
# that parsed its own ends), so this keeps no document alive: a table that held them (as this one
# did, up to 1 000, across every schema of the process) kept documents their caches had let go.
_LITERALS_SEEN: dict[tuple[int, int], tuple[weakref.ref[DocumentNode], GraphQLError | None]] = {}


def literal_error(document: DocumentNode, limit: int) -> GraphQLError | None:
    """The error for the document's first unacceptable string literal, or None."""
    key = (id(document), limit)
    seen = _LITERALS_SEEN.get(key)
    if seen is not None and seen[0]() is document:
        return seen[1]
    literals = _Literals(limit)
    visit(document, literals)
    _LITERALS_SEEN[key] = (weakref.ref(document, functools.partial(_forget, key)), literals.error)
    return literals.error


def _forget(key: tuple[int, int], _dead: weakref.ref[DocumentNode]) -> None:
    """A document's weak reference died: drop its entry, unless a newer document (that reuses
    the id) already replaced it."""
    seen = _LITERALS_SEEN.get(key)
    if seen is not None and seen[0]() is None:
        del _LITERALS_SEEN[key]


def string_input_error(document: DocumentNode | None, variables: dict[str, Any] | None, limit: int
                       ) -> GraphQLError | None:
    """The error for the first unacceptable string input of a request, or None if all are fine."""
    if document is not None:
        error = literal_error(document, limit)
        if error is not None:
            return error
    return _variable_error(variables or {}, limit)
