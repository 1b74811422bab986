"""Generate hw3's German -> English corpus and its BPE tokenizer (staff tool).

The corpus is synthetic: numbers, dates, times, prices, ages and durations
written out in words in both languages, inside short sentence templates whose
word order differs between German and English (verb-final subordinate
clauses, separable verbs, perfect participles at the end, time before place,
units before tens, half hours named after the next hour, year readings). Each
pair comes from one *value tuple*: a template name and its slot values. The
splits are disjoint by value tuple, and every German sentence (and every
English one) belongs to exactly one tuple, so no test sentence is seen in
training.

Output (`--out`, default `solutions/data/hw3/`):

- `train.jsonl`, `valid.jsonl`, `test.jsonl`: one `{"de": ..., "en": ...}`
  object per line, UTF-8, sorted keys.
- `tokenizer.json`: a byte-level BPE (Hugging Face `tokenizers`) trained on
  both languages of the train split, with the special tokens `<pad>`,
  `<bos>`, `<eos>`, `<unk>`, `<sep>` as ids 0..4.

Everything is seeded: running the script twice writes byte-identical files
(given the pinned `tokenizers` version of `ci/constraints.txt`).

    .venv/bin/python assignments/hw3/data/make_corpus.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUT = REPO_ROOT / "solutions" / "data" / "hw3"

SEED = 20270319
SPLIT_SIZES = {"test": 500, "valid": 500, "train": 20000}
VOCAB_SIZE = 1000
SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>", "<sep>"]

# ---------------------------------------------------------------------------
# Number words
# ---------------------------------------------------------------------------

DE_ONES = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
DE_TEENS = [
    "zehn",
    "elf",
    "zwölf",
    "dreizehn",
    "vierzehn",
    "fünfzehn",
    "sechzehn",
    "siebzehn",
    "achtzehn",
    "neunzehn",
]
DE_TENS = [
    "",
    "",
    "zwanzig",
    "dreißig",
    "vierzig",
    "fünfzig",
    "sechzig",
    "siebzig",
    "achtzig",
    "neunzig",
]

EN_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
EN_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def de_cardinal(n: int) -> str:
    """German cardinal for 0 <= n <= 9999, written as one word.

    `1` is "eins" alone or at the end ("eins", "einhunderteins") and "ein"
    inside a compound ("einundzwanzig"); hundreds and thousands always carry
    their multiplier ("einhundertzwei", "eintausend").
    """
    if not 0 <= n <= 9999:
        raise ValueError(f"out of range: {n}")
    if n < 10:
        return DE_ONES[n]
    if n < 20:
        return DE_TEENS[n - 10]
    if n < 100:
        tens, ones = divmod(n, 10)
        if ones == 0:
            return DE_TENS[tens]
        # Inside a compound 1 is "ein": einundzwanzig, not einsundzwanzig.
        unit = "ein" if ones == 1 else DE_ONES[ones]
        return f"{unit}und{DE_TENS[tens]}"
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = ("ein" if hundreds == 1 else DE_ONES[hundreds]) + "hundert"
        return head + (de_cardinal(rest) if rest else "")
    thousands, rest = divmod(n, 1000)
    head = ("ein" if thousands == 1 else DE_ONES[thousands]) + "tausend"
    return head + (de_cardinal(rest) if rest else "")


def en_cardinal(n: int) -> str:
    """English (British) cardinal for 0 <= n <= 9999: "one hundred and two"."""
    if not 0 <= n <= 9999:
        raise ValueError(f"out of range: {n}")
    if n < 10:
        return EN_ONES[n]
    if n < 20:
        return EN_TEENS[n - 10]
    if n < 100:
        tens, ones = divmod(n, 10)
        return EN_TENS[tens] + (f"-{EN_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = f"{EN_ONES[hundreds]} hundred"
        return head + (f" and {en_cardinal(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    head = f"{EN_ONES[thousands]} thousand"
    if rest == 0:
        return head
    if rest < 100:
        return f"{head} and {en_cardinal(rest)}"
    return f"{head} {en_cardinal(rest)}"


DE_ORDINAL_STEMS = {1: "erst", 3: "dritt", 7: "siebt", 8: "acht"}
EN_ORDINALS = {
    1: "first",
    2: "second",
    3: "third",
    4: "fourth",
    5: "fifth",
    6: "sixth",
    7: "seventh",
    8: "eighth",
    9: "ninth",
    10: "tenth",
    11: "eleventh",
    12: "twelfth",
}


def de_ordinal_stem(n: int) -> str:
    """Stem of the German ordinal 1..31; add "-e" (der dritte) or "-en" (am dritten)."""
    if not 1 <= n <= 31:
        raise ValueError(f"out of range: {n}")
    if n in DE_ORDINAL_STEMS:
        return DE_ORDINAL_STEMS[n]
    if n < 20:
        return de_cardinal(n) + "t"
    return de_cardinal(n) + "st"


def en_ordinal(n: int) -> str:
    """English ordinal 1..31: "third", "twenty-first", "thirtieth"."""
    if not 1 <= n <= 31:
        raise ValueError(f"out of range: {n}")
    if n in EN_ORDINALS:
        return EN_ORDINALS[n]
    if n < 20:
        return en_cardinal(n) + "th"
    tens, ones = divmod(n, 10)
    if ones == 0:
        return EN_TENS[tens][:-1] + "ieth"
    return f"{EN_TENS[tens]}-{en_ordinal(ones)}"


def de_year(year: int) -> str:
    """German year: 1100..1999 as "neunzehnhundertachtundneunzig", else the cardinal."""
    if 1100 <= year <= 1999:
        century, rest = divmod(year, 100)
        return de_cardinal(century) + "hundert" + (de_cardinal(rest) if rest else "")
    return de_cardinal(year)


def en_year(year: int) -> str:
    """English year: "nineteen ninety-eight", "nineteen oh five", "two thousand and
    five", "twenty twenty-four"; other years as cardinals."""
    century, rest = divmod(year, 100)
    if 1100 <= year <= 1999 or 2010 <= year <= 2099:
        if rest == 0:
            return f"{en_cardinal(century)} hundred"
        if rest < 10:
            return f"{en_cardinal(century)} oh {en_cardinal(rest)}"
        return f"{en_cardinal(century)} {en_cardinal(rest)}"
    return en_cardinal(year)


