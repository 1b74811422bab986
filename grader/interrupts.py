"""Stopping cleanly: SIGTERM and SIGHUP end a command the way Ctrl-C (SIGINT) does.

A CI time-out, systemd and Slurm send SIGTERM; a closed terminal sends SIGHUP.
Python's default for both is to die on the spot, so nothing of the grader's own
clean-up would run (containers and sandboxed processes would go on grading).
`signals_as_interrupts` makes both raise `Interrupted`, a KeyboardInterrupt, in
the main thread, so one code path (`except KeyboardInterrupt`) stops a batch
whatever the signal. `shielded` holds further signals off while that clean-up
runs, so a second Ctrl-C cannot cut it short.

This module imports nothing of the grader.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

#: The signals that stop a command, in the order a user tends to send them.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; `signum` says which (SIGINT for Ctrl-C)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class BatchInterrupted(Interrupted):
    """A stop signal ended the batch: the submissions being graded were stopped and
    their work removed; `saved` results (of `total` submissions) are in `out`, and the
    same command grades the rest."""

    def __init__(self, signum: int, saved: int, total: int, out: Path) -> None:
        super().__init__(signum)
        self.saved, self.total, self.out = saved, total, out


def signal_of(exc: KeyboardInterrupt) -> int:
    """The signal behind a KeyboardInterrupt: its own for `Interrupted`, else SIGINT."""
    return exc.signum if isinstance(exc, Interrupted) else signal.SIGINT


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise `Interrupted` in the main
    thread. Elsewhere than in the main thread this does nothing (only it may set
    handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def shielded() -> Iterator[list[int]]:
    """Within the block, stop signals are noted (in the yielded list), not raised:
    clean-up after a first signal runs to its end."""
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous = {
        s: signal.signal(s, lambda signum, frame: noted.append(signum)) for s in STOP_SIGNALS
    }
    try:
        yield noted
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
