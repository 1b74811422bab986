"""Hidden tests of task hw5.5 (never shipped to students; students see names and outcomes).

Stronger than the public tests:

- `_clock_cycles` for every m, n in 1 .. 12 and for (1, 16), (16, 1), (30, 7), (7, 30);
- `_split_module` for every n layers in 1 .. 9 and every n in 1 .. layers;
- `Pipe` on 3-D inputs (micro-batches cut on dimension 0), a one-row batch
  (fewer micro-batches than stages), one stage per layer;
- two forward and backward passes in a row: the gradients accumulate as the
  sequential model's do;
- under `torch.no_grad()` the output is right and builds no graph (every stage
  runs in the caller's grad mode);
- the schedule with several layers per stage, and more micro-batches than stages;
- a stage failing on the first micro-batch of the first stage, and on the last
  of the last stage: the ValueError reaches the caller; after the failure the
  same `Pipe` gives the right output again (nothing left over from the failed run).

Conventions: float64 throughout, tolerances as in the public tests (rtol 1e-10,
atol 1e-12); every forward pass that might hang runs on a thread given 10 s.
"""

import itertools

import numpy as np
import pytest
from test_pipeline import (
    SPEC,
    TIGHT,
    check_events,
    check_pipe,
    check_schedule,
    probe_pipe,
    probe_pipe_error,
    probe_pipe_schedule,
    random_params,
    sequential_reference,
)

pytestmark = pytest.mark.task("hw5.5")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_many_clock_cycles(pairs):
    """For each (m, n): the ticks of `_clock_cycles(m, n)` as lists of [i, j]
    (at most 4 (m + n) + 8 ticks)."""
    import itertools

    from pipeline.pipe import _clock_cycles

    return [
        [
            [[int(i), int(j)] for i, j in tick]
            for tick in itertools.islice(_clock_cycles(m, n), 4 * (m + n) + 8)
        ]
        for m, n in pairs
    ]


def probe_many_splits(pairs):
    """For each (layers, n): the original index of each layer of each stage of
    `_split_module` over Linear(1, 1) layers (-1 for a copy)."""
    import torch
    from pipeline.pipe import _split_module

    answers = []
    for n_layers, n in pairs:
        layers = [torch.nn.Linear(1, 1) for _ in range(n_layers)]
        index = {id(layer): k for k, layer in enumerate(layers)}
        stages = _split_module(torch.nn.Sequential(*layers), n)
        answers.append([[index.get(id(layer), -1) for layer in stage] for stage in stages])
    return answers


def probe_pipe_twice(spec, params, xs, cs, split_size, n_stages):
    """One `Pipe` over the model of `spec`, run forward and backward on xs[0]
    (loss sum(out * cs[0])) then on xs[1]: the accumulated parameter gradients."""
    import torch
    from parallel.model import sequential_from_spec
    from pipeline.pipe import Pipe

    model = sequential_from_spec(spec, params)
    pipe = Pipe(model, split_size=split_size, n_stages=n_stages)
    for x, c in zip(xs, cs, strict=True):
        (pipe(torch.as_tensor(x)) * torch.as_tensor(c)).sum().backward()
    return {n: None if p.grad is None else p.grad.numpy() for n, p in model.named_parameters()}


def probe_pipe_no_grad(spec, params, x, split_size, n_stages):
    """`Pipe` over the model of `spec` called under torch.no_grad(): the output,
    whether it requires grad, and whether it has a grad_fn."""
    import torch
    from parallel.model import sequential_from_spec
    from pipeline.pipe import Pipe

    model = sequential_from_spec(spec, params)
    pipe = Pipe(model, split_size=split_size, n_stages=n_stages)
    with torch.no_grad():
        out = pipe(torch.as_tensor(x))
    return {
        "out": out.numpy(),
        "requires_grad": bool(out.requires_grad),
        "has_grad_fn": out.grad_fn is not None,
    }


