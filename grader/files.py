"""Writing the grader's output files: one way, whatever the report.

Every file the grader writes for people (results, feedback, reports) goes through
`write_text_atomic` or `write_json_atomic`: readers see the old file or the new
one, never half of one, and every file gets the same mode (that of the file it
replaces, else 0644), whichever writer made it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

MODE = 0o644


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file in the same folder,
    flushed to disk and renamed over `path` (`os.replace` is atomic on one file system)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; keep the old file's mode, or the usual one.
        mode = path.stat().st_mode & 0o777 if path.exists() else MODE
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """`data` as indented JSON, written as `write_text_atomic` writes."""
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")
