"""The project's own error types: problems with what a user gave (options, data, files, weights, arguments).

The command-line entries (utils/cli.py run_cli) print these, and only these (plus the operating system's OSError:
a full disk, a missing permission), as one `error: <message>` line naming the file, key or value at fault. Any other
exception is a bug: it keeps its traceback and the CLI says to report it. Each type subclasses ValueError, so code
and tests that caught ValueError before still do.
"""
from __future__ import annotations


class UserError(ValueError):
    """Something the user gave is wrong or missing; the message names the file, key or value and what to do."""


class DataError(UserError):
    """A dataset, image or meta file that cannot be used as given (the message names the file or image)."""


class CheckpointError(UserError):
    """A weights or training-state file that does not fit the model or run it is given to (names the file)."""


class ArgumentError(UserError):
    """A command-line argument or combination of arguments that cannot be honoured (names the argument)."""


class RunError(UserError, RuntimeError):
    """A run that cannot start or go on here: out of memory, a run folder in use, a launcher's missing variable, a
    missing optional package, a diverging loss (names what and what to do). Also a RuntimeError."""