def de_count(n: int, singular: str, plural: str, gender: str) -> str:
    """German `n noun` in the accusative: "einen Stuhl", "eine Lampe", "zwei Stühle"."""
    if n == 1:
        article = {"m": "einen", "f": "eine", "n": "ein"}[gender]
        return f"{article} {singular}"
    return f"{de_cardinal(n)} {plural}"


def en_count(n: int, singular: str, plural: str) -> str:
    """English `n noun`: "one chair", "two chairs"."""
    return f"{en_cardinal(n)} {singular if n == 1 else plural}"


def sample_count(rng: random.Random, high: int) -> int:
    """A count in 1..high, skipping 101, 201, ...: German wavers between
    "hunderteins Bücher" and "hundertein Bücher", so those never appear."""
    while True:
        n = rng.randint(1, high)
        if not (n > 100 and n % 100 == 1):
            return n


# ---------------------------------------------------------------------------
# Dates and times
# ---------------------------------------------------------------------------

MONTHS = [
    ("Januar", "January"),
    ("Februar", "February"),
    ("März", "March"),
    ("April", "April"),
    ("Mai", "May"),
    ("Juni", "June"),
    ("Juli", "July"),
    ("August", "August"),
    ("September", "September"),
    ("Oktober", "October"),
    ("November", "November"),
    ("Dezember", "December"),
]
MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
WEEKDAYS = [
    ("Montag", "Monday"),
    ("Dienstag", "Tuesday"),
    ("Mittwoch", "Wednesday"),
    ("Donnerstag", "Thursday"),
    ("Freitag", "Friday"),
    ("Samstag", "Saturday"),
    ("Sonntag", "Sunday"),
]


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def sample_date(rng: random.Random, year: int | None = None) -> tuple[int, int]:
    """A (day, month) pair valid in `year` (any year when None: 29 February allowed)."""
    month = rng.randint(1, 12)
    days = MONTH_DAYS[month - 1]
    if month == 2 and year is not None and not is_leap(year):
        days = 28
    return rng.randint(1, days), month


