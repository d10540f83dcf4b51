"""The type registry: object types and association types, declared once in code.

Each association type is either *primary* (written by callers) or the *derived* inverse of a
primary one (written only by the store, on id2's shard, to mirror the primary edge). Declaring
`AssocType("FOLLOWS", code=..., inverse="FOLLOWED_BY")` creates both. Codes are the integers
stored in the `atype`/`otype` columns: they must never change once data exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from tao.errors import UnknownTypeError


@dataclass(frozen=True, slots=True)
class ObjectType:
    name: str
    code: int


@dataclass(frozen=True, slots=True)
class AssocType:
    name: str
    code: int
    inverse: str | None = None
    inverse_code: int | None = None
    # Unique per id1: at most one edge of this type per id1 (e.g. a post's single author).
    unique: bool = False
    # Set on derived inverse types: the primary type they mirror.
    derived_from: str | None = None
    # Keep this type's lists and edges in the cache tier. Off for lists written in bulk and read
    # in pages larger than the cached window anyway (FEED: a fan-out then does no cache work per
    # follower, and every read of the type goes to SQL, so none can see an entry it did not update).
    cached: bool = True
    # Keep an exact count (and a list version) for this type's lists. Off only for lists nobody
    # counts, written in bulk (FEED): an edge write is then one upsert, with no list lock, no
    # existence read and no count row. Uncounted types are uncached, with no inverse, not unique.
    counted: bool = True
    # How many of a list's newest edges its cached value holds; None: the deployment's
    # `cache.list_limit`. Set on types that are read whole and capped by the product (FOLLOWS:
    # the tray, the feed's rebuild and Explore read a viewer's whole following, at most the
    # follow cap), so such a read is one cache value, not a SQL statement past the window.
    window: int | None = None


class Registry:
    def __init__(self) -> None:
        self.otypes: dict[str, ObjectType] = {}
        self.atypes: dict[str, AssocType] = {}
        self._otype_codes: dict[int, ObjectType] = {}
        self._atype_codes: dict[int, AssocType] = {}
        # Unique-key namespaces never read through the cache (`tao.unique_keys`).
        self.uncached_key_namespaces: set[str] = set()

    def object_type(self, name: str, code: int) -> ObjectType:
        t = ObjectType(name, code)
        self._check_new(name, code, self.otypes, self._otype_codes)
        self.otypes[name] = self._otype_codes[code] = t
        return t

    def assoc_type(
        self, name: str, code: int, *, inverse: str | None = None, inverse_code: int | None = None,
        unique: bool = False, cached: bool = True, counted: bool = True, window: int | None = None,
    ) -> AssocType:
        if (inverse is None) != (inverse_code is None):
            raise ValueError(f"{name}: give both inverse and inverse_code, or neither")
        if not counted and (cached or inverse is not None or unique):
            # Cached lists carry the count and version; inverses and uniqueness need the list lock.
            raise ValueError(f"{name}: an uncounted type must be uncached, without inverse, and not unique")
        if window is not None and (not cached or window < 1):
            raise ValueError(f"{name}: a cache window needs a cached type and at least one edge")
        t = AssocType(name, code, inverse, inverse_code, unique, cached=cached, counted=counted, window=window)
        self._check_new(name, code, self.atypes, self._atype_codes)
        self.atypes[name] = self._atype_codes[code] = t
        if inverse is not None and inverse_code is not None:
            inv = AssocType(inverse, inverse_code, name, code, False, derived_from=name)
            self._check_new(inverse, inverse_code, self.atypes, self._atype_codes)
            self.atypes[inverse] = self._atype_codes[inverse_code] = inv
        return t

    def uncached_key_namespace(self, ns: str) -> str:
        """Declare `ns` a unique-key namespace the cache never holds: its every read, claim and
        release goes to SQL alone (declared once here, so no caller can mix the two)."""
        self.uncached_key_namespaces.add(ns)
        return ns

    @staticmethod
    def _check_new(name: str, code: int, by_name: dict, by_code: dict) -> None:
        if not name.isidentifier() or name.upper() != name:
            raise ValueError(f"type name {name!r} must be UPPER_SNAKE")
        if name in by_name:
            raise ValueError(f"type {name} is declared twice")
        if not 0 < code < 32768 or code in by_code:
            raise ValueError(f"type {name}: code {code} is out of range or already used by {by_code[code].name}")

    def otype(self, name: str) -> ObjectType:
        try:
            return self.otypes[name]
        except KeyError:
            raise UnknownTypeError(f"unknown object type {name!r}") from None

    def atype(self, name: str) -> AssocType:
        try:
            return self.atypes[name]
        except KeyError:
            raise UnknownTypeError(f"unknown association type {name!r}") from None

    def primary_atype(self, name: str) -> AssocType:
        """The type of an edge a caller may write: not a derived inverse (the store keeps those)."""
        t = self.atype(name)
        if t.derived_from is not None:
            raise UnknownTypeError(f"{name} is the inverse of {t.derived_from} and is kept by the store: "
                                   f"write {t.derived_from} instead")
        return t

    def inverse_code(self, name: str) -> int:
        """The code of the inverse of `name`, a type that has one."""
        code = self.atype(name).inverse_code
        if code is None:
            raise UnknownTypeError(f"{name} has no inverse")
        return code

    def otype_by_code(self, code: int) -> ObjectType:
        return self._otype_codes[code]

    def atype_by_code(self, code: int) -> AssocType:
        return self._atype_codes[code]
