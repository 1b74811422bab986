"""The report writers.

Every output format is its own small writer of grader.results data; writers never
compute scores.

One module per format: `gradescope` (results.json for Gradescope's autograder),
`junit` (JUnit XML for CI), `markdown` (feedback for the student and for staff),
`canvas` (a Canvas gradebook import CSV) and `table` (a terminal table).
They only read `SubmissionResult`s; scores come from the grader as they are.

This module holds the two helpers the writers share.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` so that readers see the old file or the new one, never half.

    The text goes to a temporary file in the same folder, is flushed to disk and then
    renamed over `path` with `os.replace`, which is atomic on one file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; keep the old file's mode, or the usual 0644.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def format_points(value: float) -> str:
    """Points as people write them: at most 2 decimals, no trailing zeros (7.5, 10, 3.33)."""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
