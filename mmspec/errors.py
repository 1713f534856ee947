"""The base of every error a user can fix by changing a flag, a file or a value.

The command line prints an :class:`MmspecError` as one line (its message says what to change) and
lets every other exception keep its traceback, so a bug is never disguised as a user mistake.
Each subsystem derives its own error from it (``TaskError``, ``AdapterError``, ``SpecArgError``,
``HarnessError``, ``RecordsError`` ...). This module imports nothing, so the CLI can check an
exception's kind without loading torch.
"""

from __future__ import annotations


class MmspecError(Exception):
    """A problem with the user's input or environment; the message names the file, field or value."""


class UsageError(MmspecError, ValueError):
    """A command-line flag or ``--model_args`` value that cannot be used as given."""
