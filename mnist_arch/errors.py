"""Errors the user can fix: the CLI prints them as one line and exits 2."""


class UsageError(Exception):
    """Bad input: the message says what is wrong and how to fix it."""
