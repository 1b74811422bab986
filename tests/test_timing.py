"""Timing checks: the ratio, the credit curve, and the defences against cheating.

Runners here run probes in-process and advance a fake clock by a cost per
repetition, so the figures are exact and the tests take no real time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader import timing
from grader.manifest import TimingCheck

CHECK = TimingCheck(
    id="sq",
    task="hw1.1",
    sizes=(8, 32),
    points=2.0,
    full_credit_ratio=1.5,
    zero_credit_ratio=4.5,
    samples=5,
    min_sample_s=0.05,
)


def probe_square(seed, size, reps, keep):
    import numpy as np

    sums, kept = [], None
    for i in range(reps):
        x = np.random.default_rng(seed + i).standard_normal(size)
        out = x * x
        sums.append(float(out.sum()))
        if i == keep:
            kept = out
    return {"sums": sums, "kept": kept}


class Clock:
    def __init__(self):
        self.now = 0.0
        self.log = []  # (side, seed, reps) of every call, in order

    def __call__(self):
        return self.now


class Runner:
    """Runs the probe in-process; each repetition costs `cost` seconds of fake time."""

    def __init__(self, clock, cost, transform=None):
        self.clock, self.cost, self.transform = clock, cost, transform
        self.calls = []

    def run(self, probe, seed, size, reps, keep):
        self.calls.append((seed, size, reps, keep))
        self.clock.log.append((self.side, seed, reps))
        self.clock.now += self.cost * reps
        value = probe(seed, size, reps, keep)
        return self.transform(value, seed) if self.transform else value


def runners(clock, student_cost, reference_cost=0.001, transform=None):
    """The student's runner ("S") and the reference's ("R"), on one fake clock."""
    student = Runner(clock, student_cost, transform)
    reference = Runner(clock, reference_cost)
    student.side, reference.side = "S", "R"
    return student, reference


def compare(student_cost, reference_cost=0.001, transform=None):
    clock = Clock()
    student, reference = runners(clock, student_cost, reference_cost, transform)
    result = timing.compare(student, reference, probe_square, CHECK, seed=7, clock=clock)
    return result, student, reference


def compare_with_sample_costs(sample_cost):
    """`compare` at equal speed, except that from the student's n-th timed sample on
    (n counts from 1; 0 before the first), a repetition costs `sample_cost(n)` seconds.

    Returns the result and how many timed student samples were taken."""
    clock = Clock()
    student, reference = runners(clock, 0.001)
    timed = []
    run = student.run

    def costed(probe, seed, size, reps, keep):
        if reps > 1:
            timed.append(reps)
        student.cost = sample_cost(len(timed))
        return run(probe, seed, size, reps, keep)

    student.run = costed
    result = timing.compare(student, reference, probe_square, CHECK, seed=7, clock=clock)
    return result, len(timed)


def test_equal_speed_gets_full_credit():
    result, _student, _reference = compare(0.001)
    assert result.ratio == pytest.approx(1.0) and result.credit == 1.0
    # Repetitions doubled until the reference's sample reached min_sample_s.
    assert result.reps == {8: 50, 32: 50}


@pytest.mark.parametrize(
    ("cost", "credit"), [(0.0015, 1.0), (0.003, 0.5), (0.0045, 0.0), (0.1, 0.0)]
)
def test_credit_follows_the_curve(cost, credit):
    result, _, _ = compare(cost)
    assert result.ratio == pytest.approx(cost / 0.001)
    assert result.credit == pytest.approx(credit)


def test_samples_alternate_and_use_fresh_inputs():
    _, student, _reference = compare(0.001)
    seeds = [call[0] for call in student.calls]
    assert len(set(seeds)) == len(seeds), "every student call gets a fresh seed"
    log = student.clock.log
    samples = [i for i, (side, _, reps) in enumerate(log) if side == "S" and reps > 1]
    assert len(samples) == 2 * CHECK.samples
    for i in samples:  # each student sample is followed by the reference on the same inputs
        assert log[i + 1][0] == "R" and log[i + 1][1:] == log[i][1:]


def test_cached_outputs_fail():
    first = {}

    def cache(value, seed):
        return first.setdefault(len(value["sums"]), value)  # the first outputs of this size

    with pytest.raises(timing.TimingMismatch, match="outputs of the timed calls are wrong"):
        compare(0.0001, transform=cache)


def test_skipping_repetitions_fails():
    def fewer(value, seed):
        return {"sums": value["sums"][:1], "kept": value["kept"]}

    with pytest.raises(timing.TimingMismatch, match=r"expected \d+ outputs"):
        compare(0.0001, transform=lambda v, s: fewer(v, s) if len(v["sums"]) > 1 else v)


def test_each_of_a_repetitions_sums_is_compared_on_its_own_scale():
    """A repetition's entry may list several sums: a large one cannot hide a small
    one's error (as it would in their total), and a small one is not held to the
    large one's tolerance."""

    def probe_pair(seed, size, reps, keep):
        value = probe_square(seed, size, reps, keep)
        value["sums"] = [[1e6 + s, s] for s in value["sums"]]
        return value

    def small_off(value, seed):
        return {**value, "sums": [[big, small * 1.01] for big, small in value["sums"]]}

    clock = Clock()
    student, reference = runners(clock, 0.001)
    result = timing.compare(student, reference, probe_pair, CHECK, seed=7, clock=clock)
    assert result.credit == 1.0
    student, reference = runners(clock, 0.001, transform=small_off)
    with pytest.raises(timing.TimingMismatch, match="outputs of the timed calls are wrong"):
        timing.compare(student, reference, probe_pair, CHECK, seed=7, clock=clock)


