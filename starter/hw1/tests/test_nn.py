"""Public tests of task hw1.6: layers, loss, optimizer and training loop.

What is checked:

- `Linear.forward` (minitorch/nn.py): `x @ weights + bias` against NumPy, from
  the layer's own parameters; the output's shape; and that backpropagation
  through it reaches the parameters (so the optimizer can train them);
- `Network.forward`: shape `(batch,)`, probabilities strictly between 0 and 1,
  and the values of relu -> relu -> sigmoid recomputed with NumPy from the three
  layers' parameters;
- `binary_cross_entropy`: its value and shape against NumPy, and its gradient
  with respect to `p` against the formula (and against PyTorch, where PyTorch
  is installed);
- `SGD.step` (minitorch/optim.py): every parameter with a gradient moves by
  `-lr * grad`, its new value is a fresh leaf that gets gradients again, and a
  parameter without a gradient is left alone; `SGD.zero_grad` forgets the
  gradients, so the next backward does not add to old ones;
- `train`: on the `simple`, `xor`, `split` and `circle` datasets, a network of
  10 hidden units with learning rate 1.0 reaches 95% accuracy within an epoch
  budget, with epochs numbered from 1 and a loss that went down.

The training tests use the fast backend of task hw1.5 (`FastTensorBackend`),
on one thread (for 50 points, more threads only add overhead): numba compiles
each kernel on its first use, so the first of them takes about 15 s longer
than the others. Everything else uses `SimpleBackend`.

How these tests reach your code
-------------------------------
As in the other test files, no test imports `minitorch`. Each test hands a
*probe* to the `student` fixture: a function defined at the top level of this
file, with a name starting with `probe_`, that imports your code inside its
body, builds layers, tensors and optimizers, and returns plain data (NumPy
arrays, numbers, lists). Tensors never leave a probe: it returns
`t.to_numpy()`, `list(t.shape)` and the like instead.

Run them with `pytest tests/test_nn.py` (add `-k sgd` for one topic).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds  # importing strategies also loads its settings profiles

pytestmark = [pytest.mark.task("hw1.6"), pytest.mark.time_limit(60)]

sizes = st.integers(min_value=1, max_value=5)


def sigmoid(z):
    """The logistic sigmoid of a NumPy array, without overflow warnings."""
    return np.exp(-np.logaddexp(0.0, -z))


def assert_array_close(actual, expected, *, rtol, atol, what):
    """assert_allclose with the shapes checked first and a message naming `what`."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (
        f"{what}: expected shape {expected.shape}, got {actual.shape}"
    )
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------


def probe_linear(in_size, out_size, x, c, seed):
    """A fresh Linear(in_size, out_size): its parameters, forward(x), and the
    gradients of sum(forward(x) * c)."""
    import random

    from minitorch import Linear, tensor

    random.seed(seed)
    layer = Linear(in_size, out_size)
    weights = layer.weights.value.to_numpy()
    bias = layer.bias.value.to_numpy()
    out = layer.forward(tensor(x.tolist()))
    result = {"weights": weights, "bias": bias, "shape": list(out.shape), "out": out.to_numpy()}
    (out * tensor(c.tolist())).sum().backward()
    for name in ("weights", "bias"):
        grad = getattr(layer, name).value.grad
        result[f"d {name}"] = None if grad is None else grad.to_numpy()
    return result