def de_date(day: int, month: int, case: str = "dat") -> str:
    """ "dritten Mai" (dative, after "am"/"vom"/"zum") or "dritte Mai" (nominative)."""
    ending = "en" if case == "dat" else "e"
    return f"{de_ordinal_stem(day)}{ending} {MONTHS[month - 1][0]}"


def en_date(day: int, month: int) -> str:
    """ "the third of May"."""
    return f"the {en_ordinal(day)} of {MONTHS[month - 1][1]}"


# A time is (style, hour, minute). "clock": 24-hour German ("acht Uhr
# fünfzehn", "zwanzig Uhr") read in English on the 12-hour clock with a part
# of the day. "spoken": 12-hour colloquial German, where half and
# quarter-to name the *next* hour ("halb vier" = half past three).
Time = tuple[str, int, int]
SPOKEN_MINUTES = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55)


def sample_time(rng: random.Random) -> Time:
    if rng.random() < 0.5:
        return ("spoken", rng.randint(1, 12), rng.choice(SPOKEN_MINUTES))
    minute = 0 if rng.random() < 0.25 else rng.randint(1, 59)
    return ("clock", rng.randint(0, 23), minute)


def _de_hour_spoken(hour: int) -> str:
    hour = (hour - 1) % 12 + 1
    return de_cardinal(hour)


def _en_hour_12(hour: int) -> str:
    return en_cardinal((hour - 1) % 12 + 1)


def de_time(t: Time) -> str:
    """German time without the preposition: "halb vier", "acht Uhr fünfzehn"."""
    style, hour, minute = t
    if style == "clock":
        # "ein Uhr", never "eins Uhr"; the minute stays "eins" (acht Uhr eins).
        head = "ein Uhr" if hour == 1 else f"{de_cardinal(hour)} Uhr"
        return head if minute == 0 else f"{head} {de_cardinal(minute)}"
    this, following = _de_hour_spoken(hour), _de_hour_spoken(hour + 1)
    return {
        5: f"fünf nach {this}",
        10: f"zehn nach {this}",
        15: f"Viertel nach {this}",
        20: f"zwanzig nach {this}",
        25: f"fünf vor halb {following}",
        30: f"halb {following}",
        35: f"fünf nach halb {following}",
        40: f"zwanzig vor {following}",
        45: f"Viertel vor {following}",
        50: f"zehn vor {following}",
        55: f"fünf vor {following}",
    }[minute]


def en_time(t: Time) -> str:
    """English time without the preposition: "half past three", "eight fifteen in
    the evening", "noon"."""
    style, hour, minute = t
    if style == "clock":
        if minute == 0 and hour == 0:
            return "midnight"
        if minute == 0 and hour == 12:
            return "noon"
        if minute == 0:
            spoken = f"{_en_hour_12(hour)} o'clock"
        elif minute < 10:
            spoken = f"{_en_hour_12(hour)} oh {en_cardinal(minute)}"
        else:
            spoken = f"{_en_hour_12(hour)} {en_cardinal(minute)}"
        if 5 <= hour <= 11:
            part = "in the morning"
        elif 12 <= hour <= 17:
            part = "in the afternoon"
        elif 18 <= hour <= 21:
            part = "in the evening"
        else:
            part = "at night"
        return f"{spoken} {part}"
    this, following = _en_hour_12(hour), _en_hour_12(hour + 1)
    return {
        5: f"five past {this}",
        10: f"ten past {this}",
        15: f"quarter past {this}",
        20: f"twenty past {this}",
        25: f"twenty-five past {this}",
        30: f"half past {this}",
        35: f"twenty-five to {following}",
        40: f"twenty to {following}",
        45: f"quarter to {following}",
        50: f"ten to {following}",
        55: f"five to {following}",
    }[minute]


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------

