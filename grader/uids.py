"""Sandbox uids: each slot of a batch runs student code as a uid of its own.

`claim_uid` gives a slot its uid; `kill_uid`, `stop_uid` and `continue_uid` act on
every process of a uid (what a sandboxed worker may have left behind, or what
must be held still while the reference is timed).

A uid is claimed with a lock file for as long as the claiming process lives, so
two batches graded at once on one host (two TAs, or CI next to a TA) never share
one: the clean-up that kills every process of a slot's uid cannot hit the other
batch, and the process limit (RLIMIT_NPROC, counted per uid across the host)
is not shared either.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

FIRST_UID = 61000
UID_RANGE = 4096
LOCKS = Path("/run/llmsys-uids")


class NoFreeUid(RuntimeError):
    pass


def claim_uid(taken: set[int], locks: Path | None = None) -> tuple[int, int]:
    """Lock the first free uid of the range that is not in `taken`; returns (uid, fd):
    the lock lasts while the fd is open. `locks`: the lock folder (by default
    /run/llmsys-uids as root, else one in the temporary folder)."""
    if locks is None:
        locks = LOCKS if os.geteuid() == 0 else Path(tempfile.gettempdir()) / "llmsys-uids"
    locks.mkdir(mode=0o700, parents=True, exist_ok=True)
    for uid in range(FIRST_UID, FIRST_UID + UID_RANGE):
        if uid in taken:
            continue
        fd = os.open(locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise NoFreeUid(f"all {UID_RANGE} sandbox uids from {FIRST_UID} are in use on this host")


class SlotUids:
    """The uid of each slot of one backend, claimed on first use."""

    def __init__(self) -> None:
        self._claimed: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, slot: int) -> int:
        with self._lock:
            if slot not in self._claimed:
                self._claimed[slot] = claim_uid({uid for uid, _ in self._claimed.values()})
            return self._claimed[slot][0]


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (escaped children of a sandboxed worker).

    Rounds repeat while any is left (up to about 2 s): a fork bomb forks between a
    scan and its signals, and a survivor would be there for the next submission
    given the same uid. Zombies are not signalled but waited for (pid 1 reaps
    those whose parent died), so the uid is empty when this returns.
    """
    if uid == 0:
        raise ValueError("refusing to kill every process of root")
    for _ in range(40):
        found = _pids_of(uid)
        for pid in found:
            try:
                if _state(pid) != b"Z":
                    os.kill(int(pid), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                continue
        if not found:
            return
        time.sleep(0.05)


def _state(pid: str) -> bytes:
    """A process's one-letter state (R running, S sleeping, T stopped, Z zombie, ...)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().rsplit(b")", 1)[-1].split()[0]


def _pids_of(uid: int) -> list[str]:
    """The pids of every process of `uid` on this host (as /proc shows them here)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(entry)
            except (FileNotFoundError, PermissionError):
                continue
    return found


def stop_uid(uid: int, rounds: int = 50) -> bool:
    """SIGSTOP every process of `uid` until a scan finds none left running; True when
    that state was reached (a process that forks as fast as it can may take a few
    rounds: its children appear in the next scan, already stopped or not)."""
    if uid == 0:
        raise ValueError("refusing to stop every process of root")
    for _ in range(rounds):
        running = False
        for pid in _pids_of(uid):
            try:
                if _state(pid) not in (b"T", b"t", b"Z", b"X"):
                    running = True
                    os.kill(int(pid), signal.SIGSTOP)
            except (FileNotFoundError, ProcessLookupError):
                continue
        if not running:
            return True
        time.sleep(0.001)
    return False


def continue_uid(uid: int) -> None:
    """SIGCONT every process of `uid` (undoes `stop_uid`)."""
    for pid in _pids_of(uid):
        try:
            os.kill(int(pid), signal.SIGCONT)
        except ProcessLookupError:
            continue
