"""The fast JSON writer of response bodies and log lines: orjson, and the stdlib past it."""

from __future__ import annotations

import json

from config import json_bytes


def test_writes_compact_utf8_bytes():
    assert json_bytes.dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()


def test_an_integer_past_64_bits_is_written_exactly_by_the_fallback():
    huge = 2**70 + 1  # orjson refuses it; a client's id or a hostile variable can be one
    assert json.loads(json_bytes.dumps({"n": huge})) == {"n": huge}


def test_default_turns_what_json_lacks_into_text_on_both_paths():
    class Odd:
        def __str__(self) -> str:
            return "odd"
    assert json.loads(json_bytes.dumps({"x": Odd()}, default=str)) == {"x": "odd"}
    assert json.loads(json_bytes.dumps({"x": Odd(), "n": 2**70}, default=str)) == {"x": "odd", "n": 2**70}
