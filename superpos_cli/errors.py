"""Errors that the CLI turns into one clear line and exit code 2."""


class BadInput(ValueError):
    """A user-supplied value, file or configuration that cannot be used.

    The message must name the bad value and say what is allowed; the CLI prints
    it as one line (``error: ...``) and exits with code 2, never a traceback.
    """
