"""Size limits on every stored or per-call field, and the rule for stored text.

Every limit is generous for real use and small enough that one object, and therefore one
list of them, has a stated upper size (``docs/security.md``, "Limits"). Each is enforced
where the value is validated (the domain models), so the REST bodies, the per-call STS
``config`` overrides and the configuration endpoint's reply all obey the same numbers.

Stored text may not hold control characters: NUL makes PostgreSQL refuse the row, and
NUL or escape sequences make speech engines and terminals misbehave. Newline, tab and
carriage return are allowed (browsers send multi-line text with CRLF line ends).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StringConstraints

# --- lengths of one text field (characters) --------------------------------------------------
MAX_NAME_CHARS = 128  #: agents, projects, slugs, extraction schemas, eval prompts, API keys
MAX_TOOL_NAME_CHARS = 64  #: what LLM function-calling APIs accept
MAX_PROMPT_CHARS = 100_000  #: system prompts, extraction and eval prompts, tool context
MAX_MESSAGE_CHARS = 5_000  #: spoken text: welcome, poke, listen-only, transfer, TTS
MAX_DESCRIPTION_CHARS = 10_000  #: tool, parameter, task and field descriptions
MAX_KEYWORD_CHARS = 100  #: one boosted keyword
MAX_SHORT_CHARS = 256  #: identifiers and references: voice ids, tool names in lists, ...
MAX_TEMPLATE_KEY_CHARS = 64
MAX_TEMPLATE_VALUE_CHARS = 10_000
MAX_URL_CHARS = 2_048
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 8_192

# --- number of items in one list or map ----------------------------------------------------
MAX_KEYWORDS = 500
MAX_TEMPLATE_VARIABLES = 100
MAX_AGENT_TOOLS = 128
MAX_TASKS = 50
MAX_TOOL_PARAMETERS = 64
MAX_ENUM_VALUES = 256
MAX_EXTRACTION_FIELDS = 100
MAX_HEADERS = 50
MAX_REFERENCES = 100  #: voice ids, MCP servers, procedures, integrations, agents to transfer to
MAX_PHONE_NUMBERS = 1_000  #: one list of numbers (custom numbers, outbound pool)
MAX_JSON_BYTES = 64 * 1024  #: a free-form JSON value (a tool's JSON Schema, tool configs)
MAX_JSON_DEPTH = 16

# --- whole objects, and how many of them (lists without pagination stay bounded) ---------
#: One stored agent, tool or extraction schema as compact UTF-8 JSON. Many edits, each
#: within the body cap, cannot grow a document past this.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_AGENTS_PER_PROJECT = 500
#: per project: stored tools, extraction schemas, eval prompts
MAX_TOOLS_PER_PROJECT = 500
MAX_SCHEMAS_PER_PROJECT = 200
MAX_EVAL_PROMPTS_PER_PROJECT = 200
#: per workspace
MAX_PROJECTS_PER_WORKSPACE = 200
MAX_WEBHOOK_ENDPOINTS_PER_WORKSPACE = 50
#: per conversation: extractions and evaluations run on it
MAX_RESULTS_PER_CONVERSATION = 200
#: ``GET /projects/{id}/conversation_evals`` has no pagination: the newest this many
MAX_PROJECT_EVALS_LISTED = 1_000

#: C0 controls except tab, newline and carriage return; DEL; C1 controls; lone surrogates
#: (a JSON ``"\\ud800"`` decodes to one, and it cannot be encoded to UTF-8 for storage).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def control_char_error(value: str) -> str | None:
    """Why ``value`` may not be stored (``None`` when it may)."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    return (f"must not contain control characters (U+{ord(found.group()):04X} "
            f"at position {found.start()})")


def check_text(value: str) -> str:
    """``value`` unchanged, or ``ValueError`` when it holds a control character."""
    error = control_char_error(value)
    if error:
        raise ValueError(error)
    return value


