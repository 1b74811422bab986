"""Timing a student's code against the reference, with the harness's clock.

A timed probe has the signature `probe(seed, size, reps, keep)`: it makes fresh
inputs from `seed + i` for each of `reps` repetitions, runs the call under test
on them, and returns `{"sums": [float(output.sum()) per repetition],
"kept": <the full output of repetition keep>}` (a repetition's entry may be a list
of a few sums, each compared on its own). One probe call is one sample.

Rules, and what each defends against:
- the clock is the harness's (`time.perf_counter` around the whole round trip),
  never a value the worker reports: a patched timer in the student's process
  changes nothing;
- inputs are fresh per repetition and derived from a seed sent with the request,
  so nothing can be computed ahead or cached across calls;
- every sample's outputs are checked against the reference's on the same
  inputs (all sums, and the full output of a repetition the harness picks at
  random), so skipping work or returning stale results fails the test;
- the first call of each side is a warm-up (JIT compilation, caches), untimed;
- repetitions double until the reference's sample is long enough to be far above
  timer and IPC noise; the student runs the same repetitions;
- student and reference samples alternate (A B A B), so drifts of the machine hit
  both; the ratio is median(student) / median(reference), per size, and sizes
  combine by geometric mean;
- a check that loses credit is measured again (`MAX_ROUNDS`) and its best round
  counts, so a neighbour's burst of work cannot cost points by itself; a round that
  would not end within the test's time limit is not started, and a size's sampling
  stops early when it is far beyond zero credit (`FAR_SAMPLES`), so a slow
  submission gets zero credit, not a time-out;
- while the reference runs, every process of the student's code is stopped
  (`pause`, the student worker's `paused`): helpers that student code leaves
  spinning to slow the reference's samples down get no CPU then.
Limits: student code runs in the same process as the probe, so a student who
rewrites the worker's protocol could in principle defer work; the output checks
make that a deliberate attack, not an accident.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from grader.manifest import TimingCheck
from grader.scoring import timing_credit

MAX_REPS = 4096
#: A check that loses credit is measured again, up to this many rounds in all, and
#: its best round counts: a busy host only ever makes one side look slower, so a
#: false penalty needs every round to be unlucky, while a slow kernel is slow in
#: each (a ratio of `FAR` times the zero-credit ratio or more is not measured again).
MAX_ROUNDS = 3
#: "Far beyond zero credit": a ratio of this many times the zero-credit ratio. No
#: burst of a neighbour's work makes correct code look that slow in every sample.
FAR = 1.5
#: A size's sampling stops once this many samples in a row are each far beyond zero
#: credit: then the median is too (it is their mean with two samples), and
#: a slow submission does not spend minutes of the test's time limit on samples that
#: cannot change its credit. One sample is not enough: a neighbour's burst of work
#: can slow a single sample that much.
FAR_SAMPLES = 2
#: Another round is started only while the test's time left exceeds this many times
#: the last round's duration.
ROUND_MARGIN = 1.5


class ProbeRunner(Protocol):
    def run(self, probe: Callable[..., Any], *args: Any) -> Any: ...


class TimingMismatch(AssertionError):
    """The student's timed outputs differ from the reference's."""


@dataclass(frozen=True)
class TimingResult:
    ratio: float
    credit: float
    per_size: dict[int, float]  #: size -> median ratio (of the round kept)
    reps: dict[int, int]
    rounds: int = 1  #: rounds of samples taken (see MAX_ROUNDS)


def compare(
    student: ProbeRunner,
    reference: ProbeRunner,
    probe: Callable[..., Any],
    check: TimingCheck,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    seed: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    pause: Callable[[], AbstractContextManager[Any]] = nullcontext,
    time_left: Callable[[], float] | None = None,
) -> TimingResult:
    """Time `probe` on both sides for every size of `check`; see the module docstring.

    `pause()`: a context in which nothing of the student's code runs, entered
    around every call to the reference. `time_left()`: seconds left of the test's
    time limit; a round that would not end within it is not started (the rounds
    already measured count), so a slow submission gets its credit, not a time-out."""
    rng = random.Random(seed if seed is not None else random.SystemRandom().randrange(2**31))

    def sample(
        runner: ProbeRunner, base: int, size: int, reps: int, keep: int
    ) -> tuple[float, Any]:
        with pause() if runner is reference else nullcontext():
            start = clock()
            value = runner.run(probe, base, size, reps, keep)
            return clock() - start, value

    reps_used: dict[int, int] = {}
    for size in check.sizes:
        base = rng.randrange(2**30)
        _, ref_value = sample(reference, base, size, 1, 0)
        _, stu_value = sample(student, base, size, 1, 0)
        _check(stu_value, ref_value, 1, rtol, atol)
        reps = 1
        while True:
            elapsed, _ = sample(reference, rng.randrange(2**30), size, reps, 0)
            if elapsed >= check.min_sample_s or reps >= MAX_REPS:
                break
            reps = min(reps * max(2, math.ceil(check.min_sample_s / max(elapsed, 1e-6))), MAX_REPS)
        reps_used[size] = reps

    def measure() -> dict[int, float]:
        per_size: dict[int, float] = {}
        for size, reps in reps_used.items():
            student_times, reference_times = [], []
            beyond = 0  # samples in a row far beyond zero credit
            for _ in range(check.samples):
                base, keep = rng.randrange(2**30), rng.randrange(reps)
                s_time, s_value = sample(student, base, size, reps, keep)
                r_time, r_value = sample(reference, base, size, reps, keep)
                _check(s_value, r_value, reps, rtol, atol)
                student_times.append(s_time)
                reference_times.append(r_time)
                far = s_time > r_time * check.zero_credit_ratio * FAR
                beyond = beyond + 1 if far else 0
                if beyond == FAR_SAMPLES:
                    break  # far beyond zero credit, twice running: more samples change nothing
            per_size[size] = statistics.median(student_times) / statistics.median(reference_times)
        return per_size

    rounds, started = 1, clock()
    best = measure()
    took = clock() - started
    while True:
        ratio = _combined(best)
        credit = timing_credit(ratio, check.full_credit_ratio, check.zero_credit_ratio)
        if credit >= 1.0 or ratio >= FAR * check.zero_credit_ratio or rounds == MAX_ROUNDS:
            break  # full credit, far too slow for noise to matter, or measured enough
        if time_left is not None and time_left() < took * ROUND_MARGIN:
            break  # another round would not end within the test's time limit
        started = clock()
        best = min(best, measure(), key=_combined)  # the earlier one on a tie
        took, rounds = clock() - started, rounds + 1
    return TimingResult(ratio, credit, best, reps_used, rounds)


def _combined(per_size: dict[int, float]) -> float:
    """The sizes' ratios combined: their geometric mean."""
    return math.exp(statistics.fmean(math.log(r) for r in per_size.values()))


