"""The worker sandbox, probed from inside: what student code can and cannot reach.

Needs root (the grader's sandbox is built with namespaces, mounts and setuid); on
other machines these tests skip with that reason. The network test connects only to
a listener this test opens on the host's loopback, never to an outside address.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

import grader
from grader import sandbox
from grader.backends.local import _host_folders
from grader.sandbox import SandboxConfig
from grader.uids import claim_uid
from grader.workers import Worker

pytestmark = pytest.mark.skipif(
    not sandbox.available(), reason="the sandbox needs root on Linux (run the tests as root)"
)


@pytest.fixture
def confined(tmp_path: Path):
    student = tmp_path / "work" / "student"
    (student / "pkg").mkdir(parents=True)
    (student / "pkg" / "__init__.py").write_text("VALUE = 42\n")
    os.chmod(tmp_path, 0o755)
    for folder in (tmp_path / "work", student, student / "pkg"):
        os.chmod(folder, 0o755)
    secret = tmp_path / "harness"
    secret.mkdir(mode=0o700)
    (secret / "hidden_test.py").write_text("SECRET = 'the hidden test'\n")
    uid, lock = claim_uid(set())
    config = SandboxConfig(
        uid=uid,
        gid=uid,
        hide=(*_host_folders(), "/dev/shm", str(Path(grader.__file__).parents[1])),
        keep=tuple(
            sorted(
                {
                    sys.prefix,
                    sys.base_prefix,
                    sysconfig.get_paths()["purelib"],
                    sysconfig.get_paths()["platlib"],
                    str(Path(grader.__file__).resolve().parent),
                    str(student),
                }
            )
        ),
        memory_mb=1024,
        processes=16,
        file_size_mb=1,
    )
    worker = Worker(student, tmp_path / "worker.log", config)
    worker.start()
    yield worker, tmp_path
    worker.kill()
    os.close(lock)


def run(worker: Worker, source: str, *args):
    name = source.split("def ", 1)[1].split("(", 1)[0]
    return worker.call({"source": source, "name": name}, args, timeout=30)


def test_runs_as_its_own_uid_and_imports_the_student_package(confined):
    worker, _ = confined
    source = "def probe():\n    import os, pkg\n    return [os.getuid(), os.getgid(), pkg.VALUE]\n"
    uid = worker.sandbox.uid
    assert uid >= 61000 and run(worker, source) == [uid, uid, 42]


def test_cannot_reach_a_listener_on_the_hosts_loopback(confined):
    worker, _ = confined
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the host itself can connect: the listener is real
        source = (
            "def probe(port):\n"
            "    import socket\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
            "        return 'connected'\n"
            "    except OSError as exc:\n"
            "        return type(exc).__name__\n"
        )
        assert run(worker, source, port) != "connected"


def test_its_own_processes_talk_over_its_own_loopback(confined):
    """Distributed training needs the loopback: a listener the worker opens on
    127.0.0.1 accepts its own connections (and the host's listener stays out of
    reach, above); the only interface is `lo`."""
    worker, _ = confined
    source = (
        "def probe():\n"
        "    import socket\n"
        "    with socket.socket() as listener:\n"
        "        listener.bind(('127.0.0.1', 0))\n"
        "        listener.listen(1)\n"
        "        port = listener.getsockname()[1]\n"
        "        with socket.create_connection(('127.0.0.1', port), timeout=2) as c:\n"
        "            peer, _ = listener.accept()\n"
        "            c.sendall(b'ping')\n"
        "            got = peer.recv(4)\n"
        "            peer.close()\n"
        "    return [got.decode(), sorted(name for _, name in socket.if_nameindex())]\n"
    )
    assert run(worker, source) == ["ping", ["lo"]]


def test_hidden_folders_are_empty_and_harness_files_unreadable(confined):
    worker, tmp_path = confined
    secret = str(tmp_path / "harness" / "hidden_test.py")
    course = str(Path(grader.__file__).parents[1])
    source = (
        "def probe(secret, course):\n"
        "    import os\n"
        "    try:\n"
        "        text = open(secret).read()\n"
        "    except OSError as exc:\n"
        "        text = type(exc).__name__\n"
        "    return [text, sorted(os.listdir(course)), sorted(os.listdir('/root'))]\n"
    )
    text, course_listing, root_listing = run(worker, source, secret, course)
    assert "hidden test" not in text
    # The course repository shows only what was bound back (the grader package).
    assert "assignments" not in course_listing and "solutions" not in course_listing
    # /root shows only the way to what was bound back (e.g. a Python under /root/.pyenv).
    kept = {Path(k).parts[2] for k in worker.sandbox.keep if k.startswith("/root/")}
    assert set(root_listing) == kept


def test_writes_stay_in_a_private_tmp_and_the_tree_is_read_only(confined):
    worker, tmp_path = confined
    source = (
        "def probe(tree):\n"
        "    import os\n"
        "    open('/tmp/dropped', 'w').write('x')\n"
        "    try:\n"
        "        open(os.path.join(tree, 'pkg', 'dropped'), 'w').write('x')\n"
        "        return 'wrote the tree'\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
    )
    assert run(worker, source, str(tmp_path / "work" / "student")) != "wrote the tree"
    assert not Path("/tmp/dropped").exists()
    assert not (tmp_path / "work" / "student" / "pkg" / "dropped").exists()


def test_memory_file_size_and_process_limits_hold(confined):
    worker, _ = confined
    with pytest.raises(MemoryError):  # the student's exception, re-raised by the harness
        run(worker, "def probe():\n    return len(bytearray(2 * 1024**3))\n")
    big_write = (
        "def probe():\n"
        "    with open('/tmp/big', 'wb') as f:\n"
        "        f.write(b'x' * (4 * 1024 * 1024))\n"
    )
    with pytest.raises(OSError, match="File too large"):
        run(worker, big_write)
    forks = (
        "def probe():\n"
        "    import os\n"
        "    children = []\n"
        "    try:\n"
        "        for _ in range(64):\n"
        "            pid = os.fork()\n"
        "            if pid == 0:\n"
        "                import time\n"
        "                time.sleep(5)\n"
        "                os._exit(0)\n"
        "            children.append(pid)\n"
        "    except OSError:\n"
        "        pass\n"
        "    for pid in children:\n"
        "        os.kill(pid, 9)\n"
        "        os.waitpid(pid, 0)\n"
        "    return len(children)\n"
    )
    assert run(worker, forks) < 16


def test_folders_outside_the_system_ones_are_hidden(confined):
    """Another checkout of the course, a TA's files: anywhere but /usr, /etc, ..."""
    worker, _ = confined
    outside = Path(tempfile.mkdtemp(prefix="llmsys-sandbox-test-", dir="/mnt"))
    try:
        (outside / "solutions.py").write_text("the reference\n")
        os.chmod(outside, 0o755)
        os.chmod(outside / "solutions.py", 0o644)
        source = (
            "def probe(path):\n"
            "    import os\n"
            "    return [os.path.exists(path), sorted(os.listdir('/mnt'))]\n"
        )
        exists, listing = run(worker, source, str(outside / "solutions.py"))
        assert Path(outside / "solutions.py").exists()  # the host sees it
        assert exists is False and listing == []
    finally:
        shutil.rmtree(outside)