@given(sizes, sizes, st.integers(min_value=1, max_value=6), seeds)
def test_linear_forward_is_x_times_weights_plus_bias(student, in_size, out_size, batch, seed):
    """forward(x) = x @ weights + bias, shape (batch, out_size); the bias broadcasts."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(batch, in_size))
    c = rng.uniform(-1.0, 1.0, size=(batch, out_size))
    got = student.run(probe_linear, in_size, out_size, x, c, seed % 1000)
    assert got["shape"] == [batch, out_size], (
        f"Linear({in_size}, {out_size}) on a batch of {batch}: expected shape "
        f"[{batch}, {out_size}], got {got['shape']}"
    )
    want = x @ got["weights"] + got["bias"]
    assert_array_close(got["out"], want, rtol=1e-9, atol=1e-12, what="Linear.forward(x)")


@given(sizes, sizes, st.integers(min_value=1, max_value=6), seeds)
def test_linear_forward_reaches_the_parameters(student, in_size, out_size, batch, seed):
    """After sum(forward(x) * c).backward(): weights.grad = x^T @ c and bias.grad = sum of c's rows.

    forward must compute with `self.weights.value` and `self.bias.value`
    themselves (not copies or detached tensors), or they never get a gradient.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(batch, in_size))
    c = rng.uniform(-1.0, 1.0, size=(batch, out_size))
    got = student.run(probe_linear, in_size, out_size, x, c, seed % 1000)
    for name, want in (("weights", x.T @ c), ("bias", c.sum(axis=0))):
        assert got[f"d {name}"] is not None, (
            f"the layer's {name} got no gradient: forward must use self.{name}.value"
        )
        assert_array_close(got[f"d {name}"], want, rtol=1e-9, atol=1e-12, what=f"{name}.grad")


# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------


def probe_network(hidden, x, seed):
    """A fresh Network(hidden) (weights from random.seed(seed)): its layers'
    parameters and its output on x."""
    import random

    from minitorch import Network, tensor

    random.seed(seed)
    model = Network(hidden)
    out = model.forward(tensor(x.tolist()))
    layers = [model.layer1, model.layer2, model.layer3]
    return {
        "weights": [layer.weights.value.to_numpy() for layer in layers],
        "bias": [layer.bias.value.to_numpy() for layer in layers],
        "shape": list(out.shape),
        "out": out.to_numpy(),
    }


def network_numpy(weights, bias, x):
    """relu(x W1 + b1) -> relu(. W2 + b2) -> sigmoid(. W3 + b3), flattened to (batch,)."""
    h = np.maximum(x @ weights[0] + bias[0], 0.0)
    h = np.maximum(h @ weights[1] + bias[1], 0.0)
    return sigmoid(h @ weights[2] + bias[2]).reshape(-1)


@given(st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=10), seeds)
def test_network_forward(student, hidden, batch, seed):
    """Shape (batch,), values in (0, 1), equal to relu -> relu -> sigmoid of the three layers."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(batch, 2))
    got = student.run(probe_network, hidden, x, seed % 1000)
    assert got["shape"] == [batch], (
        f"Network.forward on a batch of {batch} points: expected shape [{batch}] "
        f"(one probability per point), got {got['shape']}"
    )
    out = np.asarray(got["out"])
    assert np.all((out > 0.0) & (out < 1.0)), f"probabilities must lie in (0, 1): {out}"
    want = network_numpy(got["weights"], got["bias"], x)
    assert_array_close(
        out, want, rtol=1e-9, atol=1e-12, what="Network.forward (relu, relu, then sigmoid)"
    )


def test_network_forward_on_known_weights(student):
    """Points outside the unit square (in [-3, 3]^2): the relus clip some units, and a
    sigmoid in their place would give other values."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-3.0, 3.0, size=(12, 2))
    got = student.run(probe_network, 6, x, 123)
    want = network_numpy(got["weights"], got["bias"], x)
    assert got["shape"] == [12]
    assert_array_close(got["out"], want, rtol=1e-9, atol=1e-12, what="Network.forward")
    # A sigmoid (instead of relu) after the hidden layers gives other values here.
    h = sigmoid(x @ got["weights"][0] + got["bias"][0])
    h = sigmoid(h @ got["weights"][1] + got["bias"][1])
    other = sigmoid(h @ got["weights"][2] + got["bias"][2]).reshape(-1)
    assert not np.allclose(want, other, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------
# binary_cross_entropy
# ---------------------------------------------------------------------------


def probe_bce(p, y):
    """binary_cross_entropy(p, y): its value, shape, and d loss / d p."""
    from minitorch import binary_cross_entropy, tensor

    pt = tensor(p.tolist(), requires_grad=True)
    loss = binary_cross_entropy(pt, tensor(y.tolist()))
    value = loss.to_numpy()
    loss.backward()
    return {
        "shape": list(loss.shape),
        "value": value,
        "grad": None if pt.grad is None else pt.grad.to_numpy(),
    }


def bce_numpy(p, y):
    """-mean(y log p + (1 - y) log(1 - p)) and its gradient with respect to p."""
    loss = -np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    grad = -(y / p - (1.0 - y) / (1.0 - p)) / p.size
    return loss, grad


bce_inputs = st.integers(min_value=1, max_value=20).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(min_value=0.01, max_value=0.99), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n),
    )
)


