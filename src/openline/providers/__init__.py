"""Provider contracts (vad, stt, llm, tts) and their implementations."""
