"""Text as the search index sees it: one normal form for documents and queries alike.

`normalize` is NFKC (full-width `ＡＤＡ` becomes `ADA`, ligatures split), then case folding
(`Straße` matches `strasse`), then accents stripped (NFD, combining marks dropped: `José`
matches `jose`), then NFC. `tokens` splits the normal form into words on anything that is not
a letter or digit; a run of CJK characters (Han, Hiragana, Katakana, Hangul), which has no
spaces between words, becomes its overlapping bigrams plus each single character, so any
two-character substring of `東京タワー` finds it and a one-character query still matches. The
same function tokenizes documents and queries, so they always agree; the index stores the
tokens joined by spaces and tantivy's `whitespace` tokenizer splits them again.
"""

from __future__ import annotations

import re
import unicodedata

# Han, Hiragana, Katakana (incl. half-width), Hangul syllables and jamo.
_CJK = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
                  r"\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]+")
_WORD = re.compile(r"[^\W_]+")
MAX_TOKEN = 60  # longer runs are cut: tantivy refuses terms over 65 530 bytes, and nobody types them


def normalize(text: str) -> str:
    if text.isascii():  # the common case, and NFKC, case folding and accents change nothing but case
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    stripped = "".join(c for c in unicodedata.normalize("NFD", folded) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


def _cjk_grams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)] + list(dict.fromkeys(run))


def tokens(text: str) -> list[str]:
    """The searchable words of `text` (normalised; CJK runs as bigrams and characters)."""
    out: list[str] = []
    for word in _WORD.findall(normalize(text)):
        if word.isascii():
            out.append(word[:MAX_TOKEN])
            continue
        pos = 0
        for m in _CJK.finditer(word):
            if m.start() > pos:
                out.append(word[pos:m.start()][:MAX_TOKEN])
            out += _cjk_grams(m.group())
            pos = m.end()
        if pos < len(word):
            out.append(word[pos:][:MAX_TOKEN])
    return out


def is_cjk(token: str) -> bool:
    return _CJK.fullmatch(token) is not None


def handle(text: str) -> str:
    """The whole name as one term (a username or tag without its separators), for exact and
    prefix matches of what people type as one word: `ada.lovelace` -> `adalovelace`."""
    return "".join(_WORD.findall(normalize(text)))[:MAX_TOKEN]


def _one_edit(a: str, b: str) -> bool:
    """Whether two different strings are one substitution, insertion, deletion or adjacent
    transposition apart: one pass, no table (most typo-tier candidates are)."""
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1:
        return False
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):
        return a[i:] == b[i + 1:]
    return a[i + 1:] == b[i + 1:] or (i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i]
                                      and a[i + 2:] == b[i + 2:])


def edit_distance(a: str, b: str, cap: int = 3) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, capped at `cap`.

    Ranking asks this of every typo-tier candidate (about a hundred per query), so: equal and
    one-edit pairs answer without a table, and the table is computed only within `cap` of its
    diagonal (a cell further off is at least `cap`), stopping at the first row all at `cap`."""
    if a == b:
        return 0
    if cap <= 1:
        return cap
    if _one_edit(a, b):
        return 1
    if cap == 2 or abs(len(a) - len(b)) >= cap:
        return cap
    lb = len(b)
    prev2: list[int] = []
    prev = [min(j, cap) for j in range(lb + 1)]
    for i, ca in enumerate(a, 1):
        cur = [cap] * (lb + 1)
        cur[0] = min(i, cap)
        for j in range(max(1, i - cap), min(lb, i + cap) + 1):
            cb = b[j - 1]
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb and prev2[j - 2] + 1 < v:
                v = prev2[j - 2] + 1
            cur[j] = v if v < cap else cap
        if min(cur) >= cap:
            return cap
        prev2, prev = prev, cur
    return prev[-1]


def fuzzy_distance(term: str) -> int:
    """Edits a typo-tolerant match allows: none for 1-2 characters, one up to 5, two beyond."""
    n = len(term)
    return 0 if n <= 2 else 1 if n <= 5 else 2
