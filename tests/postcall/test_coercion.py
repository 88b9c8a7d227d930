"""Pure post-call helpers: coercion of extracted values, lenient JSON, transcript cuts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from openline.postcall.analysis import coerce, coerce_extraction, parse_json_object
from openline.postcall.prompts import FieldPrompt
from openline.postcall.transcripts import TurnAudio, segment


@pytest.mark.parametrize(("value", "ftype", "expected"), [
    ("42", "int", 42), (42.0, "int", 42), ("1,200", "int", 1200), (3, "float", 3.0),
    ("$19.99", "float", 19.99), ("yes", "bool", True), (0, "bool", False),
    ("FALSE", "bool", False), (7, "string", "7"), (True, "string", "true"),
    ({"a": 1}, "string", '{"a": 1}'), (None, "int", None),
    (["1", 2, "x"], "int[]", [1, 2]), ("a", "string[]", ["a"]), ([True, "no"], "bool[]",
                                                                   [True, False]),
])
def test_coerce_values(value: object, ftype: str, expected: object) -> None:
    assert coerce(value, ftype)[0] == expected


@pytest.mark.parametrize(("value", "ftype"), [
    ("4.5", "int"), ("many", "int"), (True, "int"), ("nan", "float"), ("maybe", "bool"),
    ([1], "float"), (2, "bool"),
])
def test_unparseable_values_become_null_with_a_note(value: object, ftype: str) -> None:
    coerced, note = coerce(value, ftype)
    assert coerced is None and note and ftype in note


def test_extraction_keeps_exactly_the_schema_fields() -> None:
    fields = [FieldPrompt("a", "int", None), FieldPrompt("b", "bool[]", None)]
    out = coerce_extraction({"a": "5", "zzz": 1}, fields)
    assert out.result == {"a": 5, "b": None} and set(out.notes) == {"b"}
    assert coerce_extraction(None, fields).result == {"a": None, "b": None}


def test_lenient_json() -> None:
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Sure! {"a": {"b": [1]}} hope it helps') == {"a": {"b": [1]}}
    assert parse_json_object("no json {here") is None
    assert parse_json_object("[1, 2]") is None


def test_caller_segments_are_cut_from_the_recording_with_padding() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    caller = np.arange(16_000 * 10, dtype=np.int32).astype(np.int16)
    turn = TurnAudio("user", "hi", start + timedelta(seconds=2), 1000.0)
    cut = segment(caller, start, turn)
    assert cut is not None and cut.size == int(1.6 * 16_000)  # 1 s + 0.3 s each side
    assert cut[0] == caller[int(1.7 * 16_000)]
    assert segment(caller, start, TurnAudio("user", "x", start + timedelta(seconds=30),
                                            500.0)) is None
    assert segment(caller, start, TurnAudio("user", "x", None, 500.0)) is None
