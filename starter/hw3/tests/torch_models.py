"""PyTorch (CPU, float64) versions of the hw3 layers, the yardstick of the tests.

Each function takes a dict `params` of PyTorch tensors named as miniTorch's
`Module.named_parameters()` names them (`"ln_1.weights"`, `"attention.q_projection.bias"`,
...) and a `prefix` (the module's path, "" at the top), and computes what the
miniTorch module of the same name computes. Shared by the public and hidden tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def as_torch(values, requires_grad=False):
    """A float64 PyTorch tensor with a copy of `values`."""
    return torch.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


def torch_params(named, requires_grad=True):
    """{name: float64 leaf tensor} from {name: NumPy array}."""
    return {name: as_torch(value, requires_grad) for name, value in named.items()}


def assert_close(actual, expected, *, rtol, atol, what):
    """assert_allclose with the shapes checked first and a message naming `what`
    (`actual` from a probe, `expected` a NumPy array or a PyTorch tensor)."""
    assert actual is not None, f"{what}: got None"
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (
        f"{what}: expected shape {expected.shape}, got {actual.shape}"
    )
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def assert_grads_close(got, params, *, rtol, atol, what):
    """Every parameter's gradient from a probe (`got`: name -> array or None)
    against the `.grad` of the PyTorch leaf of the same name."""
    assert set(got) == set(params), (
        f"{what}: parameters named {sorted(got)}, expected {sorted(params)}"
    )
    for name, leaf in params.items():
        expected = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        assert got[name] is not None, f"{what}: parameter {name!r} got no gradient"
        assert_close(got[name], expected, rtol=rtol, atol=atol, what=f"{what}: grad of {name}")


def _name(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def linear(x, params, prefix):
    """x @ weights + bias (no bias when the parameter is absent)."""
    out = x @ params[_name(prefix, "weights")]
    bias = params.get(_name(prefix, "bias"))
    return out if bias is None else out + bias


def layer_norm(x, params, prefix, eps):
    weight = params[_name(prefix, "weights")]
    return F.layer_norm(x, (weight.shape[0],), weight, params[_name(prefix, "bias")], eps)


def blocked_keys(batch, seq_len, causal, key_padding_mask, device=None):
    """Boolean (batch, 1, T, T): True where query i may not look at key j."""
    blocked = torch.zeros(batch, 1, seq_len, seq_len, dtype=torch.bool, device=device)
    if causal:
        blocked |= torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu(1)
    if key_padding_mask is not None:
        pads = torch.as_tensor(np.asarray(key_padding_mask) != 0, device=device)
        blocked |= pads[:, None, None, :]
    return blocked


def attention(x, params, prefix, n_head, causal=True, key_padding_mask=None):
    """Multi-head self-attention of x (B, T, C), masked with -inf (rows must keep a key)."""
    batch, seq_len, n_embd = x.shape
    head = n_embd // n_head

    def heads(t):
        return t.view(batch, seq_len, n_head, head).transpose(1, 2)

    q = heads(linear(x, params, _name(prefix, "q_projection")))
    k = heads(linear(x, params, _name(prefix, "k_projection")))
    v = heads(linear(x, params, _name(prefix, "v_projection")))
    scores = q @ k.transpose(-2, -1) / math.sqrt(head)
    blocked = blocked_keys(batch, seq_len, causal, key_padding_mask, x.device)
    scores = scores.masked_fill(blocked, -math.inf)
    out = torch.softmax(scores, dim=-1) @ v
    out = out.transpose(1, 2).reshape(batch, seq_len, n_embd)
    return linear(out, params, _name(prefix, "out_projection"))


def feed_forward(x, params, prefix):
    hidden = F.gelu(linear(x, params, _name(prefix, "linear_in")), approximate="tanh")
    return linear(hidden, params, _name(prefix, "linear_out"))


def transformer_layer(x, params, prefix, n_head, eps, key_padding_mask=None):
    x = x + attention(
        layer_norm(x, params, _name(prefix, "ln_1"), eps),
        params,
        _name(prefix, "attention"),
        n_head,
        True,
        key_padding_mask,
    )
    return x + feed_forward(
        layer_norm(x, params, _name(prefix, "ln_2"), eps), params, _name(prefix, "ff")
    )


def decoder_lm(idx, params, n_head, n_layer, eps, key_padding_mask=None):
    """Logits (B, T, V) of token ids idx (B, T) (a NumPy array of whole numbers)."""
    table = params["token_embeddings.weights"]
    idx = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=table.device)
    seq_len = idx.shape[1]
    x = table[idx] + params["position_embeddings.weights"][:seq_len][None]
    for i in range(n_layer):
        x = transformer_layer(x, params, f"layer_{i}", n_head, eps, key_padding_mask)
    return linear(layer_norm(x, params, "ln", eps), params, "lm_head")
