"""hw4's kernel tests where there is no GPU: their tolerances, and the examples' counts.

hw4.1-hw4.4's public and hidden tests (not the timing checks) run here against a
float32 NumPy emulation of the reference kernels' algorithms (the masked softmax
with the row's maximum subtracted; LayerNorm's one-pass sums about a pivot; the
gradients' sums), standing in for the probe's launch:

- the reference's algorithm passes every test: the tolerances leave room for
  float32 arithmetic;
- each example of examples/expected.toml whose bug gives wrong numbers every run
  (not a race) fails exactly as many of these tests as its `failing` says, less
  the timing checks it fails (each one's `why` says which). These counts are
  what its expected score is derived from on a machine without a GPU;
- the timing checks' probes run on host arrays with the same emulation, and each
  example fails the comparison of timed outputs in exactly the checks EXAMPLES
  counts; a kernel that skips repetitions fails every check.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pytest

from grader import timing
from grader.manifest import Course, tomllib
from tests.conftest import REPO

HW4 = REPO / "assignments" / "hw4"
EXPECTED = tomllib.loads((REPO / "examples" / "expected.toml").read_text())["hw4"]
F = np.float32

#: Example -> (the emulated bug, the timing checks it fails).
EXAMPLES = {
    "reference": ("", 0),
    "softmax-max-not-subtracted": ("max-not-subtracted", 0),
    "softmax-causal-off-by-one": ("causal-off-by-one", 1),
    "softmax-padding-mask-ignored": ("padding-ignored", 0),
    "layernorm-float4-past-row-end": ("float4-past-row-end", 0),
    "layernorm-unbiased-variance": ("unbiased-variance", 0),
    "layernorm-dgamma-not-reduced": ("dgamma-not-reduced", 1),
}


class Wrong(AssertionError):
    """The emulated kernel's output is wrong in a way not worth computing."""


def softmax(bug: str, a: dict[str, Any], s: dict[str, Any]) -> dict[str, np.ndarray]:
    shape = (s["batch"], s["heads"], s["queries"], s["keys"])
    x = np.asarray(a["scores"], F).reshape(shape)
    masked = np.zeros(shape, bool)
    if s["causal"]:
        masked |= np.triu(np.ones(shape[2:], bool), 0 if bug == "causal-off-by-one" else 1)
    if a["key_padding"] is not None and bug != "padding-ignored":
        masked |= (np.asarray(a["key_padding"]) != 0)[:, None, None, :]
    v = np.where(masked, F(-np.inf), x)
    row_max = v.max(-1, keepdims=True)
    with np.errstate(all="ignore"):
        e = np.exp(v - (F(0) if bug == "max-not-subtracted" else row_max)).astype(F)
        out = e * (F(1) / e.sum(-1, keepdims=True, dtype=F))
    return {"out": np.where(np.isneginf(row_max), F(0), out).ravel().astype(float)}


def softmax_backward(bug: str, a: dict[str, Any], s: dict[str, Any]) -> dict[str, np.ndarray]:
    g, y = np.asarray(a["grad_out"], F), np.asarray(a["out"], F)
    dot = (g * y).sum(-1, keepdims=True, dtype=F)
    return {"grad_in": (y * (g - dot)).ravel().astype(float)}


def layernorm(bug: str, a: dict[str, Any], s: dict[str, Any]) -> dict[str, np.ndarray]:
    rows, width = s["rows"], s["width"]
    if bug == "float4-past-row-end" and width % 4:
        raise Wrong("row 0 reads the next row's numbers into its statistics")
    x = np.asarray(a["x"], F).reshape(rows, width)
    gamma, beta = np.asarray(a["gamma"], F), np.asarray(a["beta"], F)
    d = (x - x[:, :1]).astype(F)
    s1, s2 = d.sum(1, keepdims=True, dtype=F), (d * d).sum(1, keepdims=True, dtype=F)
    shift = s1 / F(width)
    with np.errstate(all="ignore"):
        if bug == "unbiased-variance":
            variance = np.nan_to_num((s2 - F(width) * shift * shift) / F(width - 1), nan=0.0)
        else:
            variance = s2 / F(width) - shift * shift
    rstd = (F(1) / np.sqrt(np.maximum(variance, F(0)) + F(s["eps"]))).astype(F)
    out = ((d - shift) * rstd * gamma + beta).astype(F)
    mean = (x[:, :1] + shift).ravel()
    return {"out": out.ravel().astype(float), "mean": mean.astype(float), "inv_std": rstd.ravel()}


