"""Stopping a real batch with a signal: SIGTERM (a CI time-out, systemd, Slurm),
SIGHUP (a closed terminal) and SIGINT (Ctrl-C) end `llmsys grade` cleanly on both
backends: every harness, sandboxed process and container of the batch is gone,
the scratch folder is removed, finished results are kept, a line says how many
are done and that the same command resumes, and the rerun grades only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from grader import results, sandbox
from grader.interrupts import Interrupted, shielded, signals_as_interrupts
from tests.conftest import GOOD_OPS, submission


def test_stop_signals_raise_interrupted_and_shielded_notes_them():
    with signals_as_interrupts():
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            with pytest.raises(Interrupted) as caught:
                os.kill(os.getpid(), signum)
                time.sleep(1)  # the handler runs at the next bytecode
            assert caught.value.signum == signum
        with shielded() as noted:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert noted == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def _slow_ops(marker: int) -> str:
    """ops whose mul starts a child that outlives it (`sleep <marker>`), then sleeps."""
    return GOOD_OPS.replace(
        "    return x * y\n",
        "    import subprocess, time\n"
        f"    subprocess.Popen(['sleep', '{marker}'])\n"
        "    time.sleep(60)\n"
        "    return x * y\n",
    )


def _processes_with(text: str) -> list[str]:
    """Command lines of this host's processes that contain `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry}: {cmdline}")
    return found


def _scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("llmsys-grade-hw1-*")}


def _stop_a_batch(
    course: Path, tmp_path: Path, signum: int, backend: list[str]
) -> tuple[subprocess.Popen[str], str, Path, list[str]]:
    """Grade one quick and three slow submissions (jobs 2), signal the grader once the
    quick one is done and two slow ones are running; its exit, stderr, out, names."""
    manifest = course / "assignments/hw1/assignment.toml"
    manifest.write_text(manifest.read_text().replace("test_timeout_s = 3", "test_timeout_s = 30"))
    marker = 900000 + os.getpid() % 90000
    subs = tmp_path / "subs"
    submission(subs, "a-quick", GOOD_OPS)
    names = ["a-quick"]
    for i in range(3):
        submission(subs, f"slow{i}", _slow_ops(marker))
        names.append(f"slow{i}")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "grader.cli", "--root", str(course), "grade", "hw1"]
    command += [str(subs), "--out", str(out), "--jobs", "2", *backend]
    before = _scratch_folders()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        quick_done = (out / "hw1/a-quick/result.json").exists()
        if quick_done and len(_processes_with(f"sleep {marker}")) >= 2:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("the batch never reached two running slow submissions")
    os.kill(process.pid, signum)  # the grader alone, as a CI runner or systemd does
    _, stderr = process.communicate(timeout=60)
    time.sleep(0.5)
    assert process.returncode == 128 + signum, stderr
    assert _processes_with(f"sleep {marker}") == [], "a student's process outlived the batch"
    assert _processes_with(str(tmp_path)) == [], "a harness outlived the batch"
    assert _scratch_folders() <= before, "the batch's scratch folder was left behind"
    # Finished results are kept; nothing half-graded was saved.
    assert sorted(p.parent.name for p in out.glob("hw1/*/result.json")) == ["a-quick"]
    # The rerun grades only the rest (made quick here) and reuses the finished one.
    for name in names[1:]:
        (subs / name / "mini/ops.py").write_text(GOOD_OPS)
    rerun = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "3 graded, 1 reused" in rerun.stdout
    for name in names:
        data = json.loads((out / "hw1" / name / "result.json").read_text())
        assert results.from_dict(data).score == 10.0
    return process, stderr, out, names


needs_root = pytest.mark.skipif(
    not sandbox.available(), reason="the local sandbox (separate uids) needs root"
)


@needs_root
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signalled_local_batch_stops_cleanly_and_resumes(
    graded_course: Path, tmp_path: Path, signum: int
):
    _, stderr, _, _ = _stop_a_batch(graded_course, tmp_path, signum, ["--backend", "local"])
    name = signal.Signals(signum).name
    assert f"stopped by {name}: nothing is left running; 1 of 4 submission(s)" in stderr
    assert "run the same command again" in stderr


def test_a_signalled_docker_batch_removes_its_containers(
    graded_course: Path, tmp_path: Path, docker_backend
):
    import docker

    client = docker.from_env()
    process, stderr, _, _ = _stop_a_batch(
        graded_course,
        tmp_path,
        signal.SIGTERM,
        ["--backend", "docker", "--image", docker_backend.image],
    )
    assert "stopped by SIGTERM" in stderr
    left = client.containers.list(all=True, filters={"label": f"org.llmsys.pid={process.pid}"})
    assert left == [], f"containers left by the stopped batch: {[c.name for c in left]}"
