"""German -> English data for the translator of hw3: pairs, tokenizer, batches, BLEU.

The corpus lies in `data/hw3/` at the root of this repository:

- `train.jsonl` (20000 pairs), `valid.jsonl` (500), `test.jsonl` (500): one
  `{"de": ..., "en": ...}` object per line. The sentences are numbers, dates,
  times, prices, ages and durations written out in words, e.g.
  "am dritten Mai um halb vier" -> "on the third of May at half past three".
  No value tuple (template and numbers) of valid or test occurs in train.
- `tokenizer.json`: a byte-level BPE shared by both languages, 1000 tokens;
  ids 0..4 are the special tokens `<pad>`, `<bos>`, `<eos>`, `<unk>`, `<sep>`.
  `decode(encode(text)) == text` for every sentence.

A pair becomes one sequence for a decoder-only language model:

    <bos> de-tokens <sep> en-tokens <eos>

Over all three splits the German side is at most 21 tokens, the English side
at most 26, and a whole sequence at most `MAX_SEQ_LEN` = 48 tokens.

Training is next-token prediction on that sequence: the model reads
`input_ids = seq[:-1]` and is scored on `labels = seq[1:]`, but only where
`label_mask` is 1, i.e. on the English tokens and the final `<eos>` (the
German side is given, never predicted). Batches are padded on the right with
`<pad>` to a fixed length; padded positions have `label_mask` 0 and, being
after every real token, are never attended to by a real token under a causal
mask. At test time the model is given `encode_prompt(de)` and continues it
until `<eos>`; `decode_target` turns the continuation back into text, and
`bleu` scores a list of such translations against the references.

Everything returned is plain Python or numpy (`int64` ids, `float64`
masks); converting to miniTorch tensors is up to the caller.

This file is given.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "BOS_ID",
    "DATA_DIR",
    "EOS_ID",
    "MAX_SEQ_LEN",
    "PAD_ID",
    "SEP_ID",
    "SPLITS",
    "UNK_ID",
    "VOCAB_SIZE",
    "Batch",
    "bleu",
    "decode_target",
    "encode_pair",
    "encode_pairs",
    "encode_prompt",
    "iterate_batches",
    "load_pairs",
    "load_tokenizer",
    "make_batch",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "hw3"
SCRIPT = Path(__file__).resolve().parent.parent / "project" / "run_machine_translation.py"
SPLITS = ("train", "valid", "test")

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
UNK_ID = 3
SEP_ID = 4
VOCAB_SIZE = 1000
# Longest `<bos> de <sep> en <eos>` over train, valid and test, in tokens.
MAX_SEQ_LEN = 48

Encoded = tuple[np.ndarray, np.ndarray]


def _folder(root: str | Path | None) -> Path:
    return DATA_DIR if root is None else Path(root)


def load_pairs(split: str, root: str | Path | None = None) -> list[dict[str, str]]:
    """The pairs of one split, in file order: `[{"de": ..., "en": ...}, ...]`.

    Args:
        split: "train", "valid" or "test".
        root: the folder holding the `.jsonl` files (default `DATA_DIR`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    pairs: list[dict[str, str]] = []
    path = _folder(root) / f"{split}.jsonl"
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            row = json.loads(line)
            if not (isinstance(row, dict) and isinstance(row.get("de"), str)):
                raise ValueError(f"{path}:{number}: expected an object with strings de, en")
            if not isinstance(row.get("en"), str):
                raise ValueError(f"{path}:{number}: expected an object with strings de, en")
            pairs.append({"de": row["de"], "en": row["en"]})
    return pairs


def load_tokenizer(root: str | Path | None = None) -> Tokenizer:
    """The shared BPE tokenizer (`tokenizers.Tokenizer`) from `root/tokenizer.json`.

    `tokenizer.encode(text).ids` gives the token ids of a text (no special
    tokens are added), `tokenizer.decode(ids)` the text back.
    """
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_folder(root) / "tokenizer.json"))


def encode_pair(tokenizer: Tokenizer, de: str, en: str) -> Encoded:
    """One training sequence and its loss mask.

    Returns `(ids, mask)`, both of shape `(n,)`: `ids` is
    `<bos> de <sep> en <eos>` (`int64`), `mask[i]` is 1.0 where `ids[i]` is an
    English token or the final `<eos>` (the tokens the model must predict),
    0.0 elsewhere.
    """
    de_ids = tokenizer.encode(de).ids
    en_ids = tokenizer.encode(en).ids
    ids = [BOS_ID, *de_ids, SEP_ID, *en_ids, EOS_ID]
    mask = np.zeros(len(ids), dtype=np.float64)
    mask[len(de_ids) + 2 :] = 1.0
    return np.asarray(ids, dtype=np.int64), mask