LIBC_PROBE = """
def probe(call, *args):
    import ctypes, errno
    libc = ctypes.CDLL(None, use_errno=True)
    result = getattr(libc, call)(*(a.encode() if isinstance(a, str) else a for a in args))
    return [result, errno.errorcode.get(ctypes.get_errno(), "0") if result < 0 else "ok"]
"""

CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWIPC = 0x10000000, 0x40000000, 0x08000000
SYS_CLONE = {"x86_64": 56, "aarch64": 220}


def test_no_new_namespaces_and_no_kernel_keyrings(confined):
    """A user namespace would give student code a root of its own; keys stored in a
    uid's keyring would outlive the worker and reach the slot's next submission."""
    import platform

    worker, _ = confined
    for flags in (CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
        assert run(worker, LIBC_PROBE, "unshare", flags) == [-1, "EPERM"]
    assert run(worker, LIBC_PROBE, "setns", 0, 0) == [-1, "EPERM"]
    # clone(2) itself with a namespace flag (the call fork is made of, with other flags).
    number = SYS_CLONE[platform.machine()]
    assert run(worker, LIBC_PROBE, "syscall", number, CLONE_NEWUSER | 17, 0, 0, 0, 0) == [
        -1,
        "EPERM",
    ]
    # add_key("user", "k", "v", 1, KEY_SPEC_USER_KEYRING = -4)
    add_key = {"x86_64": 248, "aarch64": 217}[platform.machine()]
    assert run(worker, LIBC_PROBE, "syscall", add_key, "user", "k", "v", 1, -4)[1] == "EPERM"
    # What the filter must not break: threads, fork, subprocesses.
    source = (
        "def probe():\n"
        "    import os, subprocess, threading\n"
        "    box = []\n"
        "    t = threading.Thread(target=lambda: box.append(1))\n"
        "    t.start(); t.join()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(7)\n"
        "    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
        "    out = subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout\n"
        "    return [box, code, out]\n"
    )
    assert run(worker, source) == [[1], 7, "hi\n"]


def test_ipc_objects_are_private_to_the_worker_and_end_with_it(confined):
    worker, _ = confined
    key = 0x4C4C4D53  # "LLMS"
    create = (
        "def probe(key):\n"
        "    import ctypes\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    return libc.shmget(key, 4096, 0o1000 | 0o666)\n"  # IPC_CREAT
    )
    assert run(worker, create, key) >= 0
    host_keys = {
        int(line.split()[0]) for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    }
    assert key not in host_keys  # not in the host's IPC namespace
    worker.kill()  # the next worker (another test, another submission) starts afresh
    find = (
        "def probe(key):\n"
        "    import ctypes, errno\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    found = libc.shmget(key, 0, 0)\n"
        "    return [found, errno.errorcode.get(ctypes.get_errno())]\n"
    )
    assert run(worker, find, key) == [-1, "ENOENT"]


def test_proc_shows_only_the_workers_own_processes_and_shm_is_private(confined):
    """The harness and the reference's worker run as other users: their /proc
    entries (what they run, their CPU times) are out of sight."""
    worker, _ = confined
    source = (
        "def probe():\n"
        "    import os\n"
        "    pids = [int(p) for p in os.listdir('/proc') if p.isdigit()]\n"
        "    uids = {os.stat(f'/proc/{p}').st_uid for p in pids if os.path.exists(f'/proc/{p}')}\n"
        "    open('/dev/shm/numba-like', 'w').write('x')\n"
        "    return [os.path.exists(f'/proc/{os.getppid()}'), sorted(uids), os.getuid()]\n"
    )
    parent_seen, uids, uid = run(worker, source)
    assert parent_seen is False and uids == [uid]
    assert not Path("/dev/shm/numba-like").exists()  # its /dev/shm is its own


def test_the_memory_limit_holds_for_all_processes_together(confined, tmp_path: Path):
    """Three processes of 200 MiB each against a 300 MiB group: one is killed, although
    each stays far below the per-process address-space limit (1 GiB here)."""
    from dataclasses import replace

    from grader import cgroups

    worker, _ = confined
    groups = cgroups.create(f"llmsys-test-{os.getpid()}", 300, 0)
    if not groups:
        pytest.skip("no cgroup v1 memory hierarchy on this host")
    (group,) = groups
    try:
        worker.kill()
        worker.sandbox = replace(worker.sandbox, cgroups=(str(group),))
        source = (
            "def probe(python):\n"
            "    import subprocess\n"
            "    code = 'x = bytearray(200 * 2**20); import time; time.sleep(3)'\n"
            "    children = [subprocess.Popen([python, '-c', code]) for _ in range(3)]\n"
            "    return sorted(child.wait() for child in children)\n"
        )
        codes = run(worker, source, sys.executable)
        assert -9 in codes, codes
        assert cgroups.oom_kills(group) >= 1
    finally:
        worker.kill()
        assert cgroups.remove(group)


def test_paused_stops_every_process_of_the_student_and_resumes_them(confined):
    """The harness times the reference inside `paused`: a student's helper spinning
    on a core is stopped for that time, then runs on."""
    worker, _ = confined
    source = (
        "def probe(python):\n"
        "    import subprocess\n"
        "    spin = subprocess.Popen([python, '-c', 'while True: pass'])\n"
        "    return spin.pid\n"
    )
    run(worker, source, sys.executable)
    from grader.uids import _pids_of, _state

    def states() -> set[bytes]:
        return {_state(pid) for pid in _pids_of(worker.sandbox.uid)}

    assert b"R" in states()
    with worker.paused():
        assert states() <= {b"T", b"t"}
        time.sleep(0.2)
        assert states() <= {b"T", b"t"}
        # A reference call inside a timed block pauses again: leaving the inner
        # block must not let the student run during the rest of the outer one.
        with worker.paused():
            assert states() <= {b"T", b"t"}
        time.sleep(0.2)
        assert states() <= {b"T", b"t"}
    time.sleep(0.2)
    assert b"R" in states()


def test_the_cpu_limit_holds_for_all_processes_together(confined):
    """Four processes spinning for 2 s in a group of half a core use about 1 s of CPU
    between them: a submission's helpers cannot take the cores from its neighbours."""
    from dataclasses import replace

    from grader import cgroups

    worker, _ = confined
    groups = cgroups.create(f"llmsys-test-cpu-{os.getpid()}", 0, 0.5)
    if not groups:
        pytest.skip("no cgroup v1 cpu hierarchy on this host")
    try:
        worker.kill()
        worker.sandbox = replace(worker.sandbox, cgroups=tuple(str(g) for g in groups))
        source = (
            "def probe(python):\n"
            "    import subprocess, time\n"
            "    code = 'import time\\nend = time.time() + 2\\nwhile time.time() < end: pass'\n"
            "    children = [subprocess.Popen([python, '-c', code]) for _ in range(4)]\n"
            "    for child in children:\n"
            "        child.wait()\n"
            "    import os\n"
            "    t = os.times()\n"
            "    return t.children_user + t.children_system\n"
        )
        used = run(worker, source, sys.executable)
        assert used < 1.4, used  # 0.5 of a core for 2 s, and some start-up
    finally:
        worker.kill()
        for group in groups:
            assert cgroups.remove(group)


def test_an_unconfined_worker_with_groups_runs_in_them(tmp_path: Path):
    """The reference's worker (no sandbox) is put in a CPU group like the student's,
    so the two sides of a timing check share a busy host's CPU alike."""
    from grader import cgroups

    groups = cgroups.create(f"llmsys-test-reference-{os.getpid()}", 0, 1.0)
    if not groups:
        pytest.skip("no cgroup v1 cpu hierarchy on this host")
    (tmp_path / "tree").mkdir()
    worker = Worker(tmp_path / "tree", tmp_path / "out.log", groups=tuple(map(str, groups)))
    try:
        source = "def probe():\n    return open('/proc/self/cgroup').read()\n"
        worker.start()
        own = run(worker, source)
        (group,) = groups
        assert any(
            line.endswith(":/" + group.name) or f"/{group.name}" in line
            for line in own.splitlines()
            if ":cpu" in line
        ), own
    finally:
        worker.kill()
        for group in groups:
            assert cgroups.remove(group)
