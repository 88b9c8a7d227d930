"""The real-time voice engine."""
