"""Public tests of task hw5.5: GPipe pipeline parallelism (pipeline/pipe.py).

What is checked:

- `_clock_cycles(m, n)`: tick `k` is exactly the tasks `(i, j)` with
  `i + j == k` (m + n - 1 ticks, the order inside a tick free); every task
  appears once and after `(i, j - 1)` and `(i - 1, j)`; for every m, n in
  1 .. 6 (so m < n, m > n, m = 1 and n = 1);
- `_split_module(module, n)`: `n` non-empty stages holding the module's own
  layers (the same objects), each once, contiguous and in order, sizes
  differing by at most one;
- `Pipe(module, split_size, n_stages)` on a float64 MLP of 5 layers: the output
  and the gradients of `sum(out * c)` for the input and every parameter of the
  module equal the sequential model's (rtol 1e-10, atol 1e-12), for several
  split sizes (one not dividing the batch, one larger than the batch) and
  stage counts; the output rows in micro-batch order; `pipe.parameters()` are
  the module's own;
- the schedule is followed: layers that record when they start and finish
  each micro-batch show every (micro-batch, stage) run once, and every task of
  tick k finished before any task of a later tick started;
- an exception raised in a stage reaches the caller (within 10 s, not a hang).
"""

import itertools

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.task("hw5.5")

TIGHT = {"rtol": 1e-10, "atol": 1e-12}

#: A small MLP: layer kinds and sizes (its parameters come from `random_params`).
SPEC = [["linear", 4, 8], ["tanh"], ["linear", 8, 8], ["gelu"], ["linear", 8, 3]]


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_clock_cycles(m, n):
    """The ticks of `_clock_cycles(m, n)` as lists of [i, j] (at most 4 (m + n) + 8 ticks)."""
    import itertools

    from pipeline.pipe import _clock_cycles

    ticks = itertools.islice(_clock_cycles(m, n), 4 * (m + n) + 8)
    return [[[int(i), int(j)] for i, j in tick] for tick in ticks]


def probe_split_module(n_layers, n):
    """`_split_module` of a Sequential of `n_layers` Linear(1, 1): for each stage,
    whether it is an nn.Sequential and the original index of each of its layers
    (-1 for a layer that is not one of the module's own objects)."""
    import torch
    from pipeline.pipe import _split_module

    layers = [torch.nn.Linear(1, 1) for _ in range(n_layers)]
    index = {id(layer): k for k, layer in enumerate(layers)}
    stages = _split_module(torch.nn.Sequential(*layers), n)
    return {
        "sequential": [isinstance(stage, torch.nn.Sequential) for stage in stages],
        "layers": [[index.get(id(layer), -1) for layer in stage] for stage in stages],
    }


def probe_pipe(spec, params, x, c, split_size, n_stages):
    """A float64 nn.Sequential built from `spec` and `params` run through
    `Pipe(model, split_size, n_stages)`: the output, the gradients of
    sum(out * c) for x and for the model's parameters (named as in
    `model.named_parameters()`), and whether `pipe.parameters()` are exactly
    the model's parameter objects."""
    import torch
    from parallel.model import sequential_from_spec
    from pipeline.pipe import Pipe

    model = sequential_from_spec(spec, params)
    pipe = Pipe(model, split_size=split_size, n_stages=n_stages)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = pipe(xt)
    (out * torch.as_tensor(c)).sum().backward()
    own = sorted(id(p) for p in model.parameters())
    return {
        "out": out.detach().numpy(),
        "grad_x": None if xt.grad is None else xt.grad.numpy(),
        "grads": {
            name: None if p.grad is None else p.grad.numpy() for name, p in model.named_parameters()
        },
        "same_parameters": sorted(id(p) for p in pipe.parameters()) == own,
    }


