"""The sentence splitter: what goes to synthesis, and when (pure, no models)."""

from __future__ import annotations

from openline.voice.sentences import SentenceSplitter


def feed(tokens: list[str]) -> list[tuple[int, str]]:
    """(index of the token that completed it, piece) for every piece, the flush included."""
    splitter = SentenceSplitter()
    out = [(i, piece) for i, token in enumerate(tokens) for piece in splitter.push(token)]
    rest = splitter.flush()
    return out + ([(len(tokens), rest)] if rest else [])


def test_the_first_clause_goes_at_its_comma_not_a_token_later() -> None:
    pieces = feed(["Yes", ",", " we", " take", " walk", "-in", " patients", "."])
    assert pieces == [(1, "Yes,"), (8, "we take walk-in patients.")]


def test_a_short_first_question_or_exclamation_goes_at_its_mark() -> None:
    assert feed(["Sure", "!", " I", " can", " help", "."])[0] == (1, "Sure!")
    assert feed(["Could", " you", " repeat", " that", "?"])[0] == (4, "Could you repeat that?")


def test_a_short_first_sentence_goes_at_its_full_stop() -> None:
    """The model's next token would only end the line: the sentence goes without it."""
    assert feed(["I", "'ll", " get", " it", " for", " you", "."]) == [(6, "I'll get it for you.")]
    assert feed(["We", " close", " at", " 5", " p", ".", "m", "."]) == [(7, "We close at 5 p.m.")]


def test_a_full_stop_that_may_not_end_the_sentence_waits_for_the_next_word() -> None:
    """"Dr." ends no sentence, nor may "J." (an initial) or "5." ("5.30")."""
    pieces = feed(["Dr", ".", " Patel", " is", " in", " today", ".", " Anything", " else", "?"])
    assert pieces == [(6, "Dr. Patel is in today."), (10, "Anything else?")]
    assert feed(["Ask", " for", " J", ".", " Smith", "."]) == [(5, "Ask for J. Smith.")]
    assert feed(["We", " open", " at", " 5", ".", "30", "."]) == [(7, "We open at 5.30.")]
    assert feed(["Well", "...", " maybe", "."])[0] == (2, "Well...")  # one token, as written
    eg = feed(["Bring", " an", " ID", " e", ".", "g", ".", " a", " passport", "."])
    assert eg == [(9, "Bring an ID e.g. a passport.")]


def test_a_mark_after_a_digit_waits_for_what_follows() -> None:
    thousand = feed(["It", " is", " 1", ",", "000", " dollars", ",", " plus", " tax", "."])
    assert thousand[0] == (6, "It is 1,000 dollars,")
    time = feed(["At", " 2", ":", "30", ",", " we", " open", "."])
    assert time[0] == (5, "At 2:30,")  # "30," too might go on ("30,000")


def test_only_the_first_piece_is_a_clause() -> None:
    pieces = feed(["Hi", ",", " there", ",", " how", " are", " you", "?", " Fine", "."])
    assert [p for _, p in pieces] == ["Hi,", "there, how are you?", "Fine."]


def test_a_long_first_clause_waits_for_its_sentence() -> None:
    words = [" word"] * 9
    pieces = feed(["One", *words, ",", " and", " more", "."])
    assert [p for _, p in pieces] == ["One" + "".join(words) + ", and more."]
