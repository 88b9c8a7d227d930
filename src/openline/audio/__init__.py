"""Pure DSP on numpy: PCM16 frames, mu-law, resampling, mixing, WAV. No asyncio, no I/O."""
