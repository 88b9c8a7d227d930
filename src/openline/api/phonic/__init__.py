"""The Phonic dialect: REST under /v1 and the STS WebSocket."""
