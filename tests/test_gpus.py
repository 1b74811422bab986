"""The GPU pool: each running submission gets its own GPUs, unless sharing is asked."""

from __future__ import annotations

import threading
import time

import pytest

from grader.context import render_context
from grader.gpus import GpuPool, GpuRequestError, detect, parse_devices


def test_no_gpu_needed_takes_nothing():
    with GpuPool([]).take(0) as devices:
        assert devices == ()


def test_each_submission_gets_its_own_gpus_until_all_are_taken():
    pool = GpuPool(["0", "1", "2", "3"])
    with pool.take(2) as first, pool.take(1) as second, pool.take(1) as third:
        assert len(set(first) | set(second) | set(third)) == 4
        assert pool.in_use() == {"0": 1, "1": 1, "2": 1, "3": 1}
    assert pool.in_use() == {"0": 0, "1": 0, "2": 0, "3": 0}


def test_a_request_waits_for_a_free_gpu_and_never_shares_one():
    pool = GpuPool(["0", "1"])
    holders: list[tuple[str, ...]] = []
    most = 0
    lock = threading.Lock()
    running: dict[str, int] = {"0": 0, "1": 0}

    def job() -> None:
        nonlocal most
        with pool.take(1) as devices:
            with lock:
                holders.append(devices)
                running[devices[0]] += 1
                most = max(most, *running.values())
            time.sleep(0.02)
            with lock:
                running[devices[0]] -= 1

    threads = [threading.Thread(target=job) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(holders) == 8
    assert most == 1, "a GPU served two submissions at once"


def test_sharing_is_only_when_asked():
    pool = GpuPool(["0"], share=2)
    with pool.take(1) as a, pool.take(1) as b:
        assert a == b == ("0",)
    blocked = GpuPool(["0"])
    with blocked.take(1):
        waiter = threading.Thread(target=lambda: blocked.take(1).__enter__())
        waiter.daemon = True
        waiter.start()
        waiter.join(timeout=0.2)
        assert waiter.is_alive(), "a second submission got the only GPU"


def test_the_gpu_is_given_back_when_grading_fails():
    pool = GpuPool(["0"])
    with pytest.raises(RuntimeError), pool.take(1):
        raise RuntimeError("grading crashed")
    assert pool.in_use() == {"0": 0}


def test_impossible_requests_fail_at_once():
    with pytest.raises(GpuRequestError, match="needs 2 GPU"):
        GpuPool(["0"]).check(2)
    with pytest.raises(GpuRequestError, match="GPUs to use are: none"):
        GpuPool([]).check(1)
    with pytest.raises(GpuRequestError, match="listed twice"):
        GpuPool(["0", "0"])
    with pytest.raises(GpuRequestError, match="at least 1"):
        GpuPool(["0"], share=0)


def test_parse_devices():
    assert parse_devices("0, 1,3") == ["0", "1", "3"]
    assert parse_devices("GPU-5d2c") == ["GPU-5d2c"]
    assert parse_devices("") == []
    with pytest.raises(GpuRequestError, match="not 'cuda:0'"):
        parse_devices("cuda:0")


def test_detect_follows_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert detect() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect() == []


ENV_TEST = """\
import pytest


def probe_visible():
    import os

    return os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.task("hw1.1")
def test_sees_only_its_gpu(student):
    assert student.run(probe_visible) == "3"
"""


def test_workers_see_only_the_gpus_their_submission_was_given(graded_course, tmp_path):
    """Without this, every worker of a batch on a GPU host used the first GPU: two
    submissions graded at once timed each other's kernels."""
    from grader import grade
    from grader.backends.local import LocalBackend
    from grader.manifest import Course
    from tests.conftest import GOOD_OPS, submission, write

    write(graded_course / "assignments/hw1/tests/test_env.py", ENV_TEST)
    course = Course.load(graded_course)
    ctx = render_context(course, course.get("hw1"))
    path = submission(tmp_path / "subs", "ann", GOOD_OPS)
    result = grade.grade_submission(ctx, path, tmp_path / "work", LocalBackend(), gpus=("3",))
    test = next(t for t in result.tests if t.id.endswith("::test_sees_only_its_gpu"))
    assert test.status == "passed", test.output
