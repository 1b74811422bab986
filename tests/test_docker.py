"""The docker backend: what each container is allowed (checked on the options given
to the engine, with a recording fake), how engine failures and time limits end, and
the miniature course graded in real containers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests

from grader import grade
from grader.backends.docker import DockerBackend
from grader.batch import grade_batch
from grader.context import Context, render_context
from grader.gpus import GpuPool
from grader.manifest import Course
from tests.conftest import GOOD_OPS, slow_mul_submission, submission

# ---------------------------------------------------------------------------
# A fake engine that records what it is asked
# ---------------------------------------------------------------------------


class FakeContainer:
    def __init__(self, engine: FakeEngine, name: str, labels: dict[str, str]) -> None:
        self.engine, self.name, self.labels = engine, name, labels
        self.attrs: dict[str, Any] = {"State": {"OOMKilled": False}}
        self.killed = self.removed = False

    def start(self) -> None:
        pass

    def wait(self, timeout: float) -> dict[str, int]:
        return self.engine.wait(self, timeout)

    def kill(self) -> None:
        self.killed = True

    def logs(self, tail: int) -> bytes:
        return b"harness output\n"

    def reload(self) -> None:
        pass

    def remove(self, force: bool = False) -> None:
        self.removed = True
        self.engine.containers_alive.pop(self.name, None)


class FakeEngine:
    """Stands in for docker.DockerClient: `.containers`, `.images`, `.ping()`."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.containers_alive: dict[str, FakeContainer] = {}
        self.up = True
        self.wait = lambda container, timeout: {"StatusCode": 0}
        self.containers = self
        self.images = self

    # client.ping / client.images.get
    def ping(self) -> bool:
        if not self.up:
            raise requests.exceptions.ConnectionError("engine gone")
        return True

    def get(self, name: str) -> Any:
        return type("Image", (), {"labels": {"org.llmsys.grader-digest": "x"}})()

    # client.containers.create / list
    def create(self, image: str, command: list[str], name: str, **options: Any) -> FakeContainer:
        self.created.append({"image": image, "command": command, "name": name, **options})
        container = FakeContainer(self, name, options.get("labels", {}))
        self.containers_alive[name] = container
        return container

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
        return list(self.containers_alive.values())


def context(course: Path) -> Context:
    loaded = Course.load(course)
    return render_context(loaded, loaded.get("hw1"))


def test_each_container_is_confined_as_the_manifest_says(graded_course: Path, tmp_path: Path):
    engine = FakeEngine()
    backend = DockerBackend("llmsys-grader:test", client=engine)
    ctx = context(graded_course)
    work = tmp_path / "work"
    result = grade.grade_submission(
        ctx, submission(tmp_path / "subs", "ann", GOOD_OPS), work, backend, gpus=("1",)
    )
    assert result.status == "graded" or result.reason  # the fake runs no harness
    options = engine.created[0]
    limits = ctx.assignment.limits
    assert options["image"] == "llmsys-grader:test"
    assert options["network_mode"] == "none"
    assert options["read_only"] is True
    assert options["cap_drop"] == ["ALL"]
    assert set(options["cap_add"]) <= {"SETUID", "SETGID", "KILL", "DAC_OVERRIDE"}
    assert ("DAC_OVERRIDE" in options["cap_add"]) == (os.geteuid() != 0)
    assert options["security_opt"] == ["no-new-privileges"]
    assert options["mem_limit"] == options["memswap_limit"]  # no swap
    assert options["mem_limit"] == f"{2 * limits.memory_mb + 1024}m"
    assert options["pids_limit"] == 2 * limits.processes + 64
    assert options["nano_cpus"] == int(limits.cpus * 1e9)
    assert "size=" in options["tmpfs"]["/tmp"]
    assert options["init"] is True
    volumes = options["volumes"]
    assert volumes[str(work / "student")] == {"bind": "/grade/student", "mode": "ro"}
    assert volumes[str(work / "harness")] == {"bind": "/grade/harness", "mode": "rw"}
    assert len(volumes) == 2, "nothing but the submission's own two folders is mounted"
    (request,) = options["device_requests"]
    assert request["DeviceIDs"] == ["1"] and request["Capabilities"] == [["gpu"]]
    assert options["labels"]["org.llmsys.pid"] == str(os.getpid())
    # The harness's folder is the only place with hidden tests: root's, mode 0700.
    assert (work / "harness").stat().st_mode & 0o777 == 0o700
    # The config the harness reads speaks of the container's paths.
    command = options["command"]
    assert command[0] == "/opt/llmsys/bin/python" and "/grade/harness/config.json" in command
    assert engine.containers_alive == {}, "the container was not removed"


def test_a_container_past_its_time_limit_is_killed_and_counts_as_timed_out(
    graded_course: Path, tmp_path: Path
):
    engine = FakeEngine()
    backend = DockerBackend("img", client=engine)

    def too_slow(container: FakeContainer, timeout: float) -> dict[str, int]:
        raise requests.exceptions.ReadTimeout("read timed out")

    engine.wait = too_slow
    placement = backend.prepare(context(graded_course), tmp_path / "w", 0)
    run = backend.run_harness(placement, ["true"], {}, 0.0)
    assert run.timed_out and run.returncode is None
    assert engine.created and engine.containers_alive == {}


