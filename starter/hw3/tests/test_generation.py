"""Public tests of task hw3.5: decoding (minitorch/generation.py) and the
training script (project/run_machine_translation.py).

What is checked:

- greedy `generate` on small seeded `DecoderLM`s: every new token is the
  argmax of the model's own logits (in evaluation mode, recomputed here from
  the logits of the whole sequence) at the position before it; ties go to
  the lowest id; prompts of different lengths continued together give what
  each gives alone; the model's training mode is restored afterwards;
- stopping: at `eos_id` (included in the continuation), after
  `max_new_tokens`, and when prompt + continuation reach `n_positions`;
- sampling: the same seed gives the same samples (an int seed and a
  `numpy.random.Generator` of that seed alike), another seed other samples;
  `top_k=1` is greedy; the frequencies of 4000 draws of one token follow
  `softmax(logits / T)` (T = 0.5 and 2), and with `top_k=3` the renormalized
  softmax of the 3 largest logits: every id within 5 standard deviations of
  its probability, ids outside the top 3 never drawn;
- `masked_loss` of the script equals the mean cross-entropy over the English
  positions computed with NumPy from the model's logits, and changing the
  label of a German or a padding position changes nothing;
- `train_step` returns the loss before the update and, repeated on one
  batch, lowers it by at least a fifth in 8 steps;
- `translate` gives, for each German sentence, the text of the greedy
  continuation of `<bos> German <sep>` up to `<eos>`, whatever its batch size;
  `train` runs a tiny configuration end to end.

The script is imported as a module from `project/run_machine_translation.py`
next to the `minitorch` package; its `Config`, `build_model`, `masked_loss`,
`train_step`, `translate` and `train` are what the tests call.

The larger tests use the fast backend: numba compiles its kernels on their
first use, which takes 10 to 20 s once. Run them with
`pytest tests/test_generation.py`.
"""

import math

import numpy as np
import pytest

pytestmark = [pytest.mark.task("hw3.5"), pytest.mark.time_limit(120)]

TINY = {"n_vocab": 12, "n_embd": 8, "n_head": 2, "n_layer": 1, "n_positions": 16}


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_greedy(config, prompts, max_new_tokens, eos_id, seed, zero_head):
    """A seeded DecoderLM(**config, p_dropout=0.3) on SimpleBackend in training
    mode (lm_head zeroed when `zero_head`: every logit ties), greedy
    continuations of `prompts` together and one by one, the training flag
    after the calls, and the eval-mode logits of every prompt + continuation."""
    from minitorch import SimpleBackend, Tensor
    from minitorch.generation import generate
    from minitorch.modules_transfomer import DecoderLM

    model = DecoderLM(**config, p_dropout=0.3, backend=SimpleBackend, rng=seed)
    if zero_head:
        w = model.lm_head.weights.value
        model.lm_head.weights.update(Tensor.make([0.0] * w.size, w.shape, backend=SimpleBackend))
    together = generate(model, prompts, max_new_tokens, eos_id)
    training_after = bool(model.training)
    alone = [generate(model, [p], max_new_tokens, eos_id)[0] for p in prompts]
    model.eval()
    logits = []
    for prompt, cont in zip(prompts, together, strict=True):
        seq = [float(t) for t in list(prompt) + list(cont)]
        ids = Tensor.make(seq, (1, len(seq)), backend=SimpleBackend)
        logits.append(model(ids).to_numpy()[0])
    return {
        "together": [[int(t) for t in c] for c in together],
        "alone": [[int(t) for t in c] for c in alone],
        "training_after": training_after,
        "logits": logits,
    }


def probe_lengths(config, prompt_lengths, max_new_tokens):
    """The number of greedy tokens (eos_id None) after prompts of the given
    lengths, one call each, on a seeded DecoderLM; "ValueError" where
    generate raises one."""
    from minitorch import SimpleBackend
    from minitorch.generation import generate
    from minitorch.modules_transfomer import DecoderLM

    model = DecoderLM(**config, p_dropout=0.0, backend=SimpleBackend, rng=3)
    out = []
    for n in prompt_lengths:
        try:
            out.append(len(generate(model, [[1] * n], max_new_tokens, None)[0]))
        except ValueError:
            out.append("ValueError")
    return out