@given(bce_inputs)
def test_binary_cross_entropy_value_and_gradient(student, inputs):
    """loss = -mean(y log p + (1 - y) log(1 - p)), shape (1,).

    Its gradient: d loss / d p_i = -(y_i / p_i - (1 - y_i) / (1 - p_i)) / n.
    """
    p, y = (np.array(v) for v in inputs)
    got = student.run(probe_bce, p, y)
    want, want_grad = bce_numpy(p, y)
    assert got["shape"] == [1], f"the loss must have shape [1], got {got['shape']}"
    assert_array_close(got["value"], [want], rtol=1e-7, atol=1e-9, what=f"loss of p={p}, y={y}")
    assert got["grad"] is not None, "p got no gradient: the loss must be computed from p"
    assert_array_close(got["grad"], want_grad, rtol=1e-6, atol=1e-9, what="d loss / d p")


def test_binary_cross_entropy_is_small_for_good_predictions(student):
    """Confident right answers cost little, confident wrong ones a lot (the sign matters)."""
    y = np.array([1.0, 0.0, 1.0, 0.0])
    right = student.run(probe_bce, np.array([0.99, 0.01, 0.95, 0.05]), y)["value"]
    wrong = student.run(probe_bce, np.array([0.01, 0.99, 0.05, 0.95]), y)["value"]
    want = -(math.log(0.99) + math.log(0.95)) / 2.0
    assert_array_close(right, [want], rtol=1e-7, atol=0, what="loss of good predictions")
    assert float(right[0]) > 0.0, "the loss is positive: it is minus a mean of log-probabilities"
    assert float(wrong[0]) > float(right[0]), "wrong predictions must cost more than right ones"


