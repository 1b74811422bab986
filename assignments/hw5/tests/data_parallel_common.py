"""What the data-parallel tests of hw5.2, hw5.3 and hw5.4 share: the small GPT they
train, and the single-process training every data-parallel run must match.

The baseline (`probe_single_process`) uses only the given code
(`parallel/model.py`) and PyTorch: one process, the model of seed 0, the whole
global batch at each step, in float64. A data-parallel run of W ranks gives
rank r the rows `r * G/W : (r + 1) * G/W` of the same global batch of G rows.
"""

import numpy as np

#: The GPT of the tests (float64, about 7k parameters).
CONFIG = {"vocab_size": 32, "n_embd": 16, "n_head": 2, "n_layer": 2, "n_positions": 16}
#: Rows of the global batch (divisible by 1, 2, 3 and 6) and tokens per row.
GLOBAL_BATCH = 6
SEQ_LEN = 9
#: Tolerances of a data-parallel run against the baseline, in float64: the
#: averaged gradient sums the same terms in another order (relative error
#: about 1e-16 per step), which a few optimizer steps leave far below these.
STEP_TOL = {"rtol": 1e-9, "atol": 1e-12}


def probe_single_process(config, steps, optimizer, frozen, data_seed, global_batch, seq_len):
    """The flat vector of the trainable-or-not parameters (`model.parameters()`
    order) of GPT(config, float64, seed=0), before training and after each of
    `steps` steps on the whole global batch (`global_batch` rows of `seq_len` ids
    of `make_tokens(..., seed=data_seed)` per step).

    `optimizer`: "sgd" (SGD, lr 0.5, momentum 0.9) or "adamw" (AdamW, lr 0.01,
    weight decay 0.1); `frozen`: names of parameters that do not train."""
    import torch
    from parallel.model import GPT, GPTConfig, make_tokens

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only wait for the shared cores
    try:
        model = GPT(GPTConfig(**config), dtype=torch.float64, seed=0)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if optimizer == "sgd":
            opt = torch.optim.SGD(trainable, lr=0.5, momentum=0.9)
        else:
            opt = torch.optim.AdamW(trainable, lr=0.01, weight_decay=0.1)
        ids = make_tokens(global_batch * steps, seq_len, config["vocab_size"], seed=data_seed)

        def flat():
            return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()

        out = [flat()]
        for step in range(steps):
            opt.zero_grad()
            model.loss(ids[step * global_batch : (step + 1) * global_batch]).backward()
            opt.step()
            out.append(flat())
        return out
    finally:
        torch.set_num_threads(threads)


def assert_matches_single_process(per_rank, expected, what):
    """Every rank's parameters equal the baseline's before training and after each step."""
    assert len(per_rank) > 0
    for rank, steps in enumerate(per_rank):
        assert len(steps) == len(expected), f"{what}: rank {rank} reported {len(steps)} states"
        for step, (got, want) in enumerate(zip(steps, expected, strict=True)):
            when = "after wrapping" if step == 0 else f"after step {step}"
            np.testing.assert_allclose(
                got,
                want,
                **STEP_TOL,
                err_msg=f"{what}: rank {rank}'s parameters {when} differ from one process "
                "training on the whole batch",
            )
