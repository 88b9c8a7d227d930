"""Blind transfer with REFER on an inbound call: 202, NOTIFY sipfrag, then BYE; a failed
sipfrag hands the caller back to the agent."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openline.audio.codecs import MULAW_8000
from openline.providers.llm.base import ToolCall
from openline.providers.testing import ScriptedReply
from tests.sip.conftest import (
    AGENT_NUMBER,
    SipServer,
    SipServerFactory,
    only_conversation,
    run_sipp,
)

BILLING = "+15554440000"
SAY_TRANSFER = "Let me put you through to billing."
TRANSFER = ScriptedReply(SAY_TRANSFER, (ToolCall("t1", "transfer_to_billing", "{}"),))
SORRY = "Billing is busy right now, can I help otherwise?"


def _tone(tmp: Path) -> Path:
    """One utterance for the energy VAD: a second of tone, as mu-law."""
    t = np.arange(8000) / 8000
    samples = (np.sin(2 * np.pi * 300 * t) * 9000).astype(np.int16)
    path = tmp / "tone.ulaw"
    path.write_bytes(MULAW_8000.encode(samples) + b"\xff" * 1600)
    return path


async def _agent(sip: SipServer) -> object:
    client = sip.client()
    await client.tools.create(name="transfer_to_billing", description="Billing questions",
                              type="built_in_transfer_to_phone_number", execution_mode="sync",
                              phone_number=BILLING)  # type: ignore[arg-type]
    await sip.agent(tools=["transfer_to_billing"], welcome_message="")
    return client


async def test_refer_with_a_successful_sipfrag_ends_the_call(sip_server: SipServerFactory,
                                                             tmp_path: Path) -> None:
    sip = sip_server([TRANSFER, TRANSFER])
    client = await _agent(sip)
    run = await run_sipp("caller_refer", tmp_path, sip.target, "-s", AGENT_NUMBER, "-m", "1",
                         fill={"speech": str(_tone(tmp_path)), "target": r"\+15554440000",
                               "sipfrag": "200 OK"})
    assert run.rc == 0, run.output[-3000:]
    (refer,) = run.received("REFER")
    assert f"Refer-To: <sip:{BILLING}@127.0.0.1:" in refer
    conv = await only_conversation(client)  # type: ignore[arg-type]
    assert conv.ended_by == "transferred"
    assert conv.metadata["sip"]["transfer"]["status"] == 200
    (record,) = conv.items[-1].tool_calls
    assert record.tool.name == "transfer_to_billing" and record.status == "success"
    assert record.duration_ms < 5000  # it waited for the words to be heard, not longer
    stats = (await sip.wait_stats())[0]
    # What the agent said before transferring was played before the REFER.
    assert stats.tx_speech_packets * 20 >= len(SAY_TRANSFER) * 20 * 0.9


async def test_a_failed_sipfrag_hands_the_caller_back(sip_server: SipServerFactory,
                                                      tmp_path: Path) -> None:
    sip = sip_server([TRANSFER], reply=SORRY)
    client = await _agent(sip)
    run = await run_sipp("caller_refer_failed", tmp_path, sip.target, "-s", AGENT_NUMBER,
                         "-m", "1", fill={"speech": str(_tone(tmp_path)),
                                          "target": r"\+15554440000",
                                          "sipfrag": "486 Busy Here"})
    assert run.rc == 0, run.output[-3000:]
    conv = await only_conversation(client)  # type: ignore[arg-type]
    assert conv.ended_by == "user"
    assert conv.metadata["sip"]["transfer"]["status"] == 486
    assert conv.items[-1].role == "assistant" and conv.items[-1].live_transcript == SORRY


async def test_a_refused_refer_fails_the_tool_call(sip_server: SipServerFactory,
                                                   tmp_path: Path) -> None:
    sip = sip_server([TRANSFER], reply=SORRY)
    client = await _agent(sip)
    run = await run_sipp("caller_refer_refused", tmp_path, sip.target, "-s", AGENT_NUMBER,
                         "-m", "1", fill={"speech": str(_tone(tmp_path)),
                                          "target": r"\+15554440000"})
    assert run.rc == 0, run.output[-3000:]
    conv = await only_conversation(client)  # type: ignore[arg-type]
    assert conv.ended_by == "user"
    assert conv.metadata["sip"]["refer"]["status"] == 603
    assert "transfer" not in conv.metadata["sip"]  # no NOTIFY: nothing was attempted
    records = [r for i in conv.items for r in (i.tool_calls or [])]
    assert [(r.tool.name, r.status) for r in records] == [("transfer_to_billing", "error")]
    # The tool result names the refusal and its SIP status, not "no telephony".
    assert records[0].error_message.startswith(
        "the transfer to +15554440000 was refused by the far end (SIP 603"), \
        records[0].error_message
    assert "unavailable" not in records[0].error_message
    assert conv.items[-1].live_transcript.endswith(SORRY)  # the agent carried on
