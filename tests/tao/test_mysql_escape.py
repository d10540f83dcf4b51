"""The MySQL backend's own string escaping matches the driver's, character for character."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql.converters import escape_string

from tao.backends.mysql import escape_text

SPECIAL = "\\\0\n\r\x1a\"'"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(SPECIAL) + ["a", "%", "é", "\U0001f600"]), max_size=40)
       | st.text(max_size=40))
def test_escape_text_is_pymysqls_escape_string_quoted(value):
    assert escape_text(value) == "'" + escape_string(value) + "'"


def test_every_special_character_is_escaped():
    assert escape_text(SPECIAL) == "'\\\\\\0\\n\\r\\Z\\\"\\''"
