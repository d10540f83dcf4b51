"""Old clients keep working: `schema.graphql` makes no breaking change to the last released
schema (`schema/released.graphql`) unless the change is listed in
`schema/accepted_breaking_changes.txt` (docs/graphql.md, "Changing the schema").

Breaking changes are graphql-core's `find_breaking_changes`: a type or field removed, a field's
type changed incompatibly, a required argument or input field added, an enum value removed, ...
Adding types, fields, optional arguments and enum values never breaks a client.
"""

from __future__ import annotations

from pathlib import Path

from graphql import BreakingChange, build_schema, find_breaking_changes

ROOT = Path(__file__).resolve().parents[2]
CURRENT = ROOT / "schema.graphql"
RELEASED = ROOT / "schema" / "released.graphql"
ACCEPTED = ROOT / "schema" / "accepted_breaking_changes.txt"


def describe(change: BreakingChange) -> str:
    """One change as a line of the accepted list."""
    return f"{change.type.name} {change.description}"


def accepted_changes(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")}


def unacknowledged_breaking_changes(released_sdl: str, current_sdl: str, accepted: set[str]) -> list[str]:
    changes = find_breaking_changes(build_schema(released_sdl), build_schema(current_sdl))
    return [describe(c) for c in changes if describe(c) not in accepted]


def test_no_unacknowledged_breaking_change():
    unacknowledged = unacknowledged_breaking_changes(RELEASED.read_text(), CURRENT.read_text(),
                                                     accepted_changes(ACCEPTED.read_text()))
    assert not unacknowledged, (
        "schema.graphql breaks clients built against schema/released.graphql:\n  "
        + "\n  ".join(unacknowledged)
        + "\nKeep the old field (mark it @deprecated(reason: \"Use X.\") instead), or, if no released "
        "client uses it any more, add the line(s) above to schema/accepted_breaking_changes.txt."
    )


def test_accepted_list_names_only_changes_that_happened():
    # A stale acknowledgement would silently accept the same break if it came back later.
    changes = {describe(c) for c in find_breaking_changes(build_schema(RELEASED.read_text()),
                                                          build_schema(CURRENT.read_text()))}
    stale = accepted_changes(ACCEPTED.read_text()) - changes
    assert not stale, f"schema/accepted_breaking_changes.txt lists changes that no longer happen: {sorted(stale)}"


SDL = ("type Query { user: User }\n"
       "type User { id: ID! name: String @deprecated(reason: \"Use fullName.\") fullName: String }\n")


def test_a_removed_field_fails_until_it_is_acknowledged():
    current = SDL.replace(' name: String @deprecated(reason: "Use fullName.")', "")
    assert unacknowledged_breaking_changes(SDL, current, set()) == ["FIELD_REMOVED Field User.name was removed."]
    assert unacknowledged_breaking_changes(SDL, current, {"FIELD_REMOVED Field User.name was removed."}) == []


def test_additions_and_deprecations_are_not_breaking():
    current = SDL.replace("fullName: String }", "fullName: String @deprecated(reason: \"Use displayName.\") "
                                                 "displayName: String }")
    assert unacknowledged_breaking_changes(SDL, current, set()) == []
