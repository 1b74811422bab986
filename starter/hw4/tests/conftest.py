"""Test fixtures for running the public tests on your own machine.

Tests never call your code directly: they hand a *probe* (a small function that
calls your code and returns plain data) to the `student` fixture:

    def probe_mul(x, y):
        from minitorch import operators
        return operators.mul(x, y)

    def test_mul(student):
        assert student.run(probe_mul, 2.0, 3.0) == 6.0

Here, on your machine, `student.run` simply calls the probe in this process.
The course's grader runs the very same tests, but calls each probe in a separate,
sandboxed process; that is why probes import what they use inside their body and
return only plain data (numbers, strings, lists, dicts, NumPy arrays).

Tests marked `gpu` need a CUDA GPU; where there is none they are skipped, and
pytest's summary (`pytest -rs`) says why.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

try:
    import numpy as np
except ImportError:  # pragma: no cover - every assignment installs numpy
    np = None

try:
    import hypothesis
except ImportError:  # an assignment without property-based tests does not install it
    hypothesis = None

if os.environ.get("LLMSYS_NO_SHRINK") == "1" and hypothesis is not None:
    # Set by the course's own checks, which need to know only whether each test
    # passes: Hypothesis then reports the first failing example it finds instead of
    # searching for a smallest one (on a fresh starter that search takes minutes).
    from hypothesis import Phase, settings

    settings.register_profile(
        "llmsys-no-shrink", phases=[Phase.explicit, Phase.reuse, Phase.generate]
    )
    settings.load_profile("llmsys-no-shrink")


def gpu_missing() -> str | None:
    """Why no CUDA GPU can be used here, or None when one can (asks the NVIDIA
    driver directly, so it needs no PyTorch and honours CUDA_VISIBLE_DEVICES)."""
    import ctypes

    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver here (libcuda.so.1 not found)"
    status = driver.cuInit(0)
    if status != 0:
        return f"the NVIDIA driver found no usable GPU (cuInit error {status})"
    count = ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the NVIDIA driver reports no GPU"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_tests = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_tests:
        return
    reason = gpu_missing()
    if reason is not None:
        skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {reason}")
        for item in gpu_tests:
            item.add_marker(skip)


def plain(value: Any) -> Any:
    """The value as the grader would receive it: plain data only, tuples as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if np is not None and isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("probes may not return arrays of Python objects")
        return value.copy()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: plain(item) for key, item in value.items()}
    raise TypeError(
        f"a probe returned a {type(value).__name__}; probes return plain data "
        "(numbers, strings, lists, dicts with string keys, NumPy arrays)"
    )


class InProcess:
    """Runs probes directly, in this process."""

    def run(self, probe: Any, *args: Any) -> Any:
        return plain(probe(*args))

    def call(self, path: str, *args: Any) -> Any:
        module, _, name = path.rpartition(".")
        return plain(getattr(importlib.import_module(module), name)(*args))

    def source(self, path: str) -> str:
        """The text of your file `path` (relative to the repository's root)."""
        return (Path(__file__).resolve().parents[1] / path).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def student() -> InProcess:
    """Your code, called through probes."""
    return InProcess()