def probe_pipe_schedule(rows, split_size, n_layers, n_stages, width, seed):
    """`Pipe` over `n_layers` recording layers: each maps the first `width`
    columns through tanh(Linear) and passes the last column (the row's index,
    a tag) through, and records [layer, micro-batch (tag // split_size),
    start, end], with start and end read from one shared counter as it begins
    and as it finishes. The records and the output's tag column."""
    import itertools
    import threading
    import time

    import torch
    from pipeline.pipe import Pipe

    lock = threading.Lock()
    clock = itertools.count()
    events = []

    class Recorder(torch.nn.Module):
        def __init__(self, index):
            super().__init__()
            self.index = index
            self.linear = torch.nn.Linear(width, width, dtype=torch.float64)

        def forward(self, x):
            with lock:
                start = next(clock)
            out = torch.cat([torch.tanh(self.linear(x[:, :-1])), x[:, -1:]], dim=1)
            time.sleep(0.002)  # long enough for a stage running ahead to show
            with lock:
                micro = int(x[0, -1].item()) // split_size
                events.append([self.index, micro, start, next(clock)])
            return out

    torch.manual_seed(seed)
    model = torch.nn.Sequential(*[Recorder(k) for k in range(n_layers)])
    tags = torch.arange(rows, dtype=torch.float64)[:, None]
    x = torch.cat([torch.randn(rows, width, dtype=torch.float64), tags], dim=1)
    out = Pipe(model, split_size=split_size, n_stages=n_stages)(x)
    with lock:
        return {"events": [list(e) for e in events], "tags": out[:, -1].detach().numpy()}


def probe_pipe_error(rows, split_size, n_stages, fail_stage, fail_micro, timeout_s):
    """`Pipe` over `n_stages` layers (one per stage), layer `fail_stage` raising
    ValueError("stage J failed on micro-batch I") on micro-batch `fail_micro`;
    the forward pass runs on a thread given `timeout_s` seconds. Whether it
    finished, and the chain of what it raised ([type, message] of the exception,
    then of its __cause__ / __context__ in turn)."""
    import threading

    import torch
    from pipeline.pipe import Pipe

    class Layer(torch.nn.Module):
        def __init__(self, index):
            super().__init__()
            self.index = index
            self.linear = torch.nn.Linear(3, 3, dtype=torch.float64)

        def forward(self, x):
            micro = int(x[0, -1].item()) // split_size
            if self.index == fail_stage and micro == fail_micro:
                raise ValueError(f"stage {self.index} failed on micro-batch {micro}")
            return torch.cat([torch.tanh(self.linear(x[:, :-1])), x[:, -1:]], dim=1)

    model = torch.nn.Sequential(*[Layer(k) for k in range(n_stages)])
    pipe = Pipe(model, split_size=split_size, n_stages=n_stages)
    tags = torch.arange(rows, dtype=torch.float64)[:, None]
    x = torch.cat([torch.ones(rows, 3, dtype=torch.float64), tags], dim=1)
    caught = []

    def run():
        try:
            pipe(x)
        except BaseException as exc:  # reported to the test
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if caught and isinstance(caught[0], NotImplementedError):
        raise caught[0]
    chain, exc = [], caught[0] if caught else None
    while exc is not None and len(chain) < 10:
        chain.append([type(exc).__name__, str(exc)])
        exc = exc.__cause__ or exc.__context__
    return {"finished": not thread.is_alive(), "chain": chain}


# ---------------------------------------------------------------------------
# Helpers (also used by the hidden tests)
# ---------------------------------------------------------------------------


def check_schedule(ticks, m, n):
    """`ticks` (from `probe_clock_cycles`) is GPipe's schedule of m micro-batches
    over n stages; messages name the first difference."""
    where = {}
    for k, tick in enumerate(ticks):
        for i, j in tick:
            assert 0 <= i < m and 0 <= j < n, f"m={m}, n={n}: task ({i}, {j}) out of range"
            assert (i, j) not in where, (
                f"m={m}, n={n}: task ({i}, {j}) in ticks {where[(i, j)]} and {k}"
            )
            where[(i, j)] = k
    missing = sorted(set(itertools.product(range(m), range(n))) - set(where))
    assert not missing, f"m={m}, n={n}: tasks never scheduled: {missing[:5]}"
    for (i, j), k in where.items():
        for before in ((i, j - 1), (i - 1, j)):
            if before in where:
                assert where[before] < k, (
                    f"m={m}, n={n}: task ({i}, {j}) in tick {k}, not after {before} "
                    f"(tick {where[before]})"
                )
    assert len(ticks) == m + n - 1, f"m={m}, n={n}: {len(ticks)} ticks, expected {m + n - 1}"
    for k, tick in enumerate(ticks):
        want = {(i, k - i) for i in range(m) if 0 <= k - i < n}
        got = {tuple(task) for task in tick}
        assert got == want, f"m={m}, n={n}: tick {k} is {sorted(got)}, expected {sorted(want)}"