def layernorm_backward(bug: str, a: dict[str, Any], s: dict[str, Any]) -> dict[str, np.ndarray]:
    rows, width = s["rows"], s["width"]
    if bug == "dgamma-not-reduced" and rows > 32:  # more blocks (parts) than PARAM_ROWS
        raise Wrong("the blocks' sums past the first 32 never reach grad_gamma and grad_beta")
    x = np.asarray(a["x"], F).reshape(rows, width)
    dy = np.asarray(a["grad_out"], F).reshape(rows, width)
    gamma = np.asarray(a["gamma"], F)
    mean, rstd = np.asarray(a["mean"], F)[:, None], np.asarray(a["inv_std"], F)[:, None]
    xhat, h = ((x - mean) * rstd).astype(F), (dy * gamma).astype(F)
    m1 = h.sum(1, keepdims=True, dtype=F) / F(width)
    m2 = (h * xhat).sum(1, keepdims=True, dtype=F) / F(width)
    return {
        "grad_in": (rstd * (h - m1 - xhat * m2)).ravel().astype(float),
        "grad_gamma": (dy * xhat).sum(0, dtype=F).astype(float),
        "grad_beta": dy.sum(0, dtype=F).astype(float),
    }


KERNELS: dict[str, Callable[..., dict[str, np.ndarray]]] = {
    "softmax": softmax,
    "softmax_backward": softmax_backward,
    "layernorm": layernorm,
    "layernorm_backward": layernorm_backward,
}


class Emulated:
    """A `student` fixture whose probe launches are the emulation above."""

    def __init__(self, bug: str) -> None:
        self.bug = bug

    def run(self, probe: Any, kind: str, arrays: dict[str, Any], sizes: dict[str, Any]) -> Any:
        return KERNELS[kind](self.bug, arrays, sizes)


def hw4_modules(*names: str) -> list[Any]:
    """hw4's test modules (public and hidden), imported as pytest would find them."""
    sys.path[:0] = [str(HW4 / "tests"), str(HW4 / "hidden")]
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        del sys.path[:2]


@pytest.fixture(scope="module")
def kernel_tests() -> list[tuple[str, Callable[..., None], dict[str, Any]]]:
    """(name, function, arguments) of every kernel test of hw4, public and hidden,
    without the timing checks and hw4.5's (which take other probes)."""
    public, hidden = hw4_modules("test_fused_kernels", "test_fused_hidden")
    found = []
    for module in (public, hidden):
        for name, test in inspect.getmembers(module, inspect.isfunction):
            params = inspect.signature(test).parameters
            if not name.startswith("test_") or test.__module__ != module.__name__:
                continue
            if "timing" in params or "reference" in params:
                continue
            cases: list[dict[str, Any]] = [{}]
            for mark in getattr(test, "pytestmark", []):
                if mark.name == "parametrize":
                    names, values = mark.args
                    names = names.split(",") if isinstance(names, str) else names
                    names = [n.strip() for n in names]
                    cases = [
                        dict(zip(names, v if len(names) > 1 else (v,), strict=True)) for v in values
                    ]
            found += [(f"{module.__name__}::{name}{case or ''}", test, case) for case in cases]
    return found


def failures(tests: list[tuple[str, Callable[..., None], dict[str, Any]]], bug: str) -> list[str]:
    student, failed = Emulated(bug), []
    for name, test, case in tests:
        try:
            test(student, **case)
        except AssertionError:
            failed.append(name)
    return failed


def test_every_kernel_test_is_emulated(kernel_tests):
    # hw4.1-hw4.4: 42 public tests and 37 hidden ones (the timing checks aside).
    assert len(kernel_tests) == 79


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_examples_fail_their_counted_tests(kernel_tests, example):
    bug, timing_failures = EXAMPLES[example]
    failed = failures(kernel_tests, bug)
    assert len(failed) + timing_failures == EXPECTED[example]["failing"], failed


class FakeArray:
    """minitorch.cuda_runtime.DeviceArray on the host, for the timing probes."""

    def __init__(self, size: int) -> None:
        self.a = np.zeros(size, F)

    def fill_uniform(self, seed: int, low: float = -1.0, high: float = 1.0) -> None:
        self.a[:] = np.random.default_rng(seed).uniform(low, high, self.a.size)

    def sum(self) -> float:
        return float(self.a.sum(dtype=np.float64))

    def to_numpy(self) -> np.ndarray:
        return self.a.copy()


