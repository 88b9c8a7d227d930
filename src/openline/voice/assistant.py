"""The one reply path: every assistant utterance is delivered by ``Assistant``.

A reply to the user's turn, ``generate_reply``, ``say``, the welcome (fixed or generated),
the poke and the follow-up after a transfer all become a ``SpeechHandle`` whose producer is
registered on the handle (so barge-in cancels it, whatever kind it is), then go through
``_deliver``: enqueue for playout, wait for the producer and the playout, measure, and
``_close_turn``: the history (through the chat context), the stored item (exactly once),
then the turn's consequences (end of call, transfer).

Barge-in and an empty turn: when the caller cut the assistant off but the turn then
produced no words (a cough, a noise) or too few to count, nothing stays pending: the
``interrupted_response`` goes out at once with the heard text, and the assistant resumes.
A fixed text (``say``, a fixed welcome or poke) resumes with exactly its unheard words; a
generated reply is re-offered by the model, told where it was cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from openline.providers.llm.base import GenerationOptions
from openline.voice import events as ev
from openline.voice.acknowledgements import is_backchannel, sounds_like_interruption
from openline.voice.builtins import built_in_specs
from openline.voice.chat_context import SystemNote, UserMessage, UserSource
from openline.voice.contracts import ItemRecord
from openline.voice.end_phrases import says_end_phrase
from openline.voice.reply import (
    ReplyJob,
    ReplyResult,
    ReplyTools,
    Speech,
    ToolOutcome,
    generate,
    speak_fixed,
)
from openline.voice.speech import SpeechHandle, SpeechKind

if TYPE_CHECKING:
    from openline.domain.tool_call import ToolCallRecord
    from openline.voice.session import Conversation

log = logging.getLogger(__name__)
GREETING_INSTRUCTION = "Greet the caller in one short sentence and offer help."
POKE_INSTRUCTION = "The caller has been silent. Check, in one short sentence, if they are there."
TRANSFER_NOTE = ("The caller has been transferred to you ({name}). Greet them and continue the "
                 "conversation.")
RESUME_NOTE = ("While you were speaking the caller made a sound and you stopped after "
               "\"{heard}\"; no words were recognised. Finish what you were saying, briefly, "
               "without repeating what they already heard.")


@dataclass(frozen=True)
class UserTurn:
    """When and how the user's turn happened (for the stored item and the latency)."""

    started_at: float  # wall clock
    voiced_ms: float
    last_voiced_at: float | None = None  # monotonic; None for text and keypad turns
    source: UserSource = "speech"
    #: False: speech over the assistant whose user_started_speaking was held back (it
    #: might have been an acknowledgement); announced here if it turns out to be a turn
    announced: bool = True
    #: a look at the words while it went on heard an acknowledgement (voice/acknowledgements.py)
    heard_acknowledgement: bool = False


