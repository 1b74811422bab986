"""The late policy: from submission times, extensions and a term's free late days to
each submission's final score.

The manifest's `[late]` table (`manifest.LatePolicy`) and `due` say what lateness
costs; this module says how late each submission was and what it pays:

- A submission is late when its time is after its due date (the assignment's, or an
  extension's) plus `grace_minutes`. It is then late by the days started after the
  due date: 20 minutes past a 15-minute grace is one day, 24 h 1 min is two.
- Without a time it is on time, unless Canvas marked it LATE: Canvas's mark does not
  say how late, so one day is charged and a notice says so. Folder and zip
  modification times are never used: anyone can set them.
- More than `max_days` days late scores 0 (`max_days = 0`: no such limit), and uses
  no free days. Otherwise the term's free late days pay first (a ledger's), and each
  remaining day costs `penalty_per_day` of the raw score (at most all of it).

Pure core first (dataclasses in, dataclasses out); the readers and the ledger writer
at the end are the only I/O. Every bad row of a CSV is one error naming its line.

File formats (UTF-8 CSV with a header row; columns in any order):
- times: `login` (or `name`), `submitted_at` (ISO 8601 with a UTC offset, e.g.
  2027-02-06T08:30:00-05:00 or ...Z; empty: no time). Or Canvas's own record of
  submission times, the JSON list its Submissions API returns
  (GET /api/v1/courses/:course/assignments/:assignment/submissions), saved as a
  `.json` file: each object's `user_id` and `submitted_at`.
- extensions: `login` and either `days` (whole days added to the due date) or `due`
  (the new due date, ISO 8601 with an offset), one of them per row.
- ledger: `login`, `free_days` (the term's free late days), then one column per
  assignment (`hw1`, `hw2`, ...) with the days used on it; `left` is written for the
  reader and ignored when read. The batch sets its own assignment's column, so
  grading the same batch again charges nothing twice.

A `login` matches a submission by its name, or (with a roster) the student's
Canvas ID, SIS User ID or SIS Login ID; any case.

Why above 300 lines: the policy and the three files that feed it are one subject,
documented above once; the readers share their row and error handling.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from grader.errors import LlmsysError
from grader.files import write_text_atomic
from grader.manifest import ASSIGNMENT_ID, LatePolicy
from grader.results import Late, SubmissionResult

DAY_S = 86400.0


# ---------------------------------------------------------------------------
# The pure core
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Extension:
    """A student's own due date: `days` more than the assignment's, or `due` itself."""

    days: int = 0
    due: dt.datetime | None = None


@dataclass(frozen=True)
class Submitted:
    """What is known about when one submission came in."""

    at: dt.datetime | None = None  #: its time; None when unknown
    marked_late: bool = False  #: Canvas's LATE mark (its archive's file names)
    extension: Extension | None = None
    free_days: int | None = None  #: free late days left for it; None: no ledger


def due_for(due: dt.datetime, extension: Extension | None) -> dt.datetime:
    """The due date that applies, with an extension."""
    if extension is None:
        return due
    if extension.due is not None:
        return extension.due
    return due + dt.timedelta(days=extension.days)


def assess(policy: LatePolicy, due: dt.datetime, raw_score: float, sub: Submitted) -> Late:
    """How late a submission scoring `raw_score` was, and what that costs it."""
    effective = due_for(due, sub.extension)
    notices: list[str] = []
    hours = 0.0
    if sub.at is None:
        days = 1 if sub.marked_late else 0
        if sub.marked_late:
            notices.append(
                "Canvas marked this submission late but no submission time was given: "
                "one late day is charged"
            )
    else:
        seconds = (sub.at - effective).total_seconds()
        hours = round(max(0.0, seconds) / 3600, 2)
        late = seconds > policy.grace_minutes * 60
        days = math.ceil(seconds / DAY_S) if late else 0
    free = sub.free_days if sub.free_days is not None else 0
    if policy.max_days > 0 and days > policy.max_days:
        used, penalty = 0, raw_score
        notices.append(f"more than {policy.max_days} day(s) late: the late policy gives 0")
    else:
        used = min(days, max(0, free))
        fraction = min(1.0, (days - used) * policy.penalty_per_day)
        penalty = round(raw_score * fraction, 4)
    return Late(
        raw_score=raw_score,
        due=effective.isoformat(),
        submitted_at=sub.at.isoformat() if sub.at is not None else "",
        hours_late=hours,
        days_late=days,
        free_days_used=used,
        penalty=penalty,
        free_days_left=None if sub.free_days is None else sub.free_days - used,
        notices=tuple(notices),
    )


def raw_score(result: SubmissionResult) -> float:
    """The tests' points of a result, whether or not a late policy was applied."""
    return result.late.raw_score if result.late is not None else result.score


