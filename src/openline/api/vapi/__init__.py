"""The Vapi dialect: ``/assistant``, ``/call``, ``/squad``, ... at the API root, camelCase."""
