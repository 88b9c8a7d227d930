"""Wire transports (STS WebSocket, later telephony) behind one call-session interface."""