def apply(result: SubmissionResult, late: Late) -> SubmissionResult:
    """`result` with its late record, and its final score as `score`."""
    return replace(result, late=late, score=round(late.raw_score - late.penalty, 4))


@dataclass(frozen=True)
class LedgerRow:
    login: str
    free_days: int  #: the term's free late days
    used: tuple[tuple[str, int], ...] = ()  #: (assignment id, days used), in file order

    def left(self, but: str = "") -> int:
        """Free days left, not counting what assignment `but` used."""
        return self.free_days - sum(days for aid, days in self.used if aid != but)


@dataclass(frozen=True)
class Ledger:
    """The term's free late days of every student (the TA's file)."""

    rows: tuple[LedgerRow, ...] = ()

    def find(self, keys: Iterable[str]) -> LedgerRow | None:
        wanted = {k.casefold() for k in keys if k}
        return next((r for r in self.rows if r.login.casefold() in wanted), None)

    def charged(self, assignment_id: str, used: Mapping[str, int]) -> Ledger:
        """The ledger with assignment `assignment_id`'s days set to `used` (login ->
        days) for the students it names; other assignments' days are kept."""
        rows = []
        for row in self.rows:
            if row.login not in used:
                rows.append(row)
                continue
            days = dict(row.used)
            days[assignment_id] = used[row.login]
            rows.append(replace(row, used=tuple(days.items())))
        return Ledger(tuple(rows))


@dataclass(frozen=True)
class Plan:
    """Everything a batch needs to apply the late policy to each of its results."""

    policy: LatePolicy
    due: dt.datetime
    assignment_id: str
    times: Mapping[str, dt.datetime]  #: casefolded key -> submission time
    extensions: Mapping[str, Extension]  #: casefolded key -> extension
    marked_late: frozenset[str] = frozenset()  #: submission names Canvas marked LATE
    #: submission name -> its student's other ids (roster's ID, SIS User ID, SIS Login ID)
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ledger: Ledger | None = None

    def identities(self, name: str) -> tuple[str, ...]:
        """The keys a submission's rows may use: its name, and its roster ids."""
        return (name, *(self.keys.get(name) or self.keys.get(name.casefold(), ())))

    def submitted(self, name: str) -> Submitted:
        ids = [k.casefold() for k in self.identities(name) if k]
        row = self.ledger.find(ids) if self.ledger is not None else None
        free = row.left(but=self.assignment_id) if row is not None else None
        if self.ledger is not None and row is None:
            free = 0
        return Submitted(
            at=next((self.times[k] for k in ids if k in self.times), None),
            marked_late=name in self.marked_late,
            extension=next((self.extensions[k] for k in ids if k in self.extensions), None),
            free_days=free,
        )

    def adjust(self, result: SubmissionResult) -> SubmissionResult:
        """A graded result with the policy applied (again, from its raw score); any
        other result as it is, since nothing is charged for what was not graded."""
        if result.status != "graded":
            return result
        late = assess(self.policy, self.due, raw_score(result), self.submitted(result.submission))
        known = self.ledger is None or self.ledger.find(self.identities(result.submission))
        if late.days_late and not known:
            notice = "not in the late-day ledger: no free late days"
            late = replace(late, notices=(*late.notices, notice))
        return apply(result, late)

    def ledger_after(self, graded: Iterable[SubmissionResult]) -> Ledger | None:
        """The ledger once this batch's free days are charged (None without one)."""
        if self.ledger is None:
            return None
        used: dict[str, int] = {}
        for result in graded:
            row = self.ledger.find(self.identities(result.submission))
            if row is not None and result.status == "graded" and result.late is not None:
                used[row.login] = result.late.free_days_used
        return self.ledger.charged(self.assignment_id, used)


# ---------------------------------------------------------------------------
# Reading and writing the files (the only I/O of this module)
# ---------------------------------------------------------------------------


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time with a UTC offset (`Z` too); ValueError otherwise."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("it has no UTC offset")
    return value


def _bad(path: Path, line: int, message: str, hint: str) -> LlmsysError:
    return LlmsysError(f"{path}:{line}: {message}", hint)


