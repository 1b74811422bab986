"""`llmsys canvas upload`: post a grading's scores and feedback to Canvas.

The gradebook CSV (`grader.reports.canvas`) needs a TA to import it by hand and
carries no feedback; this posts each graded student's score and their
feedback.md as a submission comment through the Canvas REST API (`canvasapi`).

Why it is shaped as it is:
- **Dry run by default.** Without `post=True` only GET requests are made: the
  TA sees, per student, what would change on Canvas before anything does.
- **Idempotent.** The assignment's current submissions are read once; a student
  whose Canvas score already is the score to post gets no new grade, and one
  whose latest comment from this tool carries the same tag (`[llmsys <hash>]`,
  a hash of the comment's text) gets no new comment. A rerun posts nothing.
  The latest *tagged* comment counts, not the latest comment: a TA's reply
  under the feedback must not make the next run post the feedback again.
- **Students as the gradebook finds them.** A submission's name is the
  student's SIS Login ID, or, with a roster (a Canvas gradebook export), the
  row whose SIS Login ID, SIS User ID or ID is that name. The course's students
  are listed once and matched here; one the listing does not show (a caller
  who may not see login ids) is asked for by `sis_login_id:` / `sis_user_id:`.
- **One student's failure is one line.** A Canvas error while posting (401,
  404, 5xx, a timeout) names the student and the HTTP status; the others are
  still posted and the command exits 1.

The token comes from the environment only, and is never printed or written.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import audit
from grader.batch import report_folder
from grader.canvas_api import (
    TIMEOUT_S,
    Client,
    NotFound,
    Settings,
    describe,
    find,
    look_up,
    problem,
    target,
)
from grader.reports import canvas, format_points, markdown
from grader.results import SubmissionResult

#: Longest comment posted, in characters: Canvas shows comments in a narrow side
#: panel, and a full feedback of a large assignment runs to many screens.
MAX_COMMENT = 6000
#: Canvas stores scores as floats; the gradebook rounds to 2 decimals.
_SAME_SCORE = 0.005

_TAG = re.compile(r"\[llmsys ([0-9a-f]{12})\]\s*$")


@dataclass(frozen=True)
class Outgoing:
    """What one graded student gets: a score and a comment."""

    submission: str
    score: float
    max_score: float
    comment: str  #: the text to post, ending with its tag line
    tag: str  #: the hash in the tag line

    @property
    def first_line(self) -> str:
        return self.comment.split("\n", 1)[0]


@dataclass
class Summary:
    """What an upload did (or, in a dry run, would do), by submission name."""

    posted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  #: not graded (status "error")

    @property
    def ok(self) -> bool:
        return not (self.not_found or self.failed)


def comment_text(feedback: str, where: str) -> tuple[str, str]:
    """The comment to post for a feedback text, and its tag.

    A feedback longer than `MAX_COMMENT` is cut at a line break, with a note that
    `where` holds all of it. The tag, a hash of the text, ends the comment: the
    next upload recognises the comment it would post by it."""
    body = feedback.strip()
    if len(body) > MAX_COMMENT:
        note = (
            f"[Trimmed to fit a comment: the full feedback is {where}; "
            "ask the course staff if you do not have it.]"
        )
        cut = body[: MAX_COMMENT - len(note) - 8]
        body = cut[: cut.rfind("\n")] if "\n" in cut else cut
        body = f"{body.rstrip()}\n...\n\n{note}"
    tag = hashlib.sha256(body.encode("utf-8")).hexdigest()[:12]
    return f"{body}\n\n[llmsys {tag}]", tag


def outgoing(folder: Path) -> tuple[list[Outgoing], list[str]]:
    """The score and comment of every graded submission of the grading `folder`
    (OUT/hwN), and the names of those left out as not graded (status "error":
    their 0 is not the student's score)."""
    found = audit.load(folder)
    base = folder if any(folder.glob("*/result.json")) else _inner(folder)
    out: list[Outgoing] = []
    left_out: list[str] = []
    for name in sorted(found):
        result = found[name]
        if result.status == "error":
            left_out.append(name)
            continue
        rel = f"{result.assignment}/{report_folder(name)}/feedback.md"
        comment, tag = comment_text(_feedback(base / report_folder(name), result), rel)
        out.append(Outgoing(name, result.score, result.max_score, comment, tag))
    return out, left_out


def _inner(folder: Path) -> Path:
    """The one grading inside OUT (audit.load accepted it, so there is one)."""
    return next(p for p in sorted(folder.iterdir()) if any(p.glob("*/result.json")))


def _feedback(folder: Path, result: SubmissionResult) -> str:
    """The student's feedback.md as the grading wrote it, else written again from
    the result (the same writer: it never holds hidden details)."""
    try:
        return (folder / "feedback.md").read_text(encoding="utf-8")
    except (OSError, UnicodeError):
        return markdown.feedback(result)


def upload(
    folder: Path,
    where: Settings,
    *,
    post: bool = False,
    roster: Path | None = None,
    say: Callable[[str], None] = print,
    timeout_s: float = TIMEOUT_S,
) -> Summary:
    """Post (with `post`) or show (without) each graded student's score and comment.

    Raises `LlmsysError` when Canvas cannot be used at all (token refused, course
    or assignment not found, server down); a problem with one student is a line
    through `say` and an entry of the summary."""
    items, left_out = outgoing(folder)
    roster_rows = canvas.read_roster(roster) if roster else None
    summary = Summary(left_out=left_out)
    for name in left_out:
        say(f"{name}: not graded (status error); left out, as in the gradebook")
    api = Client(where, timeout_s)
    course = api.call("reading course", lambda c: c.get_course(int(where.course_id)))
    assignment = api.call(
        "reading the assignment", lambda c: course.get_assignment(int(where.assignment_id))
    )
    students = api.call(
        "listing the course's students",
        lambda c: list(course.get_users(enrollment_type=["student"])),
    )
    current = {
        getattr(s, "user_id", None): s
        for s in api.call(
            "reading the assignment's submissions",
            lambda c: list(assignment.get_submissions(include=["submission_comments"])),
        )
    }
    possible = getattr(assignment, "points_possible", None)
    maxima = {item.max_score for item in items}
    if possible is not None and maxima and maxima != {float(possible)}:
        say(f"notice: the Canvas assignment is out of {format_points(float(possible))} points, "
            f"the grading out of {', '.join(format_points(m) for m in sorted(maxima))}; "
            "scores are posted as points")  # fmt: skip
    verb = "posted" if post else "would post"
    seen: dict[int, str] = {}
    for i, item in enumerate(items, 1):
        head = f"[{i}/{len(items)}] {item.submission}"
        who = target(item.submission, roster_rows)
        try:
            user_id = find(students, who) or look_up(course, who)
        except NotFound:
            say(f"{head}: not found in course {where.course_id} (no student with "
                f"{describe(who)}); skipped")  # fmt: skip
            summary.not_found.append(item.submission)
            continue
        except Exception as exc:
            say(f"{head}: looking up {describe(who)} failed: {problem(exc, timeout_s)}")
            summary.failed.append(item.submission)
            continue
        if user_id in seen:
            say(f"{head}: the same Canvas student as {seen[user_id]}; skipped (one of the "
                "two is misnamed)")  # fmt: skip
            summary.failed.append(item.submission)
            continue
        seen[user_id] = item.submission
        grade, comment = _changes(item, current.get(user_id))
        if not (grade or comment):
            say(f"{head}: unchanged on Canvas (score {format_points(item.score)}, same comment)")
            summary.unchanged.append(item.submission)
            continue
        what = _what(item, grade, comment)
        if post:
            try:
                _post(assignment, where, user_id, item, grade, comment)
            except Exception as exc:
                say(f"{head}: posting failed: {problem(exc, timeout_s)}; not posted")
                summary.failed.append(item.submission)
                continue
        say(f"{head}: {verb} {what}")
        summary.posted.append(item.submission)
    say(_summary_line(summary, post, len(items)))
    return summary


def _summary_line(s: Summary, post: bool, total: int) -> str:
    if not s.posted and not s.not_found and not s.failed:
        return (
            f"nothing new to post: all {total} graded student(s) already have this score "
            "and comment on Canvas"
        )
    counts = (
        f"{len(s.posted)} {'posted' if post else 'to post'}, {len(s.unchanged)} unchanged, "
        f"{len(s.not_found)} not found, {len(s.failed)} failed"
    )
    if s.left_out:
        counts += f", {len(s.left_out)} not graded (left out)"
    if post:
        return counts
    return f"dry run: {counts}; nothing was posted (add --post to post)"


def _what(item: Outgoing, grade: bool, comment: bool) -> str:
    score = f"{format_points(item.score)}/{format_points(item.max_score)}"
    parts = ([f"score {score}"] if grade else []) + (
        [f"comment {item.first_line!r}"] if comment else []
    )
    return " and ".join(parts)


def _changes(item: Outgoing, submission: Any) -> tuple[bool, bool]:
    """(grade, comment): which of the two Canvas does not hold yet."""
    if submission is None:
        return True, True
    score = getattr(submission, "score", None)
    grade = score is None or abs(float(score) - round(item.score, 2)) > _SAME_SCORE
    tags = [
        m.group(1)
        for c in getattr(submission, "submission_comments", None) or []
        if (m := _TAG.search(str(c.get("comment", ""))))
    ]
    return grade, not tags or tags[-1] != item.tag


def _post(
    assignment: Any, where: Settings, user_id: int, item: Outgoing, grade: bool, comment: bool
) -> None:
    from canvasapi.submission import Submission

    # The submission object is built from its ids: a student who never submitted
    # has no submission in the listing, and the PUT needs only the ids.
    submission = Submission(
        assignment._requester,
        {"course_id": where.course_id, "assignment_id": where.assignment_id, "user_id": user_id},
    )
    fields: dict[str, Any] = {}
    if grade:
        fields["submission"] = {"posted_grade": format_points(item.score)}
    if comment:
        fields["comment"] = {"text_comment": item.comment}
    submission.edit(**fields)