class Assistant:
    """The assistant side of one conversation (see the module docstring)."""

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        #: this conversation's key for the LLM: an embedded model keeps its prompt cached
        self.llm_session = uuid.uuid4().hex
        #: deliveries in progress (not counting pokes): the silence timers wait for them
        self.replying = 0
        #: utterances the caller cut off, reported with the next turn's transcript
        self.pending: list[SpeechHandle] = []
        self.started: list[SpeechHandle] = []  # to record on any end path
        #: the end-call message is being said: the call is ending
        self._ending = False

    # ----- entry points --------------------------------------------------------------------
    async def user_turn(self, job: ReplyJob, turn: UserTurn) -> None:
        """The user ended a turn: accept it (or not) and deliver the reply prepared for it."""
        conv = self.conv
        self.replying += 1
        try:
            text, language = await job.transcript
            if not turn.announced and not self.pending:
                if not text or self._is_acknowledgement(text, turn):
                    job.cancel()  # an unannounced "uh-huh" or noise: the client saw nothing
                    return
                await conv.emit(ev.UserStartedSpeaking())
                await conv.emit(ev.UserFinishedSpeaking())
            if self._is_acknowledgement(text, turn):
                job.cancel()  # "uh-huh" over the assistant: not a turn (voice/acknowledgements.py)
                await conv.emit(ev.InputCancelled())
                return
            if (not text or self._too_few_words(text, turn)
                    or (self.pending and self._acknowledges(text, turn))):
                job.cancel()
                await conv.emit(ev.InputCancelled())
                await self._resume_after_noise()
                return
            if conv.playout.speaking and not self.pending:
                self.barge_in()  # an accepted turn interrupts (min_words_to_interrupt > 1)
            await self._report_interruptions()
            if turn.source == "speech":
                await conv.emit(ev.InputText(text, language))
            conv.chat.add_user(text, turn.source)
            job.commit()  # from here on, the reply's tools may act
            item = ItemRecord("user", text, datetime.fromtimestamp(turn.started_at, UTC),
                              turn.voiced_ms)
            await self._deliver(job.handle, user_item=item, last_voiced=turn.last_voiced_at)
        except asyncio.CancelledError:
            job.cancel()  # the call ended before the turn was answered: stop its reply too
            raise
        finally:
            self.replying -= 1

    def say(self, text: str, interruptible: bool = True, kind: SpeechKind = "say") -> None:
        """Speak exactly ``text``, after anything already queued."""
        handle = SpeechHandle(kind, interruptible=interruptible, fixed_text=text)
        self._start(handle, lambda: speak_fixed(self._speech(), handle))

    def generate_reply(self, kind: SpeechKind = "generated", *, instruction: str | None = None,
                       tools: bool = True, interruptible: bool = True) -> None:
        """Take an assistant turn from the history now (``instruction``: for this turn only)."""
        handle = SpeechHandle(kind, interruptible=interruptible)
        # No ``handle.timings``: the latency breakdown is reported for user turns only.

        def produce() -> Coroutine[Any, Any, ReplyResult]:
            extra = (SystemNote(instruction),) if instruction else ()
            return generate(self._speech(), self.conv.chat.messages(*extra),
                            self._tools(tools), handle, {})

        self._start(handle, produce)

    def welcome(self) -> None:
        cfg = self.conv.cfg
        if cfg.generate_welcome_message:
            self.generate_reply("welcome", instruction=GREETING_INSTRUCTION, tools=False,
                                interruptible=cfg.is_welcome_message_interruptible)
        elif cfg.welcome_message.strip():
            self.say(cfg.welcome_message, cfg.is_welcome_message_interruptible, "welcome")

    async def warm_llm(self) -> None:
        """Let the LLM prepare this call's prompt (``LLM.warm``) while the welcome plays
        and the caller starts to speak. A generated welcome is itself the call's first
        request, so it needs none. A failure costs nothing but the head start."""
        if self.conv.cfg.generate_welcome_message:
            return
        try:
            await self.conv.p.llm.warm(self.conv.chat.messages(), tools=self._tools(True).specs,
                                       options=GenerationOptions(session=self.llm_session))
        except Exception as exc:  # the first reply processes the prompt instead
            log.warning("LLM warm-up failed: %s", exc)

    def poke(self) -> None:
        cfg = self.conv.cfg
        if cfg.generate_no_input_poke_text:
            self.conv.chat.add_system(POKE_INSTRUCTION)
            self.generate_reply("poke")
        else:
            self.say(cfg.no_input_poke_text, True, "poke")

    def barge_in(self) -> bool:
        """The caller cut in: stop the assistant and clear the far end's buffer now."""
        handle = self.conv.playout.interrupt()
        if handle is None:
            return False
        self.conv.interruptions += 1
        self.pending.append(handle)
        self.conv.emit_now(ev.ClearAudio())
        return True

    def run_reply(self, user_text: str, job: ReplyJob) -> Coroutine[Any, Any, ReplyResult]:
        """The reply of a (possibly speculative) user turn; its tools wait for the commit."""
        messages = self.conv.chat.messages(UserMessage(user_text))
        return generate(self._speech(), messages, self._tools(True, job.gate), job.handle,
                        job.timings)

    # ----- the one path ----------------------------------------------------------------------
    def _start(self, handle: SpeechHandle,
               produce: Callable[[], Coroutine[Any, Any, ReplyResult]]) -> None:
        async def run() -> None:
            handle.producer = asyncio.ensure_future(produce())  # owned by _deliver
            counted = handle.kind != "poke"  # a poke must not hold off the timers it serves
            self.replying += counted
            try:
                await self._deliver(handle)
            finally:
                self.replying -= counted

        self.conv.spawn(run(), handle.kind)

    async def _deliver(self, handle: SpeechHandle, *, user_item: ItemRecord | None = None,
                       last_voiced: float | None = None) -> None:
        producer = handle.producer
        assert producer is not None
        try:
            self.conv.playout.enqueue(handle)  # first: the reply must not wait for storage
            if user_item is not None:
                await asyncio.shield(self.conv.observer.item(user_item))
            await asyncio.wait({producer})  # never raises; the outcome is inspected below
            if not producer.cancelled() and producer.exception() is not None:
                raise producer.exception()  # type: ignore[misc]
            await handle.wait_for_playout()
        finally:
            producer.cancel()
            # Also when the call ends right as the reply finishes (the caller hangs up on
            # assistant_finished_speaking): a turn that was heard has a latency.
            self._measure(handle, last_voiced)
        await self._close_turn(handle)

    def _measure(self, handle: SpeechHandle, last_voiced: float | None) -> None:
        if last_voiced is None or handle.first_frame_at is None:
            return
        latency = round((handle.first_frame_at - last_voiced) * 1000, 1)
        self.conv.latencies_ms.append(latency)
        self.conv.stage_timings.append({**(handle.timings or {}), "voice_to_voice_ms": latency})
        log.info("turn latency %.0f ms %s", latency, handle.timings)

    async def _close_turn(self, handle: SpeechHandle) -> None:
        conv, result = self.conv, handle.result
        conv.chat.add_messages(result.messages)
        spoken = handle.spoken_text
        conv.chat.add_assistant(spoken, interrupted=handle.interrupted)
        if (handle.started or result.tool_calls) and not handle.recorded:
            handle.recorded = True
            # Shielded: a hang-up right now must not lose a turn the caller heard.
            await asyncio.shield(conv.observer.item(self._item(handle, spoken)))
        if result.chose_not_to_respond and not spoken:
            await conv.emit(ev.AssistantChoseNotToRespond())
        if result.end_conversation and not handle.interrupted:
            await conv.emit(ev.AssistantEndedConversation())
            await self._end_call("assistant")
        elif not handle.interrupted and not self._ending and says_end_phrase(
                spoken, conv.cfg.end_call_phrases):
            await conv.emit(ev.AssistantEndedConversation())
            await self._end_call("end_call_phrase")
        elif result.transfer_to:
            await self._transfer(result.transfer_to)

    async def _end_call(self, ended_by: str) -> None:
        """The assistant ends the call: its end-call message first (heard in full, not
        interruptible), if it has one."""
        message = self.conv.cfg.end_call_message.strip()
        if message and not self._ending:
            self._ending = True  # the message itself never ends the call a second time
            handle = SpeechHandle("say", interruptible=False, fixed_text=message)
            handle.producer = asyncio.ensure_future(speak_fixed(self._speech(), handle))
            await self._deliver(handle)
        self.conv.end(ended_by)

    async def _transfer(self, agent_name: str) -> None:
        """Continue the conversation as another agent (its prompt, voice, tools; history kept)."""
        conv = self.conv
        if conv.agents is None:
            return
        switch = await conv.agents.switch_to(agent_name)
        conv.switch_agent(switch)
        await conv.observer.transferred(switch.agent_id, switch.agent_name)
        conv.chat.add_system(TRANSFER_NOTE.format(name=switch.agent_name))
        self.generate_reply("transfer")

    # ----- interruptions ---------------------------------------------------------------------
    async def _report_interruptions(self) -> list[SpeechHandle]:
        """``interrupted_response`` for every cut-off utterance, with what was heard of it."""
        handles, self.pending = self.pending, []
        for handle in handles:
            await handle.wait_for_playout()  # the sink's report makes the heard text exact
            await self.conv.emit(ev.InterruptedResponse(handle.heard_text))
        return handles

    async def _resume_after_noise(self) -> None:
        """A barge-in whose turn came to nothing: report it now and resume (module doc)."""
        for handle in await self._report_interruptions():
            if handle.fixed_text is not None:
                rest = handle.unheard_rest()
                if rest:
                    self.say(rest, True, handle.kind)
            else:
                self.conv.chat.add_system(RESUME_NOTE.format(heard=handle.heard_text))
                self.generate_reply("generated")

    def _acknowledges(self, text: str, turn: UserTurn) -> bool:
        cfg = self.conv.cfg
        words = cfg.acknowledgement_words
        return (turn.source == "speech" and cfg.backchannel_max_ms > cfg.min_interruption_ms
                and (is_backchannel(text, words) or (
                    turn.heard_acknowledgement
                    and not sounds_like_interruption(text, words, cfg.interruption_cues))))

    def _is_acknowledgement(self, text: str, turn: UserTurn) -> bool:
        """An acknowledgement (or a sound under the barge-in threshold) while the assistant
        still speaks, uninterrupted: not a turn."""
        if self.pending or not self.conv.playout.speaking or turn.source != "speech":
            return False
        if turn.voiced_ms < self.conv.cfg.min_interruption_ms:
            return True  # shorter than the barge-in threshold: noise or echo, whatever words
        return bool(text) and self._acknowledges(text, turn)

    def _too_few_words(self, text: str, turn: UserTurn) -> bool:
        needed = self.conv.cfg.min_words_to_interrupt
        return (turn.source == "speech" and needed > 1 and self.conv.playout.speaking
                and len(text.split()) < needed)

    # ----- playout hooks, tools, records -------------------------------------------------------
    async def on_start(self, handle: SpeechHandle) -> None:
        self.started.append(handle)
        await self.conv.emit(ev.AssistantStartedSpeaking())

    async def on_finish(self, handle: SpeechHandle) -> None:
        if handle.kind != "poke":  # a poke must not restart the silence timers it serves
            self.conv.timers.mark_activity(reset_poke=False)
        if not handle.interrupted:
            await self.conv.emit(ev.AssistantFinishedSpeaking())

    async def tool_finished(self, record: ToolCallRecord) -> None:
        await self.conv.emit(ev.ToolCallFinished(record))

    async def async_tool_result(self, outcome: ToolOutcome) -> None:
        """An async tool finished: store it first, tell the client, let the model know."""
        await asyncio.shield(self.conv.observer.tool_result(outcome.record))
        event = ev.ToolCallFinished(outcome.record)
        if self.conv.lifecycle.live:
            await self.conv.emit(event)
        else:
            self.conv.emit_now(event)  # ending: never wait on an outbox nobody drains
        self.conv.chat.add_system(
            f"The async tool {outcome.record.tool.name} finished with: {outcome.content}")

    async def record_unfinished(self) -> None:
        """On end, keep whatever the caller heard of utterances not yet recorded."""
        for handle in self.started:
            if handle.recorded:
                continue
            handle.recorded = True
            with contextlib.suppress(Exception):
                await self.conv.observer.item(self._item(handle, handle.spoken_text, []))

    def _item(self, handle: SpeechHandle, text: str,
              tool_calls: list[ToolCallRecord] | None = None) -> ItemRecord:
        cfg = self.conv.cfg
        started = datetime.fromtimestamp(handle.started_at or self.conv.clock.now(), UTC)
        played = handle.played_samples if handle.played_samples is not None \
            else handle.sent_samples
        return ItemRecord("assistant", text, started, played * 1000 / cfg.output_format.sample_rate,
                          cfg.voice_id, cfg.audio_speed, self.conv.chat.system_prompt,
                          list(handle.result.tool_calls if tool_calls is None else tool_calls))

    def _speech(self) -> Speech:
        cfg, p = self.conv.cfg, self.conv.p
        return Speech(p.llm, p.tts, cfg.output_format, cfg.voice_id, cfg.audio_speed,
                      cfg.max_reply_tokens, self.llm_session)

    def _tools(self, enabled: bool, gate: asyncio.Event | None = None) -> ReplyTools:
        specs = (built_in_specs(self.conv.cfg.built_in_tools) + self.conv.tools.specs()
                 if enabled else [])
        return ReplyTools(specs, self.conv.tools, self.tool_finished, gate)
