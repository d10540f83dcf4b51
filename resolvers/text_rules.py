"""What typed text may hold, decided once: control characters, and text that shows as nothing.

Free text (a comment) keeps its line breaks and tabs; a name shown beside others' text (a full
name, a highlight's title) holds no control character at all, nor a line or paragraph
separator, nor a bidi embedding, override or isolate, which reorder the text after them
("Ada\u202e" reversed whatever a client printed next to it, a known spoofing trick). Marks
that join emoji (U+200D) and the directional marks RTL names need (U+200E/F, U+061C) stay
allowed. Text made only of spaces and invisible format characters (a zero-width space, a word
joiner) is blank: it shows as nothing.
"""

from __future__ import annotations

import unicodedata

# Controls (C0, DEL and C1: U+0085 is a line break) minus what free text keeps.
_TEXT_KEEPS = frozenset("\t\n\r")
NAME_REFUSED = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _control(c: str) -> bool:
    return ord(c) < 32 or 0x7F <= ord(c) <= 0x9F


def text_has_controls(text: str) -> bool:
    """Whether free text holds a control character other than a tab or a line break."""
    return any(_control(c) and c not in _TEXT_KEEPS for c in text)


def name_refused(name: str) -> bool:
    """Whether a name holds a character a name must not (see the module's docstring)."""
    return any(_control(c) or c in NAME_REFUSED for c in name)


def is_blank(text: str) -> bool:
    """Whether the text shows as nothing: only white space and invisible format characters."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)
