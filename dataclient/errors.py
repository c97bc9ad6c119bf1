"""The one exception the CLI turns into a single `dataclient: error: ...` line and exit code 1."""


class DataclientError(Exception):
    """Bad input or a refused operation; the message says what was wrong and what to do."""