def test_wrong_kind_of_output_fails():
    with pytest.raises(timing.TimingMismatch, match="did not return the expected outputs"):
        compare(0.001, transform=lambda value, seed: 42)


@pytest.mark.parametrize("cost", [0.007, 1.0])  # 7x (beyond 1.5 x 4.5) and 1000x slower
def test_hopeless_student_stops_early(cost):
    result, student, _ = compare(cost)
    timed = [c for c in student.calls if c[2] > 1]
    # Two samples per size, then it stops: one round, the ratio still exact.
    assert len(timed) == timing.FAR_SAMPLES * len(CHECK.sizes)
    assert result.rounds == 1 and result.credit == 0.0
    assert result.ratio == pytest.approx(cost / 0.001)


def test_one_slow_sample_does_not_stop_the_sampling():
    """A single sample far beyond zero credit (a burst of load) does not end the size's
    sampling: the median of all its samples counts."""
    result, timed = compare_with_sample_costs(lambda n: 1.0 if n == 1 else 0.001)
    assert timed == CHECK.samples * len(CHECK.sizes)
    assert result.credit == 1.0 and result.rounds == 1


def test_every_reference_call_and_no_student_call_runs_paused():
    """While the reference runs, student code is stopped (its worker's `paused`), so
    helpers it leaves spinning cannot slow the reference's samples down."""
    from contextlib import contextmanager

    clock = Clock()
    student, reference = runners(clock, 0.001)
    state = {"paused": False}
    seen = []

    @contextmanager
    def pause():
        assert not state["paused"]
        state["paused"] = True
        try:
            yield
        finally:
            state["paused"] = False

    for runner in (student, reference):
        run = runner.run

        def recording(*args, run=run, runner=runner):
            seen.append((runner.side, state["paused"]))
            return run(*args)

        runner.run = recording
    timing.compare(student, reference, probe_square, CHECK, seed=7, clock=clock, pause=pause)
    assert {side for side, _ in seen} == {"S", "R"}
    assert all(paused == (side == "R") for side, paused in seen), seen


def test_a_burst_of_load_in_one_round_costs_nothing():
    """The student's first round is slowed (a neighbour's burst of work): the check is
    measured again and the clean round counts."""
    # The first round's samples (2 sizes x 5 samples) cost 5 times as much.
    result, _ = compare_with_sample_costs(lambda n: 0.005 if 0 < n <= 2 * CHECK.samples else 0.001)
    assert result.rounds == 2 and result.credit == 1.0
    assert result.ratio == pytest.approx(1.0)


@pytest.mark.parametrize(("cost", "rounds"), [(0.003, timing.MAX_ROUNDS), (0.1, 1)])
def test_a_slow_student_stays_slow_in_every_round(cost, rounds):
    """Measured again, a slow implementation keeps its ratio; one far beyond zero
    credit (`FAR` times its ratio or more) is not measured again."""
    result, _, _ = compare(cost)
    assert result.rounds == rounds
    assert result.ratio == pytest.approx(cost / 0.001)


def test_a_round_that_would_not_fit_in_the_time_limit_is_not_started():
    """A slow student (zero credit, not far beyond it) is measured again only while
    the test's time left holds another round: it gets zero credit, not a time-out."""
    clock = Clock()
    student, reference = runners(clock, 0.01 / 3)  # ratio 3.33
    limit = {"s": 0.0}

    def time_left():
        return limit["s"] - clock.now

    result = timing.compare(
        student, reference, probe_square, CHECK, seed=7, clock=clock, time_left=time_left
    )
    assert result.rounds == 1 and 0.0 < result.credit < 1.0
    limit["s"] = float("inf")
    clock.now = 0.0
    result = timing.compare(
        student, reference, probe_square, CHECK, seed=7, clock=clock, time_left=time_left
    )
    assert result.rounds == timing.MAX_ROUNDS


def test_both_workers_waits_for_a_cpu_count_for_the_test():
    """The student's and the reference's workers take turns in a test: the time either
    waited for a CPU (a busy host) is not charged to the test's budget."""
    from grader.runner import Runner as WorkerRunner
    from grader.runner import share_clock

    class Waiting:
        def __init__(self):
            self.waited, self.output = 0.0, Path("/nonexistent")
            self.process = type("P", (), {"pid": 1})()

        def waited_seconds(self):
            return self.waited

    student, reference = WorkerRunner(Waiting(), 10.0), WorkerRunner(Waiting(), 10.0)
    share_clock(student, reference)
    for runner in (student, reference):
        runner.begin_test()
    student.worker.waited, reference.worker.waited = 2.0, 3.0
    for runner in (student, reference):
        assert runner.left() == pytest.approx(15.0, abs=0.5)
    student.peers = ()
    assert student.left() == pytest.approx(12.0, abs=0.5)