Values = tuple[object, ...]
Pair = tuple[str, str]


@dataclass(frozen=True)
class Template:
    """A sentence family: `sample` draws a value tuple, `render` writes the pair."""

    name: str
    count: int
    sample: Callable[[random.Random], Values]
    render: Callable[[Values], Pair]


def _pick(rng: random.Random, options: Sequence[object]) -> int:
    """Index into `options`: the value tuple stores indices, not strings."""
    return rng.randrange(len(options))


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


PEOPLE = [
    ("Mein Vater", "My father"),
    ("Meine Mutter", "My mother"),
    ("Meine Tante", "My aunt"),
    ("Mein Onkel", "My uncle"),
    ("Unsere Nachbarin", "Our neighbour"),
    ("Der Komponist", "The composer"),
    ("Die Malerin", "The painter"),
    ("Er", "He"),
    ("Sie", "She"),
]
AGE_SUBJECTS = [
    ("Mein Bruder", "My brother"),
    ("Meine Schwester", "My sister"),
    ("Mein Großvater", "My grandfather"),
    ("Unser Hund", "Our dog"),
    ("Die Katze", "The cat"),
    ("Das Haus", "The house"),
    ("Die Kirche", "The church"),
]
CITIES = [
    ("München", "Munich"),
    ("Köln", "Cologne"),
    ("Wien", "Vienna"),
    ("Berlin", "Berlin"),
    ("Hamburg", "Hamburg"),
    ("Zürich", "Zurich"),
    ("Genf", "Geneva"),
    ("Rom", "Rome"),
    ("Prag", "Prague"),
    ("Warschau", "Warsaw"),
]
MEETERS = [
    ("Wir treffen uns", "We are meeting"),
    ("Sie treffen sich", "They are meeting"),
    ("Ich treffe Anna", "I am meeting Anna"),
    ("Er trifft seinen Chef", "He is meeting his boss"),
]
PLACES = [
    ("am Bahnhof", "at the station"),
    ("vor dem Kino", "in front of the cinema"),
    ("im Café", "at the café"),
    ("in der Bibliothek", "in the library"),
    ("im Park", "in the park"),
    ("an der Uni", "at the university"),
    ("beim Bäcker", "at the bakery"),
]
BELIEVERS = [
    ("Ich glaube", "I think"),
    ("Er sagt", "He says"),
    ("Wir wissen", "We know"),
    ("Sie hofft", "She hopes"),
]
# (German, English, plural?)
ARRIVERS = [
    ("der Zug", "the train", False),
    ("das Flugzeug", "the plane", False),
    ("meine Schwester", "my sister", False),
    ("der Bus", "the bus", False),
    ("unsere Gäste", "our guests", True),
    ("die Kinder", "the children", True),
]
BUYERS = [
    ("Ich habe", "I"),
    ("Wir haben", "We"),
    ("Er hat", "He"),
    ("Sie hat", "She"),
    ("Meine Mutter hat", "My mother"),
    ("Mein Bruder hat", "My brother"),
]
# (singular, plural, gender, English singular, English plural)
GOODS = [
    ("Buch", "Bücher", "n", "book", "books"),
    ("Lampe", "Lampen", "f", "lamp", "lamps"),
    ("Stuhl", "Stühle", "m", "chair", "chairs"),
    ("Apfel", "Äpfel", "m", "apple", "apples"),
    ("Flasche", "Flaschen", "f", "bottle", "bottles"),
    ("Ei", "Eier", "n", "egg", "eggs"),
    ("Tasse", "Tassen", "f", "cup", "cups"),
    ("Bleistift", "Bleistifte", "m", "pencil", "pencils"),
]
OBLIGED = [
    ("Ich muss", "I have to"),
    ("Er muss", "He has to"),
    ("Wir müssen", "We have to"),
    ("Sie muss", "She has to"),
    ("Die Studenten müssen", "The students have to"),
]
# (singular, plural, gender, verb, English singular, English plural, English verb)
TASKS = [
    ("Seite", "Seiten", "f", "lesen", "page", "pages", "read"),
    ("Aufgabe", "Aufgaben", "f", "lösen", "exercise", "exercises", "solve"),
    ("Brief", "Briefe", "m", "schreiben", "letter", "letters", "write"),
]
ITEMS = [
    ("Der Kaffee", "The coffee"),
    ("Die Fahrkarte", "The ticket"),
    ("Das Buch", "The book"),
    ("Der Kuchen", "The cake"),
    ("Die Zeitung", "The newspaper"),
    ("Das Fahrrad", "The bicycle"),
]
DAYS_REL = [
    ("Heute ist", "Today is"),
    ("Morgen ist", "Tomorrow is"),
    ("Gestern war", "Yesterday was"),
]
VENUES = [
    ("Das Museum", "The museum"),
    ("Die Bibliothek", "The library"),
    ("Das Schwimmbad", "The swimming pool"),
    ("Der Zoo", "The zoo"),
    ("Die Schule", "The school"),
]
STATES = [("geschlossen", "closed"), ("geöffnet", "open")]
# (German, English, English verb)
EVENTS = [
    ("Die Fahrt", "The journey", "takes"),
    ("Der Flug", "The flight", "takes"),
    ("Der Film", "The film", "lasts"),
    ("Das Konzert", "The concert", "lasts"),
]