def test_binary_cross_entropy_matches_torch(student):
    """Value and gradient equal torch.nn.functional.binary_cross_entropy's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    p = rng.uniform(0.02, 0.98, size=17)
    y = rng.integers(0, 2, size=17).astype(float)
    got = student.run(probe_bce, p, y)
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy(pt, torch.tensor(y, dtype=torch.float64))
    loss.backward()
    assert_array_close(got["value"], [loss.item()], rtol=1e-7, atol=1e-9, what="loss vs torch")
    assert got["grad"] is not None, "p got no gradient"
    assert_array_close(got["grad"], pt.grad.numpy(), rtol=1e-6, atol=1e-9, what="grad vs torch")


# ---------------------------------------------------------------------------
# SGD
# ---------------------------------------------------------------------------


def probe_sgd(values, coefficients, used, lr):
    """Parameters with the given values; backward of sum(value * c) over the used ones;
    then SGD(lr).step(), and one more backward on the new values."""
    from minitorch import SGD, Parameter, tensor

    params = [Parameter(tensor(v.tolist())) for v in values]
    cs = [tensor(c.tolist()) for c in coefficients]

    def backward():
        loss = None
        for p, c, u in zip(params, cs, used, strict=True):
            if u:
                term = (p.value * c).sum()
                loss = term if loss is None else loss + term
        loss.backward()

    backward()
    optimizer = SGD(params, lr)
    optimizer.step()
    result = {
        "values": [p.value.to_numpy() for p in params],
        "requires_grad": [p.value.requires_grad() for p in params],
        "leaf": [p.value.history is not None and p.value.history.last_fn is None for p in params],
        "shapes": [list(p.value.shape) for p in params],
    }
    # The new values must be leaves that backpropagation reaches: train again.
    for p in params:
        p.value.grad = None
    backward()
    result["grads after step"] = [
        None if p.value.grad is None else p.value.grad.to_numpy() for p in params
    ]
    return result


SGD_VALUES = [np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.5]]), np.array([0.75, -4.0])]
SGD_COEFFICIENTS = [np.array([[0.5, 1.0, -2.0], [0.1, -0.3, 4.0]]), np.array([-1.0, 2.5])]


@pytest.mark.parametrize("lr", [1.0, 0.1, 0.5])
def test_sgd_step_moves_against_the_gradient(student, lr):
    """value <- value - lr * grad for every parameter (grad of sum(value * c) is c)."""
    got = student.run(probe_sgd, SGD_VALUES, SGD_COEFFICIENTS, [True, True], lr)
    for k, (v, c) in enumerate(zip(SGD_VALUES, SGD_COEFFICIENTS, strict=True)):
        assert got["shapes"][k] == list(v.shape), f"parameter {k} changed shape"
        assert_array_close(
            got["values"][k],
            v - lr * c,
            rtol=1e-12,
            atol=1e-12,
            what=f"parameter {k} after one step with lr={lr} (value - lr * grad)",
        )


def test_sgd_step_leaves_fresh_leaves(student):
    """After a step each value is a leaf (requires_grad, no history) that gets gradients again."""
    got = student.run(probe_sgd, SGD_VALUES, SGD_COEFFICIENTS, [True, True], 0.5)
    for k, c in enumerate(SGD_COEFFICIENTS):
        assert got["requires_grad"][k], f"parameter {k}'s new value does not require grad"
        assert got["leaf"][k], (
            f"parameter {k}'s new value has a history: it must be a fresh leaf "
            "(compute it from value.detach() and grad.detach(), then p.update(...))"
        )
        assert got["grads after step"][k] is not None, (
            f"parameter {k}'s new value got no gradient in the next backward"
        )
        assert_array_close(
            got["grads after step"][k], c, rtol=1e-12, atol=1e-12, what=f"next grad of {k}"
        )


def test_sgd_step_leaves_parameters_without_gradient_alone(student):
    """A parameter the loss does not use has grad None: step must not change (or break) it."""
    got = student.run(probe_sgd, SGD_VALUES, SGD_COEFFICIENTS, [True, False], 1.0)
    assert_array_close(
        got["values"][1], SGD_VALUES[1], rtol=0, atol=0, what="the unused parameter after a step"
    )
    assert got["requires_grad"][1], "the unused parameter must still require grad"
    assert_array_close(
        got["values"][0], SGD_VALUES[0] - SGD_COEFFICIENTS[0], rtol=1e-12, atol=1e-12, what="used"
    )


def probe_zero_grad(values, coefficients):
    """Gradients after two backward calls, after zero_grad, and after one more backward."""
    from minitorch import SGD, Parameter, tensor

    params = [Parameter(tensor(v.tolist())) for v in values]
    cs = [tensor(c.tolist()) for c in coefficients]

    def backward():
        loss = (params[0].value * cs[0]).sum()
        for p, c in zip(params[1:], cs[1:], strict=True):
            loss = loss + (p.value * c).sum()
        loss.backward()

    def grads():
        return [None if p.value.grad is None else p.value.grad.to_numpy() for p in params]

    optimizer = SGD(params, 0.1)
    backward()
    backward()
    twice = grads()
    optimizer.zero_grad()
    cleared = grads()
    backward()
    return {"twice": twice, "cleared": cleared, "again": grads()}


def test_zero_grad_forgets_gradients(student):
    """Backward adds to grad; after zero_grad the grads are gone (None, or zeros) and the
    next backward starts afresh."""
    got = student.run(probe_zero_grad, SGD_VALUES, SGD_COEFFICIENTS)
    for k, c in enumerate(SGD_COEFFICIENTS):
        assert_array_close(got["twice"][k], 2 * c, rtol=1e-12, atol=1e-12, what="two backwards")
        cleared = got["cleared"][k]
        assert cleared is None or np.all(np.asarray(cleared) == 0.0), (
            f"after zero_grad, parameter {k}'s grad is still {cleared}"
        )
        assert_array_close(
            got["again"][k],
            c,
            rtol=1e-12,
            atol=1e-12,
            what=f"parameter {k}'s grad after zero_grad and one backward (not added to old ones)",
        )


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def probe_train(name, n, hidden, lr, max_epochs, seed, target):
    """train() on DATASETS[name](n, seed) with the fast backend; the history as lists."""
    import numbers

    import numba
    from minitorch import DATASETS, FastTensorBackend, train

    data = DATASETS[name](n, seed=seed)
    # One thread: on 50 points, threads only add overhead, and on a busy machine
    # each parallel kernel would wait for a free core (100 times slower).
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        history = train(
            data,
            hidden,
            lr,
            max_epochs,
            backend=FastTensorBackend,
            seed=seed,
            target_accuracy=target,
        )
    finally:
        numba.set_num_threads(threads)
    bad = [
        f"epoch {k}: loss {type(e.loss).__name__}, correct {type(e.correct).__name__}"
        for k, e in enumerate(history)
        if not isinstance(e.loss, numbers.Real) or not isinstance(e.correct, numbers.Integral)
    ]
    if bad:
        return {"bad types": bad[0]}
    return {
        "N": data.N,
        "epoch": [int(e.epoch) for e in history],
        "loss": [float(e.loss) for e in history],
        "correct": [int(e.correct) for e in history],
    }


def check_training(got, name, budget, accuracy, *, count_range=True):
    """The history of a run that must reach `accuracy` within `budget` epochs (and, with
    `count_range`, whose count of correct points lies between 0 and N in every epoch)."""
    assert "bad types" not in got, (
        f"Epoch.loss must be a float and Epoch.correct an int: {got.get('bad types')}"
    )
    epochs, loss, correct, n = got["epoch"], got["loss"], got["correct"], got["N"]
    assert epochs == list(range(1, len(epochs) + 1)), "epochs must be numbered 1, 2, 3, ..."
    assert all(math.isfinite(v) for v in loss), f"{name}: the loss became nan or infinite"
    if count_range:
        assert all(0 <= c <= n for c in correct), f"{name}: correct must be between 0 and N={n}"
    assert len(epochs) <= budget
    reached = correct[-1] / n
    assert reached >= accuracy, (
        f"{name}: {reached:.0%} of the points correct after {len(epochs)} epochs "
        f"(budget {budget}); expected at least {accuracy:.0%}. Loss went from "
        f"{loss[0]:.4f} to {loss[-1]:.4f}"
    )
    assert loss[-1] < loss[0], f"{name}: the loss did not go down ({loss[0]} -> {loss[-1]})"


#: (dataset, seed, epoch budget). The reference reaches 95% in 15 to 100 epochs.
TRAINING = [("simple", 3, 200), ("xor", 5, 800), ("split", 8, 800), ("circle", 9, 800)]


#: The training tests' time limit. Graded, the slowest takes about 10 s (it also
#: compiles the fast backend's kernels) and the others 0.1-5 s; on a host loaded
#: about five times over, the first took 76 s, past the 60 s of the other hw1.6
#: tests. 180 s holds at three times the normal load with a wide margin.
TRAINING_TIME_LIMIT_S = 180


@pytest.mark.time_limit(TRAINING_TIME_LIMIT_S)
@pytest.mark.parametrize(("name", "seed", "budget"), TRAINING, ids=[t[0] for t in TRAINING])
def test_training_reaches_95_percent(student, name, seed, budget):
    """train(DATASETS[name](50, seed), hidden=10, lr=1.0, fast backend) reaches 95% in budget."""
    got = student.run(probe_train, name, 50, 10, 1.0, budget, seed, 0.95)
    check_training(got, name, budget, 0.95)
