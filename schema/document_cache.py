"""Parsed and validated documents, kept by their text: a document a client sends again (every
app sends the same few hundred) is neither parsed nor validated again.

`DocumentCache` is one bounded LRU per schema (validation's verdict depends on the schema's rules,
which `LimitSettings` configures), keyed by the document's exact text. `CachedDocuments`
consults it for one operation (the schema's extension, `schema.extensions.RequestPolicy`, calls
it): before parsing it installs a cached document, before validation it marks a cached one
valid (strawberry then skips its validation rules), and after a successful validation it stores
the document.

Invariants:
- Only documents that passed every validation rule are cached, so a refusal (syntax error, an
  unknown field, a depth, alias or token limit) is decided afresh each time, with its charge.
- What does not depend on the document alone still runs for every request: `operationName`
  (the operation choice), the selection cap and the viewer's budget (the operation guard: its
  spend before execution; only its peek before validation is skipped, as no validation runs),
  variables, cost and execution. A cached document is never mutated (graphql-core's execution reads it only).
- Memory is bounded by `max_entries` documents and `max_chars` characters of their texts in
  all (a document holds its text: graphql-core's nodes keep their source). Tokens are capped
  (`LimitSettings.max_tokens`) but a text only by the request's size (2 MiB): a comment or
  whitespace pads a valid document to megabytes, each padding another key, and with the entry
  bound alone 1 000 of them held about 2 GB in a process. A text longer than `max_chars` is
  not kept.
"""

from __future__ import annotations

from collections import OrderedDict

from graphql import DocumentNode
from strawberry.types import ExecutionContext

DEFAULT_MAX_ENTRIES = 1000
DEFAULT_MAX_CHARS = 16 * 2**20  # the texts' characters in all (an app's few hundred documents: a few MiB)


class DocumentCache:
    """An LRU of validated documents by their text; safe on one event loop (no awaits inside)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.max_entries, self.max_chars = max_entries, max_chars
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()
        self.chars = 0  # len() of every key
        self.hits = self.misses = 0

    def get(self, text: str) -> DocumentNode | None:
        document = self._documents.get(text)
        if document is None:
            self.misses += 1
            return None
        self._documents.move_to_end(text)
        self.hits += 1
        return document

    def put(self, text: str, document: DocumentNode) -> None:
        if len(text) > self.max_chars:
            return
        if text not in self._documents:
            self.chars += len(text)
        self._documents[text] = document
        self._documents.move_to_end(text)
        while len(self._documents) > self.max_entries or self.chars > self.max_chars:
            evicted, _ = self._documents.popitem(last=False)
            self.chars -= len(evicted)

    def __len__(self) -> int:
        return len(self._documents)


class CachedDocuments:
    """Skips parsing and validation of a document this schema has validated before: one per
    operation, called by the schema's one extension (`schema.extensions.RequestPolicy`) before
    parsing and around validation. Its "valid" is marked before the policies that may refuse a
    document in validation run, so their refusal (which replaces `pre_execution_errors`) always
    wins over the cache's verdict."""

    __slots__ = ("cache", "hit")

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache
        self.hit = False

    def before_parse(self, ec: ExecutionContext) -> None:
        if ec.graphql_document is None and ec.query:
            document = self.cache.get(ec.query)
            if document is not None:
                ec.graphql_document = document  # strawberry does not parse a document already set
                self.hit = True

    def before_validate(self, ec: ExecutionContext) -> None:
        if self.hit and ec.pre_execution_errors is None:
            ec.pre_execution_errors = []  # validated when it was cached: strawberry skips the rules

    def after_validate(self, ec: ExecutionContext) -> None:
        if not self.hit and ec.pre_execution_errors == [] and ec.query and ec.graphql_document is not None:
            self.cache.put(ec.query, ec.graphql_document)
