"""Pure types and rules: agents, tools, projects, conversations, validation, templating."""
