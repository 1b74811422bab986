"""The toolkit's exceptions and the exit codes they map to.

Every error a user can cause is an `LlmsysError`: the CLI prints its one-line
message and its hint, never a traceback (see `grader.cli.main`).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `llmsys` command (documented in the README)."""

    OK = 0
    #: A check ran and found a problem (stale starter, failed invariant).
    CHECK_FAILED = 1
    #: Bad input: a manifest, a marker, a path or an argument.
    USAGE = 2
    #: A bug in the toolkit itself.
    INTERNAL = 3


class LlmsysError(Exception):
    """An error with a one-line message and a hint on how to fix it."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ManifestError(LlmsysError):
    """An assignment manifest is missing, malformed or inconsistent."""


class MarkerError(LlmsysError):
    """A solution marker is malformed, unmatched, nested or names an unknown task."""

    def __init__(self, path: str, line: int, message: str, hint: str = "") -> None:
        super().__init__(f"{path}:{line}: {message}", hint)
        self.path = path
        self.line = line


class CheckFailed(LlmsysError):
    """A check ran to completion and found problems (e.g. stale starters)."""

    exit_code = ExitCode.CHECK_FAILED
