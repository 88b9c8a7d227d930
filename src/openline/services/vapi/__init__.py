"""Dialect-neutral services behind the Vapi dialect (``api/vapi``): Vapi documents stored as
sent, mapped onto Openline's agents, tools and conversations where they mean the same."""
