"""Store rows <-> domain objects: the stored JSON shapes are kept exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from openline.domain.agent import AgentSpec, ConfigurationEndpoint
from openline.domain.phone_number import SipSettings
from openline.domain.project import Ref
from openline.domain.tool import ToolSpec
from openline.services import mapping
from openline.store import tables as t

NOW = datetime(2025, 4, 17, 12, 0, tzinfo=UTC)


def test_configuration_documents_round_trip_unchanged() -> None:
    agent_doc = AgentSpec(name="a", voice_id="ava", audio_speed=1.2).model_dump(mode="json")
    assert mapping.dump_spec(mapping.load_spec(AgentSpec, agent_doc)) == agent_doc
    assert list(mapping.dump_spec(mapping.load_spec(AgentSpec, agent_doc))) == list(agent_doc)
    tool_doc = ToolSpec(name="c", description="d", type="custom_context",
                        execution_mode="sync", context="x").model_dump(mode="json")
    assert mapping.dump_spec(mapping.load_spec(ToolSpec, tool_doc)) == tool_doc


def test_a_document_that_no_longer_validates_still_loads() -> None:
    # e.g. written before a rule was tightened: readable, not a 500.
    spec = mapping.load_spec(AgentSpec, {"name": "a", "audio_speed": 9.0})
    assert spec.name == "a" and spec.audio_speed == 9.0


def test_sip_documents_keep_only_the_halves_given() -> None:
    assert mapping.sip_to_row(None) is None and mapping.sip_to_row(SipSettings()) is None
    media = SipSettings("tcp", "disabled")
    assert mapping.sip_to_row(media) == {"transport": "tcp", "media_encryption": "disabled"}
    creds = SipSettings(address="sip.example.com", username="u", password="p")
    assert mapping.sip_to_row(creds) == {"address": "sip.example.com", "username": "u",
                                         "password": "p"}
    both = SipSettings("udp", "required", "sip.example.com", "u", "p")
    assert mapping.sip_from_row(mapping.sip_to_row(both)) == both


def test_phone_number_row_maps_source_sip_and_endpoint() -> None:
    row = t.PhoneNumber(id="pn_1", workspace_id="ws", number="+15550001111", agent_id="a",
                        source="custom", sip={"transport": "tls", "media_encryption": "allowed"},
                        configuration_endpoint={"url": "https://c.example.com/"})
    number = mapping.phone_number(row)
    assert number.source == "custom" and number.sip == SipSettings("tls", "allowed")
    assert number.configuration_endpoint == ConfigurationEndpoint(url="https://c.example.com/")


def test_conversation_row_maps_to_the_domain() -> None:
    row = t.Conversation(
        id="conv_1", workspace_id="ws_1", project_id="proj_1", agent_id="agent_1",
        agent_name="a", external_id=None, origin="direct", config={"voice_id": "joe"},
        started_at=NOW, ended_at=None, latencies_ms=[1.5], interruptions_count=0,
        task_results={"book": {"completed": True, "reasoning": "r"}, "bad": "x"},
        recording_path=None, meta=None, call_info=None)
    item = t.ConversationItem(id="i", conversation_id="conv_1", item_idx=0, role="assistant",
                              live_transcript="hi", post_call_transcript=None,
                              tool_calls=[{"id": "tool_call_1"}])
    project = t.Project(id="proj_1", workspace_id="ws_1", name="main")
    c = mapping.conversation(row, Ref("ws_1", "default"), project, [item], agent_deleted=True)
    assert c.is_live and not c.has_recording and c.project == Ref("proj_1", "main")
    assert c.agent is not None and c.agent.is_deleted and c.agent.name == "a"
    assert c.settings == {"voice_id": "joe"} and c.latencies_ms == (1.5,)
    assert list(c.task_results) == ["book"] and c.task_results["book"].completed
    assert c.items[0].text == "hi" and c.items[0].tool_calls == ({"id": "tool_call_1"},)
    assert c.analysis.conversation_id == "conv_1"