def probe_sample(config, prompts, max_new_tokens, eos_id, options, seed_kinds):
    """Sampled continuations on a seeded DecoderLM (SimpleBackend), once per
    entry of `seed_kinds`: ["int", s] passes rng=s, ["generator", s] passes
    numpy.random.default_rng(s)."""
    import numpy as np
    from minitorch import SimpleBackend
    from minitorch.generation import generate
    from minitorch.modules_transfomer import DecoderLM

    model = DecoderLM(**config, p_dropout=0.0, backend=SimpleBackend, rng=1)
    runs = []
    for kind, seed in seed_kinds:
        rng = seed if kind == "int" else np.random.default_rng(seed)
        out = generate(model, prompts, max_new_tokens, eos_id, rng=rng, **options)
        runs.append([[int(t) for t in c] for c in out])
    return runs


def probe_frequencies(prompt, n, temperature, top_k, seed):
    """One sampled token after `prompt`, `n` times (one call, n copies of the
    prompt, max_new_tokens 1), on a seeded 6-token DecoderLM (fast backend)
    whose head is scaled by 6 (logits spread over several units); also the
    model's logits after the prompt."""
    import numba

    # Small kernels: on a busy machine a second thread only waits for a core.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        import numpy as np
        from minitorch import FastTensorBackend, Tensor
        from minitorch.generation import generate
        from minitorch.modules_transfomer import DecoderLM

        backend = FastTensorBackend
        model = DecoderLM(6, 8, 2, 1, 8, p_dropout=0.0, backend=backend, rng=4)
        w = model.lm_head.weights.value
        model.lm_head.weights.update(
            Tensor.make((w.to_numpy() * 6.0).ravel(), w.shape, backend=backend)
        )
        out = generate(
            model,
            [list(prompt)] * n,
            1,
            None,
            temperature=temperature,
            top_k=top_k,
            rng=np.random.default_rng(seed),
        )
        ids = Tensor.make([float(t) for t in prompt], (1, len(prompt)), backend=backend)
        model.eval()
        return {
            "tokens": [int(c[0]) if len(c) == 1 else -1 for c in out],
            "logits": model(ids).to_numpy()[0, -1],
        }
    finally:
        numba.set_num_threads(threads)


def probe_masked_loss(pair_numbers, changes):
    """On a seeded small model (fast backend) and a batch of training pairs:
    the logits, the batch, and masked_loss for the batch as it is and with
    each change [row, col, new_label] of `changes` applied alone."""
    import numba

    # Small kernels: on a busy machine a second thread only waits for a core.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from dataclasses import replace

        from minitorch import mt_data

        mt = mt_data.load_script()

        config = mt.Config(n_embd=16, n_head=2, n_layer=1, seed=5, backend="fast")
        model = mt.build_model(config)
        backend = mt.get_backend("fast")
        tokenizer = mt_data.load_tokenizer()
        pairs = mt_data.load_pairs("train")
        encoded = mt_data.encode_pairs(tokenizer, [pairs[i] for i in pair_numbers])
        batch = mt_data.make_batch(encoded, max(len(ids) for ids, _ in encoded) - 1)
        losses = [float(mt.masked_loss(model, batch, backend).item())]
        for row, col, label in changes:
            labels = batch.labels.copy()
            labels[row, col] = label
            changed = replace(batch, labels=labels)
            losses.append(float(mt.masked_loss(model, changed, backend).item()))
        model.eval()
        logits = model(mt.to_tensor(batch.input_ids, backend)).to_numpy()
        return {
            "losses": losses,
            "logits": logits,
            "labels": batch.labels,
            "mask": batch.label_mask,
        }
    finally:
        numba.set_num_threads(threads)


