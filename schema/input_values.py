"""The rules for every string and every list a client sends, checked once per operation before
anything runs (before the cost estimate, which coerces the variables, and before execution).

A string input is refused (top-level `BAD_USER_INPUT`, nothing executed, nothing stored) when it
- is longer than `LimitSettings.max_string_length`;
- holds a NUL character (U+0000): C-based tools, logs and databases truncate or reject it, so a
  caption, bio or name with one would show differently everywhere it goes;
- holds an unpaired UTF-16 surrogate (U+D800-U+DFFF alone, which JSON's `\\ud800` escape can
  produce): it is not a Unicode character and cannot be encoded as UTF-8, so it can never be stored.

A list input is refused the same way when it holds more than `LimitSettings.max_list_length`
entries, and so is a JSON object in the variables with more names than that (an input object
has a few fields; graphql-core reports every unknown name, each with "did you mean" suggestions),
and variables holding more than `VALUES_PER_LIST` times that many values in all.
Before this bound a list was coerced entry by entry (the cost estimate and execution each
coerce the variables) before the field's own cap (`nodes(ids:)` 100, `search(types:)` one of
each) refused it: 100 000 entries of `search(types:)` cost ~0.4 s of CPU a request. Fields keep their own,
smaller caps; this one only has to be larger than every list the schema legitimately takes
(the members of a group, `messages.max_members`, the largest: `Settings` checks it).

Every input reaches the server in one of two places: a literal in the document (arguments,
input-object fields, list items and variables' default values alike) or a value anywhere in
the request's variables. Both are scanned here, whatever field or type they are for, so every
current and future field with a string or list argument is covered without code of its own.
An error names where the value is: the variable path (`$input.recipientIds`) or the argument
and input fields of a literal, and the field they are given to.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    ListValueNode,
    ObjectFieldNode,
    StringValueNode,
    VariableDefinitionNode,
    VariableNode,
    visit,
)
from graphql.language import Visitor

from config import LimitSettings

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


def _too_long(what: str, n: int, limit: int) -> str:
    return (f"{what} has {n} entries, more than the limit of {limit} (`limits.max_list_length`): "
            "send fewer (split the work into several requests).")


def _where(ancestors: list[Any]) -> str:
    """Where a value node is, from its ancestors (outermost first): "`input.recipientIds` of
    `sendMessage`", or "the default value of `$t`"."""
    names: list[str] = []
    for node in reversed(ancestors):
        if isinstance(node, ObjectFieldNode):
            names.append(node.name.value)
        elif isinstance(node, ArgumentNode):
            names.append(node.name.value)
        elif isinstance(node, FieldNode):
            return f"`{'.'.join(reversed(names))}` of `{node.name.value}`"
        elif isinstance(node, VariableDefinitionNode):
            inner = f" (at `{'.'.join(reversed(names))}`)" if names else ""
            return f"the default value of `${node.variable.name.value}`{inner}"
    return f"`{'.'.join(reversed(names))}`" if names else "an argument"


class _Literals(Visitor):
    def __init__(self, max_string: int, max_list: int) -> None:
        super().__init__()
        self.max_string, self.max_list = max_string, max_list
        self.error: GraphQLError | None = None

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        problem = string_problem(node.value, self.max_string)
        if problem is not None:
            self.error = GraphQLError(f"A string argument {problem}.", nodes=[node], extensions={"code": CODE})
            return self.BREAK
        return None

    def enter_list_value(self, node: ListValueNode, _key: Any, parent: Any, _path: Any, ancestors: list[Any]) -> Any:
        if len(node.values) > self.max_list:
            where = _where([*ancestors, parent])
            self.error = GraphQLError(_too_long(f"The list given to {where}", len(node.values), self.max_list),
                                      nodes=[node], extensions={"code": CODE})
            return self.BREAK
        return None