def _de_hours_minutes(hours: int, minutes: int) -> str:
    h = "eine Stunde" if hours == 1 else f"{de_cardinal(hours)} Stunden"
    m = "eine Minute" if minutes == 1 else f"{de_cardinal(minutes)} Minuten"
    return f"{h} und {m}"


def _en_hours_minutes(hours: int, minutes: int) -> str:
    return f"{en_count(hours, 'hour', 'hours')} and {en_count(minutes, 'minute', 'minutes')}"


def _as_time(v: object) -> Time:
    assert isinstance(v, tuple)
    return (str(v[0]), int(v[1]), int(v[2]))


def _i(v: object) -> int:
    assert isinstance(v, int)
    return v


# Each sampler returns a tuple of ints (indices and numbers) and times; each
# renderer turns the same tuple into the German and the English text.


def _s_number(rng: random.Random) -> Values:
    # Mostly below 1000: those are the building blocks of everything else.
    return (rng.randint(0, 999) if rng.random() < 0.6 else rng.randint(1000, 9999),)


def _r_number(v: Values) -> Pair:
    return de_cardinal(_i(v[0])), en_cardinal(_i(v[0]))


def _s_date(rng: random.Random) -> Values:
    return sample_date(rng)


def _r_date(v: Values) -> Pair:
    d, m = _i(v[0]), _i(v[1])
    return f"am {de_date(d, m)}", f"on {en_date(d, m)}"


def _s_date_time(rng: random.Random) -> Values:
    return (*sample_date(rng), sample_time(rng))


def _r_date_time(v: Values) -> Pair:
    d, m, t = _i(v[0]), _i(v[1]), _as_time(v[2])
    return f"am {de_date(d, m)} um {de_time(t)}", f"on {en_date(d, m)} at {en_time(t)}"


def _s_time_day(rng: random.Random) -> Values:
    return (sample_time(rng), _pick(rng, WEEKDAYS))


def _r_time_day(v: Values) -> Pair:
    t, w = _as_time(v[0]), WEEKDAYS[_i(v[1])]
    return f"um {de_time(t)} am {w[0]}", f"at {en_time(t)} on {w[1]}"


def _s_year(rng: random.Random) -> Values:
    return (rng.randint(1100, 2099),)


def _r_year(v: Values) -> Pair:
    y = _i(v[0])
    return f"im Jahr {de_year(y)}", f"in the year {en_year(y)}"


def _s_month_year(rng: random.Random) -> Values:
    return (rng.randint(1, 12), rng.randint(1800, 2099))