def probe_train_steps(pair_numbers, steps, lr):
    """`steps` train_steps of AdamW(lr) on one fixed batch (fast backend,
    small seeded model): the returned losses, the masked loss before the
    first step and after the last."""
    import numba

    # Small kernels: on a busy machine a second thread only waits for a core.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from minitorch import mt_data
        from minitorch.adamw import AdamW

        mt = mt_data.load_script()

        config = mt.Config(n_embd=16, n_head=2, n_layer=1, seed=6, backend="fast")
        model = mt.build_model(config)
        backend = mt.get_backend("fast")
        tokenizer = mt_data.load_tokenizer()
        pairs = mt_data.load_pairs("train")
        encoded = mt_data.encode_pairs(tokenizer, [pairs[i] for i in pair_numbers])
        batch = mt_data.make_batch(encoded, max(len(ids) for ids, _ in encoded) - 1)
        before = float(mt.masked_loss(model, batch, backend).item())
        optimizer = AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        returned = [mt.train_step(model, optimizer, batch, backend) for _ in range(steps)]
        after = float(mt.masked_loss(model, batch, backend).item())
        return {"before": before, "returned": [float(x) for x in returned], "after": after}
    finally:
        numba.set_num_threads(threads)


def probe_translate(sentence_numbers, batch_sizes, max_new_tokens):
    """translate() of valid sentences with a seeded small untrained model
    (fast backend), once per batch size, and the text of greedy `generate`
    continuations of the same prompts, computed here."""
    import numba

    # Small kernels: on a busy machine a second thread only waits for a core.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from minitorch import mt_data
        from minitorch.generation import generate

        mt = mt_data.load_script()

        config = mt.Config(n_embd=16, n_head=2, n_layer=1, seed=7, backend="fast")
        model = mt.build_model(config)
        tokenizer = mt_data.load_tokenizer()
        pairs = mt_data.load_pairs("valid")
        sentences = [pairs[i]["de"] for i in sentence_numbers]
        prompts = [mt_data.encode_prompt(tokenizer, de) for de in sentences]
        expected = [
            mt_data.decode_target(tokenizer, ids)
            for ids in generate(model, prompts, max_new_tokens, mt_data.EOS_ID)
        ]
        got = [
            mt.translate(model, tokenizer, sentences, batch_size=b, max_new_tokens=max_new_tokens)
            for b in batch_sizes
        ]
        return {"expected": expected, "got": got}
    finally:
        numba.set_num_threads(threads)


def probe_train_run(steps):
    """train() of a tiny configuration: its history and test BLEU."""
    import numba

    # Small kernels: on a busy machine a second thread only waits for a core.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from minitorch import mt_data

        mt = mt_data.load_script()

        config = mt.Config(
            n_embd=16,
            n_head=2,
            n_layer=1,
            batch_size=8,
            steps=steps,
            log_every=1,
            eval_every=steps,
            valid_sentences=3,
            test_sentences=3,
            train_sentences=64,
            max_new_tokens=6,
            out_dir=None,
        )
        result = mt.train(config, log=None)
        return {"history": result.history, "test_bleu": result.test_bleu}
    finally:
        numba.set_num_threads(threads)


# ---------------------------------------------------------------------------
# Greedy decoding and stopping
# ---------------------------------------------------------------------------


def check_argmax(prompts, continuations, logits):
    """Each new token is the argmax (lowest id among ties) of the logits at the
    position before it."""
    for b, (prompt, cont) in enumerate(zip(prompts, continuations, strict=True)):
        rows = np.asarray(logits[b])
        for i, token in enumerate(cont):
            position = len(prompt) + i - 1
            best = int(np.argmax(rows[position]))
            assert token == best, (
                f"prompt {b}, new token {i}: got {token}, but the largest logit "
                f"is that of {best} ({rows[position].round(4).tolist()})"
            )


def test_greedy_is_the_argmax_of_the_model(student):
    prompts = [[1, 5, 7], [1], [1, 9, 3, 3, 2]]
    got = student.run(probe_greedy, TINY, prompts, 6, None, 0, False)
    assert [len(c) for c in got["together"]] == [6, 6, 6], got["together"]
    check_argmax(prompts, got["together"], got["logits"])
    assert got["together"] == got["alone"], "prompts continued together differ from alone"
    assert got["training_after"] is True, "generate must restore the model's training mode"


