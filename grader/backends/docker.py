"""The docker backend: each submission's harness runs in a container of its own.

The container runs the same harness as the local backend (pytest with the
grader's plugin), from the grading image (`llmsys image`), with:

- the submission's tree mounted read-only at /grade/student and the harness's
  folder (tests, hidden tests, reference, config, results) at /grade/harness,
  mode 0700 and owned by root, so the student's uid cannot read it;
- no network; memory with no swap, CPUs and processes from the manifest
  (`limits`); a read-only root with a size-limited /tmp; an init that reaps
  orphans; no-new-privileges; every capability dropped but the three the
  harness needs to run student code as another uid (SETUID, SETGID) and to kill
  what that uid leaves behind (KILL). The student's worker drops to a uid of the
  batch's slot (as on the local backend) with rlimits (processes, file size, CPU
  time, address space on CPU assignments), which clears every capability it had;
- its GPUs through a device request, as the batch's `GpuPool` chose them;
- a wall-clock limit kept by this process: past it the container is killed,
  and the results the harness wrote so far (a journal on the host) are kept.

A batch killed half-way leaves containers running: they carry this host's name
and the grader's pid as labels, and the next DockerBackend on the host removes
those whose grader is gone. If the engine fails mid-submission the submission
gets status "error" (`BackendFailure`), which the next run grades again.

Only this module and `grader.backends.image` import the Docker SDK.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.backend import BackendFailure, HarnessRun, Placement
from grader.backends import image as images
from grader.backends import process_alive
from grader.context import Context
from grader.manifest import Limits
from grader.sandbox import SandboxConfig
from grader.uids import SlotUids

MOUNT = Path("/grade")
PATH = "/opt/llmsys/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL_HOST = "org.llmsys.host"
LABEL_PID = "org.llmsys.pid"
LOG_LINES = 400
#: Memory of a container beyond its two workers' (the harness: pytest, tests, numpy).
HARNESS_MB = 1024
#: Processes and threads of a container beyond the student's: harness, reference.
HARNESS_PIDS = 64


@dataclass(frozen=True)
class ContainerLimits:
    memory_mb: int
    nano_cpus: int
    pids: int
    tmp_mb: int

    @classmethod
    def of(cls, limits: Limits, tmp_mb: int) -> ContainerLimits:
        """The student's worker and the reference's get `memory_mb` each; the harness
        HARNESS_MB; /tmp (a tmpfs, so memory too) is inside that sum."""
        return cls(
            memory_mb=2 * limits.memory_mb + HARNESS_MB,
            nano_cpus=int(limits.cpus * 1e9),
            pids=2 * limits.processes + HARNESS_PIDS,
            tmp_mb=tmp_mb,
        )


class DockerBackend:
    name = "docker"
    python = images.PYTHON

    def __init__(self, image: str, client: Any = None) -> None:
        import docker

        try:
            self.client = client or docker.from_env(timeout=60)
            self.client.ping()
        except Exception as exc:
            raise BackendFailure(
                f"cannot reach the Docker engine ({type(exc).__name__}); "
                "tip: start dockerd (ci/docker.sh does, as root) or use --backend local"
            ) from None
        images.require(self.client, image)
        self.image = image
        self.host = socket.gethostname()
        self._running: dict[str, Any] = {}
        #: The student's uid in each slot's containers: one of this host's range,
        #: claimed by this process. The process limit (RLIMIT_NPROC) counts per uid
        #: across the host, so containers graded at once must not share one.
        self.uid = SlotUids()
        self._lock = threading.Lock()
        self._stopped = False
        self.reaped = self.reap_stale()

    # -- Backend protocol ----------------------------------------------------------------
    def prepare(self, ctx: Context, work: Path, slot: int, gpus: tuple[str, ...] = ()) -> Placement:
        sandbox = self._sandbox(ctx, slot)
        limits = ContainerLimits.of(ctx.assignment.limits, sandbox.tmp_mb)
        described = (
            f"docker: {self.image}, student uid {sandbox.uid}, no network, read-only root, "
            f"{limits.memory_mb} MiB without swap, {limits.nano_cpus / 1e9:g} CPUs, "
            f"{limits.pids} processes"
        )
        return Placement(work, MOUNT, sandbox, ctx, gpus, described)

    def _sandbox(self, ctx: Context, slot: int) -> SandboxConfig:
        limits = ctx.assignment.limits
        uid = self.uid(slot)
        config = SandboxConfig(
            uid=uid,
            gid=uid,
            hide=(),
            keep=(),
            namespaces=False,
            # CUDA maps far more address space than it uses: on GPU assignments the
            # container's memory limit is the bound.
            memory_mb=0 if limits.gpus else limits.memory_mb,
            processes=limits.processes,
            file_size_mb=limits.file_size_mb,
            cpu_s=int(limits.submission_timeout_s) + 5,
        )
        return config

    def run_harness(
        self, placement: Placement, command: list[str], env: dict[str, str], timeout_s: float
    ) -> HarnessRun:
        import docker.errors
        import requests.exceptions

        work, gpus = placement.work, placement.gpus
        tmp_mb = placement.sandbox.tmp_mb if placement.sandbox else SandboxConfig.tmp_mb
        limits = ContainerLimits.of(placement.context.assignment.limits, tmp_mb)
        start = time.monotonic()
        name = f"llmsys-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        with self._lock:
            if self._stopped:
                raise BackendFailure("the batch is stopping")
            try:
                container = self.client.containers.create(
                    self.image, command, name=name, **self._options(work, env, limits, gpus)
                )
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise BackendFailure(f"could not create the container: {exc}") from None
            self._running[name] = container
        timed_out = False
        try:
            try:
                container.start()
                code = container.wait(timeout=max(1.0, timeout_s))["StatusCode"]
            except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
                if self._stopped:
                    raise BackendFailure("the batch is stopping") from None
                if time.monotonic() - start < timeout_s or not self._engine_up():
                    raise BackendFailure(f"the submission's container failed: {exc}") from None
                timed_out = True
                _quietly(container.kill)
                code = None
            log = container.logs(tail=LOG_LINES).decode("utf-8", "replace")
            container.reload()
            if container.attrs.get("State", {}).get("OOMKilled"):
                log += (
                    f"\n[the container ran out of memory ({limits.memory_mb} MiB) "
                    "and the kernel killed a process]"
                )
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            raise BackendFailure(f"the Docker engine failed: {exc}") from None
        finally:
            _quietly(lambda: container.remove(force=True))
            with self._lock:
                self._running.pop(name, None)
        return HarnessRun(code, timed_out, log, time.monotonic() - start)

    # -- containers ---------------------------------------------------------------------
    def _options(
        self, work: Path, env: dict[str, str], limits: ContainerLimits, gpus: tuple[str, ...]
    ) -> dict[str, Any]:
        from docker.types import DeviceRequest

        caps = ["SETUID", "SETGID", "KILL"]
        if os.geteuid() != 0:
            # The harness's folder belongs to this (non-root) user: the container's
            # root may read it only with DAC_OVERRIDE. Student code never has it.
            caps.append("DAC_OVERRIDE")
        return {
            "user": "0:0",
            "working_dir": str(MOUNT / "harness"),
            "environment": {**env, "PATH": PATH},
            "volumes": {
                str(work / "student"): {"bind": str(MOUNT / "student"), "mode": "ro"},
                str(work / "harness"): {"bind": str(MOUNT / "harness"), "mode": "rw"},
            },
            "network_mode": "none",
            "mem_limit": f"{limits.memory_mb}m",
            "memswap_limit": f"{limits.memory_mb}m",
            "nano_cpus": limits.nano_cpus,
            "pids_limit": limits.pids,
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits.tmp_mb}m,mode=1777"},
            "cap_drop": ["ALL"],
            "cap_add": caps,
            "security_opt": ["no-new-privileges"],
            "init": True,
            "labels": {LABEL_HOST: self.host, LABEL_PID: str(os.getpid())},
            "device_requests": (
                [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])] if gpus else []
            ),
        }

    def _engine_up(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:
            return False

    def reap_stale(self) -> int:
        """Remove this host's grading containers whose grader process is gone."""
        stale = 0
        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL_HOST}={self.host}"}
        ):
            pid = container.labels.get(LABEL_PID, "")
            if pid.isdigit() and process_alive(int(pid)):
                continue
            _quietly(lambda c=container: c.remove(force=True))
            stale += 1
        return stale

    def stop(self) -> None:
        """Remove every running container at once and refuse to start new ones."""
        with self._lock:
            self._stopped = True
        self.close()

    def close(self) -> None:
        """Remove every container this backend still runs (on interrupt)."""
        with self._lock:
            running = list(self._running.values())
        for container in running:
            _quietly(lambda c=container: c.remove(force=True))


def _quietly(action: Any) -> None:
    try:
        action()
    except Exception:
        pass