def encode_pairs(tokenizer: Tokenizer, pairs: Sequence[dict[str, str]]) -> list[Encoded]:
    """`encode_pair` for every pair of a split (tokenize once, batch many times)."""
    return [encode_pair(tokenizer, pair["de"], pair["en"]) for pair in pairs]


def encode_prompt(tokenizer: Tokenizer, de: str) -> np.ndarray:
    """The start of a sequence to translate `de`: `<bos> de <sep>` (`int64`)."""
    return np.asarray([BOS_ID, *tokenizer.encode(de).ids, SEP_ID], dtype=np.int64)


def decode_target(tokenizer: Tokenizer, ids: Sequence[int] | np.ndarray) -> str:
    """Text of generated English ids: everything before the first `<eos>`.

    `ids` is the continuation after `<sep>` (not the prompt); other special
    tokens in it are dropped.
    """
    tokens = [int(i) for i in ids]
    if EOS_ID in tokens:
        tokens = tokens[: tokens.index(EOS_ID)]
    return tokenizer.decode(tokens, skip_special_tokens=True)


@dataclass(frozen=True)
class Batch:
    """A padded batch of `B` sequences for next-token prediction.

    Attributes:
        input_ids: `(B, T)` int64, `seq[:-1]` padded with `PAD_ID`.
        labels: `(B, T)` int64, `seq[1:]` padded with `PAD_ID`: `labels[b, t]`
            is the token to predict after reading `input_ids[b, : t + 1]`.
        label_mask: `(B, T)` float64, 1.0 where `labels` is an English token
            or the closing `<eos>`, 0.0 on German tokens, `<sep>` and padding.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    label_mask: np.ndarray


def make_batch(encoded: Sequence[Encoded], seq_len: int = MAX_SEQ_LEN - 1) -> Batch:
    """Pad encoded pairs (from `encode_pair`) into one `Batch` of length `seq_len`.

    A sequence of `n` tokens gives `n - 1` inputs, so every sequence needs
    `n - 1 <= seq_len`; a longer one raises `ValueError` rather than being cut
    (a cut sequence would lose its `<eos>`). The default fits every pair of
    the corpus.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, not {seq_len}")
    if len(encoded) == 0:
        raise ValueError("cannot make a batch of no sequences")
    input_ids = np.full((len(encoded), seq_len), PAD_ID, dtype=np.int64)
    labels = np.full((len(encoded), seq_len), PAD_ID, dtype=np.int64)
    label_mask = np.zeros((len(encoded), seq_len), dtype=np.float64)
    for row, (ids, mask) in enumerate(encoded):
        n = len(ids) - 1
        if len(mask) != len(ids) or n < 1:
            raise ValueError(f"sequence {row}: ids and mask must have the same length >= 2")
        if n > seq_len:
            raise ValueError(f"sequence {row} has {len(ids)} tokens, more than seq_len + 1")
        input_ids[row, :n] = ids[:-1]
        labels[row, :n] = ids[1:]
        label_mask[row, :n] = mask[1:]
    return Batch(input_ids, labels, label_mask)


def iterate_batches(
    encoded: Sequence[Encoded],
    batch_size: int,
    seq_len: int = MAX_SEQ_LEN - 1,
    seed: int | None = None,
) -> Iterator[Batch]:
    """Batches of `batch_size` over `encoded` (the last one may be smaller).

    With `seed` the order is a permutation drawn from
    `numpy.random.default_rng(seed)` (the same seed gives the same order);
    without it, file order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    order = np.arange(len(encoded))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(encoded))
    for start in range(0, len(encoded), batch_size):
        chunk = order[start : start + batch_size]
        yield make_batch([encoded[int(i)] for i in chunk], seq_len)


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0..100) of translations against one reference each.

    `sacrebleu.corpus_bleu` with its default settings (13a tokenisation, no
    lowercasing), so the number compares with published BLEU scores.
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if len(hypotheses) == 0:
        raise ValueError("BLEU of no sentences")
    if not all(isinstance(text, str) for text in (*hypotheses, *references)):
        raise TypeError("hypotheses and references must be strings")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def load_script() -> ModuleType:
    """`project/run_machine_translation.py` as the module `run_machine_translation`
    (loaded once per process): how the tests reach `train`, `masked_loss` and
    the script's other functions, as `project/` is a folder, not a package."""
    name = "run_machine_translation"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
