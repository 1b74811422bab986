"""What the grading core asks of a backend (where a submission's harness runs).

The core (`grader.grade`, `grader.rerun`, `grader.batch`) knows only this
protocol; the backends (`grader.backends.local`, `grader.backends.docker`)
implement it and import nothing of the core but this module, `grader.context`
and the records they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from grader.context import Context
from grader.sandbox import SandboxConfig


@dataclass(frozen=True)
class HarnessRun:
    returncode: int | None
    timed_out: bool
    log: str
    duration_s: float


class BackendFailure(RuntimeError):
    """The backend itself failed (e.g. the Docker engine went away): the submission
    gets status "error", which a rerun grades again, rather than a score."""


@dataclass(frozen=True)
class Placement:
    """One submission's workspace as a backend runs it: made once by `prepare`, then
    passed to each of its harness runs (a backend keeps no state per submission)."""

    work: Path  #: the workspace on this host
    seen: Path  #: where the harness sees `work` (a mount point in a container)
    sandbox: SandboxConfig | None  #: the student worker's confinement; None: unconfined
    context: Context
    gpus: tuple[str, ...]  #: the devices this submission may use (chosen by the batch)
    description: str  #: how student code was confined, for the result
    #: Control groups of the reference's worker (the student's are in `sandbox`).
    reference_cgroups: tuple[str, ...] = ()


class Backend(Protocol):
    """Where a submission's harness runs; `python` is the harness's interpreter there."""

    name: str
    python: str

    def prepare(
        self, ctx: Context, work: Path, slot: int, gpus: tuple[str, ...] = ()
    ) -> Placement: ...

    def run_harness(
        self, placement: Placement, command: list[str], env: dict[str, str], timeout_s: float
    ) -> HarnessRun: ...

    def stop(self) -> None:
        """End every harness run in progress at once (their processes, containers and
        sandboxed uids), and refuse new ones with BackendFailure: the batch is stopping."""
        ...
