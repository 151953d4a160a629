"""One exception type for bad input, so the CLI can print one line and exit non-zero."""


class FerkitError(Exception):
    """A problem with the user's input or files: reported as a one-line message, never a traceback."""