def probe_pipe_fails_then_works(rows, split_size, n_stages, fail_stage, fail_micro, timeout_s):
    """As the public `probe_pipe_error`, then the failing layer is disarmed and the
    same `Pipe` runs again on a thread: whether each run finished, the first run's
    exception chain, and the second run's output with the sequential model's."""
    import threading

    import torch
    from pipeline.pipe import Pipe

    class Layer(torch.nn.Module):
        def __init__(self, index):
            super().__init__()
            self.index = index
            self.armed = True
            self.linear = torch.nn.Linear(3, 3, dtype=torch.float64)

        def forward(self, x):
            micro = int(x[0, -1].item()) // split_size
            if self.armed and self.index == fail_stage and micro == fail_micro:
                raise ValueError(f"stage {self.index} failed on micro-batch {micro}")
            return torch.cat([torch.tanh(self.linear(x[:, :-1])), x[:, -1:]], dim=1)

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[Layer(k) for k in range(n_stages)])
    tags = torch.arange(rows, dtype=torch.float64)[:, None]
    x = torch.cat([torch.randn(rows, 3, dtype=torch.float64), tags], dim=1)
    for layer in model:
        layer.armed = False
    with torch.no_grad():
        want = model(x).numpy().copy()
    for layer in model:
        layer.armed = True
    pipe = Pipe(model, split_size=split_size, n_stages=n_stages)

    def attempt():
        outcome = {}

        def run():
            try:
                outcome["out"] = pipe(x).detach().numpy()
            except BaseException as exc:  # reported to the test
                outcome["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout_s)
        if isinstance(outcome.get("error"), NotImplementedError):
            raise outcome["error"]
        return not thread.is_alive(), outcome

    first_finished, first = attempt()
    chain, exc = [], first.get("error")
    while exc is not None and len(chain) < 10:
        chain.append([type(exc).__name__, str(exc)])
        exc = exc.__cause__ or exc.__context__
    for layer in model:
        layer.armed = False
    second_finished, second = attempt()
    return {
        "first_finished": first_finished,
        "chain": chain,
        "second_finished": second_finished,
        "second_error": repr(second.get("error")) if "error" in second else None,
        "out": second.get("out"),
        "want": want,
    }


# ---------------------------------------------------------------------------
# _clock_cycles and _split_module
# ---------------------------------------------------------------------------


def test_clock_cycles_many_shapes(student):
    """GPipe's ticks for every m, n in 1 .. 12 and a few lopsided shapes."""
    pairs = [*itertools.product(range(1, 13), repeat=2), (1, 16), (16, 1), (30, 7), (7, 30)]
    for (m, n), ticks in zip(pairs, student.run(probe_many_clock_cycles, pairs), strict=True):
        check_schedule(ticks, m, n)


def test_split_module_every_shape(student):
    """Every layers in 1 .. 9 and n in 1 .. layers: own layers, in order, balanced."""
    pairs = [(n_layers, n) for n_layers in range(1, 10) for n in range(1, n_layers + 1)]
    for (n_layers, n), stages in zip(pairs, student.run(probe_many_splits, pairs), strict=True):
        what = f"{n_layers} layers into {n} stages"
        assert len(stages) == n and all(stages), f"{what}: stages {stages}"
        assert [k for s in stages for k in s] == list(range(n_layers)), f"{what}: {stages}"
        sizes = [len(s) for s in stages]
        assert max(sizes) - min(sizes) <= 1, f"{what}: sizes {sizes}"


# ---------------------------------------------------------------------------
# Pipe
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "split_size", "n_stages"),
    [((5, 3, 4), 2, 3), ((1, 4), 1, 5), ((4, 2, 4), 3, 5), ((9, 4), 4, 2)],
)
def test_pipe_other_shapes(student, shape, split_size, n_stages):
    """3-D inputs (split on dimension 0), one row, one stage per layer."""
    rng = np.random.default_rng(len(shape) * 7 + split_size)
    params = random_params(SPEC, seed=split_size)
    x, c = rng.normal(size=shape), rng.normal(size=(*shape[:-1], 3))
    got = student.run(probe_pipe, SPEC, params, x, c, split_size, n_stages)
    check_pipe(got, sequential_reference(SPEC, params, x, c), f"Pipe on shape {shape}")