def fake_runtime(bug: str) -> Any:
    """minitorch.fused_runtime's launchers, as the timing probes call them, on the
    emulation of the kernels with `bug`."""

    def attn_softmax_forward(out, scores, pad, batch, heads, queries, keys, causal):
        sizes = {"batch": batch, "heads": heads, "queries": queries, "keys": keys}
        arrays = {"scores": scores.a, "key_padding": None if pad is None else pad.a}
        out.a[:] = softmax(bug, arrays, {**sizes, "causal": causal})["out"]

    def attn_softmax_backward(grad_in, grad_out, out, rows, size):
        arrays = {"grad_out": grad_out.a.reshape(rows, size), "out": out.a.reshape(rows, size)}
        grad_in.a[:] = softmax_backward(bug, arrays, {})["grad_in"]

    def layernorm_forward(out, mean, inv_std, x, gamma, beta, rows, size, eps):
        arrays = {"x": x.a, "gamma": gamma.a, "beta": beta.a}
        got = layernorm(bug, arrays, {"rows": rows, "width": size, "eps": eps})
        out.a[:], mean.a[:], inv_std.a[:] = got["out"], got["mean"], got["inv_std"]

    def layernorm_backward_launch(grad_in, grad_gamma, grad_beta, grad_out, x, gamma, mean,
                                  inv_std, rows, size):  # fmt: skip
        arrays = {"x": x.a, "grad_out": grad_out.a, "gamma": gamma.a}
        arrays |= {"mean": mean.a, "inv_std": inv_std.a}
        got = layernorm_backward(bug, arrays, {"rows": rows, "width": size})
        grad_in.a[:], grad_gamma.a[:] = got["grad_in"], got["grad_gamma"]
        grad_beta.a[:] = got["grad_beta"]

    return types.SimpleNamespace(
        attn_softmax_forward=attn_softmax_forward,
        attn_softmax_backward=attn_softmax_backward,
        layernorm_forward=layernorm_forward,
        layernorm_backward=layernorm_backward_launch,
    )


def record(calls: list[Any], probe: Any, **tolerances: float) -> None:
    calls.append((probe, tolerances))


def computing_once(runtime: Any) -> Any:
    """`runtime` whose launchers run only on the first call: later outputs are stale."""
    calls = [0]

    def wrap(launch: Callable[..., None]) -> Callable[..., None]:
        def once(*args: Any) -> None:
            calls[0] += 1
            if calls[0] == 1:
                launch(*args)

        return once

    return types.SimpleNamespace(**{name: wrap(f) for name, f in vars(runtime).items()})


#: Timed inputs by size: at these seeds (FakeArray's numbers) a single signed total
#: of the timed LayerNorm's outputs, means and inverse deviations with beta in
#: [-1, 1) came within 1.5 of 0, where its relative tolerance allows nothing.
TIMING_SEEDS = {1024: 10497, 4096: 556}