def test_greedy_ties_go_to_the_lowest_id(student):
    got = student.run(probe_greedy, TINY, [[1, 2], [3]], 4, None, 0, True)
    assert got["together"] == [[0] * 4, [0] * 4], (
        f"with every logit equal, greedy picks id 0; got {got['together']}"
    )


def test_generation_stops_at_eos(student):
    prompts = [[1, 5, 7], [1, 4]]
    free = student.run(probe_greedy, TINY, prompts, 10, None, 2, False)["together"]
    # The eos token: one the first continuation emits, first at index >= 1.
    first = {}
    for i, token in enumerate(free[0]):
        first.setdefault(token, i)
    candidates = [t for t, i in first.items() if i >= 1]
    assert candidates, f"test setup: the continuation {free[0]} repeats one token"
    eos = candidates[0]
    got = student.run(probe_greedy, TINY, prompts, 10, eos, 2, False)
    for b, cont in enumerate(free):
        expected = cont[: cont.index(eos) + 1] if eos in cont else cont
        assert got["together"][b] == expected, (
            f"prompt {b} with eos_id {eos}: expected {expected} (up to and including the "
            f"first eos), got {got['together'][b]}"
        )


def test_length_limits(student):
    config = {**TINY, "n_positions": 8}
    got = student.run(probe_lengths, config, [1, 5, 7, 8, 9], 4)
    assert got == [4, 3, 1, 0, "ValueError"], (
        "with n_positions 8 and max_new_tokens 4, prompts of 1, 5, 7, 8 tokens get "
        f"4, 3, 1, 0 new tokens and one of 9 raises ValueError; got {got}"
    )
    assert student.run(probe_lengths, config, [3], 0) == [0], "max_new_tokens=0 adds nothing"


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


def test_sampling_is_seeded(student):
    prompts = [[1, 2, 3], [1], [1, 7]]
    kinds = [["int", 11], ["int", 11], ["generator", 11], ["int", 12]]
    runs = student.run(
        probe_sample, TINY, prompts, 8, None, {"temperature": 1.5, "top_k": None}, kinds
    )
    assert runs[0] == runs[1], "the same seed must give the same samples"
    assert runs[0] == runs[2], "rng=11 and rng=numpy.random.default_rng(11) must agree"
    assert runs[0] != runs[3], "seeds 11 and 12 gave the same 24 samples"
    assert all(len(c) == 8 for c in runs[0])


def test_top_k_one_is_greedy(student):
    prompts = [[1, 2, 3], [1]]
    sampled = student.run(
        probe_sample, TINY, prompts, 8, None, {"temperature": 1.5, "top_k": 1}, [["int", 0]]
    )[0]
    greedy = student.run(
        probe_sample, TINY, prompts, 8, None, {"temperature": 0.0, "top_k": None}, [["int", 0]]
    )[0]
    assert sampled == greedy


def expected_distribution(logits, temperature, top_k):
    z = np.asarray(logits, dtype=float) / temperature
    if top_k is not None:
        keep = np.argsort(-z, kind="stable")[:top_k]
        z = np.where(np.isin(np.arange(len(z)), keep), z, -np.inf)
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize(("temperature", "top_k"), [(0.5, None), (2.0, None), (1.0, 3)])
def test_sampling_frequencies_follow_the_softmax(student, temperature, top_k):
    n = 4000
    got = student.run(probe_frequencies, [1, 3, 2], n, temperature, top_k, 21)
    p = expected_distribution(got["logits"], temperature, top_k)
    # The test can tell a wrong temperature apart: softmax(logits) differs by far more.
    wrong = expected_distribution(got["logits"], 1.0 if temperature != 1.0 else 3.0, None)
    sigma = np.sqrt(np.maximum(p * (1 - p), 1e-12) / n)
    assert np.max(np.abs(wrong - p) / sigma) > 10, "test setup: logits too flat"
    tokens = np.asarray(got["tokens"])
    assert tokens.shape == (n,) and np.all((tokens >= 0) & (tokens < 6)), (
        "every prompt gets exactly one token in [0, 6)"
    )
    freq = np.bincount(tokens, minlength=6) / n
    for token in range(6):
        if p[token] == 0.0:
            assert freq[token] == 0.0, f"token {token} is outside the top {top_k} but was drawn"
        else:
            assert abs(freq[token] - p[token]) <= 5 * sigma[token], (
                f"temperature {temperature}, top_k {top_k}: token {token} drawn with "
                f"frequency {freq[token]:.4f}, expected {p[token]:.4f} "
                f"(bound {5 * sigma[token]:.4f}); all: {freq.round(4)} vs {p.round(4)}"
            )


