"""Post-call jobs that read stored conversations."""
