"""One exception type for every user-facing failure.

The CLI turns a ``PipelineError`` into a one-line message and a non-zero exit, so any code path
that can fail because of the user's input raises it with a message that names the file (and line)
at fault, instead of letting a traceback escape.
"""


class PipelineError(Exception):
    """A failure caused by input or environment that the user can fix; shown without traceback."""
