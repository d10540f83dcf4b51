"""Persisted documents: a request may name its document by hash instead of sending its text.

Three ways, one lookup (`PersistedDocuments.resolve`), all by the document's SHA-256 (hex):

- **Apollo's automatic persisted queries (APQ)**: `extensions.persistedQuery = {"version": 1,
  "sha256Hash": h}`. Without `query`: the text registered under `h`, or the request error
  `PERSISTED_QUERY_NOT_FOUND` (the client then sends the same request with `query`, which
  registers it). With `query`: its hash must be `h` (else `BAD_REQUEST`); it is registered.
- **The GraphQL-over-HTTP spec's `documentId`** (`"sha256:<hex>"`, or the bare hex): the
  document registered under it, by APQ or in the trusted list; never with `query`.
- **Trusted documents** (first-party apps): a manifest `{"<hex>" or "sha256:<hex>": "<document>"}`
  (the shape GraphQL Codegen's and Relay's persisted-document outputs take), loaded at start-up
  from `server.trusted_documents`. With `server.trusted_documents_only`, a document outside it
  is refused (`PERSISTED_QUERY_NOT_IN_LIST`) and APQ registers nothing: only what the apps were
  built with can run.

Invariants: a hash always names the text whose SHA-256 it is (a manifest entry that does not is
refused at start-up; an APQ registration is checked); the APQ store is an LRU of at most
`max_registered` documents and `max_chars` characters of text per process, and keeps no text
longer than `max_text`, so clients cannot grow memory without bound. (With the count alone, a
comment padding each registration to the request's 2 MiB made 2 000 of them ~4 GB a process.)
A text not kept still runs; a client asking for it by hash later is told to send it again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

SHA256_PREFIX = "sha256:"
DEFAULT_MAX_REGISTERED = 2000
DEFAULT_MAX_CHARS = 16 * 2**20  # the registered texts' characters in all (as schema.document_cache)
DEFAULT_MAX_TEXT = 100_000  # characters of one registered text (an app's largest documents: tens of KB)


class PersistedDocumentError(ValueError):
    """The request names a document that cannot be run; `code` is its `extensions.code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def document_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _bare(document_id: str) -> str:
    return document_id[len(SHA256_PREFIX):] if document_id.startswith(SHA256_PREFIX) else document_id


class PersistedDocuments:
    def __init__(self, trusted: dict[str, str] | None = None, *, trusted_only: bool = False,
                 max_registered: int = DEFAULT_MAX_REGISTERED, max_chars: int = DEFAULT_MAX_CHARS,
                 max_text: int = DEFAULT_MAX_TEXT) -> None:
        self.trusted: dict[str, str] = {}
        for key, text in (trusted or {}).items():
            if not isinstance(text, str) or document_hash(text) != _bare(key).lower():
                raise ValueError(f"trusted document {key!r}: its key is not the SHA-256 of its text; "
                                 "regenerate the manifest with your client's persisted-documents build step")
            self.trusted[_bare(key).lower()] = text
        self.trusted_only = trusted_only
        self.max_registered, self.max_chars, self.max_text = max_registered, max_chars, max_text
        self._registered: OrderedDict[str, str] = OrderedDict()
        self.chars = 0  # len() of every registered text

    def _lookup(self, digest: str) -> str | None:
        text = self.trusted.get(digest)
        if text is None:
            text = self._registered.get(digest)
            if text is not None:
                self._registered.move_to_end(digest)
        return text

    def _register(self, digest: str, text: str) -> None:
        if self.trusted_only or digest in self.trusted or len(text) > self.max_text:
            return
        if digest not in self._registered:
            self._registered[digest] = text
            self.chars += len(text)
        self._registered.move_to_end(digest)
        while len(self._registered) > self.max_registered or self.chars > self.max_chars:
            self.chars -= len(self._registered.popitem(last=False)[1])

    def resolve(self, query: str | None, document_id: Any, extensions: dict[str, Any] | None) -> str | None:
        """The document text the request asks to run (None: the request has none, which the
        caller refuses as it always has), or `PersistedDocumentError`."""
        apq = (extensions or {}).get("persistedQuery")
        if document_id is not None:
            if not isinstance(document_id, str) or not document_id:
                raise PersistedDocumentError("BAD_REQUEST", "`documentId` must be a string like \"sha256:<hex>\".")
            if query is not None:
                raise PersistedDocumentError("BAD_REQUEST", "Send either `query` or `documentId`, not both.")
            text = self._lookup(_bare(document_id).lower())
            if text is None:
                raise PersistedDocumentError("PERSISTED_QUERY_NOT_FOUND",
                                             "No persisted document has the id "
                                             f"{document_id!r}; send its text in `query`.")
            return text
        if apq is not None:
            if not isinstance(apq, dict) or apq.get("version") != 1 or not isinstance(apq.get("sha256Hash"), str):
                raise PersistedDocumentError(
                    "BAD_REQUEST", "`extensions.persistedQuery` must be {\"version\": 1, \"sha256Hash\": \"<hex>\"}.")
            digest = apq["sha256Hash"].lower()
            if query is None:
                text = self._lookup(digest)
                if text is None:
                    # Apollo clients look for this message and code, then retry with the text.
                    raise PersistedDocumentError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
                return text
            if document_hash(query) != digest:
                raise PersistedDocumentError("BAD_REQUEST", "provided sha does not match query")
            self._check_trusted(query, digest)
            self._register(digest, query)
            return query
        if query is not None:
            self._check_trusted(query, None)
        return query

    def _check_trusted(self, query: str, digest: str | None) -> None:
        if self.trusted_only and (digest or document_hash(query)) not in self.trusted:
            raise PersistedDocumentError(
                "PERSISTED_QUERY_NOT_IN_LIST",
                "This server runs only the documents its apps were built with; this one is not among them.")
