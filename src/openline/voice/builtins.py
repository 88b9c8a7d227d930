"""Built-in tools the model can call; the engine runs them itself."""

from __future__ import annotations

from openline.providers.llm.base import ToolSpec

BUILT_IN_SPECS: dict[str, ToolSpec] = {
    "natural_conversation_ending": ToolSpec(
        "natural_conversation_ending",
        "End the call once the caller is done (after saying goodbye).",
        {"type": "object", "properties": {}},
    ),
    "choose_not_to_respond": ToolSpec(
        "choose_not_to_respond",
        "Stay silent this turn (the caller is not talking to you, or asked you to wait).",
        {"type": "object", "properties": {}},
    ),
}


def built_in_specs(names: tuple[str, ...]) -> list[ToolSpec]:
    """Specs for the named built-ins the engine supports (others are skipped)."""
    return [BUILT_IN_SPECS[n] for n in names if n in BUILT_IN_SPECS]
