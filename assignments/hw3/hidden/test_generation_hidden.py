"""Hidden tests of task hw3.5: the student's decoding and training step against the
reference's, through the public tests' probes.

- greedy continuations of batches of prompts of different lengths, on seeded models
  of odd sizes (vocabulary 7 or 13, 3 heads), token for token; the same with all
  logits tied (the lowest id wins);
- sampled continuations with a seed, temperature and top-k, token for token (the
  handout fixes the draws: one `rng.random(n_active)` per step);
- `masked_loss` on other batches, and with labels changed at masked positions;
- a short training run (12 `train_step`s on one batch): its losses follow the
  reference's step by step;
- `translate` of validation sentences, in batches of several sizes.
"""

import numpy as np
import pytest
from test_generation import (
    probe_greedy,
    probe_masked_loss,
    probe_sample,
    probe_train_steps,
    probe_translate,
)

pytestmark = [pytest.mark.task("hw3.5"), pytest.mark.time_limit(120)]

ODD = {"n_vocab": 13, "n_embd": 6, "n_head": 3, "n_layer": 2, "n_positions": 11}
SMALL = {"n_vocab": 7, "n_embd": 9, "n_head": 3, "n_layer": 1, "n_positions": 6}


@pytest.mark.parametrize(
    ("config", "prompts", "max_new", "eos", "seed", "zero_head"),
    [
        (ODD, [[1], [2, 3, 4], [5, 6, 7, 8, 9, 10]], 8, 2, 11, False),
        (ODD, [[0, 0, 0]], 20, None, 12, False),  # runs into n_positions
        (SMALL, [[3], [4, 5]], 10, 6, 13, False),
        (SMALL, [[1, 2], [3]], 4, None, 14, True),  # every logit tied
    ],
)
def test_greedy_equals_reference(
    student, reference, config, prompts, max_new, eos, seed, zero_head
):
    args = (config, prompts, max_new, eos, seed, zero_head)
    got = student.run(probe_greedy, *args)
    want = reference.run(probe_greedy, *args)
    assert got["together"] == want["together"], "greedy continuations differ"
    assert got["alone"] == want["alone"], "greedy continuations of single prompts differ"
    assert got["training_after"] == want["training_after"], "the training mode is not restored"


@pytest.mark.parametrize(
    ("options", "seeds"),
    [
        ({"temperature": 0.7}, [["int", 3], ["generator", 4]]),
        ({"temperature": 1.5, "top_k": 4}, [["int", 5]]),
        ({"temperature": 1.0, "top_k": 1}, [["generator", 6]]),
    ],
)
def test_sampling_equals_reference(student, reference, options, seeds):
    args = (ODD, [[1, 2], [3], [4, 5, 6]], 7, 2, options, seeds)
    assert student.run(probe_sample, *args) == reference.run(probe_sample, *args)


@pytest.mark.parametrize(
    ("pairs", "changes"),
    [
        ([7], [[0, 0, 5]]),
        ([100, 101, 102, 103, 104], [[1, 0, 9], [4, 1, 0]]),
    ],
)
def test_masked_loss_equals_reference(student, reference, pairs, changes):
    got = student.run(probe_masked_loss, pairs, changes)
    want = reference.run(probe_masked_loss, pairs, changes)
    np.testing.assert_allclose(
        got["losses"], want["losses"], rtol=1e-8, atol=1e-10, err_msg="masked_loss"
    )


def test_a_short_training_run_follows_the_reference(student, reference):
    """12 AdamW steps on one batch: every step's loss within 1e-6 of the reference's."""
    args = ([10, 20, 30, 40], 12, 5e-3)
    got = student.run(probe_train_steps, *args)
    want = reference.run(probe_train_steps, *args)
    np.testing.assert_allclose(
        got["returned"], want["returned"], rtol=1e-6, atol=1e-9, err_msg="train_step losses"
    )
    np.testing.assert_allclose(got["after"], want["after"], rtol=1e-6, err_msg="final loss")


def test_translate_equals_reference(student, reference):
    args = ([3, 1, 4, 1, 5, 9, 2], [1, 3, 7], 12)
    got = student.run(probe_translate, *args)
    want = reference.run(probe_translate, *args)
    assert got["got"] == want["got"], "translations differ from the reference's"
