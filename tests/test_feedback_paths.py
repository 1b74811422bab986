"""Students see paths of their own repo (minitorch/ops.py, tests/test_x.py) in
feedback, never the grader's workspace where their code was graded."""

from __future__ import annotations

import json
from pathlib import Path

from grader import results
from tests.conftest import GOOD_OPS, submission
from tests.test_grade import grade_one


def test_tracebacks_name_paths_of_the_students_repo(graded_course: Path, tmp_path: Path):
    raising = GOOD_OPS.replace("    return x + y\n", "    raise ValueError('add is broken')\n")
    folder = submission(tmp_path / "subs", "lee", raising)
    result = grade_one(graded_course, folder, tmp_path)
    add = next(t for t in result.tests if t.id == "tests/test_mini.py::test_add")
    assert add.status == "failed" and "add is broken" in add.output
    assert 'File "mini/ops.py"' in add.staff_output, add.staff_output
    assert 'File "tests/test_mini.py"' in add.staff_output, add.staff_output
    everything = json.dumps(results.to_dict(result))
    assert str(tmp_path) not in everything
    assert "llmsys-grade" not in everything


def test_tools_warnings_stay_out_of_feedback_and_the_students_own_stay_in(
    graded_course: Path, tmp_path: Path
):
    """numba's warnings (a parallel loop it could not make, a read-only /dev/shm) are
    the tools' noise; a warning of the student's own code is theirs to see."""
    noisy = GOOD_OPS.replace(
        "    return x + y\n",
        "    import warnings\n"
        "    exec('import warnings; warnings.warn(\"TOOL NOISE\")', {'__name__': 'numba.core.x'})\n"
        "    warnings.warn('STUDENT WARNING')\n"
        "    return x + y + 1\n",
    )
    folder = submission(tmp_path / "subs", "max", noisy)
    result = grade_one(graded_course, folder, tmp_path)
    add = next(t for t in result.tests if t.id == "tests/test_mini.py::test_add")
    assert add.status == "failed"
    assert "STUDENT WARNING" in add.output
    assert "TOOL NOISE" not in add.output
