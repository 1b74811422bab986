"""A seccomp filter for the student's worker: system calls it has no use for, refused.

Installed last by `grader.sandbox.confine` (after no_new_privs, which a filter
needs and which makes it permanent for the worker and every process it starts):

- new namespaces of every kind: `unshare` and `setns` fail with EPERM, and so does
  `clone` with any CLONE_NEW* flag. A user namespace would give student code a
  root of its own (new mounts, a network of its own, a way around what the
  sandbox hid); none of the others is needed by any assignment either;
- `clone3` fails with ENOSYS, whose flags live in memory a filter cannot read:
  the C library then falls back to `clone` (threads, fork and posix_spawn keep
  working), which the rule above checks;
- the kernel keyrings (`add_key`, `request_key`, `keyctl`): a key stored under a
  uid outlives the process, and the next submission graded with the same slot uid
  could read it.

Docker's default profile refuses the same calls to a container; this filter makes
the local backend hold the same line, and adds it inside containers too.
Only x86-64 and aarch64 are known here; on another architecture `install` raises
SeccompError and the worker does not start (it never runs unfiltered).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import platform
import struct

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
#: Every CLONE_NEW* flag: cgroup, UTS, IPC, user, PID, network, mount.
CLONE_NEW_ANY = 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
CLONE_NEW_ANY |= 0x00020000
#: x32 system calls on x86-64 carry this bit: refused whole.
X32_SYSCALL_BIT = 0x40000000

#: Per architecture: the AUDIT_ARCH value and the numbers of the calls filtered.
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "clone": 56,
            "unshare": 272,
            "setns": 308,
            "clone3": 435,
            "add_key": 248,
            "request_key": 249,
            "keyctl": 250,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "unshare": 97,
            "setns": 268,
            "clone3": 435,
            "add_key": 217,
            "request_key": 218,
            "keyctl": 219,
        },
    ),
}

# BPF opcodes (linux/filter.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_JGE_K = 0x35
_RET_K = 0x06
# Offsets in struct seccomp_data: nr (u32), arch (u32), ip (u64), args[6] (u64).
_NR, _ARCH, _ARG0_LOW = 0, 4, 16


class SeccompError(OSError):
    """The filter could not be installed: the worker must not run student code."""


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, true: int, false: int) -> tuple[int, int, int, int]:
    return (code, true, false, k)


def program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter as BPF instructions (code, jump if true, jump if false, k)."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise SeccompError(errno.ENOSYS, f"no seccomp filter for the {machine} architecture")
    arch, nr = ARCHES[machine]
    eperm = _stmt(_RET_K, SECCOMP_RET_ERRNO | errno.EPERM)
    refused = [nr[name] for name in ("unshare", "setns", "add_key", "request_key", "keyctl")]
    code = [
        _stmt(_LD_W_ABS, _ARCH),
        _jump(_JEQ_K, arch, 1, 0),
        eperm,  # another ABI than the one filtered: refuse the call
        _stmt(_LD_W_ABS, _NR),
    ]
    if machine == "x86_64":
        code += [_jump(_JGE_K, X32_SYSCALL_BIT, 0, 1), eperm]  # the x32 ABI's calls
    code += [
        _jump(_JEQ_K, nr["clone3"], 0, 1),
        _stmt(_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS),
    ]
    for number in refused:
        code += [_jump(_JEQ_K, number, 0, 1), eperm]
    code += [
        _jump(_JEQ_K, nr["clone"], 0, 3),
        _stmt(_LD_W_ABS, _ARG0_LOW),  # clone's flags (the low 32 bits of its first argument)
        _jump(_JSET_K, CLONE_NEW_ANY, 0, 1),
        eperm,
        _stmt(_RET_K, SECCOMP_RET_ALLOW),
    ]
    return code


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> None:
    """Install the filter on this process (and every process it will start)."""
    code = program()
    raw = b"".join(struct.pack("=HBBI", c, jt, jf, k) for c, jt, jf, k in code)
    buffer = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(code), ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        number = ctypes.get_errno()
        raise SeccompError(number, f"prctl(PR_SET_SECCOMP): {errno.errorcode.get(number, number)}")