def _r_month_year(v: Values) -> Pair:
    m, y = MONTHS[_i(v[0]) - 1], _i(v[1])
    return f"im {m[0]} {de_year(y)}", f"in {m[1]} {en_year(y)}"


def _s_clock(rng: random.Random) -> Values:
    return (sample_time(rng),)


def _r_clock(v: Values) -> Pair:
    t = _as_time(v[0])
    return f"Es ist {de_time(t)}.", f"It is {en_time(t)}."


def _s_today(rng: random.Random) -> Values:
    return (_pick(rng, DAYS_REL), _pick(rng, WEEKDAYS), *sample_date(rng))


def _r_today(v: Values) -> Pair:
    rel, w, d, m = DAYS_REL[_i(v[0])], WEEKDAYS[_i(v[1])], _i(v[2]), _i(v[3])
    return (
        f"{rel[0]} {w[0]}, der {de_date(d, m, 'nom')}.",
        f"{rel[1]} {w[1]}, {en_date(d, m)}.",
    )


def _s_meeting(rng: random.Random) -> Values:
    return (_pick(rng, MEETERS), _pick(rng, WEEKDAYS), sample_time(rng), _pick(rng, PLACES))


def _r_meeting(v: Values) -> Pair:
    who, w, t, p = MEETERS[_i(v[0])], WEEKDAYS[_i(v[1])], _as_time(v[2]), PLACES[_i(v[3])]
    # German: time before place; English: place, then time, then day.
    return (
        f"{who[0]} am {w[0]} um {de_time(t)} {p[0]}.",
        f"{who[1]} {p[1]} at {en_time(t)} on {w[1]}.",
    )


def _s_arrive(rng: random.Random) -> Values:
    return (_pick(rng, BELIEVERS), _pick(rng, ARRIVERS), _pick(rng, WEEKDAYS), sample_time(rng))


def _r_arrive(v: Values) -> Pair:
    b, a, w, t = BELIEVERS[_i(v[0])], ARRIVERS[_i(v[1])], WEEKDAYS[_i(v[2])], _as_time(v[3])
    de_verb, en_verb = ("ankommen", "arrive") if a[2] else ("ankommt", "arrives")
    # German subordinate clause: the (separable) verb goes to the end.
    return (
        f"{b[0]}, dass {a[0]} am {w[0]} um {de_time(t)} {de_verb}.",
        f"{b[1]} that {a[1]} {en_verb} at {en_time(t)} on {w[1]}.",
    )


def _s_train(rng: random.Random) -> Values:
    return (_pick(rng, CITIES), sample_time(rng), rng.randint(1, 20))


def _r_train(v: Values) -> Pair:
    c, t, g = CITIES[_i(v[0])], _as_time(v[1]), _i(v[2])
    # Separable verb "abfahren": "fährt ... ab".
    return (
        f"Der Zug nach {c[0]} fährt um {de_time(t)} von Gleis {de_cardinal(g)} ab.",
        f"The train to {c[1]} leaves from platform {en_cardinal(g)} at {en_time(t)}.",
    )


def _s_bought(rng: random.Random) -> Values:
    return (_pick(rng, BUYERS), *sample_date(rng), sample_count(rng, 999), _pick(rng, GOODS))


def _r_bought(v: Values) -> Pair:
    b, d, m, n, g = BUYERS[_i(v[0])], _i(v[1]), _i(v[2]), _i(v[3]), GOODS[_i(v[4])]
    # German perfect: participle last, date before the object.
    return (
        f"{b[0]} am {de_date(d, m)} {de_count(n, g[0], g[1], g[2])} gekauft.",
        f"{b[1]} bought {en_count(n, g[3], g[4])} on {en_date(d, m)}.",
    )


def _s_obliged(rng: random.Random) -> Values:
    return (_pick(rng, OBLIGED), _pick(rng, WEEKDAYS), sample_count(rng, 999), _pick(rng, TASKS))


