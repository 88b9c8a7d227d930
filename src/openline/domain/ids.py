"""Identifier minting. IDs carry the Phonic prefixes (``agent_``, ``conv_``...)."""

from __future__ import annotations

import uuid


def new_id(prefix: str) -> str:
    """Return a fresh identifier such as ``agent_5f0c...`` (prefix + UUID4)."""
    return f"{prefix}_{uuid.uuid4()}"


AGENT = "agent"
PROJECT = "proj"
TOOL = "tool"
CONVERSATION = "conv"
CONVERSATION_ITEM = "conv_item"
EXTRACTION_SCHEMA = "conv_extract_schema"
EXTRACTION = "conv_extract"
EVAL = "conv_eval"
EVAL_PROMPT = "conv_eval_prompt"
TOOL_CALL = "tool_call"
API_KEY = "api_key"
WORKSPACE = "ws"
