"""Errors that the CLI turns into one clear line and exit code 2."""


class BadInput(ValueError):
    """A user-supplied value, file or configuration that cannot be used.

    The message must name the bad value and say what is allowed; the CLI prints
    it as one line (``error: ...``) and exits with code 2, never a traceback.
    """


class TrialsFailed(Exception):
    """Some trials of a finished sweep failed; the message is the one line naming
    them (experiments/trials.failure_line). The CLI prints it and exits 1; every
    trial that completed is already in the store and in the printed document."""
