"""Pure types and rules: agents, tools, projects, phone numbers, conversations, events,
partial updates (``unset``), validation and templating. No I/O, no wire dialect."""
