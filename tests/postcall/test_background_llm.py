"""Post-call analysis asks the LLM as background work, so live replies go first."""

from __future__ import annotations

from openline.postcall import analysis, prompts
from openline.providers.testing import ScriptedLLM


async def test_every_post_call_generation_is_background_work() -> None:
    llm = ScriptedLLM(['{"city": "Lisbon"}', '{"result": "successful", "reasoning": "ok"}',
                       '{"booked": {"completed": true, "reasoning": "ok"}}', "A booking."])
    transcript = analysis.render_transcript([("user", "A table in Lisbon."),
                                             ("assistant", "Booked.")])
    fields = [prompts.FieldPrompt("city", "string", None)]
    assert (await analysis.extract(llm, "Where?", fields, transcript)).result == {
        "city": "Lisbon"}
    assert (await analysis.evaluate(llm, "Was it booked?", transcript)).result == "successful"
    assert (await analysis.task_results(llm, [("booked", "Book it")], transcript)
            )["booked"].completed
    assert await analysis.summarize(llm, transcript) == "A booking."
    assert [r.options.background for r in llm.requests] == [True] * 4
    # The live engine's replies are not (their default).
    async for _ in llm.stream([]):
        pass
    assert llm.requests[-1].options.background is False