def check_document_size(model: BaseModel) -> None:
    """``ValueError`` when ``model`` is larger than ``MAX_DOCUMENT_BYTES`` as JSON."""
    size = len(model.model_dump_json())
    if size > MAX_DOCUMENT_BYTES:
        raise ValueError(f"at most {MAX_DOCUMENT_BYTES} bytes as JSON (this one is {size})")


def check_json(value: Any) -> Any:
    """A free-form JSON value: bounded depth and size, every key and string clean."""
    _check_node(value, 0)
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode())
    except ValueError as exc:  # NaN or infinity: not JSON, and could not be answered back
        raise ValueError("NaN and infinity are not allowed") from exc
    if size > MAX_JSON_BYTES:
        raise ValueError(f"at most {MAX_JSON_BYTES} bytes of JSON (got {size})")
    return value


def _check_node(node: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"at most {MAX_JSON_DEPTH} levels of nesting")
    if isinstance(node, str):
        check_text(node)
    elif isinstance(node, dict):
        for key, child in node.items():
            check_text(str(key))
            _check_node(child, depth + 1)
    elif isinstance(node, list):
        for child in node:
            _check_node(child, depth + 1)


# Field types: a bounded string without control characters (each limit is published as
# ``maxLength`` in the JSON Schema).
NameText = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS),
                     AfterValidator(check_text)]
PromptText = Annotated[str, StringConstraints(max_length=MAX_PROMPT_CHARS),
                       AfterValidator(check_text)]
MessageText = Annotated[str, StringConstraints(max_length=MAX_MESSAGE_CHARS),
                        AfterValidator(check_text)]
DescriptionText = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION_CHARS),
                            AfterValidator(check_text)]
KeywordText = Annotated[str, StringConstraints(max_length=MAX_KEYWORD_CHARS),
                        AfterValidator(check_text)]
ShortText = Annotated[str, StringConstraints(max_length=MAX_SHORT_CHARS),
                      AfterValidator(check_text)]
TemplateValueText = Annotated[str, StringConstraints(max_length=MAX_TEMPLATE_VALUE_CHARS),
                              AfterValidator(check_text)]
UrlText = Annotated[str, StringConstraints(max_length=MAX_URL_CHARS),
                    AfterValidator(check_text)]
HeaderNameText = Annotated[str, StringConstraints(max_length=MAX_HEADER_NAME_CHARS),
                           AfterValidator(check_text)]
HeaderValueText = Annotated[str, StringConstraints(max_length=MAX_HEADER_VALUE_CHARS),
                            AfterValidator(check_text)]
#: Metadata for a free-form JSON field: ``Annotated[dict[str, Any], JSON_CHECK]``.
JSON_CHECK = AfterValidator(check_json)


def template_value_errors(values: Any, field: str = "template_variables") -> dict[str, str]:
    """Per-call template values (``{name: text}``): count, key and value limits, clean text."""
    if not isinstance(values, dict):
        return {field: "must map names to strings"}
    if len(values) > MAX_TEMPLATE_VARIABLES:
        return {field: f"at most {MAX_TEMPLATE_VARIABLES} variables"}
    errors: dict[str, str] = {}
    for key, value in values.items():
        path = f"{field}.{key}"[:MAX_SHORT_CHARS]
        if len(key) > MAX_TEMPLATE_KEY_CHARS or control_char_error(key):
            errors.setdefault(field, f"names are at most {MAX_TEMPLATE_KEY_CHARS} characters "
                                     "without control characters")
        elif not isinstance(value, str):
            errors[path] = "must be a string"
        elif len(value) > MAX_TEMPLATE_VALUE_CHARS:
            errors[path] = f"at most {MAX_TEMPLATE_VALUE_CHARS} characters"
        elif (problem := control_char_error(value)) is not None:
            errors[path] = problem
    return errors


#: a conversation's ``external_id`` (the stored column's width)
MAX_EXTERNAL_ID_CHARS = 256


def external_id_error(value: str) -> str | None:
    """Why ``value`` cannot be a conversation's external id (``None`` when it can)."""
    if len(value) > MAX_EXTERNAL_ID_CHARS:
        return f"at most {MAX_EXTERNAL_ID_CHARS} characters"
    return control_char_error(value)
