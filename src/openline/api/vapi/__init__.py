"""The Vapi dialect: ``vapi-server-sdk`` against Openline."""