def timed(runtime: Any, probe: Callable[..., Any], size: int, seed: int | None = None) -> Any:
    """`probe`'s outputs for two repetitions at `size` (the second one kept) from
    `seed` (default: TIMING_SEEDS'), with minitorch's fused_runtime and DeviceArray
    replaced by `runtime` and FakeArray."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "minitorch", types.SimpleNamespace(fused_runtime=runtime))
        mp.setitem(sys.modules, "minitorch.fused_runtime", runtime)
        mp.setitem(sys.modules, "minitorch.cuda_runtime", types.SimpleNamespace(
            DeviceArray=FakeArray))  # fmt: skip
        return probe(TIMING_SEEDS.get(size, 11) if seed is None else seed, size, 2, 1)


@dataclass(frozen=True)
class TimedCheck:
    check: str
    probe: Callable[..., Any]
    tolerances: dict[str, float]  #: what its test compares the timed outputs with
    reference: dict[int, Any]  #: size -> the reference's outputs (`timed`)


@pytest.fixture(scope="module")
def timed_checks() -> list[TimedCheck]:
    """hw4's timing checks, each with the reference's timed outputs at its sizes."""
    (hidden,) = hw4_modules("test_fused_hidden")
    sizes = {c.id: c.sizes for c in Course.load(REPO).get("hw4").timing}
    found = []
    for _, test in inspect.getmembers(hidden, inspect.isfunction):
        marks = {m.name: m.args for m in getattr(test, "pytestmark", [])}
        if "timing" in marks:
            calls: list[tuple[Any, dict[str, float]]] = []
            test(types.SimpleNamespace(compare=partial(record, calls)))
            ((probe, tol),) = calls
            check = marks["timing"][0]
            reference = {size: timed(fake_runtime(""), probe, size) for size in sizes[check]}
            found.append(TimedCheck(check, probe, tol, reference))
    return found


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_examples_fail_their_counted_timing_checks(timed_checks, example):
    """The timing checks compare every timed output with the reference's (their own
    tolerances, the probes' own inputs): the ones an example fails there are the
    ones its `why` and EXAMPLES count (hw4's timed LayerNorm keeps out's, mean's and
    inv_std's sums apart: in one signed total about 0, the unbiased variance's error,
    far below the tolerance, failed some repetitions at random)."""
    bug, failing = EXAMPLES[example]
    failed = []
    for t in timed_checks:
        for size, expected in t.reference.items():
            try:
                timing._check(timed(fake_runtime(bug), t.probe, size), expected, 2, **t.tolerances)
            except (Wrong, timing.TimingMismatch):
                failed.append(f"{t.check}[{size}]")
                break
    assert len(failed) == failing, failed


def test_timed_sums_stay_where_the_relative_tolerance_governs(timed_checks):
    """Each repetition's sums of every timing check, at 8 seeds, are at least 10
    times the absolute tolerance over the relative one away from 0: a sum that can
    land near 0 is checked by the absolute tolerance alone, which lets a wrong
    kernel through at some seeds and not at others (the softmax gradient's rows of
    out summing to 1 made each row's gradient sum about 0; LayerNorm's signed
    totals came within 1.5 of 0)."""
    for t in timed_checks:
        size = min(t.reference)
        for seed in range(8):
            sums = np.abs(np.asarray(timed(fake_runtime(""), t.probe, size, seed)["sums"], float))
            assert sums.min() * t.tolerances["rtol"] >= 10 * t.tolerances["atol"], (t.check, seed)


def test_a_timing_check_fails_outputs_that_are_not_recomputed(timed_checks):
    """The control: a kernel that computes only the first repetition fails each
    check through the output of the repetition the harness keeps (chosen at random,
    here the second), and all but the softmax's also through the sums of every
    repetition. The softmax's sums cannot tell (each row of probabilities sums to
    1): for it, the kept repetition is the check."""
    by_sums = []
    for t in timed_checks:
        size, fresh = next(iter(t.reference.items()))
        stale = timed(computing_once(fake_runtime("")), t.probe, size)
        with pytest.raises(timing.TimingMismatch):
            timing._check(stale, fresh, 2, **t.tolerances)
        with contextlib.suppress(timing.TimingMismatch):
            timing._check({**stale, "kept": fresh["kept"]}, fresh, 2, **t.tolerances)
            continue
        by_sums.append(t.check)
    assert sorted(by_sums) == [
        "fused-layernorm",
        "fused-layernorm-backward",
        "fused-softmax-backward",
    ]


def header_constants() -> dict[str, int]:
    """The numeric macros of kernels/fused.cuh, which the launchers use."""
    text = (REPO / "kernels" / "fused.cuh").read_text()
    return {name: int(value) for name, value in re.findall(r"#define (\w+) (\d+)", text)}


def test_the_launch_shape_mirror_matches_the_header():
    """minitorch.fused_runtime restates fused.cuh's launch constants for Python."""
    source = (REPO / "solutions" / "minitorch" / "fused_runtime.py").read_text()
    mirrored = {name: int(v) for name, v in re.findall(r"^([A-Z_]+) = (\d+)$", source, re.M)}
    header = header_constants()
    assert mirrored and all(header[name] == value for name, value in mirrored.items()), mirrored


