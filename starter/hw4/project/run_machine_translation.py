"""Train a German -> English translator: a small `DecoderLM` on `data/hw3` (task hw3.5).

    python project/run_machine_translation.py                  # the handout's run
    python project/run_machine_translation.py --steps 60 --eval-every 0 --test-sentences 0

Each training sequence is `<bos> German <sep> English <eos>`
(`minitorch.mt_data`); the model learns next-token prediction, scored only
on the English tokens and the closing `<eos>`. To translate, the model is
given `<bos> German <sep>` and continues it greedily until `<eos>`; BLEU
compares the translations with the references.

The run prints a progress line every `--log-every` steps (step, loss, learning
rate, tokens per second, elapsed seconds), the greedy BLEU on the first
`--valid-sentences` sentences of the validation split every `--eval-every`
steps, and at the end the BLEU on the test split. It writes into `--out-dir`:
`curve.csv` (step, loss, lr, valid BLEU where measured, elapsed seconds) and
`summary.json` (the configuration and the final figures).

Speed: on the CPU (`FastTensorBackend`) numba compiles every kernel at its
first use, so the first steps take tens of seconds longer; the times printed
after them are the steady pace. `--threads N` sets numba's thread count
(default: one per core); on a machine busy with other work, `--threads 1`
is often faster, as each parallel kernel otherwise waits for a free core.
Batches group sequences of similar length and are cut to their longest
sequence, so little time goes into padding.

Tests import this file as a module: `train(config)`, `train_step`,
`masked_loss`, `translate` and `evaluate_bleu` are its functions.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python project/run_machine_translation.py` from anywhere
    sys.path.insert(0, str(ROOT))

from minitorch import mt_data  # noqa: E402
from minitorch.adamw import AdamW  # noqa: E402
from minitorch.generation import generate  # noqa: E402
from minitorch.modules_transfomer import DecoderLM  # noqa: E402
from minitorch.nn_functions import softmax_loss  # noqa: E402
from minitorch.tensor import Tensor  # noqa: E402

if TYPE_CHECKING:
    from minitorch.tensor_ops import TensorBackend
    from tokenizers import Tokenizer

__all__ = [
    "Config",
    "TrainResult",
    "batches",
    "build_model",
    "evaluate_bleu",
    "get_backend",
    "learning_rate",
    "main",
    "masked_loss",
    "to_tensor",
    "train",
    "train_step",
    "translate",
]


@dataclass
class Config:
    """Everything a run depends on; the defaults are the handout's run."""

    n_embd: int = 64
    n_head: int = 4
    n_layer: int = 2
    p_dropout: float = 0.0
    batch_size: int = 32
    steps: int = 600
    lr: float = 3e-3
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    log_every: int = 10
    eval_every: int = 100
    valid_sentences: int = 100
    test_sentences: int = 500
    train_sentences: int = 0
    eval_batch_size: int = 100
    max_new_tokens: int = mt_data.MAX_SEQ_LEN
    backend: str = "fast"
    threads: int = 0
    data_dir: str | None = None
    out_dir: str | None = "runs/machine_translation"


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: the trained model (in evaluation mode).
        history: one dict per logged step: `step`, `loss` (the mean training
            loss since the previous row), `lr`, `valid_bleu` (None where not
            measured), `elapsed` (seconds of training, evaluation excluded).
        test_bleu: the BLEU on the first `test_sentences` test pairs (None for 0).
        seconds_per_step: the median time of a training step after the first
            `min(5, steps // 2)` steps (which include numba's compilation).
    """

    model: DecoderLM
    history: list[dict[str, Any]]
    test_bleu: float | None
    seconds_per_step: float


def get_backend(name: str) -> TensorBackend:
    """The tensor backend called `name`: "fast" (numba, CPU), "simple" or "cuda"."""
    if name == "fast":
        from minitorch.fast_ops import FastTensorBackend

        return FastTensorBackend
    if name == "simple":
        from minitorch.tensor_ops import SimpleBackend

        return SimpleBackend
    if name == "cuda":
        from minitorch.cuda_kernel_ops import CudaKernelBackend

        return CudaKernelBackend
    raise ValueError(f"unknown backend {name!r}: fast, simple or cuda")


def to_tensor(values: np.ndarray, backend: TensorBackend) -> Tensor:
    """A constant float64 tensor holding the numbers of a NumPy array (ids or masks)."""
    array = np.asarray(values, dtype=np.float64)
    return Tensor.make(array.ravel().copy(), array.shape, backend=backend)


def build_model(config: Config) -> DecoderLM:
    """A fresh `DecoderLM` for the tokenizer's vocabulary, seeded by `config.seed`."""
    return DecoderLM(
        n_vocab=mt_data.VOCAB_SIZE,
        n_embd=config.n_embd,
        n_head=config.n_head,
        n_layer=config.n_layer,
        n_positions=mt_data.MAX_SEQ_LEN,
        p_dropout=config.p_dropout,
        backend=get_backend(config.backend),
        rng=config.seed,
    )


def learning_rate(step: int, config: Config) -> float:
    """The learning rate of step `step` (1, 2, ...): linear warm-up over
    `warmup_steps`, then a cosine decay to `min_lr_ratio * lr` at `steps`."""
    if step <= config.warmup_steps:
        return config.lr * step / max(1, config.warmup_steps)
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.min_lr_ratio
    return config.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def batches(
    encoded: Sequence[tuple[np.ndarray, np.ndarray]],
    batch_size: int,
    rng: np.random.Generator,
    pool_batches: int = 50,
) -> Iterator[mt_data.Batch]:
    """Endless training batches, each cut to its longest sequence.

    Each epoch shuffles the pairs, then sorts pools of `pool_batches` batches
    by length and splits them into batches (so a batch holds sequences of
    similar length and little padding), and shuffles the order of those
    batches. Every pair is used once per epoch.
    """
    lengths = np.array([len(ids) for ids, _ in encoded])
    while True:
        order = rng.permutation(len(encoded))
        pool = batch_size * pool_batches
        chunks = []
        for start in range(0, len(order), pool):
            part = order[start : start + pool]
            part = part[np.argsort(lengths[part], kind="stable")]
            chunks += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
        for index in rng.permutation(len(chunks)):
            chunk = chunks[int(index)]
            seq_len = int(lengths[chunk].max()) - 1
            yield mt_data.make_batch([encoded[int(i)] for i in chunk], seq_len)


# ---------------------------------------------------------------------------
# Training (task hw3.5)
# ---------------------------------------------------------------------------


def masked_loss(model: DecoderLM, batch: mt_data.Batch, backend: TensorBackend) -> Tensor:
    """The mean cross-entropy over the positions where `batch.label_mask` is 1:

        loss = sum_{b,t} mask[b,t] * CE(logits[b,t], labels[b,t]) / sum_{b,t} mask[b,t]

    with `logits = model(input_ids)` (shape `(B, T, n_vocab)`) and CE the
    per-position `softmax_loss` of task hw3.1. German tokens, `<sep>` and
    padding have mask 0: their labels change nothing (not even the count).
    A 1-element tensor with the graph for `backward`.

    Plan: ids, labels and the mask as tensors (`to_tensor`); the logits; the
    per-position losses; weight them by the mask divided by its sum (a
    NumPy number: no gradient flows into it) and add them all up.
    """
    logits = model(to_tensor(batch.input_ids, backend))
    losses = softmax_loss(logits, to_tensor(batch.labels, backend))
    weights = batch.label_mask / max(float(batch.label_mask.sum()), 1.0)
    return (losses * to_tensor(weights, backend)).sum()


def train_step(
    model: DecoderLM, optimizer: AdamW, batch: mt_data.Batch, backend: TensorBackend
) -> float:
    """One update of the model's parameters on `batch`; returns the loss before it.

    Plan: the masked loss, backpropagation (`backward`), `optimizer.step()`,
    then `optimizer.zero_grad()` so the next step's gradients do not add to
    these. The model is in training mode (dropout on, if any).
    """
    model.train()
    loss = masked_loss(model, batch, backend)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return float(loss.item())


def translate(
    model: DecoderLM,
    tokenizer: Tokenizer,
    sentences: Sequence[str],
    *,
    batch_size: int = 100,
    max_new_tokens: int = mt_data.MAX_SEQ_LEN,
    backend: TensorBackend | None = None,
) -> list[str]:
    """Greedy translations of German `sentences` into English, in order.

    Plan: for each group of `batch_size` sentences, the prompts
    `<bos> German <sep>` (`mt_data.encode_prompt`), greedy `generate` until
    `<eos>` (at most `max_new_tokens` tokens, and never more than the model's
    `n_positions` in all), and the text of each continuation
    (`mt_data.decode_target`).
    """
    out: list[str] = []
    for start in range(0, len(sentences), batch_size):
        prompts = [
            mt_data.encode_prompt(tokenizer, de) for de in sentences[start : start + batch_size]
        ]
        continuations = generate(model, prompts, max_new_tokens, mt_data.EOS_ID, backend=backend)
        out += [mt_data.decode_target(tokenizer, ids) for ids in continuations]
    return out


def evaluate_bleu(
    model: DecoderLM,
    tokenizer: Tokenizer,
    pairs: Sequence[dict[str, str]],
    *,
    batch_size: int = 100,
    max_new_tokens: int = mt_data.MAX_SEQ_LEN,
    backend: TensorBackend | None = None,
) -> tuple[float, list[str]]:
    """Corpus BLEU of the greedy translations of `pairs` (and the translations)."""
    hypotheses = translate(
        model,
        tokenizer,
        [pair["de"] for pair in pairs],
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        backend=backend,
    )
    return mt_data.bleu(hypotheses, [pair["en"] for pair in pairs]), hypotheses


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def train(config: Config, log: Callable[[str], None] | None = print) -> TrainResult:
    """Train a fresh model as `config` says (see the module's docstring).

    Returns the model, the history of logged steps, the test BLEU and the
    steady time per step. Writes `curve.csv` and `summary.json` into
    `config.out_dir` unless it is None or empty; prints through `log` unless None.
    """
    say = log if log is not None else (lambda _: None)
    backend = get_backend(config.backend)
    if config.threads > 0:
        import numba

        numba.set_num_threads(config.threads)
    tokenizer = mt_data.load_tokenizer(config.data_dir)
    train_pairs = mt_data.load_pairs("train", config.data_dir)
    if config.train_sentences > 0:
        train_pairs = train_pairs[: config.train_sentences]
    valid_pairs = mt_data.load_pairs("valid", config.data_dir)[: config.valid_sentences]
    test_pairs = mt_data.load_pairs("test", config.data_dir)[: config.test_sentences]
    encoded = mt_data.encode_pairs(tokenizer, train_pairs)
    model = build_model(config)
    optimizer = AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    stream = batches(encoded, config.batch_size, np.random.default_rng(config.seed))
    n_params = sum(p.value.size for p in model.parameters())
    say(
        f"model: n_embd={config.n_embd} n_head={config.n_head} n_layer={config.n_layer} "
        f"({n_params} parameters), batch {config.batch_size}, {config.steps} steps, "
        f"backend {config.backend}"
    )

    def bleu_of(pairs: Sequence[dict[str, str]]) -> float:
        score, _ = evaluate_bleu(
            model,
            tokenizer,
            pairs,
            batch_size=config.eval_batch_size,
            max_new_tokens=config.max_new_tokens,
            backend=backend,
        )
        return score

    history: list[dict[str, Any]] = []
    step_times: list[float] = []
    elapsed = 0.0
    losses: list[float] = []
    tokens = 0
    window = 0.0
    for step in range(1, config.steps + 1):
        batch = next(stream)
        optimizer.lr = learning_rate(step, config)
        start = time.perf_counter()
        losses.append(train_step(model, optimizer, batch, backend))
        spent = time.perf_counter() - start
        step_times.append(spent)
        elapsed += spent
        window += spent
        tokens += int((batch.input_ids != mt_data.PAD_ID).sum())
        evaluate = config.eval_every > 0 and (step % config.eval_every == 0 or step == config.steps)
        if step % config.log_every == 0 or step == config.steps or evaluate:
            row: dict[str, Any] = {
                "step": step,
                "loss": float(np.mean(losses)),
                "lr": optimizer.lr,
                "valid_bleu": None,
                "elapsed": elapsed,
            }
            say(
                f"step {step:5d}  loss {row['loss']:.4f}  lr {optimizer.lr:.2e}  "
                f"{tokens / max(window, 1e-9):8.0f} tokens/s  {elapsed:7.1f} s"
            )
            if evaluate and config.valid_sentences > 0:
                start = time.perf_counter()
                row["valid_bleu"] = bleu_of(valid_pairs)
                say(
                    f"step {step:5d}  valid BLEU {row['valid_bleu']:.2f} "
                    f"({len(valid_pairs)} sentences, {time.perf_counter() - start:.1f} s)"
                )
            history.append(row)
            losses, tokens, window = [], 0, 0.0
    model.eval()
    test_bleu = None
    if config.test_sentences > 0:
        start = time.perf_counter()
        test_bleu = bleu_of(test_pairs)
        say(
            f"test BLEU {test_bleu:.2f} ({len(test_pairs)} sentences, "
            f"{time.perf_counter() - start:.1f} s)"
        )
    warm = min(5, len(step_times) // 2)
    per_step = float(np.median(step_times[warm:])) if step_times else 0.0
    say(f"training: {elapsed:.1f} s, {per_step:.3f} s per step after the first {warm}")
    result = TrainResult(model, history, test_bleu, per_step)
    if config.out_dir:
        save(result, config)
    return result


def save(result: TrainResult, config: Config) -> None:
    """Write `curve.csv` and `summary.json` into `config.out_dir`."""
    folder = Path(config.out_dir or ".")
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "curve.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["step", "loss", "lr", "valid_bleu", "elapsed"])
        writer.writeheader()
        for row in result.history:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    summary = {
        "config": asdict(config),
        "test_bleu": result.test_bleu,
        "seconds_per_step": result.seconds_per_step,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "valid_bleu": [r["valid_bleu"] for r in result.history if r["valid_bleu"] is not None],
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """A `Config` from command-line options (`--n-embd 64`, ...; see `--help`)."""
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for item in fields(Config):
        flag = "--" + item.name.replace("_", "-")
        value = getattr(defaults, item.name)
        kind = type(value) if value is not None else str
        parser.add_argument(flag, type=kind, default=value, help=f"default: {value}")
    return Config(**vars(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> None:
    """Train with the command line's configuration."""
    train(parse_args(argv))


if __name__ == "__main__":
    main()
