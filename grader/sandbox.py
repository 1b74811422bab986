"""Confine the current process before it runs student code (Linux, as root).

`confine(config)` is called by the worker at start-up, before any student code
is imported. In order, it:

1. moves into new network, mount and IPC namespaces: a network of its own whose
   only interface is a loopback (the submission's processes may talk to each other,
   as distributed training does, but reach nothing else: not the host, not another
   submission, whose loopback is another one), mounts that only this process sees,
   and System V / POSIX IPC objects that no other submission sees and that end
   with the worker;
2. hides folders behind empty read-only tmpfs mounts (the course repo with its
   hidden tests and reference, other submissions, results, home folders) and
   binds back, read-only, just what the worker needs (the Python installation,
   the `grader` package, this submission's code);
3. gives the process a private, size-limited /tmp and /dev/shm for its writes,
   and a /proc that shows only its own uid's processes (`hidepid=2`: not the
   harness, not the reference's worker);
4. joins the submission's memory and CPU cgroups (`grader.cgroups`), so the
   memory limit holds for all its processes together, not for each one, and its
   processes share the CPU as one group beside the other submissions;
5. sets rlimits (address space, processes, file size, CPU time, open files, no
   core dumps);
6. drops to an unprivileged uid/gid with no supplementary groups, sets
   no_new_privs, and installs a seccomp filter (`grader.seccomp`) refusing new
   namespaces of any kind (user namespaces included) and the kernel keyrings,
   so nothing above can be undone and nothing outlives the worker in the kernel.

Without root none of this is possible: `available()` says so and the harness
records that the submission ran unconfined.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import resource
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from grader import cgroups, seccomp

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
#: The environment variable by which the process starting a harness gives its pid.
PARENT_ENV = "LLMSYS_HARNESS_PARENT"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class SandboxError(OSError):
    """The sandbox could not be set up; the worker must not run student code."""


@dataclass(frozen=True)
class SandboxConfig:
    uid: int
    gid: int
    #: Folders replaced by an empty read-only tmpfs.
    hide: tuple[str, ...]
    #: Folders bound back read-only inside hidden ones (Python, grader, student code).
    keep: tuple[str, ...]
    tmp_mb: int = 256
    memory_mb: int = 4096
    processes: int = 64
    file_size_mb: int = 64
    cpu_s: int = 3600
    open_files: int = 256
    extra_rw: tuple[str, ...] = field(default=())
    #: Control groups to join (folders of the cgroup file system): the slot's memory
    #: and CPU groups, where the host has them.
    cgroups: tuple[str, ...] = ()
    #: Steps 1-3 (namespaces and mounts). A container already gives the worker its
    #: own network and file system, and no right to build them: there only the
    #: rlimits and the change of uid apply.
    namespaces: bool = True


def available() -> bool:
    """True when this process may build the sandbox (root on Linux)."""
    return os.name == "posix" and os.geteuid() == 0 and Path("/proc/self/ns/mnt").exists()


def confine(config: SandboxConfig) -> None:
    """Apply every restriction of `config` to the current process, irreversibly."""
    if config.namespaces:
        _private_mounts(config)
    cgroups.join(config.cgroups)
    _limits(config)
    os.setgroups([])
    os.setgid(config.gid)
    os.setuid(config.uid)
    _call(_libc.prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, what="prctl(NO_NEW_PRIVS)")
    seccomp.install()


def _private_mounts(config: SandboxConfig) -> None:
    """New network, mount and IPC namespaces; hidden folders; a private /tmp and
    /dev/shm; a /proc that shows only the worker's own uid."""
    _call(_libc.unshare, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC, what="unshare")
    _loopback_up()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    keep_fds = {
        path: os.open(path, os.O_PATH | os.O_DIRECTORY)
        for path in config.keep
        if os.path.isdir(path)
    }
    hidden: list[str] = []
    writable = {"/tmp", "/dev/shm"}
    for path in sorted(set(config.hide) | writable, key=lambda p: p.count("/")):
        if not os.path.isdir(path) or any(_inside(path, h) for h in hidden):
            continue
        size = f"size={config.tmp_mb}m" if path in writable else "size=1m"
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,{size}")
        hidden.append(path)
    for path, fd in sorted(keep_fds.items(), key=lambda item: item[0].count("/")):
        if any(_inside(path, h) for h in hidden):
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    for path in hidden:
        if path not in writable:
            _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for path in writable & set(hidden):
        os.chmod(path, 0o1777)
    # A procfs of its own: the same processes, but other users' are invisible.
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")


def _loopback_up() -> None:
    """Bring up `lo` of the new network namespace (it starts down): 127.0.0.1 then
    reaches this namespace's own listeners, and there is no other interface."""
    ifreq = "16sh22x"  # struct ifreq: the name, then the flags of its union
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(ifreq, b"lo", 0)
        flags = struct.unpack(ifreq, fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(ifreq, b"lo", flags | IFF_UP))


def die_with_parent(parent: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies.

    The request counts from now: a parent that died before it (while this process
    was starting) would go unnoticed, so with `parent` (the pid the parent gave),
    a process whose parent is no longer that one exits at once. Changing uid clears
    the setting, so the worker calls this after `confine`.
    """
    if os.name == "posix" and hasattr(_libc, "prctl"):
        _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # 9 = SIGKILL
    if parent is not None and os.getppid() != parent:
        os._exit(70)


def _limits(config: SandboxConfig) -> None:
    """Set the rlimits; a `memory_mb` or `processes` of 0 leaves that one to the
    container (its cgroup counts them better: per container, not per uid)."""
    mib = 1024 * 1024
    for limit, value in (
        (resource.RLIMIT_AS, config.memory_mb * mib),
        (resource.RLIMIT_NPROC, config.processes),
        (resource.RLIMIT_FSIZE, config.file_size_mb * mib),
        (resource.RLIMIT_CPU, config.cpu_s),
        (resource.RLIMIT_NOFILE, config.open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        if value == 0 and limit in (resource.RLIMIT_AS, resource.RLIMIT_NPROC):
            continue
        resource.setrlimit(limit, (value, value))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    def c(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    _call(
        _libc.mount,
        c(source),
        c(target),
        c(fstype),
        ctypes.c_ulong(flags),
        c(data),
        what=f"mount {target}",
    )


def _call(function: ctypes._CFuncPtr, *args: object, what: str) -> None:
    if function(*args) != 0:
        errno = ctypes.get_errno()
        raise SandboxError(errno, f"{what}: {os.strerror(errno)}")
