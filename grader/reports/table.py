"""A terminal table of a batch: one row per submission, one column per task."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from grader.reports import format_points
from grader.results import SubmissionResult

#: Longest reason/notes cell; longer ones end in an ellipsis.
NOTES_WIDTH = 60

_STATUS_STYLES = {"graded": "green", "rejected": "yellow", "error": "red"}


def _shorten(text: str, width: int = NOTES_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _notes(result: SubmissionResult) -> str:
    return "; ".join(part for part in (result.reason, *result.notices) if part)


def render(results: Sequence[SubmissionResult], tasks: Sequence[tuple[str, str, float]]) -> Table:
    """The batch as a rich Table, sorted by submission name.

    `tasks` are (id, title, max points) in the order of the columns. A task missing from
    a submission's scores shows "-" followed by the task's max points.
    """
    table = Table(title="Grading results")
    table.add_column("submission", no_wrap=True)
    table.add_column("status")
    for task_id, _title, _max_points in tasks:
        # Text, not str, everywhere: rich would read "[...]" in a name as markup.
        table.add_column(Text(task_id), justify="right")
    table.add_column("total", justify="right")
    table.add_column("notes", max_width=NOTES_WIDTH)

    for result in sorted(results, key=lambda r: r.submission):
        scores = {t.id: t for t in result.tasks}
        cells: list[Text] = [
            Text(result.submission),
            Text(result.status, style=_STATUS_STYLES.get(result.status, "")),
        ]
        for task_id, _title, max_points in tasks:
            score = scores.get(task_id)
            if score is None:
                cells.append(Text(f"-/{format_points(max_points)}", style="dim"))
            else:
                cells.append(
                    Text(f"{format_points(score.points)}/{format_points(score.max_points)}")
                )
        cells.append(
            Text(f"{format_points(result.score)}/{format_points(result.max_score)}", style="bold")
        )
        cells.append(Text(_shorten(_notes(result))))
        table.add_row(*cells)
    return table
