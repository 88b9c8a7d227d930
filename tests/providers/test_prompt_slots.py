"""``PromptSlots``: a call's next turn goes back to the llama.cpp slot that holds its
transcript; a new call takes the free slot holding the most of its prompt."""

from __future__ import annotations

import pytest

from openline.providers.llm.slots import PromptSlots

PERSONA = "You answer the phone.\n\nCurrent call:\n"


def test_a_call_returns_to_its_own_slot_while_others_take_turns() -> None:
    slots = PromptSlots(3)
    a1, b1 = PERSONA + "User: hi\nAssistant:", PERSONA + "User: hello\nAssistant:"
    a = slots.take(a1)
    slots.give_back(a, a1)
    b = slots.take(b1)
    slots.give_back(b, b1)
    assert a != b
    # the same calls one turn later: their transcripts only grew
    assert slots.take(a1 + " Hi!\nUser: a table\nAssistant:") == a
    assert slots.take(b1 + " Hello.\nUser: the menu\nAssistant:") == b


def test_a_new_call_takes_the_least_recently_used_idle_slot() -> None:
    slots = PromptSlots(2)
    first, second = PERSONA + "User: one\nAssistant:", PERSONA + "User: two\nAssistant:"
    s1 = slots.take(first)
    slots.give_back(s1, first)
    s2 = slots.take(second)
    slots.give_back(s2, second)
    # neither slot's prompt is a prefix of a third call's: the older one is evicted
    assert slots.take(PERSONA + "User: three\nAssistant:") == s1


def test_a_busy_owner_is_skipped_and_every_slot_busy_is_an_error() -> None:
    slots = PromptSlots(2)
    prompt = PERSONA + "User: hi\nAssistant:"
    own = slots.take(prompt)
    slots.give_back(own, prompt)
    assert slots.take(prompt + " Hi.\nUser: and\nAssistant:") == own
    other = slots.take(prompt + " Hi.\nUser: and\nAssistant:")  # a second, speculative one
    assert other != own
    with pytest.raises(RuntimeError):
        slots.take(prompt)
    slots.give_back(own, prompt)
    assert slots.take(prompt + " more") == own


def test_the_longest_held_prefix_wins() -> None:
    slots = PromptSlots(2)
    short, long = PERSONA + "User: hi\nAssistant:", PERSONA + "User: hi\nAssistant: Hi.\nUser:"
    s_short = slots.take(short)
    slots.give_back(s_short, short)
    s_long = slots.take("something else")
    slots.give_back(s_long, long)
    assert slots.take(long + " bye\nAssistant:") == s_long


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        PromptSlots(0)


def test_a_session_returns_to_its_slot_after_a_dropped_speculative_reply() -> None:
    """The caller went on after a pause: the dropped reply's prompt ends in "Assistant:",
    which the caller's longer line does not extend; the session still finds its slot."""
    slots = PromptSlots(3)
    first = PERSONA + "User: hi\nAssistant: Hello.\n"
    a = slots.take(first + "User: my number is seven\nAssistant:", "call-a")
    slots.give_back(a, first + "User: my number is seven\nAssistant:", "call-a")
    b = slots.take(PERSONA + "User: hello\nAssistant:", "call-b")
    slots.give_back(b, PERSONA + "User: hello\nAssistant:", "call-b")
    assert slots.take(first + "User: my number is seven three one\nAssistant:", "call-a") == a
    # a third call of the same agent takes the empty slot, not another call's
    assert slots.take(PERSONA + "User: good morning\nAssistant:", "call-c") not in (a, b)


def test_an_ended_conversation_s_slot_goes_first_to_the_next_one() -> None:
    slots = PromptSlots(3)
    a = slots.take(PERSONA + "User: hi\nAssistant:", "call-a")
    slots.give_back(a, PERSONA + "User: hi\nAssistant:", "call-a")
    slots.end("call-a")
    # not an empty slot: the next call finds the persona cached where call-a was
    assert slots.take(PERSONA + "User: hello\nAssistant:", "call-b") == a


def test_a_conversation_that_ends_mid_generation_frees_its_slot_afterwards() -> None:
    slots = PromptSlots(2)
    a = slots.take(PERSONA + "User: hi\nAssistant:", "call-a")
    slots.end("call-a")  # the call hung up while its reply was being written
    slots.give_back(a, PERSONA + "User: hi\nAssistant:", "call-a")
    assert slots.take(PERSONA + "User: hello\nAssistant:", "call-b") == a
    # and call-a's key no longer owns it
    slots.give_back(a, PERSONA + "User: hello\nAssistant:", "call-b")
    assert slots.take(PERSONA + "User: hi\nAssistant: Hi.\nUser: x\nAssistant:", "call-a") != a


def test_post_call_work_leaves_an_ended_call_s_slot_to_the_next_call() -> None:
    slots = PromptSlots(3)
    a = slots.take(PERSONA + "User: hi\nAssistant:", "call-a")
    slots.give_back(a, PERSONA + "User: hi\nAssistant:", "call-a")
    slots.end("call-a")
    post_call = slots.take("Summarise this call: ...")  # no conversation of its own
    assert post_call != a
    slots.give_back(post_call, "Summarise this call: ...")
    assert slots.take(PERSONA + "User: hello\nAssistant:", "call-b") == a


def test_a_new_call_takes_the_free_slot_that_holds_its_agent_s_persona() -> None:
    other = "You take orders for the pizzeria.\n\nCurrent call:\n"
    slots = PromptSlots(3)
    a = slots.take(PERSONA + "User: hi\nAssistant:", "call-a")
    b = slots.take(other + "User: one margherita\nAssistant:", "call-b")
    slots.give_back(a, PERSONA + "User: hi\nAssistant:", "call-a")
    slots.give_back(b, other + "User: one margherita\nAssistant:", "call-b")
    slots.end("call-b")
    slots.end("call-a")  # ended last, and the empty third slot was never used
    # a call of the pizzeria's agent goes where its persona is cached, not to call-a's
    # slot (ended first in the order) nor to the empty one
    assert slots.take(other + "User: a calzone\nAssistant:", "call-c") == b
    # a live call's idle slot is never taken while a free one exists
    live = slots.take(PERSONA + "User: hello\nAssistant:", "call-d")
    assert live == a
    slots.give_back(live, PERSONA + "User: hello\nAssistant:", "call-d")
    assert slots.take(other + "User: a calzone\nAssistant:", "call-e") not in (a, b)
