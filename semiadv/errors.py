"""Errors that are the user's to fix: the binaries report them in one line and exit 2.

The library raises these (subclasses of the built-in errors it raised before, so callers
catching ValueError or FileNotFoundError still do) when what it was asked for cannot work:
a missing folder, a setting outside its range, a work dir trained differently. Their message
names the value, says what is expected and how to fix it.
"""


class UserError(Exception):
    """A mistake in a command's flags or inputs, found before any work started."""


class UserValueError(UserError, ValueError):
    """A setting or input the library cannot use."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A file or folder the command needs is missing."""