def _r_obliged(v: Values) -> Pair:
    o, w, n, k = OBLIGED[_i(v[0])], WEEKDAYS[_i(v[1])], _i(v[2]), TASKS[_i(v[3])]
    # Modal verb: the infinitive goes last in German.
    return (
        f"{o[0]} bis {w[0]} {de_count(n, k[0], k[1], k[2])} {k[3]}.",
        f"{o[1]} {k[6]} {en_count(n, k[4], k[5])} by {w[1]}.",
    )


def _s_price(rng: random.Random) -> Values:
    cents = 0 if rng.random() < 0.3 else rng.randint(10, 99)
    return (_pick(rng, ITEMS), sample_count(rng, 999), cents)


def _r_price(v: Values) -> Pair:
    it, euros, cents = ITEMS[_i(v[0])], _i(v[1]), _i(v[2])
    de = f"{it[0]} kostet {de_cardinal(euros) if euros > 1 else 'einen'} Euro"
    en = f"{it[1]} costs {en_count(euros, 'euro', 'euros')}"
    if cents:
        de += f" {de_cardinal(cents)}"
        en += f" {en_cardinal(cents)}"
    return de + ".", en + "."


def _s_age(rng: random.Random) -> Values:
    return (_pick(rng, AGE_SUBJECTS), rng.randint(1, 150))


def _r_age(v: Values) -> Pair:
    s, n = AGE_SUBJECTS[_i(v[0])], _i(v[1])
    years = "ein Jahr" if n == 1 else f"{de_cardinal(n)} Jahre"
    return f"{s[0]} ist {years} alt.", f"{s[1]} is {en_count(n, 'year', 'years')} old."


def _s_born(rng: random.Random) -> Values:
    year = rng.randint(1800, 2029)
    return (_pick(rng, PEOPLE), *sample_date(rng, year), year)


def _r_born(v: Values) -> Pair:
    p, d, m, y = PEOPLE[_i(v[0])], _i(v[1]), _i(v[2]), _i(v[3])
    return (
        f"{p[0]} wurde am {de_date(d, m)} {de_year(y)} geboren.",
        f"{p[1]} was born on {en_date(d, m)} {en_year(y)}.",
    )


def _s_born_year(rng: random.Random) -> Values:
    return (_pick(rng, PEOPLE), rng.randint(1800, 2029))


def _r_born_year(v: Values) -> Pair:
    p, y = PEOPLE[_i(v[0])], _i(v[1])
    # German names a bare year without a preposition: "1998 geboren", "born in 1998".
    return f"{p[0]} wurde {de_year(y)} geboren.", f"{p[1]} was born in {en_year(y)}."


def _s_closed(rng: random.Random) -> Values:
    while True:
        first, second = sample_date(rng), sample_date(rng)
        if (first[1], first[0]) < (second[1], second[0]):
            return (_pick(rng, VENUES), _pick(rng, STATES), *first, *second)


def _r_closed(v: Values) -> Pair:
    ve, st = VENUES[_i(v[0])], STATES[_i(v[1])]
    d1, m1, d2, m2 = _i(v[2]), _i(v[3]), _i(v[4]), _i(v[5])
    return (
        f"{ve[0]} ist vom {de_date(d1, m1)} bis zum {de_date(d2, m2)} {st[0]}.",
        f"{ve[1]} is {st[1]} from {en_date(d1, m1)} to {en_date(d2, m2)}.",
    )


def _s_duration(rng: random.Random) -> Values:
    return (_pick(rng, EVENTS), rng.randint(1, 23), rng.randint(1, 59))


def _r_duration(v: Values) -> Pair:
    e, h, m = EVENTS[_i(v[0])], _i(v[1]), _i(v[2])
    return (
        f"{e[0]} dauert {_de_hours_minutes(h, m)}.",
        f"{e[1]} {e[2]} {_en_hours_minutes(h, m)}.",
    )