def _rows(path: Path, what: str, required: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV file, its header checked; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LlmsysError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LlmsysError(f"{path}: not UTF-8 text", f"save {what} as UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fields = [f.strip() for f in reader.fieldnames or []]
        reader.fieldnames = fields
        for column in required:
            if not set(column.split("|")) & set(fields):
                shown = " (or ".join(repr(c) for c in column.split("|")) + ")" * column.count("|")
                raise _bad(path, 1, f"no column {shown} in the header", f"{what}: {_FORMATS[what]}")
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}
    except csv.Error as exc:
        raise _bad(path, reader.line_num, f"not CSV: {exc}", f"{what}: {_FORMATS[what]}") from None


_FORMATS = {
    "the times file": "columns login, submitted_at (ISO 8601 with an offset)",
    "the extensions file": "columns login and days (whole days) or due (ISO 8601)",
    "the ledger": "columns login, free_days, then hw1, hw2, ... (days used)",
}


def _key(path: Path, line: int, row: dict[str, str], seen: set[str], what: str) -> str:
    login = row.get("login") or row.get("name") or ""
    if not login:
        raise _bad(path, line, "no login", f"{what}: {_FORMATS[what]}")
    if login.casefold() in seen:
        raise _bad(path, line, f"{login} is listed twice", "keep one row per student")
    seen.add(login.casefold())
    return login


def read_times(path: Path) -> dict[str, dt.datetime]:
    """Submission times by casefolded login (a CSV) or Canvas user id (Canvas's JSON)."""
    if path.suffix.lower() == ".json":
        return _read_canvas_times(path)
    what = "the times file"
    times: dict[str, dt.datetime] = {}
    seen: set[str] = set()
    for line, row in _rows(path, what, ("login|name", "submitted_at")):
        login = _key(path, line, row, seen, what)
        if not row.get("submitted_at"):
            continue
        try:
            times[login.casefold()] = parse_time(row["submitted_at"])
        except ValueError as exc:
            raise _bad(
                path,
                line,
                f"submitted_at {row['submitted_at']!r} is not a time ({exc})",
                "use ISO 8601 with a UTC offset, e.g. 2027-02-06T08:30:00-05:00",
            ) from None
    return times


def _read_canvas_times(path: Path) -> dict[str, dt.datetime]:
    hint = "save the JSON list of Canvas's Submissions API as it comes"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LlmsysError(f"cannot read the times file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise LlmsysError(f"{path}: not JSON ({exc})", hint) from None
    if not isinstance(data, list):
        raise LlmsysError(f"{path}: not a list of Canvas submissions", hint)
    times: dict[str, dt.datetime] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "user_id" not in item:
            raise LlmsysError(f"{path}: submission [{i}] has no user_id", hint)
        when = item.get("submitted_at")
        if when is None:
            continue
        try:
            times[str(item["user_id"]).casefold()] = parse_time(str(when))
        except ValueError as exc:
            raise LlmsysError(
                f"{path}: submission [{i}]: submitted_at {when!r}: {exc}", hint
            ) from None
    return times


def read_extensions(path: Path) -> dict[str, Extension]:
    """Extensions by casefolded login."""
    what = "the extensions file"
    extensions: dict[str, Extension] = {}
    seen: set[str] = set()
    for line, row in _rows(path, what, ("login", "days|due")):
        login = _key(path, line, row, seen, what)
        days, due = row.get("days", ""), row.get("due", "")
        if bool(days) == bool(due):
            raise _bad(path, line, f"{login}: give days or due, one of them", _FORMATS[what])
        try:
            if days:
                if not re.fullmatch(r"\d+", days):
                    raise ValueError(f"days {days!r} is not a whole number of days")
                extensions[login.casefold()] = Extension(days=int(days))
            else:
                extensions[login.casefold()] = Extension(due=parse_time(due))
        except ValueError as exc:
            raise _bad(path, line, f"{login}: {exc}", _FORMATS[what]) from None
    return extensions


def read_ledger(path: Path) -> Ledger:
    what = "the ledger"
    rows: list[LedgerRow] = []
    seen: set[str] = set()
    for line, row in _rows(path, what, ("login", "free_days")):
        login = _key(path, line, row, seen, what)
        used = []
        try:
            free = _days(row["free_days"], "free_days")
            for column, value in row.items():
                if column in ("login", "free_days", "left") or not value:
                    continue
                if not ASSIGNMENT_ID.match(column):
                    raise ValueError(f"column {column!r} is not an assignment (hwN)")
                used.append((column, _days(value, column)))
        except ValueError as exc:
            raise _bad(path, line, f"{login}: {exc}", _FORMATS[what]) from None
        rows.append(LedgerRow(login, free, tuple(used)))
    return Ledger(tuple(rows))


def _days(text: str, column: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ValueError(f"{column} {text!r} is not a whole number of days")
    return int(text)


def write_ledger(path: Path, ledger: Ledger) -> None:
    """Write the ledger atomically: login, free_days, left, then the assignments."""
    assignments = sorted(
        {aid for row in ledger.rows for aid, _ in row.used},
        key=lambda aid: int(ASSIGNMENT_ID.match(aid).group(1)),  # type: ignore[union-attr]
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["login", "free_days", "left", *assignments])
    for row in ledger.rows:
        used = dict(row.used)
        cells = [str(used[aid]) if aid in used else "" for aid in assignments]
        writer.writerow([row.login, row.free_days, row.left(), *cells])
    write_text_atomic(path, out.getvalue())
