"""Exception types of the harness.

Every error a user can cause derives from :class:`BenchmarkError`; the CLI prints its message on
one line and exits with its ``exit_code``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BenchmarkError(Exception):
    """Base class of user-facing errors: the message is the whole story."""

    exit_code = 1


class UsageError(BenchmarkError):
    """Bad command-line input: unknown option values, malformed parameters."""

    exit_code = 2


class UnknownNameError(UsageError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class DataError(BenchmarkError):
    """A data set, image, checkpoint or result file is missing, corrupt or inconsistent."""


class ContractError(BenchmarkError):
    """A tensor broke the data contract (shape, dtype, range) at the harness boundary."""
