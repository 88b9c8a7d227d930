"""Openline: a self-hosted voice-agent platform with Phonic-compatible APIs."""

__version__ = "0.1.0"
