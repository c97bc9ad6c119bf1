"""The one exception the A/B job turns into a clear message and a non-zero exit."""


class AnalysisError(Exception):
    """Bad input or configuration: the message says what was wrong and what to do."""
