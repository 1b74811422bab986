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
from pathlib import Path

import pytest

import grader
from grader import grade, sandbox
from grader.backends.local import claim_uid
from grader.sandbox import SandboxConfig
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
        hide=(*grade._host_folders(), "/dev/shm", str(Path(grader.__file__).parents[1])),
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