def random_params(spec, seed):
    """{str(layer index): {"weight", "bias"}} for the linear layers of `spec`."""
    rng = np.random.default_rng(seed)
    params = {}
    for k, (kind, *dims) in enumerate(spec):
        if kind == "linear":
            fan_in, fan_out = dims
            params[str(k)] = {
                "weight": rng.normal(0.0, fan_in**-0.5, (fan_out, fan_in)),
                "bias": rng.normal(0.0, 0.5, fan_out),
            }
    return params


def sequential_reference(spec, params, x, c):
    """The plain nn.Sequential of `spec`: output, gradient of x, parameter gradients."""
    layers = []
    for k, (kind, *dims) in enumerate(spec):
        if kind == "linear":
            layer = torch.nn.Linear(*dims, dtype=torch.float64)
            with torch.no_grad():
                layer.weight.copy_(torch.as_tensor(params[str(k)]["weight"]))
                layer.bias.copy_(torch.as_tensor(params[str(k)]["bias"]))
        else:
            layer = {"tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}[kind]()
        layers.append(layer)
    model = torch.nn.Sequential(*layers)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = model(xt)
    (out * torch.as_tensor(c)).sum().backward()
    return {
        "out": out.detach().numpy(),
        "grad_x": xt.grad.numpy(),
        "grads": {name: p.grad.numpy() for name, p in model.named_parameters()},
    }


def check_pipe(got, want, what):
    """Output, input gradient and parameter gradients of a probe against the reference."""
    assert np.shape(got["out"]) == want["out"].shape, (
        f"{what}: output of shape {np.shape(got['out'])}, expected {want['out'].shape}"
    )
    np.testing.assert_allclose(got["out"], want["out"], err_msg=f"{what}: output", **TIGHT)
    assert got["grad_x"] is not None, f"{what}: the input got no gradient"
    np.testing.assert_allclose(
        got["grad_x"], want["grad_x"], err_msg=f"{what}: gradient of the input", **TIGHT
    )
    assert set(got["grads"]) == set(want["grads"])
    for name, grad in want["grads"].items():
        assert got["grads"][name] is not None, f"{what}: parameter {name} got no gradient"
        np.testing.assert_allclose(
            got["grads"][name], grad, err_msg=f"{what}: gradient of {name}", **TIGHT
        )


def check_events(events, tags, rows, split_size, n_layers, n_stages):
    """The records of `probe_pipe_schedule` show GPipe's schedule: each (layer,
    micro-batch) once, and every task of a tick over before a later tick's began.
    Needs n_layers divisible by n_stages (then every balanced split is the same)."""
    m = -(-rows // split_size)
    per_stage = n_layers // n_stages
    seen = {}
    for layer, micro, start, end in events:
        assert (layer, micro) not in seen, f"layer {layer} ran micro-batch {micro} twice"
        seen[(layer, micro)] = (start, end)
    missing = sorted(set(itertools.product(range(n_layers), range(m))) - set(seen))
    assert not missing, f"(layer, micro-batch) never run: {missing[:5]}"
    np.testing.assert_array_equal(tags, np.arange(rows), err_msg="output rows out of order")
    tasks = {}  # (micro-batch, stage) -> (first start, last end) over the stage's layers
    for (layer, micro), (start, end) in seen.items():
        key = (micro, layer // per_stage)
        first, last = tasks.get(key, (start, end))
        tasks[key] = (min(first, start), max(last, end))
    for (a, (_, a_end)), (b, (b_start, _)) in itertools.product(tasks.items(), repeat=2):
        if sum(a) < sum(b):
            assert a_end < b_start, (
                f"m={m}, n={n_stages}: task {b} (micro-batch, stage) of tick {sum(b)} started "
                f"before task {a} of tick {sum(a)} had finished"
            )


# ---------------------------------------------------------------------------
# _clock_cycles
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n"), [(3, 3), (1, 1), (1, 4), (4, 1), (2, 5), (5, 2)])
def test_clock_cycles_is_gpipe(student, m, n):
    """Tick k holds exactly the tasks (i, j) with i + j == k."""
    check_schedule(student.run(probe_clock_cycles, m, n), m, n)


def test_clock_cycles_every_task_once_in_dependency_order(student):
    """For every m, n in 1 .. 6: each task once, after (i, j-1) and (i-1, j)."""
    for m, n in itertools.product(range(1, 7), repeat=2):
        check_schedule(student.run(probe_clock_cycles, m, n), m, n)


# ---------------------------------------------------------------------------
# _split_module
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_layers", "n"), [(5, 1), (5, 2), (5, 3), (5, 5), (7, 3), (4, 4), (6, 4), (9, 2)]
)
def test_split_module_contiguous_balanced(student, n_layers, n):
    """n non-empty nn.Sequential stages of the module's own layers, in order, each
    once, sizes differing by at most one."""
    got = student.run(probe_split_module, n_layers, n)
    stages = got["layers"]
    assert len(stages) == n, f"{n_layers} layers into {n} stages: got {len(stages)} stages"
    assert all(got["sequential"]), "every stage must be an nn.Sequential"
    assert all(stages), f"an empty stage: {stages}"
    flat = [k for stage in stages for k in stage]
    assert -1 not in flat, "a stage holds a copy of a layer, not the module's own layer"
    assert flat == list(range(n_layers)), f"stages {stages}: not the layers in order, each once"
    sizes = [len(stage) for stage in stages]
    assert max(sizes) - min(sizes) <= 1, f"stage sizes {sizes} are not balanced"


# ---------------------------------------------------------------------------
# Pipe
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("split_size", "n_stages"), [(1, 2), (2, 3), (3, 2), (3, 5), (7, 4), (10, 1), (4, 3)]
)
def test_pipe_matches_sequential(student, split_size, n_stages):
    """Output and gradients (input, every parameter) of the sequential model, 7 rows."""
    rng = np.random.default_rng(split_size * 10 + n_stages)
    params = random_params(SPEC, seed=n_stages)
    x, c = rng.normal(size=(7, 4)), rng.normal(size=(7, 3))
    got = student.run(probe_pipe, SPEC, params, x, c, split_size, n_stages)
    check_pipe(got, sequential_reference(SPEC, params, x, c), f"Pipe({split_size}, {n_stages})")
    assert got["same_parameters"], "pipe.parameters() must be the module's own parameters"


def test_pipe_output_rows_in_microbatch_order(student):
    """Micro-batches of one row: output row r is the model's output for input row r."""
    rng = np.random.default_rng(5)
    params = random_params(SPEC, seed=5)
    x, c = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    got = student.run(probe_pipe, SPEC, params, x, c, 1, 3)
    want = sequential_reference(SPEC, params, x, c)["out"]
    assert np.shape(got["out"]) == want.shape, f"output of shape {np.shape(got['out'])}"
    for r in range(len(want)):
        if not np.allclose(got["out"][r], want[r], **TIGHT):
            source = [s for s in range(len(want)) if np.allclose(got["out"][r], want[s], **TIGHT)]
            raise AssertionError(
                f"output row {r} is not the model's output for input row {r}"
                + (f" but for row {source[0]}: micro-batches joined out of order" if source else "")
            )


@pytest.mark.parametrize(
    ("rows", "split_size", "n_layers", "n_stages"),
    [(6, 2, 3, 3), (5, 1, 2, 2), (4, 1, 4, 4), (2, 1, 3, 3), (7, 3, 4, 2), (3, 1, 1, 1)],
)
def test_pipe_follows_the_schedule(student, rows, split_size, n_layers, n_stages):
    """Each (micro-batch, stage) once; tick k over before tick k+1 begins."""
    got = student.run(probe_pipe_schedule, rows, split_size, n_layers, n_stages, 3, 0)
    check_events(got["events"], got["tags"], rows, split_size, n_layers, n_stages)


def test_pipe_stage_exception_reaches_caller(student):
    """A ValueError in stage 1 on micro-batch 2 is raised by the forward pass."""
    got = student.run(probe_pipe_error, 8, 2, 3, 1, 2, 10.0)
    assert got["finished"], "the forward pass hung after a stage raised (10 s)"
    assert got["chain"], "a stage raised, but the forward pass returned normally"
    assert ["ValueError", "stage 1 failed on micro-batch 2"] in got["chain"], (
        f"the stage's ValueError did not reach the caller: got {got['chain']}"
    )
