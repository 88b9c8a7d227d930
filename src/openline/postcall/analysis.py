"""LLM analyses of a finished transcript: extraction, evaluation, task results, summary.

Pure helpers (JSON Schemas, parsing, coercion) plus thin async functions that call the
configured ``LLM`` with the prompts of ``postcall.prompts``. Structured answers are
requested with ``GenerationOptions.json_schema``; the answer is still parsed leniently
and coerced, because not every OpenAI-compatible server enforces the schema.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from openline.postcall import prompts
from openline.providers.llm.base import LLM, GenerationOptions

EvalResult = Literal["successful", "unsuccessful", "undecided", "error"]
EVAL_RESULTS = ("successful", "unsuccessful", "undecided")
_JSON_TYPES = {"string": "string", "int": "integer", "float": "number", "bool": "boolean"}
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


@dataclass(frozen=True)
class Extraction:
    """Coerced values per field, and notes for the ones that are null or were changed."""

    result: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    result: EvalResult
    reasoning: str


@dataclass(frozen=True)
class TaskResult:
    completed: bool
    reasoning: str


# --- JSON Schemas -------------------------------------------------------------------------

def field_schema(ftype: str, description: str | None = None) -> dict[str, Any]:
    """JSON Schema of one extraction field; every field may be null (not in the call)."""
    if ftype.endswith("[]"):
        schema: dict[str, Any] = {"type": ["array", "null"],
                                  "items": {"type": _JSON_TYPES[ftype[:-2]]}}
    else:
        schema = {"type": [_JSON_TYPES[ftype], "null"]}
    if description:
        schema["description"] = description
    return schema


def extraction_schema(fields: Sequence[prompts.FieldPrompt]) -> dict[str, Any]:
    """Strict object schema: every field present, nothing else."""
    return {"type": "object",
            "properties": {f.name: field_schema(f.type, f.description) for f in fields},
            "required": [f.name for f in fields], "additionalProperties": False}


EVALUATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"},
                   "result": {"type": "string", "enum": list(EVAL_RESULTS)}},
    "required": ["reasoning", "result"], "additionalProperties": False,
}


def tasks_schema(names: Sequence[str]) -> dict[str, Any]:
    """One ``{reasoning, completed}`` object per task name."""
    one = {"type": "object",
           "properties": {"reasoning": {"type": "string"}, "completed": {"type": "boolean"}},
           "required": ["reasoning", "completed"], "additionalProperties": False}
    return {"type": "object", "properties": {n: one for n in names}, "required": list(names),
            "additionalProperties": False}


# --- parsing and coercion -----------------------------------------------------------------

def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's answer (code fences and chatter tolerated)."""
    cleaned = _FENCE.sub("", text.strip())
    start = cleaned.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(cleaned[start:])
        except json.JSONDecodeError:
            start = cleaned.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None


def coerce(value: Any, ftype: str) -> tuple[Any, str | None]:
    """``value`` as ``ftype`` (``string``, ``int``, ``float``, ``bool`` or ``<type>[]``).

    Returns ``(coerced, note)``: ``note`` explains a null or a changed value; ``None`` and
    a note-free result mean the value was already right (or absent)."""
    if value is None:
        return None, None
    if ftype.endswith("[]"):
        return _coerce_list(value, ftype[:-2])
    out = _scalar(value, ftype)
    if out is _BAD:
        return None, f"could not read {json.dumps(value)[:80]} as {ftype}"
    return out, None


def _coerce_list(value: Any, item_type: str) -> tuple[Any, str | None]:
    items = value if isinstance(value, list) else [value]
    good = [v for v in (_scalar(i, item_type) for i in items if i is not None) if v is not _BAD]
    dropped = len([i for i in items if i is not None]) - len(good)
    notes = []
    if not isinstance(value, list):
        notes.append("a single value was wrapped in a list")
    if dropped:
        notes.append(f"{dropped} item(s) that are not {item_type} were dropped")
    return good, "; ".join(notes) or None


_BAD = object()