def test_pipe_gradients_accumulate_over_two_passes(student):
    """Two forward and backward passes add their gradients, as the sequential model's."""
    rng = np.random.default_rng(8)
    params = random_params(SPEC, seed=8)
    xs, cs = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
    got = student.run(probe_pipe_twice, SPEC, params, xs, cs, 2, 3)
    first = sequential_reference(SPEC, params, xs[0], cs[0])["grads"]
    second = sequential_reference(SPEC, params, xs[1], cs[1])["grads"]
    for name in first:
        assert got[name] is not None, f"parameter {name} got no gradient"
        np.testing.assert_allclose(
            got[name], first[name] + second[name], err_msg=f"accumulated grad of {name}", **TIGHT
        )


def test_pipe_under_no_grad_builds_no_graph(student):
    """Under torch.no_grad() the output is right and neither requires grad nor has a grad_fn."""
    rng = np.random.default_rng(9)
    params = random_params(SPEC, seed=9)
    x = rng.normal(size=(6, 4))
    got = student.run(probe_pipe_no_grad, SPEC, params, x, 2, 3)
    want = sequential_reference(SPEC, params, x, np.zeros((6, 3)))["out"]
    np.testing.assert_allclose(got["out"], want, err_msg="output under no_grad", **TIGHT)
    assert not got["requires_grad"] and not got["has_grad_fn"], (
        "under torch.no_grad() the pipeline built a graph: the stages must run in "
        "the caller's grad mode"
    )


@pytest.mark.parametrize(
    ("rows", "split_size", "n_layers", "n_stages"),
    [(8, 2, 6, 3), (5, 1, 4, 2), (9, 4, 3, 3), (3, 1, 8, 4), (10, 1, 2, 2)],
)
def test_pipe_follows_the_schedule_with_deeper_stages(
    student, rows, split_size, n_layers, n_stages
):
    """Several layers per stage, more micro-batches than stages, and the reverse."""
    got = student.run(probe_pipe_schedule, rows, split_size, n_layers, n_stages, 3, 1)
    check_events(got["events"], got["tags"], rows, split_size, n_layers, n_stages)


@pytest.mark.parametrize(("fail_stage", "fail_micro"), [(0, 0), (3, 3), (2, 0)])
def test_pipe_stage_exception_anywhere(student, fail_stage, fail_micro):
    """First micro-batch of the first stage, last of the last: the ValueError arrives."""
    got = student.run(probe_pipe_error, 8, 2, 4, fail_stage, fail_micro, 10.0)
    message = f"stage {fail_stage} failed on micro-batch {fail_micro}"
    assert got["finished"], "the forward pass hung after a stage raised (10 s)"
    assert ["ValueError", message] in got["chain"], f"got {got['chain']}, expected {message!r}"


@pytest.mark.parametrize(("fail_stage", "fail_micro"), [(1, 0), (0, 2)])
def test_pipe_works_again_after_a_failure(student, fail_stage, fail_micro):
    """After a stage raised, the same Pipe runs again and gives the sequential output."""
    got = student.run(probe_pipe_fails_then_works, 7, 2, 3, fail_stage, fail_micro, 10.0)
    message = f"stage {fail_stage} failed on micro-batch {fail_micro}"
    assert got["first_finished"], "the forward pass hung after a stage raised (10 s)"
    assert ["ValueError", message] in got["chain"], f"got {got['chain']}, expected {message!r}"
    assert got["second_finished"], "after a failed run, the next forward pass hung (10 s)"
    assert got["second_error"] is None, (
        f"after a failed run, the next one raised {got['second_error']}"
    )
    np.testing.assert_allclose(got["out"], got["want"], err_msg="the run after a failure", **TIGHT)
