"""A Vapi assistant's ``analysisPlan``: structured data and success evaluation after a call.

Run by the post-call job (``PostCallService.steps``) after the summary and before the
``conversation.ended`` event that sends the ``end-of-call-report``, so ``GET /call`` and the
report show the same ``analysis``:

* ``structuredDataPlan`` (``enabled`` must be true, as in Vapi; ``schema``: a JSON Schema;
  ``messages``: the prompt) -> ``analysis.structuredData``: the LLM's JSON answer, asked
  with the schema as ``json_schema``;
* ``successEvaluationPlan`` (``enabled``, default true when the plan is given; ``rubric``,
  default ``NumericScale``; ``messages``) -> ``analysis.successEvaluation``: a string, as
  Vapi writes it (``"8"``, ``"true"``, ``"Good"``, ``"80%"``).

Prompts may use ``{{transcript}}``, ``{{systemPrompt}}``, ``{{endedReason}}``, ``{{schema}}``
and ``{{rubric}}``. A call with fewer transcript messages than ``minMessagesThreshold``
(default 2) is not analysed. The results are kept in the call's document (``analysis``);
a retried job skips what an earlier try stored. Calls whose assistant came from an
``assistant-request`` reply are not analysed (their assistant is not stored).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openline.postcall.analysis import parse_json_object
from openline.providers.llm.base import LLM, ChatMessage, GenerationOptions
from openline.services.redaction import Protection
from openline.services.vapi import call_view
from openline.services.vapi import live_assistant as la
from openline.services.vapi.checks import is_number
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.store.tables_vapi import VapiResource
from openline.store.tables_vapi_live import VapiCall

STRUCTURED_SYSTEM = (
    "You are an expert data extractor. You will be given a transcript of a call. Extract "
    "structured data per the JSON Schema. DO NOT return anything except the structured "
    "data.\n\nJson Schema:\n{{schema}}\n\nOnly respond with the JSON.")
STRUCTURED_USER = ("Here is the transcript:\n\n{{transcript}}\n\n. Here is the ended reason "
                   "of the call:\n\n{{endedReason}}\n\n")
SUCCESS_SYSTEM = (
    "You are an expert call evaluator. You will be given a transcript of a call and the "
    "system prompt of the AI participant. Determine if the call was successful based on the "
    "objectives inferred from the system prompt. DO NOT return anything except the result."
    "\n\nRubric:\n{{rubric}}\n\nOnly respond with the result.")
SUCCESS_USER = ("Here is the transcript:\n\n{{transcript}}\n\n. Here is the ended reason of "
                "the call:\n\n{{endedReason}}\n\nHere was the system prompt of the call:"
                "\n\n{{systemPrompt}}\n\n")
ROLES = ("system", "user", "assistant")
_VARIABLE = re.compile(r"\{\{\s*(transcript|systemPrompt|endedReason|schema|rubric)\s*\}\}")


@dataclass(frozen=True)
class Rubric:
    description: str
    schema: dict[str, Any]


_LIKERT = ["Strongly Agree", "Agree", "Neutral", "Disagree", "Strongly Disagree"]
#: Vapi's rubrics: what the evaluator is told, and the JSON Schema of its ``result``.
RUBRICS: dict[str, Rubric] = {
    "NumericScale": Rubric("A scale of 1 to 10.",
                           {"type": "integer", "minimum": 1, "maximum": 10}),
    "DescriptiveScale": Rubric("A scale of Excellent, Good, Fair, Poor.",
                               {"type": "string", "enum": ["Excellent", "Good", "Fair", "Poor"]}),
    "Checklist": Rubric("A checklist of criteria and their status.", {"type": "string"}),
    "Matrix": Rubric("A grid that evaluates multiple criteria across different performance "
                     "levels.", {"type": "string"}),
    "PercentageScale": Rubric("A scale of 0% to 100%.",
                              {"type": "integer", "minimum": 0, "maximum": 100}),
    "LikertScale": Rubric("A scale of " + ", ".join(_LIKERT) + ".",
                          {"type": "string", "enum": _LIKERT}),
    "AutomaticRubric": Rubric("Automatically break down evaluation into several criteria, "
                              "each with its own score.", {"type": "string"}),
    "PassFail": Rubric("A simple 'true' if call passed, 'false' if not.", {"type": "boolean"}),
}
DEFAULT_RUBRIC = "NumericScale"


def plan_errors(plan: Any) -> dict[str, str]:
    """What Vapi refuses in an ``analysisPlan`` (keyed by the assistant key)."""
    if not isinstance(plan, Mapping):
        return {}  # "must be an object" is the assistant check's
    errors: dict[str, str] = {}
    threshold = plan.get("minMessagesThreshold")
    if threshold is not None and not (is_number(threshold) and threshold >= 0):
        errors["analysisPlan.minMessagesThreshold"] = "must be a number of at least 0"
    for key in ("structuredDataPlan", "successEvaluationPlan"):
        part = plan.get(key)
        if part is None:
            continue
        path = f"analysisPlan.{key}"
        if not isinstance(part, Mapping):
            errors[path] = f"{path} must be an object"
            continue
        if part.get("enabled") is not None and not isinstance(part["enabled"], bool):
            errors[f"{path}.enabled"] = f"{path}.enabled must be a boolean"
        messages = part.get("messages")
        if messages is not None and not (isinstance(messages, list) and all(
                isinstance(m, Mapping) and m.get("role") in ROLES
                and isinstance(m.get("content"), str) for m in messages)):
            errors[f"{path}.messages"] = (f"{path}.messages must be {{role, content}} objects "
                                          "with role system, user or assistant")
    structured = plan.get("structuredDataPlan")
    if isinstance(structured, Mapping) and structured.get("schema") is not None \
            and not isinstance(structured["schema"], Mapping):
        errors["analysisPlan.structuredDataPlan.schema"] = "schema must be a JSON Schema object"
    success = plan.get("successEvaluationPlan")
    if isinstance(success, Mapping) and success.get("rubric") is not None \
            and success["rubric"] not in RUBRICS:
        errors["analysisPlan.successEvaluationPlan.rubric"] = (
            "rubric must be one of " + ", ".join(RUBRICS))
    return errors



@dataclass(frozen=True)
class CallFacts:
    """What the prompts are filled with."""

    transcript: str
    system_prompt: str
    ended_reason: str


class AnalysisPlans:
    """The post-call step (see the module docstring)."""

    def __init__(self, db: Database, llm: LLM) -> None:
        self.db, self.llm = db, llm

    async def run(self, conversation_id: str, transcript: str) -> None:
        """Analyse one ended conversation, if it is a Vapi call whose plan asks for it."""
        async with self.db.session() as s:
            row = await s.get(VapiCall, conversation_id)
            doc = await s.get(VapiResource, conversation_id)
            conv = await s.get(t.Conversation, conversation_id)
            if row is None or doc is None or conv is None:
                return
            assistant = await self._assistant(s, row, dict(doc.doc or {}))
        plan = assistant.get("analysisPlan")
        if not isinstance(plan, Mapping) or not transcript:
            return
        threshold = plan.get("minMessagesThreshold", 2)
        if is_number(threshold) and len(transcript.splitlines()) < threshold:
            return
        stored = (doc.doc or {}).get("analysis")
        have = dict(stored) if isinstance(stored, Mapping) else {}
        facts = CallFacts(transcript, _system_prompt(assistant, conv),
                          row.ended_reason or call_view.ended_reason(conv.ended_by, conv.origin)
                          or "")
        found = await self._analyse(plan, have, facts)
        if found:
            # Redacted as the agent asks, like the tool-call documents of the call.
            await self._store(conversation_id, Protection.of(conv.config).document(found))

    async def _analyse(self, plan: Mapping[str, Any], have: Mapping[str, Any],
                       facts: CallFacts) -> dict[str, Any]:
        found: dict[str, Any] = {}
        structured = plan.get("structuredDataPlan")
        if isinstance(structured, Mapping) and structured.get("enabled") is True \
                and isinstance(structured.get("schema"), Mapping) \
                and "structuredData" not in have:
            found["structuredData"] = await self._structured(structured, facts)
        success = plan.get("successEvaluationPlan")
        if isinstance(success, Mapping) and success.get("enabled", True) is not False \
                and "successEvaluation" not in have:
            found["successEvaluation"] = await self._success(success, facts)
        return found

    async def _structured(self, plan: Mapping[str, Any], facts: CallFacts) -> Any:
        schema = dict(plan["schema"])
        messages = _messages(plan.get("messages"), STRUCTURED_SYSTEM, STRUCTURED_USER, facts,
                             schema=json.dumps(schema))
        done = await self.llm.complete(messages, options=GenerationOptions(
            max_tokens=600, temperature=0.0,
            json_schema=schema if schema.get("type") == "object" else None,
            background=True))
        return _json_value(done.text)

    async def _success(self, plan: Mapping[str, Any], facts: CallFacts) -> str:
        name = str(plan.get("rubric") or DEFAULT_RUBRIC)
        rubric = RUBRICS.get(name, RUBRICS[DEFAULT_RUBRIC])
        messages = _messages(plan.get("messages"), SUCCESS_SYSTEM, SUCCESS_USER, facts,
                             rubric=rubric.description)
        # The answer's form, whatever the prompt: {"result": <a value of the rubric>}.
        messages.append(ChatMessage.system(
            f'Answer with a JSON object {{"result": ...}} whose result is {rubric.description}'))
        schema = {"type": "object", "properties": {"result": rubric.schema},
                  "required": ["result"], "additionalProperties": False}
        done = await self.llm.complete(messages, options=GenerationOptions(
            max_tokens=300, temperature=0.0, json_schema=schema, background=True))
        answer = parse_json_object(done.text)
        value = answer.get("result") if answer is not None and "result" in answer \
            else done.text.strip()
        return _verdict(value, name)

    async def _assistant(self, s: Any, row: VapiCall, doc: dict[str, Any]) -> dict[str, Any]:
        """The call's assistant as it ran: inline or stored, with the overrides merged."""
        request = row.request or {}
        overrides = request.get("assistantOverrides")
        overrides = overrides if isinstance(overrides, dict) else None
        if isinstance(request.get("assistant"), dict):
            return la.merge_overrides(request["assistant"], overrides)
        assistant_id = doc.get("assistantId") or request.get("assistantId")
        if not isinstance(assistant_id, str):
            return {}
        found = await s.get(VapiResource, assistant_id)
        if found is None or found.kind != "assistant" or found.workspace_id != row.workspace_id:
            return {}
        return la.merge_overrides(dict(found.doc or {}), overrides)

    async def _store(self, conversation_id: str, found: dict[str, Any]) -> None:
        async with self.db.session() as s:
            doc = await s.get(VapiResource, conversation_id)
            if doc is None:
                return  # the call was deleted meanwhile
            current = dict(doc.doc or {})
            stored = current.get("analysis")
            analysis = dict(stored) if isinstance(stored, Mapping) else {}
            doc.doc = {**current, "analysis": {**analysis, **found}}
            doc.updated_at = utcnow()


