"""JUnit XML for CI: one <testsuite> per submission, one <testcase> per test.

Written with junitparser's xunit2 flavour (the schema pytest writes by default),
because it allows <properties> on a <testcase>: each test carries `points`,
`max_points` and `task` there (numbers exactly, as Python writes floats); each
suite carries `score`, `max_score`, `status` and `reason`.

This file may end up in a student's CI, so it holds what a student may see: a test's
`output` (and only for visibility "visible"; otherwise "details are hidden"), never
its `staff_output`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from junitparser import Error, Failure, Skipped
from junitparser.xunit2 import JUnitXml, TestCase, TestSuite

from grader.files import write_text_atomic
from grader.reports import format_points
from grader.results import SubmissionResult, TestResult

HIDDEN_DETAILS = "details are hidden"

#: classname and name of the extra testcase that stands for a submission that was
#: rejected or could not be graded, so that CI shows it red instead of "0 tests".
SUBMISSION_CLASSNAME = "grader"
SUBMISSION_TESTCASE = "submission"


#: Characters XML 1.0 does not allow (control characters such as ESC of ANSI colours,
#: lone surrogates): a file containing one cannot be parsed back.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """`text` with the characters XML cannot hold written as escapes (ESC becomes \\x1b)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _student_text(test: TestResult) -> str:
    return test.output if test.visibility == "visible" else HIDDEN_DETAILS


def _testcase(test: TestResult) -> TestCase:
    case = TestCase(name=_xml_safe(test.name), classname=_xml_safe(test.task), time=test.duration_s)
    # Properties first: the xunit2 schema puts them before the result.
    _add_properties(
        case,
        points=str(float(test.points)),
        max_points=str(float(test.max_points)),
        task=test.task,
        id=test.id,
        visibility=test.visibility,
    )
    points = f"{format_points(test.points)}/{format_points(test.max_points)} points"
    result: Failure | Error | Skipped | None
    if test.status == "failed":
        result = Failure(message=f"failed ({points})", type_="failed")
    elif test.status == "error":
        result = Error(message=f"error ({points})", type_="error")
    elif test.status == "did_not_run":
        result = Error(message=f"did not run ({points})", type_="did_not_run")
    elif test.status == "skipped":
        result = Skipped(message=f"skipped ({points})")
    else:
        result = None
    if result is not None:
        text = _student_text(test)
        if text:
            result.text = _xml_safe(text)
        case.result = [result]
    return case


def _add_properties(element: TestCase | TestSuite, **properties: str) -> None:
    for name, value in properties.items():
        element.add_property(name, _xml_safe(value))


def _testsuite(submission: SubmissionResult) -> TestSuite:
    suite = TestSuite(name=_xml_safe(submission.submission))
    if submission.started_at:
        suite.timestamp = _xml_safe(submission.started_at)
    _add_properties(
        suite,
        assignment=submission.assignment,
        score=str(float(submission.score)),
        max_score=str(float(submission.max_score)),
        status=submission.status,
        reason=submission.reason,
    )
    cases = [_testcase(test) for test in submission.tests]
    if submission.status != "graded":
        case = TestCase(name=SUBMISSION_TESTCASE, classname=SUBMISSION_CLASSNAME, time=0.0)
        what = "rejected" if submission.status == "rejected" else "could not be graded"
        error = Error(message=f"submission {what}", type_=submission.status)
        error.text = _xml_safe(submission.reason or what)
        case.result = [error]
        cases.append(case)
    suite.add_testcases(cases)  # also counts tests, failures, errors, skipped and time
    return suite


def write_junit(results: Sequence[SubmissionResult], path: Path) -> None:
    """Write one JUnit XML file for all `results`, replacing `path` atomically.

    A submission that was rejected or could not be graded gets one more testcase,
    `grader.submission`, with an <error> that carries the reason.
    """
    xml = JUnitXml(name="llmsys grader")
    for submission in results:
        # append, not add_testsuite: that one merges suites it thinks are equal.
        xml.append(_testsuite(submission))
    xml.update_statistics()
    root = ET.fromstring(xml.tostring())  # re-read with the standard library to indent it
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    write_text_atomic(Path(path), '<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n")