def _scalar(value: Any, ftype: str) -> Any:
    if ftype == "string":
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return str(value).lower() if isinstance(value, bool) else str(value)
    if ftype == "bool":
        return _to_bool(value)
    number = _to_number(value)
    if number is _BAD:
        return _BAD
    assert isinstance(number, float)
    if ftype == "float":
        return number
    return int(number) if number.is_integer() else _BAD


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return _BAD


def _to_number(value: Any) -> Any:
    if isinstance(value, bool):
        return _BAD
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", "").replace("$", ""))
        except ValueError:
            return _BAD
    else:
        return _BAD
    return number if math.isfinite(number) else _BAD


def coerce_extraction(raw: dict[str, Any] | None,
                      fields: Sequence[prompts.FieldPrompt]) -> Extraction:
    """Every field of the schema, coerced; unknown keys from the model are ignored."""
    if raw is None:
        return Extraction({f.name: None for f in fields},
                          {f.name: "the model's answer was not a JSON object" for f in fields})
    result: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for f in fields:
        if f.name not in raw:
            result[f.name], notes[f.name] = None, "missing from the model's answer"
            continue
        result[f.name], note = coerce(raw[f.name], f.type)
        if note:
            notes[f.name] = note
    return Extraction(result, notes)


# --- LLM calls ----------------------------------------------------------------------------

async def _json_answer(llm: LLM, messages: list[Any], schema: dict[str, Any],
                       max_tokens: int) -> dict[str, Any] | None:
    done = await llm.complete(messages, options=GenerationOptions(
        max_tokens=max_tokens, temperature=0.0, json_schema=schema, background=True))
    return parse_json_object(done.text)


async def extract(llm: LLM, schema_prompt: str, fields: Sequence[prompts.FieldPrompt],
                  transcript: str) -> Extraction:
    """Run an extraction schema over ``transcript``."""
    raw = await _json_answer(llm, prompts.extraction_messages(schema_prompt, fields, transcript),
                             extraction_schema(fields), 200 + 60 * len(fields))
    return coerce_extraction(raw, fields)


async def evaluate(llm: LLM, question: str, transcript: str) -> Evaluation:
    """Answer an eval prompt; an unusable answer is ``error`` (with the reason)."""
    raw = await _json_answer(llm, prompts.evaluation_messages(question, transcript),
                             EVALUATION_SCHEMA, 300)
    if raw is None:
        return Evaluation("error", "the model's answer was not a JSON object")
    result = str(raw.get("result", "")).strip().lower()
    reasoning = str(raw.get("reasoning") or "")
    if result not in EVAL_RESULTS:
        return Evaluation("error", f"unexpected result {result!r}; reasoning: {reasoning}")
    return Evaluation(result, reasoning)  # type: ignore[arg-type]


async def task_results(llm: LLM, tasks: Sequence[tuple[str, str]],
                       transcript: str) -> dict[str, TaskResult]:
    """For each (name, description), whether the assistant completed it."""
    names = [name for name, _ in tasks]
    raw = await _json_answer(llm, prompts.tasks_messages(tasks, transcript), tasks_schema(names),
                             80 + 80 * len(names)) or {}
    out: dict[str, TaskResult] = {}
    for name in names:
        entry = raw.get(name)
        completed = _to_bool(entry.get("completed")) if isinstance(entry, dict) else _BAD
        reasoning = str(entry.get("reasoning") or "") if isinstance(entry, dict) else ""
        if completed is _BAD:
            out[name] = TaskResult(False, reasoning or "no usable verdict from the model")
        else:
            out[name] = TaskResult(bool(completed), reasoning)
    return out


async def summarize(llm: LLM, transcript: str) -> str:
    """A short plain-text summary."""
    done = await llm.complete(prompts.summary_messages(transcript),
                              options=GenerationOptions(max_tokens=160, temperature=0.2,
                                                        background=True))
    return done.text.strip()


def render_transcript(lines: Sequence[tuple[str, str]]) -> str:
    """``User: ...\\nAssistant: ...`` from (role, text) pairs (Phonic's transcript form)."""
    return "\n".join(f"{'User' if role == 'user' else 'Assistant'}: {text}"
                     for role, text in lines if text)
