"""Where the harness runs: `local` (this host) and, separately, `docker`.

The grading core knows only the `Backend` protocol (`grader.backend`); it never
imports a backend module. A backend imports of the core only the protocol, the
`Context` it is given and the low layers (sandbox, uids, cgroups, workers).
"""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs on this host.

    Backends label what they start (containers, Slurm jobs) with the grader's pid,
    so that a later run can clean up after a grader that died. Signal 0 checks the
    pid without sending anything; a process of another user (PermissionError) is
    alive too, so its work is left alone.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