def test_every_block_size_table_reaches_each_launch_shape():
    """The tests' tables of rows "of every block size" (fused_cases.BLOCK_SIZES for
    the softmax gradient, LAYERNORM_WIDTHS for LayerNorm) against fused_launch.cu's
    rule: each group's rows get one block size, and together they reach every block
    size, with one item a thread and with the most items a thread. The softmax
    forward's table (SOFTMAX_SHAPES) takes the shortest and the longest row of
    each warp-per-row kernel (1, 2, 4, ... SOFTMAX_WARP_COLS / 32 keys a lane),
    and every block size of the longer rows."""
    c = header_constants()
    fused_cases, test_fused_kernels = hw4_modules("fused_cases", "test_fused_kernels")

    def shape(items: int, per_thread: int) -> tuple[int, int]:
        threads = c["ROW_MIN_THREADS"]
        while threads < c["ROW_THREADS"] and threads * per_thread < items:
            threads *= 2
        return threads, -(-items // threads)  # (threads, items of the busiest thread)

    def reached(groups: dict[str, tuple[int, ...]], items: Callable[[int], int], per: int):
        blocks = {}
        for label, rows in groups.items():
            threads = {shape(items(n), per)[0] for n in rows}
            assert len(threads) == 1, (label, rows, threads)
            blocks[label] = threads.pop()
        loads = {shape(items(n), per)[1] for rows in groups.values() for n in rows}
        return set(blocks.values()), loads

    every = {c["ROW_MIN_THREADS"] << k for k in range(5)}
    assert every == {64, 128, 256, 512, 1024}
    blocks, loads = reached(fused_cases.BLOCK_SIZES, lambda n: n, c["SOFTMAX_ITEMS_PER_THREAD"])
    assert blocks == every and {1, c["SOFTMAX_ITEMS_PER_THREAD"]} <= loads
    assert max(max(rows) for rows in fused_cases.BLOCK_SIZES.values()) == c["SOFTMAX_MAX_COLS"]
    warp_cols = c["SOFTMAX_WARP_COLS"]
    warp = {k: rows for k, rows in fused_cases.SOFTMAX_SHAPES.items() if min(rows) <= warp_cols}
    assert all(max(rows) <= warp_cols for rows in warp.values()), warp
    kernels: dict[int, set[int]] = {}  # keys a lane of the kernel -> rows it gets
    for n in (n for rows in warp.values() for n in rows):
        kernels.setdefault(1 << (-(-n // 32) - 1).bit_length(), set()).add(n)
    assert sorted(kernels) == [1 << k for k in range((warp_cols // 32).bit_length())]
    assert all({16 * k + 1 if k > 1 else 1, 32 * k} <= rows for k, rows in kernels.items()), kernels
    launcher = (REPO / "kernels" / "fused_launch.cu").read_text()
    picks = re.findall(r"cols <= (\d+)\s*\? \(const void\*\)attnSoftmaxWarpKernel<(\d+)>", launcher)
    assert picks and all(int(n) == 32 * int(k) for n, k in picks), picks  # the same rule
    assert [int(k) for _, k in picks] == sorted(kernels)[:-1], picks
    assert f": (const void*)attnSoftmaxWarpKernel<{warp_cols // 32}>" in launcher
    longer = {k: v for k, v in fused_cases.SOFTMAX_SHAPES.items() if k not in warp}
    blocks, loads = reached(longer, lambda n: n, c["SOFTMAX_ITEMS_PER_THREAD"])
    assert blocks == {n for n in every if n * c["SOFTMAX_ITEMS_PER_THREAD"] > warp_cols}
    assert c["SOFTMAX_ITEMS_PER_THREAD"] in loads
    assert max(max(rows) for rows in longer.values()) == c["SOFTMAX_MAX_COLS"]
    ln_items = lambda w: w // 4 if w % 4 == 0 else w  # noqa: E731  (float4 items)
    per = c["LAYERNORM_ITEMS_PER_THREAD"]
    blocks, loads = reached(test_fused_kernels.LAYERNORM_WIDTHS, ln_items, per)
    assert blocks == every and {1, per} <= loads and max(loads) > per  # and longer rows
    widest = max(max(rows) for rows in test_fused_kernels.LAYERNORM_WIDTHS.values())
    assert widest == c["LAYERNORM_MAX_WIDTH"]
    # The gradient: block sizes by its own rule, and each copy of the kernel
    # (items a thread, rounded up to a power of 2) for float4s and for numbers.
    groups = test_fused_kernels.LAYERNORM_BACKWARD_WIDTHS
    per = c["LAYERNORM_BACKWARD_ITEMS_PER_THREAD"]
    blocks, _ = reached(groups, ln_items, per)
    assert blocks == every
    copies = set()
    for width in (w for rows in groups.values() for w in rows):
        load = shape(ln_items(width), per)[1]
        copies.add((width % 4 == 0, 1 << (load - 1).bit_length()))
    assert copies == {(True, 1), (True, 2), (False, 1), (False, 2), (False, 4), (False, 8)}
    assert max(w for rows in groups.values() for w in rows) == c["LAYERNORM_MAX_WIDTH"]
    launcher = (REPO / "kernels" / "fused_launch.cu").read_text()
    compiled = set(
        re.findall(
            r"BACKWARD_KERNEL\((float4?), (\d+)\)", (REPO / "kernels" / "fused.cu").read_text()
        )
    )
    assert compiled == {("float4" if v else "float", str(k)) for v, k in copies}
    picked = set(re.findall(r"layerNormBackwardKernel<(float4?), (\d+)>", launcher))
    assert picked == compiled