# ---------------------------------------------------------------------------
# The training script
# ---------------------------------------------------------------------------

PAIRS = [3, 10, 42, 77]


def test_masked_loss_is_the_mean_over_english_positions(student):
    base = student.run(probe_masked_loss, PAIRS, [])
    mask = np.asarray(base["mask"])
    labels = np.asarray(base["labels"])
    logits = np.asarray(base["logits"])
    assert logits.shape == (*labels.shape, 1000)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    expected = -(picked * mask).sum() / mask.sum()
    assert math.isclose(base["losses"][0], expected, rel_tol=1e-9), (
        f"masked loss {base['losses'][0]}, expected the mean cross-entropy over the "
        f"{int(mask.sum())} English positions: {expected}"
    )
    # Labels with mask 0: the first German label of every row, and a padding
    # position of every row that has one; then one English label.
    changes = []
    for row in range(mask.shape[0]):
        zero = np.flatnonzero(mask[row] == 0)
        one = np.flatnonzero(mask[row] == 1)
        changes.append([row, int(zero[0]), 7])  # a German position
        if zero[-1] > one[-1]:
            changes.append([row, int(zero[-1]), 9])  # padding after <eos>
    english = [0, int(np.flatnonzero(mask[0] == 1)[0]), 11]
    assert any(c[1] > np.flatnonzero(mask[c[0]] == 1)[-1] for c in changes), (
        "test setup: no padding position in the batch"
    )
    got = student.run(probe_masked_loss, PAIRS, [*changes, english])
    for change, loss in zip(changes, got["losses"][1:-1], strict=True):
        assert loss == pytest.approx(got["losses"][0], rel=1e-12, abs=1e-12), (
            f"changing the label at row {change[0]}, position {change[1]} (mask 0) "
            f"changed the loss from {got['losses'][0]} to {loss}"
        )
    assert abs(got["losses"][-1] - got["losses"][0]) > 1e-6, (
        "changing an English label must change the loss"
    )


def test_train_step_lowers_the_loss(student):
    got = student.run(probe_train_steps, PAIRS, 8, 1e-2)
    returned = got["returned"]
    assert len(returned) == 8
    assert returned[0] == pytest.approx(got["before"], rel=1e-9), (
        "train_step returns the loss before its update"
    )
    assert got["after"] < returned[-1] < returned[0], returned
    assert got["after"] < 0.8 * got["before"], (
        f"8 steps on one batch took the loss from {got['before']:.3f} to {got['after']:.3f}"
    )


def test_translate_decodes_greedy_continuations(student):
    numbers = [0, 1, 2, 5, 8]
    got = student.run(probe_translate, numbers, [100, 2], 6)
    assert all(isinstance(t, str) for t in got["expected"])
    for b, texts in zip([100, 2], got["got"], strict=True):
        assert texts == got["expected"], f"translate(batch_size={b})"


def test_train_runs_end_to_end(student):
    got = student.run(probe_train_run, 4)
    history = got["history"]
    assert [row["step"] for row in history] == [1, 2, 3, 4]
    assert all(math.isfinite(row["loss"]) for row in history)
    assert history[-1]["valid_bleu"] is not None and 0 <= history[-1]["valid_bleu"] <= 100
    assert got["test_bleu"] is not None and 0 <= got["test_bleu"] <= 100