TEMPLATES = [
    Template("number", 2000, _s_number, _r_number),
    Template("date", 300, _s_date, _r_date),
    Template("date_time", 1500, _s_date_time, _r_date_time),
    Template("time_day", 1000, _s_time_day, _r_time_day),
    Template("year", 400, _s_year, _r_year),
    Template("month_year", 600, _s_month_year, _r_month_year),
    Template("clock", 800, _s_clock, _r_clock),
    Template("today", 1200, _s_today, _r_today),
    Template("meeting", 1500, _s_meeting, _r_meeting),
    Template("arrive", 1500, _s_arrive, _r_arrive),
    Template("train", 1500, _s_train, _r_train),
    Template("bought", 1500, _s_bought, _r_bought),
    Template("obliged", 1500, _s_obliged, _r_obliged),
    Template("price", 1300, _s_price, _r_price),
    Template("age", 900, _s_age, _r_age),
    Template("born", 1200, _s_born, _r_born),
    Template("born_year", 300, _s_born_year, _r_born_year),
    Template("closed", 1000, _s_closed, _r_closed),
    Template("duration", 1000, _s_duration, _r_duration),
]

# ---------------------------------------------------------------------------
# Corpus and tokenizer
# ---------------------------------------------------------------------------

Key = tuple[str, Values]


def build_corpus(seed: int = SEED) -> dict[str, list[tuple[Key, Pair]]]:
    """Draw every template's distinct value tuples and split them.

    Returns the splits as lists of `((template, values), (de, en))`. Raises if
    two value tuples would give the same German or English sentence (the
    translation must be a function both ways for the splits to be disjoint by
    string as well as by value).
    """
    rng = random.Random(seed)
    items: list[tuple[Key, Pair]] = []
    seen_keys: set[Key] = set()
    seen_de: dict[str, Key] = {}
    seen_en: dict[str, Key] = {}
    for template in TEMPLATES:
        drawn = 0
        attempts = 0
        while drawn < template.count:
            attempts += 1
            if attempts > 50 * template.count:
                raise RuntimeError(f"{template.name}: too few distinct values")
            key: Key = (template.name, template.sample(rng))
            if key in seen_keys:
                continue
            de, en = template.render(key[1])
            for text, seen in ((de, seen_de), (en, seen_en)):
                if text in seen:
                    raise RuntimeError(f"{text!r} from {key} and {seen[text]}")
                seen[text] = key
            seen_keys.add(key)
            items.append((key, (de, en)))
            drawn += 1
    rng.shuffle(items)
    splits: dict[str, list[tuple[Key, Pair]]] = {}
    start = 0
    for name, size in SPLIT_SIZES.items():
        splits[name] = items[start : start + size]
        start += size
    if start != len(items):
        raise RuntimeError(f"{len(items)} pairs drawn, {start} placed in splits")
    return splits


def jsonl_bytes(pairs: Sequence[Pair]) -> bytes:
    lines = [
        json.dumps({"de": de, "en": en}, ensure_ascii=False, sort_keys=True) for de, en in pairs
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def train_tokenizer(texts: Sequence[str]) -> str:
    """Train the byte-level BPE and return its JSON serialisation.

    Byte-level pre-tokenisation (GPT-2's) with a byte-level decoder makes
    `decode(encode(text)) == text` for any text: no `<unk>` ever occurs, and
    spaces are part of the tokens ("Ġvier"), so decoding restores them.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != token_id:
            raise RuntimeError(f"{token} is not id {token_id}")
    # Canonical form: re-serialise through json so key order and spacing are ours.
    return json.dumps(json.loads(tokenizer.to_str()), ensure_ascii=False, indent=1) + "\n"


def generate(out_dir: Path, seed: int = SEED) -> dict[str, Path]:
    """Write the three splits and `tokenizer.json` into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = build_corpus(seed)
    written: dict[str, Path] = {}
    for name in ("train", "valid", "test"):
        path = out_dir / f"{name}.jsonl"
        path.write_bytes(jsonl_bytes([pair for _, pair in splits[name]]))
        written[name] = path
    texts = [text for _, pair in splits["train"] for text in pair]
    path = out_dir / "tokenizer.json"
    path.write_bytes(train_tokenizer(texts).encode("utf-8"))
    written["tokenizer"] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed")
    args = parser.parse_args(argv)
    for name, path in generate(args.out, args.seed).items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