def _system_prompt(assistant: Mapping[str, Any], conv: t.Conversation) -> str:
    model = assistant.get("model")
    messages = model.get("messages") if isinstance(model, Mapping) else None
    system = [str(m.get("content") or "") for m in messages or []
              if isinstance(m, Mapping) and m.get("role") == "system"]
    return "\n\n".join(system) or str((conv.config or {}).get("system_prompt") or "")


def _messages(given: Any, system: str, user: str, facts: CallFacts,
              **extra: str) -> list[ChatMessage]:
    values = {"transcript": facts.transcript, "systemPrompt": facts.system_prompt,
              "endedReason": facts.ended_reason, "schema": "", "rubric": "", **extra}

    def fill(text: str) -> str:
        return _VARIABLE.sub(lambda m: values[m.group(1)], text)

    pairs = [(str(m["role"]), str(m["content"])) for m in given] \
        if isinstance(given, list) and given else [("system", system), ("user", user)]
    return [ChatMessage(role, fill(content)) for role, content in pairs]  # type: ignore[arg-type]


def _json_value(text: str) -> Any:
    """The model's JSON answer (an object, or any JSON value); the text if it is none."""
    found = parse_json_object(text)
    if found is not None:
        return found
    try:
        return json.loads(text.strip().removeprefix("```json").strip("`").strip())
    except json.JSONDecodeError:
        return text.strip()


def _verdict(value: Any, rubric: str) -> str:
    """The rubric's value as Vapi writes ``successEvaluation``: a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if rubric == "PercentageScale" and isinstance(value, int):
        return f"{value}%"
    return value if isinstance(value, str) else json.dumps(value)
