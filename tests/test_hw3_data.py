"""hw3's German -> English corpus: the generator, the shipped files and `mt_data`.

The corpus (`solutions/data/hw3/`) is made by `assignments/hw3/data/make_corpus.py`;
these tests regenerate it and check that the shipped files are exactly what
the generator writes, that the splits share no value tuple and no sentence,
that the tokenizer round-trips every held-out sentence, and that the facts
stated in `solutions/minitorch/mt_data.py` hold.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "solutions" / "data" / "hw3"
FILES = ("train.jsonl", "valid.jsonl", "test.jsonl", "tokenizer.json")


def _load(name: str, path: Path) -> ModuleType:
    # Loaded from the file, not through the `minitorch` package: these modules
    # need nothing else from it, and importing the package compiles kernels.
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_corpus() -> Iterator[ModuleType]:
    name = "hw3_make_corpus_under_test"
    yield _load(name, REPO / "assignments" / "hw3" / "data" / "make_corpus.py")
    sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def mt() -> Iterator[ModuleType]:
    name = "hw3_mt_data_under_test"
    yield _load(name, REPO / "solutions" / "minitorch" / "mt_data.py")
    sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def pairs(mt: ModuleType) -> dict[str, list[dict[str, str]]]:
    return {split: mt.load_pairs(split) for split in mt.SPLITS}


@pytest.fixture(scope="module")
def tokenizer(mt: ModuleType):  # -> tokenizers.Tokenizer
    return mt.load_tokenizer()


def test_generator_rewrites_the_shipped_files_byte_for_byte(
    make_corpus: ModuleType, tmp_path: Path
) -> None:
    written = make_corpus.generate(tmp_path)
    assert sorted(path.name for path in written.values()) == sorted(FILES)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


def test_other_seed_gives_other_corpus(make_corpus: ModuleType) -> None:
    first = make_corpus.build_corpus(1)["test"]
    assert first == make_corpus.build_corpus(1)["test"]
    assert first != make_corpus.build_corpus(2)["test"]


@pytest.mark.parametrize(
    ("n", "de", "en"),
    [
        (0, "null", "zero"),
        (1, "eins", "one"),
        (16, "sechzehn", "sixteen"),
        (17, "siebzehn", "seventeen"),
        (21, "einundzwanzig", "twenty-one"),
        (30, "dreißig", "thirty"),
        (42, "zweiundvierzig", "forty-two"),
        (77, "siebenundsiebzig", "seventy-seven"),
        (100, "einhundert", "one hundred"),
        (101, "einhunderteins", "one hundred and one"),
        (102, "einhundertzwei", "one hundred and two"),
        (999, "neunhundertneunundneunzig", "nine hundred and ninety-nine"),
        (1000, "eintausend", "one thousand"),
        (2005, "zweitausendfünf", "two thousand and five"),
        (6666, "sechstausendsechshundertsechsundsechzig", "six thousand six hundred and sixty-six"),
        (
            9999,
            "neuntausendneunhundertneunundneunzig",
            "nine thousand nine hundred and ninety-nine",
        ),
    ],
)
def test_cardinals(make_corpus: ModuleType, n: int, de: str, en: str) -> None:
    assert make_corpus.de_cardinal(n) == de
    assert make_corpus.en_cardinal(n) == en


def test_ordinals_years_and_times(make_corpus: ModuleType) -> None:
    mc = make_corpus
    assert [mc.de_ordinal_stem(d) + "en" for d in (1, 3, 7, 8, 19, 20, 31)] == [
        "ersten",
        "dritten",
        "siebten",
        "achten",
        "neunzehnten",
        "zwanzigsten",
        "einunddreißigsten",
    ]
    assert [mc.en_ordinal(d) for d in (1, 2, 3, 12, 20, 21, 22, 30, 31)] == [
        "first",
        "second",
        "third",
        "twelfth",
        "twentieth",
        "twenty-first",
        "twenty-second",
        "thirtieth",
        "thirty-first",
    ]
    assert mc.de_date(3, 5) == "dritten Mai" and mc.de_date(3, 5, "nom") == "dritte Mai"
    assert mc.en_date(3, 5) == "the third of May"
    years = {1905: "nineteen oh five", 1998: "nineteen ninety-eight", 1900: "nineteen hundred"}
    years |= {2000: "two thousand", 2005: "two thousand and five", 2024: "twenty twenty-four"}
    for year, en in years.items():
        assert mc.en_year(year) == en
    assert mc.de_year(1998) == "neunzehnhundertachtundneunzig"
    assert mc.de_year(2024) == "zweitausendvierundzwanzig"
    times = {
        ("spoken", 3, 30): ("halb vier", "half past three"),
        ("spoken", 12, 30): ("halb eins", "half past twelve"),
        ("spoken", 8, 15): ("Viertel nach acht", "quarter past eight"),
        ("spoken", 8, 45): ("Viertel vor neun", "quarter to nine"),
        ("spoken", 4, 25): ("fünf vor halb fünf", "twenty-five past four"),
        ("spoken", 4, 35): ("fünf nach halb fünf", "twenty-five to five"),
        ("clock", 1, 0): ("ein Uhr", "one o'clock at night"),
        ("clock", 8, 1): ("acht Uhr eins", "eight oh one in the morning"),
        ("clock", 12, 0): ("zwölf Uhr", "noon"),
        ("clock", 0, 0): ("null Uhr", "midnight"),
        ("clock", 20, 30): ("zwanzig Uhr dreißig", "eight thirty in the evening"),
    }
    for t, (de, en) in times.items():
        assert (mc.de_time(t), mc.en_time(t)) == (de, en)


def test_counts_agree_with_the_noun(make_corpus: ModuleType) -> None:
    mc = make_corpus
    assert mc.de_count(1, "Stuhl", "Stühle", "m") == "einen Stuhl"
    assert mc.de_count(1, "Lampe", "Lampen", "f") == "eine Lampe"
    assert mc.de_count(1, "Buch", "Bücher", "n") == "ein Buch"
    assert mc.de_count(21, "Buch", "Bücher", "n") == "einundzwanzig Bücher"
    assert mc.en_count(1, "book", "books") == "one book"
    assert mc.en_count(21, "book", "books") == "twenty-one books"


def test_splits_have_the_stated_sizes(mt: ModuleType, pairs: dict[str, list]) -> None:
    assert {split: len(rows) for split, rows in pairs.items()} == {
        "train": 20000,
        "valid": 500,
        "test": 500,
    }
    for split in mt.SPLITS:
        lines = (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert all(list(json.loads(line)) == ["de", "en"] for line in lines[:50])


def test_splits_are_disjoint_by_value_and_by_sentence(
    make_corpus: ModuleType, pairs: dict[str, list]
) -> None:
    splits = make_corpus.build_corpus()
    keys = {name: {key for key, _ in items} for name, items in splits.items()}
    assert sum(len(k) for k in keys.values()) == 21000  # no tuple drawn twice
    assert not keys["train"] & keys["valid"]
    assert not keys["train"] & keys["test"]
    assert not keys["valid"] & keys["test"]
    # The shipped files are those splits, in that order.
    for name, items in splits.items():
        assert [{"de": de, "en": en} for _, (de, en) in items] == pairs[name]
    for side in ("de", "en"):
        seen: set[str] = set()
        for rows in pairs.values():
            texts = {row[side] for row in rows}
            assert len(texts) == len(rows) and not texts & seen
            seen |= texts


def test_every_template_reaches_the_held_out_splits(make_corpus: ModuleType) -> None:
    splits = make_corpus.build_corpus()
    names = {t.name for t in make_corpus.TEMPLATES}
    assert {key[0] for key, _ in splits["test"]} == names
    assert {key[0] for key, _ in splits["valid"]} == names


def test_sentences_are_short(pairs: dict[str, list]) -> None:
    longest = max(len(row["de"].split()) for rows in pairs.values() for row in rows)
    assert longest <= 16


def test_tokenizer_specials_and_round_trip(
    mt: ModuleType, tokenizer, pairs: dict[str, list]
) -> None:
    specials = ["<pad>", "<bos>", "<eos>", "<unk>", "<sep>"]
    assert [tokenizer.id_to_token(i) for i in range(5)] == specials
    ids = (mt.PAD_ID, mt.BOS_ID, mt.EOS_ID, mt.UNK_ID, mt.SEP_ID)
    assert [tokenizer.token_to_id(token) for token in specials] == list(ids)
    assert tokenizer.get_vocab_size() == mt.VOCAB_SIZE
    for split in ("valid", "test"):
        for row in pairs[split]:
            for text in (row["de"], row["en"]):
                encoded = tokenizer.encode(text).ids
                assert min(encoded) > mt.SEP_ID  # no special token, no <unk>
                assert tokenizer.decode(encoded) == text


def test_stated_lengths_are_the_corpus_maxima(
    mt: ModuleType, tokenizer, pairs: dict[str, list]
) -> None:
    rows = [row for split in mt.SPLITS for row in pairs[split]]
    de = tokenizer.encode_batch([row["de"] for row in rows])
    en = tokenizer.encode_batch([row["en"] for row in rows])
    de_max = max(len(e.ids) for e in de)
    en_max = max(len(e.ids) for e in en)
    seq_max = max(len(a.ids) + len(b.ids) + 3 for a, b in zip(de, en, strict=True))
    assert seq_max == mt.MAX_SEQ_LEN
    assert f"German side is at most {de_max} tokens" in mt.__doc__
    assert f"English side\nat most {en_max}" in mt.__doc__
    assert f"`MAX_SEQ_LEN` = {seq_max} tokens" in mt.__doc__


def test_data_dir_is_found_next_to_the_package(mt: ModuleType) -> None:
    assert mt.DATA_DIR == DATA
    with pytest.raises(ValueError):
        mt.load_pairs("../hw3/train")
    with pytest.raises(ValueError):
        mt.load_pairs("dev")


def test_load_pairs_rejects_malformed_rows(mt: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "valid.jsonl").write_text('{"de": "eins", "en": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"valid\.jsonl:1"):
        mt.load_pairs("valid", root=tmp_path)


def test_encode_pair_layout_and_mask(mt: ModuleType, tokenizer) -> None:
    de, en = "am dritten Mai um halb vier", "on the third of May at half past three"
    de_ids, en_ids = tokenizer.encode(de).ids, tokenizer.encode(en).ids
    ids, mask = mt.encode_pair(tokenizer, de, en)
    assert ids.dtype == np.int64 and mask.dtype == np.float64
    expected = [mt.BOS_ID, *de_ids, mt.SEP_ID, *en_ids, mt.EOS_ID]
    assert ids.tolist() == expected
    assert mask.tolist() == [0.0] * (len(de_ids) + 2) + [1.0] * (len(en_ids) + 1)
    prompt = mt.encode_prompt(tokenizer, de)
    assert prompt.tolist() == expected[: len(de_ids) + 2]
    continuation = [*en_ids, mt.EOS_ID, *tokenizer.encode(" junk").ids]
    assert mt.decode_target(tokenizer, continuation) == en
    assert mt.decode_target(tokenizer, np.asarray(en_ids)) == en


def test_make_batch_shifts_pads_and_masks(mt: ModuleType, tokenizer) -> None:
    encoded = [
        mt.encode_pair(tokenizer, "zweiundvierzig", "forty-two"),
        mt.encode_pair(tokenizer, "Es ist halb vier.", "It is half past three."),
    ]
    batch = mt.make_batch(encoded, seq_len=20)
    assert batch.input_ids.shape == batch.labels.shape == batch.label_mask.shape == (2, 20)
    assert batch.input_ids.dtype == batch.labels.dtype == np.int64
    for row, (ids, mask) in enumerate(encoded):
        n = len(ids) - 1
        assert batch.input_ids[row, :n].tolist() == ids[:-1].tolist()
        assert batch.labels[row, :n].tolist() == ids[1:].tolist()
        assert batch.label_mask[row, :n].tolist() == mask[1:].tolist()
        assert (batch.input_ids[row, n:] == mt.PAD_ID).all()
        assert (batch.labels[row, n:] == mt.PAD_ID).all()
        assert (batch.label_mask[row, n:] == 0).all()
        # The first scored label is the first English token, read after <sep>.
        first = int(np.argmax(batch.label_mask[row]))
        assert batch.input_ids[row, first] == mt.SEP_ID
        assert batch.labels[row, int(batch.label_mask[row].sum()) + first - 1] == mt.EOS_ID
    too_long = len(encoded[1][0]) - 2
    with pytest.raises(ValueError, match="more than seq_len"):
        mt.make_batch(encoded, seq_len=too_long)
    assert mt.make_batch(encoded, seq_len=too_long + 1).input_ids.shape == (2, too_long + 1)


def test_iterate_batches_covers_everything_once(mt: ModuleType, tokenizer, pairs) -> None:
    encoded = mt.encode_pairs(tokenizer, pairs["valid"][:23])
    batches = list(mt.iterate_batches(encoded, batch_size=5, seed=7))
    assert [len(b.input_ids) for b in batches] == [5, 5, 5, 5, 3]
    assert all(b.input_ids.shape[1] == mt.MAX_SEQ_LEN - 1 for b in batches)
    firsts = sorted(tuple(row[row != mt.PAD_ID]) for b in batches for row in b.input_ids)
    assert firsts == sorted(tuple(ids[:-1]) for ids, _ in encoded)
    again = list(mt.iterate_batches(encoded, batch_size=5, seed=7))
    assert all((a.input_ids == b.input_ids).all() for a, b in zip(batches, again, strict=True))
    in_order = next(mt.iterate_batches(encoded, batch_size=5))
    assert in_order.input_ids[0].tolist()[: len(encoded[0][0]) - 1] == encoded[0][0][:-1].tolist()


def test_bleu(mt: ModuleType, pairs: dict[str, list]) -> None:
    references = [row["en"] for row in pairs["test"]]
    assert mt.bleu(references, references) == pytest.approx(100.0)
    shifted = references[1:] + references[:1]
    assert mt.bleu(shifted, references) < 10.0
    with pytest.raises(ValueError):
        mt.bleu(references[:-1], references)
