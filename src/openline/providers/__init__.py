"""Provider contracts (vad, stt, llm, tts) and their implementations.

Each kind has a small contract in ``providers/<kind>/base.py`` and one module per
implementation; ``providers/testing.py`` holds deterministic fakes. The engine imports the
bases only. Shared machinery (lifecycle, bounded thread runner, metrics, error
translation) lives in ``providers/base.py``.

- vad: ``VAD.stream() -> VADStream``; ``VADStream.process(frame) -> float``
  (``vad.silero.SileroVAD``)
- stt: ``await STT.transcribe(audio_16k, language=, hotwords=) -> Transcript``
  (``stt.faster_whisper.FasterWhisperSTT``)
- tts: ``TTS.voices()``; ``TTS.synthesize(text, voice_id, speed=) -> AsyncIterator[AudioChunk]``
  (``tts.piper.PiperTTS``, ``tts.espeak.EspeakTTS``, ``tts.multi.MultiTTS``)
- llm: ``LLM.stream(messages, tools=, options=) -> AsyncIterator[LLMEvent]``
  (``llm.llama_cpp.LlamaCppLLM``, ``llm.openai_compat.OpenAICompatLLM``)

Model files come from PyPI packages, located at run time; nothing is downloaded.
"""
