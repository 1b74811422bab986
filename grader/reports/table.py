"""A terminal table of a batch: one row per submission, one column per task, and
below it the notes (reasons, notices), one line per submission.

Made to be read at 80 columns and in CI logs: a task's column is headed by its id
over its maximum (`/10`), scores are plain numbers, a submission's name is never cut
(one wider than the room left goes on over the next line), and a note line ends
where the console does ("…"; result.json has it whole). Names and notes come from
submissions: they are shown with `intake.visible`, and as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from grader.intake import one_line, visible
from grader.reports import format_points
from grader.results import SubmissionResult

#: Longest note kept (the console's width cuts it further).
NOTES_WIDTH = 500

_STATUS_STYLES = {"graded": "green", "rejected": "yellow", "error": "red"}


def _shorten(text: str, width: int = NOTES_WIDTH) -> str:
    text = one_line(text)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _notes(result: SubmissionResult, shared: frozenset[str] = frozenset()) -> str:
    parts = (result.reason, _late(result), *(n for n in result.notices if n not in shared))
    return "; ".join(part for part in parts if part)


def _late(result: SubmissionResult) -> str:
    """The late policy's note: only for a late submission (on time says nothing)."""
    late = result.late
    if late is None or (late.days_late == 0 and not late.notices):
        return ""
    hours = f", {late.hours_late:g} h" if late.hours_late else ""
    parts = [f"late {late.days_late} d{hours}", f"{late.free_days_used} free day(s)"]
    parts.append(
        f"penalty {format_points(late.penalty)}: raw {format_points(late.raw_score)} "
        f"-> {format_points(result.score)}"
    )
    return ", ".join(parts) + "".join(f" ({notice})" for notice in late.notices)


def render(results: Sequence[SubmissionResult], tasks: Sequence[tuple[str, str, float]]) -> Group:
    """The batch, sorted by submission name: a rich Table and its note lines.

    `tasks` are (id, title, max points) in the order of the columns. A task missing from
    a submission's scores shows "-". A notice that every graded submission has (when
    there are several) is one note line rather than one per submission.
    """
    ordered = sorted(results, key=lambda r: r.submission)
    names = [visible(r.submission) for r in ordered]
    table = Table(title="Grading results", box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
    # Text, not str, everywhere: rich would read "[...]" in a name as markup.
    table.add_column(
        Text("submission"),
        overflow="fold",
        vertical="top",
        min_width=min(12, max((len(n) for n in names), default=0)),
    )
    table.add_column(Text("status"), no_wrap=True, min_width=6)
    for task_id, _title, max_points in tasks:
        out_of = f"/{format_points(max_points)}"
        header = Text(visible(task_id))
        header.append(f"\n{out_of}", style="dim")
        width = max(len(visible(task_id)), len(out_of))
        table.add_column(header, justify="right", no_wrap=True, min_width=width)
    maximum = max((r.max_score for r in ordered), default=sum(t[2] for t in tasks))
    total = Text("total")
    total.append(f"\n/{format_points(maximum)}", style="dim")
    table.add_column(total, justify="right", no_wrap=True, min_width=5)

    for name, result in zip(names, ordered, strict=True):
        scores = {t.id: t for t in result.tasks}
        cells: list[Text] = [
            Text(name),
            Text(result.status, style=_STATUS_STYLES.get(result.status, "")),
        ]
        for task_id, _title, _max_points in tasks:
            score = scores.get(task_id)
            cells.append(
                Text("-", style="dim") if score is None else Text(format_points(score.points))
            )
        cells.append(Text(format_points(result.score), style="bold"))
        table.add_row(*cells)

    graded = [r for r in ordered if r.status == "graded"]
    shared = (
        frozenset.intersection(*(frozenset(r.notices) for r in graded))
        if len(graded) > 1
        else frozenset()
    )
    lines: list[Text] = [
        _line("every graded submission", notice) for notice in sorted(shared) if notice
    ]
    for name, result in zip(names, ordered, strict=True):
        note = _notes(result, shared)
        if note:
            lines.append(_line(name, note))
    if not lines:
        return Group(table)
    return Group(table, Text("notes:"), *lines)


def _line(name: str, note: str) -> Text:
    """One note line: cut with "…" where the console ends, never wrapped."""
    line = Text("  ", no_wrap=True, overflow="ellipsis")
    line.append(name, style="bold")
    line.append(f": {_shorten(note)}")
    return line
