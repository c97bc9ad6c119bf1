"""The one error of the local stack: a set-up problem, worded as what is wrong and what to do.
The launchers print it without a traceback and exit non-zero."""


class StackError(Exception):
    """A set-up problem of the local stack (a missing program, a port in use, a daemon that
    did not start), worded as what is wrong and what to do."""
