"""One tool call as it happened: the typed record the engine produces and the store keeps.

``ToolCallRecord`` is dialect-neutral. ``to_stored()`` renders the stored dict (the shape
conversation items have always held, and which the Phonic views return as is);
``from_stored()`` reads it back. Keys are omitted when a field is unset (``None``), except
inside the groups that are always complete once present (the webhook exchange, ``tool.id``
on a runtime record), so ``to_stored(from_stored(d)) == d`` for every stored shape:

* runtime records (they have a record ``id``): ``tool`` {``id``, ``name``}, ``tool_call_id``,
  ``arguments``, ``parameters`` once validated, the webhook or client exchange, ``status``,
  ``duration_ms``, ``completed_at``, ``timed_out`` and ``error_message`` on failure;
* built-in tools: ``tool`` {``id``: ``tool_<name>``, ``name``}, ``tool_call_id``,
  ``arguments``, ``status``;
* calls cut by a barge-in before they returned: ``tool`` {``name``}, ``tool_call_id``,
  ``arguments``, ``status: cancelled``, ``error_message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

#: ``running`` only while an async tool works in the background; it always ends in one of
#: the four final statuses.
ToolCallStatus = Literal["success", "error", "timeout", "cancelled", "running"]
FINAL_STATUSES: frozenset[str] = frozenset({"success", "error", "timeout", "cancelled"})


@dataclass(frozen=True)
class ToolRef:
    """Which tool was called (``id`` is None for inline tools)."""

    name: str
    id: str | None = None


@dataclass(frozen=True)
class WebhookExchange:
    """The HTTP request a webhook tool made and what came back (secrets redacted)."""

    method: str
    url: str
    headers: dict[str, str] | None
    timeout_ms: int
    called_at: datetime
    query_params: dict[str, Any] | None = None
    request_body: Any = None
    status_code: int | None = None
    response_body: Any = None


@dataclass(frozen=True)
class ClientExchange:
    """A client-side (``custom_websocket``) tool: the wait and the client's output."""

    output_timeout_ms: int
    answered: bool = False
    output: Any = None


@dataclass(frozen=True)
class ToolCallRecord:
    """Everything known about one tool call; immutable (a new record per step)."""

    tool: ToolRef
    status: ToolCallStatus
    id: str | None = None
    tool_call_id: str | None = None
    arguments: str | None = None
    parameters: dict[str, Any] | None = None
    webhook: WebhookExchange | None = None
    client: ClientExchange | None = None
    duration_ms: float | None = None
    completed_at: datetime | None = None
    timed_out: bool | None = None
    error_message: str | None = None

    @property
    def final(self) -> bool:
        """The call has ended (``running`` is the only non-final status)."""
        return self.status in FINAL_STATUSES

    def to_stored(self) -> dict[str, Any]:
        """The stored (and Phonic wire) dict of this call."""
        tool: dict[str, Any] = {"id": self.tool.id} if (
            self.id is not None or self.tool.id is not None) else {}
        out: dict[str, Any] = {}
        _put(out, "id", self.id)
        _put(out, "tool_call_id", self.tool_call_id)
        out["tool"] = {**tool, "name": self.tool.name}
        _put(out, "arguments", self.arguments)
        _put(out, "parameters", self.parameters)
        if self.webhook is not None:
            out.update(_webhook_stored(self.webhook))
        if self.client is not None:
            out["tool_call_output_timeout_ms"] = self.client.output_timeout_ms
            if self.client.answered:
                out["output"] = self.client.output
        out["status"] = self.status
        _put(out, "duration_ms", self.duration_ms)
        _put(out, "completed_at", self.completed_at.isoformat() if self.completed_at else None)
        _put(out, "timed_out", self.timed_out)
        _put(out, "error_message", self.error_message)
        return out

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> ToolCallRecord:
        """Read a stored dict back (the inverse of ``to_stored``)."""
        tool = data.get("tool") or {}
        webhook = None
        if "endpoint_method" in data:
            webhook = WebhookExchange(
                data["endpoint_method"], data["endpoint_url"], data.get("endpoint_headers"),
                data.get("endpoint_timeout_ms", 0), _when(data["endpoint_called_at"]),
                data.get("query_params"), data.get("request_body"),
                data.get("response_status_code"), data.get("response_body"))
        client = None
        if "tool_call_output_timeout_ms" in data:
            client = ClientExchange(data["tool_call_output_timeout_ms"], "output" in data,
                                    data.get("output"))
        completed = data.get("completed_at")
        return cls(ToolRef(str(tool.get("name", "")), tool.get("id")), data["status"],
                   data.get("id"), data.get("tool_call_id"), data.get("arguments"),
                   data.get("parameters"), webhook, client, data.get("duration_ms"),
                   _when(completed) if completed else None, data.get("timed_out"),
                   data.get("error_message"))


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _webhook_stored(w: WebhookExchange) -> dict[str, Any]:
    return {"endpoint_method": w.method, "endpoint_url": w.url, "endpoint_headers": w.headers,
            "endpoint_timeout_ms": w.timeout_ms, "endpoint_called_at": w.called_at.isoformat(),
            "query_params": w.query_params, "request_body": w.request_body,
            "response_status_code": w.status_code, "response_body": w.response_body}


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
