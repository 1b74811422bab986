"""A Canvas gradebook CSV to import a batch's scores (Grades > Import).

Canvas's importer (instructure/canvas-lms, app/models/gradebook_importer.rb) reads:
- a header row starting with the student columns `Student`, `ID`, then optionally
  `SIS User ID` and `SIS Login ID`, and `Section` as the last of them; every later
  column is an assignment, named "Title (canvas id)" (or just a title, which matches
  an assignment of that title or creates a new one);
- an optional row whose first cell holds "Points Possible", which gives the points of
  the assignments the import creates;
- one row per student, found by the Canvas `ID`, else by `SIS User ID`, else by
  `SIS Login ID`, else by name.
A cell is taken as the new grade whenever it differs from the current one: an empty
cell for a student who already has a grade would be sent as an empty grade, i.e. it
removes it. Students that are not in the file are left as they are.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

from grader.errors import LlmsysError
from grader.files import write_text_atomic
from grader.reports import format_points
from grader.results import SubmissionResult

STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS_POSSIBLE = "Points Possible"
_MATCH_COLUMNS = ("SIS Login ID", "SIS User ID", "ID")
#: A row of the export that only marks assignments as muted / manually posted.
_MUTED = re.compile(r"^\s*(muted|manual posting.*)?\s*$", re.IGNORECASE)


def assignment_column(assignment_title: str, canvas_assignment_id: str) -> str:
    """The assignment's column header: "Title (id)", or the title alone without an id."""
    if canvas_assignment_id:
        return f"{assignment_title} ({canvas_assignment_id})"
    return assignment_title


class RosterError(LlmsysError, ValueError):
    """The roster cannot be read as a Canvas gradebook export."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, "export it from Canvas (Grades > Export) and pass that CSV file as it is"
        )


def _not_export(roster: Path, problem: str) -> RosterError:
    return RosterError(f"{roster}: not a Canvas gradebook export ({problem})")


def read_roster(roster: Path) -> list[dict[str, str]]:
    """Student rows of a Canvas gradebook export (its "Points Possible" and "Muted" /
    "Manual Posting" rows dropped), keeping only the five student columns.

    RosterError when it cannot be read, is not UTF-8 CSV text or lacks the columns."""
    try:
        # utf-8-sig: a file saved by Excel starts with a byte-order mark.
        with open(roster, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames
            if not fields:
                raise _not_export(roster, "the file is empty")
            missing = [c for c in ("Student", "ID", "SIS Login ID") if c not in fields]
            if missing:
                raise _not_export(roster, f"no column {missing[0]!r}")
            rows = []
            for row in reader:
                student = (row.get("Student") or "").strip()
                if POINTS_POSSIBLE in student:
                    continue
                values = [v for v in row.values() if isinstance(v, str)]
                if all(_MUTED.match(v) for v in values):
                    continue
                rows.append({c: (row.get(c) or "").strip() for c in STUDENT_COLUMNS})
    except UnicodeDecodeError:
        raise _not_export(roster, "not UTF-8 text") from None
    except csv.Error as exc:
        raise _not_export(roster, f"not CSV: {exc}") from None
    except OSError as exc:
        raise RosterError(f"cannot read the roster {roster}: {exc.strerror or exc}") from None
    return rows


def roster_index(rows: list[dict[str, str]], name: str) -> int | None:
    """Index of the roster row whose SIS Login ID, SIS User ID or ID is `name`, any case.

    Each column is tried over the whole roster before the next, so that a name that
    is one student's SIS Login ID and another's ID finds the first student.
    """
    wanted = name.strip().casefold()
    for column in _MATCH_COLUMNS:
        for i, row in enumerate(rows):
            if row[column] and row[column].casefold() == wanted:
                return i
    return None


def write_gradebook(
    results: Sequence[SubmissionResult],
    path: Path,
    assignment_title: str,
    canvas_assignment_id: str,
    roster: Path | None = None,
) -> list[str]:
    """Write a Canvas gradebook import CSV with one assignment column; return warnings.

    Columns: Student, ID, SIS User ID, SIS Login ID, Section and the assignment
    ("<title> (<canvas id>)"). Scores are the results' scores rounded to 2 decimals.

    - With a `roster` (a Canvas gradebook export), a submission belongs to the row whose
      SIS Login ID, SIS User ID or ID equals the submission's name (any case); rows are
      written in the roster's order. A submission without a row gets a warning and a row
      with only Student = its name (Canvas then looks the student up by name).
    - Without a roster, each row has Student and SIS Login ID = the submission's name.
    - Roster students without a submission are left out of the file, with a warning:
      Canvas leaves students it does not find in the file untouched, whereas an empty
      cell would clear a grade already entered (a zero would be a grading decision,
      which is not a writer's to make).
    - A submission that could not be graded (status "error") is left out with a warning:
      its 0 is not the student's score. A rejected one gets its score (normally 0).
    - A "Points Possible" row is written only when there is no Canvas assignment id, that
      is when the import creates the assignment and needs its points.
    """
    warnings: list[str] = []
    column = assignment_column(assignment_title, canvas_assignment_id)

    graded: list[SubmissionResult] = []
    for result in sorted(results, key=lambda r: r.submission):
        if result.status == "error":
            warnings.append(
                f"{result.submission}: not graded ({result.reason or 'grader error'}); left out"
            )
        else:
            graded.append(result)

    rows: list[list[str]] = []
    if roster is None:
        if graded:
            warnings.append(
                "no roster: students are identified by SIS Login ID = submission name; "
                "check that Canvas finds them all before importing"
            )
        for result in graded:
            rows.append([result.submission, "", "", result.submission, "", _score(result)])
    else:
        roster_rows = read_roster(roster)
        scores: dict[int, SubmissionResult] = {}
        unmatched: list[SubmissionResult] = []
        for result in graded:
            i = roster_index(roster_rows, result.submission)
            if i is None:
                warnings.append(f"{result.submission}: no student of the roster has this name")
                unmatched.append(result)
            elif i in scores:
                warnings.append(
                    f"{result.submission}: same student as {scores[i].submission} "
                    f"({roster_rows[i]['Student']}); kept {scores[i].submission}"
                )
            else:
                scores[i] = result
        for i, row in enumerate(roster_rows):
            if i in scores:
                rows.append([row[c] for c in STUDENT_COLUMNS] + [_score(scores[i])])
        for result in unmatched:
            rows.append([result.submission, "", "", "", "", _score(result)])
        missing = [
            row["Student"] or row["SIS Login ID"]
            for i, row in enumerate(roster_rows)
            if i not in scores
        ]
        if missing:
            warnings.append(
                f"{len(missing)} student(s) of the roster have no submission and are left out "
                f"(Canvas keeps their grades): {', '.join(missing)}"
            )

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*STUDENT_COLUMNS, column])
    if not canvas_assignment_id:
        maxima = sorted({r.max_score for r in graded})
        if len(maxima) > 1:
            warnings.append(
                "the submissions disagree on the maximum score "
                f"({', '.join(format_points(m) for m in maxima)}); Points Possible uses the largest"
            )
        if maxima:
            writer.writerow([POINTS_POSSIBLE, "", "", "", "", format_points(maxima[-1])])
    writer.writerows(rows)
    write_text_atomic(Path(path), out.getvalue())
    return warnings


def _score(result: SubmissionResult) -> str:
    return format_points(result.score)
