"""The openline command line."""
