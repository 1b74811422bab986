"""The local backend: the harness runs on this host, in a subprocess per submission.

With root, each submission's workers run confined (`grader.sandbox`) as a uid of
their own slot (`FIRST_UID + slot`), so parallel submissions cannot signal or
read each other. Without root, student code runs with the grader's own rights,
and every result says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from grader import sandbox as sandboxing
from grader.grade import Context, HarnessRun, default_sandbox
from grader.sandbox import SandboxConfig
from grader.workers import kill_uid

FIRST_UID = 61000
LOG_LIMIT = 20000


class LocalBackend:
    name = "local"

    def __init__(self, hide: list[str] | None = None) -> None:
        #: Extra folders hidden from student code (e.g. the batch's output folder).
        self.hide = hide or []

    @staticmethod
    def confined() -> bool:
        return sandboxing.available()

    def sandbox(self, ctx: Context, work: Path, slot: int) -> SandboxConfig | None:
        if not self.confined():
            return None
        return default_sandbox(ctx, work, FIRST_UID + slot, self.hide)

    def run_harness(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout_s: float,
        sandbox: SandboxConfig | None,
    ) -> HarnessRun:
        start = time.monotonic()
        log = cwd / "logs" / "harness.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            timed_out = False
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
                if sandbox is not None:
                    kill_uid(sandbox.uid)
        text = log.read_bytes()[-LOG_LIMIT:].decode("utf-8", "replace")
        return HarnessRun(process.returncode, timed_out, text, time.monotonic() - start)
