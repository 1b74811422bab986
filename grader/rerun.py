"""The composed rerun: one broken or slow task costs only its own points.

After the first run, each task's failed tests are run again on the reference with
only that task's files taken from the submission; so are its tests that did not
run (the first run reached its share of the time limit). A test that passes so
is marked `composed_pass`, and scores as passed (`grader.scoring`).

The student's code shares the sandbox with reference code here, so nothing of
this run reaches the student but pass/fail: the first run's output stays the
feedback.
"""

from __future__ import annotations

import dataclasses
import time

from grader import intake, workspace
from grader.backend import Backend, Placement
from grader.records import TestRecord, read_results
from grader.testrun import pytest_command


def composed_pass(
    taken: intake.Intake,
    own_tree: dict[str, bytes],
    records: tuple[TestRecord, ...],
    placement: Placement,
    env: dict[str, str],
    backend: Backend,
    deadline: float,
) -> tuple[tuple[TestRecord, ...], dict[str, int]]:
    """The records with `composed_pass` set where a rerun passed, and task id -> how
    many tests passed so. `own_tree` is the first run's student tree; it is put
    back at the end. All reruns end by `deadline` (time.monotonic()), the
    submission's own, each with an equal share of what is left."""
    ctx = placement.context
    a = ctx.assignment
    if len(a.tasks) < 2:
        return records, {}
    failed: dict[str, list[str]] = {}
    not_run: set[str] = set()
    for r in records:
        if r.phase == "collect":
            continue
        if r.outcome in ("failed", "error", "did_not_run"):
            failed.setdefault(str(r.task), []).append(r.nodeid)
        if r.outcome == "did_not_run":
            not_run.add(r.nodeid)
    # Tasks whose composed trees are equal (typically: every file of theirs is the
    # reference's) share one rerun.
    groups: dict[tuple[tuple[str, bytes], ...], list[str]] = {}
    for task in a.tasks:
        mine = set(task.files)
        if not failed.get(task.id) or not mine or mine & set(taken.missing):
            continue
        if all(taken.files.get(rel) == ctx.starter.get(rel) for rel in mine):
            continue  # the task's files are the starter's: its stubs fail anyway
        tree = dict(ctx.reference)
        tree.update({rel: data for rel, data in taken.files.items() if rel in mine})
        if all(tree.get(rel) == own_tree.get(rel) for rel in set(tree) | set(own_tree)):
            # The same tree as the first run: only what did not run is worth a run.
            failed[task.id] = [nodeid for nodeid in failed[task.id] if nodeid in not_run]
            if not failed[task.id]:
                continue
        groups.setdefault(tuple(sorted(tree.items())), []).append(task.id)
    passed: set[tuple[str, str]] = set()  # (task, nodeid)
    harness = placement.seen / "harness"
    for n, (tree_items, task_ids) in enumerate(groups.items()):
        left = (deadline - time.monotonic()) / (len(groups) - n)
        if left <= 1:
            continue
        workspace.write_student(dict(tree_items), placement.work)
        journal = f"results-composed-{n}.json"
        targets = [nodeid for task_id in task_ids for nodeid in failed[task_id]]
        command = pytest_command(
            backend.python, harness / journal, targets, harness / workspace.CONFIG
        )
        backend.run_harness(placement, command, env, left)
        try:
            rerun = read_results(placement.work / "harness" / journal).tests
        except (OSError, ValueError):
            continue
        passed.update((t, r.nodeid) for r in rerun if r.outcome == "passed" for t in task_ids)
    workspace.write_student(own_tree, placement.work)
    marked = tuple(
        dataclasses.replace(r, composed_pass=True) if (r.task, r.nodeid) in passed else r
        for r in records
    )
    rescued: dict[str, int] = {}
    for r in marked:
        if r.composed_pass and r.task is not None:
            rescued[r.task] = rescued.get(r.task, 0) + 1
    return marked, rescued
