"""The search text helpers: the capped edit distance ranking uses, against the textbook table."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.search.text import edit_distance


def osa(a: str, b: str) -> int:
    """Optimal string alignment distance, the whole table (the reference)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


words = st.text(alphabet="abcd", max_size=9)  # a small alphabet: many near pairs


@settings(max_examples=2000)
@given(words, words, st.integers(min_value=1, max_value=4))
def test_edit_distance_is_the_capped_osa_distance(a, b, cap):
    assert edit_distance(a, b, cap) == min(osa(a, b), cap)


@given(words, st.data())
def test_one_edit_away_is_one(a, data):
    i = data.draw(st.integers(min_value=0, max_value=len(a)))
    c = data.draw(st.sampled_from("abcde"))
    swapped = a[:i] + a[i + 1:i + 2] + a[i:i + 1] + a[i + 2:]
    for b in (a[:i] + c + a[i:], a[:i] + c + a[i + 1:], a[:i] + a[i + 1:], swapped):
        assert edit_distance(a, b) == min(osa(a, b), 3)


def test_examples():
    assert edit_distance("lovelace", "lvoelace") == 1   # a transposition
    assert edit_distance("grace", "grcae") == 1
    assert edit_distance("kestrel", "kestrel") == 0
    assert edit_distance("kestrel", "kstrl") == 2
    assert edit_distance("kestrel", "osprey") == 3      # capped