class _Uses(Visitor):
    """Where the document first uses a variable: "`input` of `sendMessage`"."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.where: str | None = None

    def enter_variable(self, node: VariableNode, _key: Any, parent: Any, _path: Any, ancestors: list[Any]) -> Any:
        if node.name.value == self.name and not isinstance(parent, VariableDefinitionNode):
            self.where = _where([*ancestors, parent])
            return self.BREAK
        return None


def _given_to(document: DocumentNode | None, path: str) -> str:
    """" (given to `input` of `sendMessage`)" for the variable a path starts with, or ""."""
    if document is None:
        return ""
    name = path[1:].split(".", 1)[0].split("[", 1)[0]
    uses = _Uses(name)
    visit(document, uses)
    return f" (given to {uses.where})" if uses.where else ""


# The values the variables may hold in all, in lists of `max_list_length`: each list has its cap,
# but lists of lists (or unused variables) multiply them, and a 2 MiB body holds 1 000 lists of
# 1 000 entries, which this walk took ~0.4 s of CPU to check, on the event loop, for 1 point.
VALUES_PER_LIST = 4


def _variable_error(document: DocumentNode | None, variables: dict[str, Any], limits: LimitSettings
                    ) -> GraphQLError | None:
    # Iterative: variables may nest deeply, and a recursion here must not be what fails. A
    # list's (an object's) length is checked before its entries are stacked: a long one costs
    # nothing more than this check.
    max_string, max_list = limits.max_string_length, limits.max_list_length
    most, walked = max_list * VALUES_PER_LIST, 0
    stack: list[tuple[str, Any]] = [("", variables)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            problem = string_problem(value, max_string)
            if problem is not None:
                return GraphQLError(f"The string at `{where}` in the variables {problem}.", extensions={"code": CODE})
        elif isinstance(value, dict):
            if len(value) > max_list:
                at = f"The object at `{where}` in the variables" if where else "The variables"
                return GraphQLError(f"{at} holds {len(value)} names, more than the limit of {max_list} "
                                    "(`limits.max_list_length`): send only the fields the input type has.",
                                    extensions={"code": CODE})
            for key, item in value.items():
                if not isinstance(key, str) or string_problem(key, max_string) is not None:
                    return GraphQLError(f"A name in the variables{f' inside `{where}`' if where else ''} is not valid "
                                        "text; names are letters, digits and underscores.", extensions={"code": CODE})
                stack.append((f"{where}.{key}" if where else f"${key}", item))
        elif isinstance(value, list):
            if len(value) > max_list:
                what = f"The list at `{where}` in the variables{_given_to(document, where)}"
                return GraphQLError(_too_long(what, len(value), max_list), extensions={"code": CODE})
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
        if isinstance(value, (dict, list)):
            walked += len(value)
            if walked > most:
                return GraphQLError(
                    f"The variables hold more than {most} values in all (list entries and object fields, "
                    f"{VALUES_PER_LIST} times `limits.max_list_length`): send only what the operation uses, "
                    "and split the work into several requests.", extensions={"code": CODE})
    return None


# The literals' verdict of each live document, by identity: a cached document
# (schema.document_cache) comes back as the same object, and its literals never change. An entry
# holds its document weakly and goes when the document does (a document cache evicts it, a request
# that parsed its own ends), so this keeps no document alive: a table that held them (as this one
# did, up to 1 000, across every schema of the process) kept documents their caches had let go.
_LITERALS_SEEN: dict[tuple[int, int, int], tuple[weakref.ref[DocumentNode], GraphQLError | None]] = {}


def literal_error(document: DocumentNode, max_string: int, max_list: int) -> GraphQLError | None:
    """The error for the document's first unacceptable string or list literal, or None."""
    key = (id(document), max_string, max_list)
    seen = _LITERALS_SEEN.get(key)
    if seen is not None and seen[0]() is document:
        return seen[1]
    literals = _Literals(max_string, max_list)
    visit(document, literals)
    _LITERALS_SEEN[key] = (weakref.ref(document, functools.partial(_forget, key)), literals.error)
    return literals.error


def _forget(key: tuple[int, int, int], _dead: weakref.ref[DocumentNode]) -> None:
    """A document's weak reference died: drop its entry, unless a newer document (that reuses
    the id) already replaced it."""
    seen = _LITERALS_SEEN.get(key)
    if seen is not None and seen[0]() is None:
        del _LITERALS_SEEN[key]


def input_error(document: DocumentNode | None, variables: dict[str, Any] | None, limits: LimitSettings
                ) -> GraphQLError | None:
    """The error for the first unacceptable string or list input of a request, or None if all
    are fine."""
    if document is not None:
        error = literal_error(document, limits.max_string_length, limits.max_list_length)
        if error is not None:
            return error
    return _variable_error(document, variables or {}, limits)

