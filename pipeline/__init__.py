"""The ``pipeline`` command line: parses options and calls the stages; no logic of its own."""
