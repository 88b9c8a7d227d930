"""Every prompt Openline sends to the LLM after a call, in one readable place.

Each builder returns chat messages (system instructions, then the material as the user
turn). The JSON answers are additionally constrained by a JSON Schema
(``GenerationOptions.json_schema``), so the text only has to explain *what* to answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openline.providers.llm.base import ChatMessage

EXTRACTION_SYSTEM = (
    "You extract structured data from a phone call transcript. Use only facts stated in "
    "the transcript. When a field's value is not in the transcript, use null. "
    "Answer with a single JSON object and nothing else."
)

EVALUATION_SYSTEM = (
    "You review a finished phone call between a caller (User) and a voice assistant "
    "(Assistant) and answer an evaluation question about it. First explain your reasoning "
    "briefly, then give the result: \"successful\" when the answer to the question is yes, "
    "\"unsuccessful\" when it is no, \"undecided\" when the transcript does not tell. "
    "Answer with a single JSON object and nothing else."
)

TASKS_SYSTEM = (
    "You review a finished phone call between a caller (User) and a voice assistant "
    "(Assistant). For each task of the assistant, decide whether the assistant completed "
    "it during the call, with one sentence of reasoning. A task only counts as completed "
    "when the transcript shows it was done. Answer with a single JSON object and nothing else."
)

SUMMARY_SYSTEM = (
    "Summarise this phone call between a caller (User) and a voice assistant (Assistant) "
    "in one to three plain sentences: why the caller called and what happened. "
    "Do not invent details."
)


@dataclass(frozen=True)
class FieldPrompt:
    """One extraction field as shown to the model."""

    name: str
    type: str
    description: str | None


def extraction_messages(schema_prompt: str, fields: Sequence[FieldPrompt],
                        transcript: str) -> list[ChatMessage]:
    """Run an extraction schema (its own prompt plus typed fields) over a transcript."""
    lines = [f"- {f.name} ({f.type}){': ' + f.description if f.description else ''}"
             for f in fields]
    instructions = schema_prompt.strip() or "Extract the fields below."
    user = (f"Instructions: {instructions}\n\nFields:\n" + "\n".join(lines)
            + f"\n\nTranscript:\n{transcript}")
    return [ChatMessage.system(EXTRACTION_SYSTEM), ChatMessage.user(user)]


def evaluation_messages(question: str, transcript: str) -> list[ChatMessage]:
    """Ask an eval prompt's question about a transcript."""
    user = f"Evaluation question: {question.strip()}\n\nTranscript:\n{transcript}"
    return [ChatMessage.system(EVALUATION_SYSTEM), ChatMessage.user(user)]


def tasks_messages(tasks: Sequence[tuple[str, str]], transcript: str) -> list[ChatMessage]:
    """Judge, for each (name, description) task of the agent, whether it was completed."""
    lines = [f"- {name}{': ' + desc if desc else ''}" for name, desc in tasks]
    user = "Tasks:\n" + "\n".join(lines) + f"\n\nTranscript:\n{transcript}"
    return [ChatMessage.system(TASKS_SYSTEM), ChatMessage.user(user)]


def summary_messages(transcript: str) -> list[ChatMessage]:
    """A short plain-text summary of the call."""
    return [ChatMessage.system(SUMMARY_SYSTEM), ChatMessage.user(f"Transcript:\n{transcript}")]
