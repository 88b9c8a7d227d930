"""Use cases shared by the API dialects and the CLI."""
