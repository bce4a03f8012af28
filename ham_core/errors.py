"""One error type for bad input, so the CLI and the app can show a one-line message."""


class HAMInputError(ValueError):
    """Bad input from a user or caller: the message says which argument and why."""