def _check(student: Any, reference: Any, reps: int, rtol: float, atol: float) -> None:
    if not isinstance(student, dict) or set(student) != {"sums", "kept"}:
        raise TimingMismatch("the timed call did not return the expected outputs")
    sums = student["sums"]
    if not isinstance(sums, list) or len(sums) != reps:
        raise TimingMismatch(f"expected {reps} outputs from the timed calls, got another count")
    try:
        close_sums = np.allclose(
            np.asarray(sums, dtype=float),
            np.asarray(reference["sums"], dtype=float),
            rtol=rtol,
            atol=atol,
        )
        kept, expected = np.asarray(student["kept"], dtype=float), np.asarray(reference["kept"])
        close_kept = kept.shape == expected.shape and np.allclose(
            kept, expected, rtol=rtol, atol=atol
        )
    except (TypeError, ValueError):
        raise TimingMismatch("the timed call returned outputs of the wrong kind") from None
    if not (close_sums and close_kept):
        raise TimingMismatch(
            "the outputs of the timed calls are wrong (fresh inputs are used "
            "for every call, so results cannot be cached)"
        )


class TimingFixture:
    """The `timing` fixture of a timing test: `timing.compare(probe)` times the probe
    on both sides (`compare`) and records the ratio and credit on the test."""

    def __init__(self, student: Any, reference: Any, item: Any, check: TimingCheck) -> None:
        self.student = student
        self.reference = reference
        self.item = item
        self.check = check

    def compare(
        self, probe: Callable[..., Any], rtol: float = 1e-4, atol: float = 1e-6
    ) -> TimingResult:
        result = compare(
            self.student,
            self.reference,
            probe,
            self.check,
            rtol,
            atol,
            pause=self.student.worker.paused,
            time_left=lambda: min(self.student.left(), self.reference.left()),
        )
        self.item.user_properties.append(("timing_ratio", round(result.ratio, 4)))
        self.item.user_properties.append(("timing_credit", round(result.credit, 4)))
        self.item.user_properties.append(("timing_rounds", result.rounds))
        return result
