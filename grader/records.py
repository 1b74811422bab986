"""The records that cross the grader's process boundaries, typed and versioned.

- `HarnessConfig`: what the grader tells the harness (a pytest process, maybe in a
  container), written as JSON next to the tests and loaded by the harness;
- `TestRecord`: what the harness's journal says of one test (`grader.plugin`
  writes the journal, `read_results` loads it for the grader).

Both sides go through `grader.schema.load`: an unknown or missing key, a value of
the wrong type or another format version is an error naming the key, never a
silently wrong score.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from grader.manifest import TimingCheck
from grader.sandbox import SandboxConfig
from grader.schema import SchemaError, doc, load

HARNESS_CONFIG_FORMAT = 1
RESULTS_FORMAT = 2

Outcome = Literal["did_not_run", "passed", "failed", "error", "skipped"]


@dataclass(frozen=True)
class HarnessConfig:
    format: int = doc("HARNESS_CONFIG_FORMAT of the grader that wrote it.")
    student_tree: str = doc("The submission's tree, as the harness sees it.")
    reference_tree: str = doc("The reference's tree (never visible to student code).")
    reference_home: str = doc("HOME and TMPDIR of the reference's worker.")
    student_packages: tuple[str, ...] = doc("Packages the harness itself refuses to import.")
    logs: str = doc("Folder of the workers' logs.")
    test_timeout_s: float = doc("A test's budget unless its time_limit marker says otherwise.")
    sandbox: SandboxConfig | None = doc("The student worker's confinement; None: unconfined.")
    import_paths: tuple[str, ...] = doc("Folders put on the harness's sys.path (shared helpers).")
    timing: tuple[TimingCheck, ...] = doc("The manifest's timing checks.")
    env: dict[str, str] = doc("Environment variables of both workers (thread pools).")
    fresh_worker_after: tuple[str, ...] = doc(
        "Exception types of student code after which the student's worker is replaced "
        "(the manifest's fresh_worker_after).",
        default=(),
    )
    reference_cgroups: tuple[str, ...] = doc(
        "Control groups of the reference's worker: a CPU group like the student's, so "
        "both sides of a timing check share the CPU alike on a busy host.",
        default=(),
    )

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> HarnessConfig:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != HARNESS_CONFIG_FORMAT:
            raise SchemaError(
                "format", f"{path} is not a harness configuration of format {HARNESS_CONFIG_FORMAT}"
            )
        return load(cls, data)


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest test class

    nodeid: str = doc("pytest's node id, relative to the harness folder.")
    task: str | None = doc("The task its `task` marker names.")
    points: float | None = doc("Its fixed points (`points=`), else a share of the rest.")
    outcome: Outcome = doc("What became of it; `did_not_run` until it finished.")
    phase: str | None = doc("setup, call or teardown: where it failed or was skipped.")
    error_type: str | None = doc("The class name of the exception that failed it.")
    message: str = doc("That exception's message (clipped).")
    longrepr: str = doc("Its traceback, the test's own frames only (clipped).")
    duration: float = doc("Seconds in setup, call and teardown.")
    properties: dict[str, str | bool | int | float] = doc(
        "What the harness attached: student_output, origin, timing_ratio, timing_credit, ..."
    )
    timing: str | None = doc("The timing check it runs, if any.", default=None)
    collection_error: bool = doc("A test file could not be collected.", default=False)
    composed_pass: bool = doc(
        "It passed when rerun with working files for the other tasks (`grader.rerun`).",
        default=False,
    )


def new_record(nodeid: str, task: str | None, points: float | None) -> dict[str, Any]:
    """A test's first journal entry (as the recorder keeps it: a dict it updates)."""
    return {
        "nodeid": nodeid,
        "task": task,
        "points": points,
        "outcome": "did_not_run",
        "phase": None,
        "error_type": None,
        "message": "",
        "longrepr": "",
        "duration": 0.0,
        "properties": {},
    }


@dataclass(frozen=True)
class Journal:
    finished: bool
    tests: tuple[TestRecord, ...] = field(default=())


def read_results(path: Path) -> Journal:
    """The journal at `path`: the latest record of each test, collection errors first,
    then the tests in collection order. OSError if it cannot be read; ValueError
    (SchemaError) if it is not a journal of this format or a record does not fit."""
    finished, records = _read(path)
    tests = {r.nodeid: r for r in records if not r.collection_error}
    errors = [r for r in records if r.collection_error]
    return Journal(finished, (*errors, *tests.values()))


def read_runs(path: Path) -> list[TestRecord]:
    """Every finished run of every test in the journal at `path`, in the order they
    finished (a test collected several times, `--keep-duplicates`, has several)."""
    _, records = _read(path)
    return [r for r in records if r.outcome != "did_not_run" and not r.collection_error]


def _read(path: Path) -> tuple[bool, list[TestRecord]]:
    """Whether the journal at `path` says its session finished, and all its records
    in the order written (a torn last line, of a killed session, is skipped)."""
    records: list[TestRecord] = []
    finished = False
    fmt = None
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the torn last line of a killed session
        if not isinstance(entry, dict):
            raise SchemaError(f"line {n + 1}", "expected a JSON object")
        if "format" in entry:
            fmt = entry["format"]
        elif entry.get("finished"):
            finished = True
        else:
            records.append(load(TestRecord, entry, f"line {n + 1}"))
    if fmt != RESULTS_FORMAT:
        raise ValueError(f"{path} is not a results journal of format {RESULTS_FORMAT}")
    return finished, records