def test_an_engine_failure_is_an_error_that_a_rerun_grades_again(
    graded_course: Path, tmp_path: Path
):
    engine = FakeEngine()
    backend = DockerBackend("img", client=engine)

    def engine_dies(container: FakeContainer, timeout: float) -> dict[str, int]:
        engine.up = False
        raise requests.exceptions.ConnectionError("connection aborted")

    engine.wait = engine_dies
    subs = tmp_path / "subs"
    submission(subs, "ann", GOOD_OPS)
    ctx = context(graded_course)
    first = grade_batch(ctx, [subs / "ann"], tmp_path / "out", backend)
    (result,) = first.results
    assert result.status == "error"
    assert "the docker backend failed" in result.reason and "again" in result.reason
    engine.up = True
    engine.wait = lambda container, timeout: {"StatusCode": 0}
    again = grade_batch(ctx, [subs / "ann"], tmp_path / "out", backend)
    assert again.graded == 1 and again.reused == 0


def test_containers_of_a_dead_grader_are_removed_at_start():
    engine = FakeEngine()
    dead = FakeContainer(engine, "old", {"org.llmsys.pid": str(2**22 + 7)})
    alive = FakeContainer(engine, "busy", {"org.llmsys.pid": str(os.getppid())})
    engine.containers_alive = {"old": dead, "busy": alive}
    backend = DockerBackend("img", client=engine)
    assert backend.reaped == 1
    assert dead.removed and not alive.removed


def test_no_engine_is_a_clear_error():
    from grader.backend import BackendFailure

    engine = FakeEngine()
    engine.up = False
    with pytest.raises(BackendFailure, match=r"cannot reach the Docker engine.*tip"):
        DockerBackend("img", client=engine)


def test_gpu_assignments_leave_memory_to_the_container(graded_course: Path, tmp_path: Path):
    path = graded_course / "assignments/hw1/assignment.toml"
    path.write_text(path.read_text().replace("[limits]\n", "[limits]\ngpus = 1\n"))
    backend = DockerBackend("img", client=FakeEngine())
    config = backend.prepare(context(graded_course), tmp_path / "w", 0).sandbox
    assert config is not None and config.memory_mb == 0 and not config.namespaces
    with pytest.raises(Exception, match="needs 1 GPU"):
        grade_batch(context(graded_course), [], tmp_path / "out", backend, gpus=GpuPool([]))


# ---------------------------------------------------------------------------
# The miniature course in real containers
# ---------------------------------------------------------------------------


def test_mini_course_in_real_containers(graded_course: Path, tmp_path: Path, docker_backend):
    subs = tmp_path / "subs"
    submission(subs, "good", GOOD_OPS)
    submission(subs, "buggy", GOOD_OPS.replace("return x * y", "return x * y + 1"))
    batch = grade_batch(context(graded_course), sorted(subs.iterdir()), tmp_path / "out",
                        docker_backend, jobs=2)  # fmt: skip
    got = {r.submission: r for r in batch.results}
    assert got["good"].score == 10.0 and got["buggy"].score == 4.0
    assert got["good"].sandbox.startswith("docker: ") and "no network" in got["good"].sandbox


def test_real_container_killed_at_the_submission_limit_keeps_finished_tests(
    graded_course: Path, tmp_path: Path, docker_backend
):
    path = slow_mul_submission(graded_course, tmp_path / "subs")
    result = grade.grade_submission(context(graded_course), path, tmp_path / "w", docker_backend)
    assert result.status == "graded", result.reason
    assert any("of the submission's time limit (12 s)" in n for n in result.notices)
    by_status = {t.id: t.status for t in result.tests}
    assert by_status["tests/test_mini.py::test_add"] == "passed"
    assert "did_not_run" in by_status.values()
    assert {t.id: t.points for t in result.tasks}["hw1.1"] == 4.0


def test_the_image_installs_every_manifests_pinned_dependencies(course: Path):
    """A student dependency is added in one place, the manifest; it must be pinned."""
    from grader.backends import image

    (course / "ci").mkdir()
    (course / "ci/constraints.txt").write_text("pytest==9.2.0\nnumpy==2.4.6\n")
    (course / "Dockerfile").write_text("FROM scratch\n")
    (course / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["rich"]\n[project.optional-dependencies]\n'
    )
    (course / "README.md").write_text("x\n")
    (course / "grader").mkdir()
    assert image.student_dependencies(course) == ["pytest>=8"]
    before = image.digest(course)
    manifest = course / "assignments/hw2/assignment.toml"
    manifest.write_text(
        manifest.read_text().replace('dependencies = ["pytest>=8"]', 'dependencies = ["numpy>=2"]')
    )
    assert image.student_dependencies(course) == ["numpy>=2", "pytest>=8"]
    assert image.digest(course) != before  # a new dependency builds a new image
    assert "numpy>=2" in image.requirements(course, [])
    # PyTorch, which an assignment's public tests need, comes from a base image that
    # has it: asking for it again would replace the base's CUDA build.
    (course / "ci/constraints.txt").write_text("pytest==9.2.0\nnumpy==2.4.6\ntorch==2.13.0\n")
    manifest.write_text(manifest.read_text().replace('"numpy>=2"', '"numpy>=2", "torch>=2.4"'))
    (course / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["rich"]\n'
        '[project.optional-dependencies]\ntorch = ["torch==2.13.0"]\n'
    )
    assert "torch>=2.4" in image.requirements(course, ["torch"])
    assert not any(r.startswith("torch") for r in image.requirements(course, []))
    manifest.write_text(manifest.read_text().replace('"numpy>=2", "torch>=2.4"', '"sacrebleu>=2"'))
    with pytest.raises(image.ImageError, match=r"sacrebleu>=2.*ci/constraints\.txt"):
        image.student_dependencies(course)
