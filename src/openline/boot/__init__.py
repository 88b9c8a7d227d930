"""The composition root: builds a process (server, worker) from its settings."""
