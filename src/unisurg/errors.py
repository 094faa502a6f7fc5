"""The one exception type for a user's mistake.

A :class:`UsageError` is a value, name or file that is not what a command expects: an unknown
benchmark, an encoder spec without its architecture, a text file given as a checkpoint. Its
message is one line that names the value, what was expected and the valid choices; the CLI
prints it and exits with code 2 (the traceback only with ``-v``). Anything else that escapes a
command is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A user's mistake; the message says which value, what was expected and the valid choices."""


class UnknownName(UsageError, KeyError):
    """A name that is not registered (benchmark, architecture, ...). Also a KeyError, for lookups;
    printed as its message (a plain KeyError would print the message quoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
