"""`llmsys canvas upload` against a stand-in Canvas: a local HTTP server speaking the
few endpoints canvasapi calls here, which records every request it receives.

Endpoints (as canvasapi 3.6 calls them, all under /api/v1):
    GET  courses/:course                                    get_course
    GET  courses/:course/assignments/:assignment             Course.get_assignment
    GET  courses/:course/search_users?enrollment_type[]=student   Course.get_users
    GET  courses/:course/users/sis_login_id::login          Course.get_user (prefix)
    GET  courses/:course/assignments/:a/submissions?include[]=submission_comments
    PUT  courses/:course/assignments/:a/submissions/:user   Submission.edit
Lists are served two per page with a `Link: <...>; rel="next"` header.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from grader import canvas_api, canvas_upload, results
from grader.batch import report_folder
from grader.cli import main
from grader.files import write_json_atomic, write_text_atomic
from grader.reports import markdown
from grader.results import SubmissionResult, TaskScore, to_dict

TOKEN = "secret-token-7f3a"
COURSE = 55
ASSIGNMENT = 901
PAGE = 2

#: The course's students: Canvas id, login id (the SIS Login ID), SIS user id.
STUDENTS = [
    {"id": 101, "name": "Ada", "login_id": "ada", "sis_user_id": "S-101"},
    {"id": 102, "name": "Bo", "login_id": "bo", "sis_user_id": "S-102"},
    {"id": 103, "name": "Cy", "login_id": "cy", "sis_user_id": "S-103"},
]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    token: str


@dataclass
class FakeCanvas:
    """The stand-in's state: users, submissions (score, comments), and what it got."""

    users: list[dict[str, Any]] = field(default_factory=lambda: [dict(u) for u in STUDENTS])
    hidden_logins: bool = False  #: the listing shows no login_id (a TA without SIS rights)
    scores: dict[int, float | None] = field(default_factory=dict)
    comments: dict[int, list[str]] = field(default_factory=dict)
    fail_put: dict[int, int] = field(default_factory=dict)  #: user id -> HTTP status
    slow_put: dict[int, float] = field(default_factory=dict)  #: user id -> seconds
    fail_course: int = 0
    points_possible: float = 10
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    @property
    def puts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PUT"]


def _handler(state: FakeCanvas) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Request:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            auth = self.headers.get("Authorization", "")
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                parse_qs(body),
                auth.removeprefix("Bearer "),
            )
            state.requests.append(request)
            return request

        def _page(self, request: Request, items: list[Any]) -> None:
            page = int(request.query.get("page", ["1"])[0])
            chunk = items[(page - 1) * PAGE : page * PAGE]
            headers = {}
            if page * PAGE < len(items):
                query = "&".join(
                    f"{k}={v}" for k, vs in request.query.items() if k != "page" for v in vs
                )
                nxt = f"{state.url}{request.path}?{query}&page={page + 1}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            self._reply(200, chunk, headers)

        def do_GET(self) -> None:
            self._serve(self._record())

        def do_PUT(self) -> None:
            self._serve(self._record())

        def _serve(self, r: Request) -> None:
            if r.token != TOKEN:
                self._reply(401, {"errors": [{"message": "Invalid access token."}]},
                            {"WWW-Authenticate": 'Bearer realm="canvas-lms"'})  # fmt: skip
                return
            parts = r.path.removeprefix("/api/v1/").split("/")
            if parts[:2] != ["courses", str(COURSE)]:
                self._reply(
                    404, {"errors": [{"message": "The specified resource does not exist."}]}
                )
                return
            rest = parts[2:]
            if r.method == "GET" and rest == []:
                if state.fail_course:
                    self._reply(state.fail_course, {"errors": [{"message": "oops"}]})
                else:
                    self._reply(200, {"id": COURSE, "name": "LLM Systems"})
            elif r.method == "GET" and rest == ["assignments", str(ASSIGNMENT)]:
                self._reply(
                    200,
                    {
                        "id": ASSIGNMENT,
                        "course_id": COURSE,
                        "name": "hw1",
                        "points_possible": state.points_possible,
                    },
                )
            elif r.method == "GET" and rest == ["search_users"]:
                shown = [
                    {k: v for k, v in u.items() if k != "login_id" or not state.hidden_logins}
                    for u in state.users
                ]
                self._page(r, shown)
            elif r.method == "GET" and len(rest) == 2 and rest[0] == "users":
                kind, _, value = rest[1].partition(":")
                key = {"sis_login_id": "login_id", "sis_user_id": "sis_user_id"}.get(kind, "id")
                value = value if kind in ("sis_login_id", "sis_user_id") else kind
                for u in state.users:
                    if str(u[key]) == value:
                        self._reply(200, u)
                        return
                self._reply(
                    404, {"errors": [{"message": "The specified resource does not exist."}]}
                )
            elif r.method == "GET" and rest == ["assignments", str(ASSIGNMENT), "submissions"]:
                subs = [self._submission(u["id"]) for u in state.users]
                self._page(r, subs)
            elif r.method == "PUT" and rest[:3] == ["assignments", str(ASSIGNMENT), "submissions"]:
                user = int(rest[3])
                time.sleep(state.slow_put.get(user, 0))
                if user in state.fail_put:
                    self._reply(state.fail_put[user], {"errors": [{"message": "boom"}]})
                    return
                if "submission[posted_grade]" in r.form:
                    state.scores[user] = float(r.form["submission[posted_grade]"][0])
                if "comment[text_comment]" in r.form:
                    state.comments.setdefault(user, []).append(r.form["comment[text_comment]"][0])
                self._reply(200, self._submission(user))
            else:
                self._reply(404, {"errors": [{"message": "no such endpoint"}]})

        def _submission(self, user: int) -> dict[str, Any]:
            return {
                "id": 9000 + user,
                "assignment_id": ASSIGNMENT,
                "user_id": user,
                "score": state.scores.get(user),
                "workflow_state": "graded" if user in state.scores else "unsubmitted",
                "submission_comments": [
                    {"id": i, "author_id": 1, "comment": text}
                    for i, text in enumerate(state.comments.get(user, []))
                ],
            }

    return Handler


class _Server(ThreadingHTTPServer):
    # Closing waits for every request being answered (a slow one outlives its client's
    # timeout), so that no test's request ends inside the next test.
    daemon_threads = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that stopped waiting: not a failure of the stand-in


@pytest.fixture
def fake(monkeypatch) -> Any:
    state = FakeCanvas()
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    monkeypatch.setenv("CANVAS_URL", state.url)
    monkeypatch.setenv("CANVAS_API_TOKEN", TOKEN)
    monkeypatch.setenv("CANVAS_COURSE_ID", str(COURSE))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield state
    server.shutdown()
    server.server_close()


def result(name: str, score: float, status: str = "graded") -> SubmissionResult:
    tests = (
        results.TestResult(
            "tests/test_a.py::test_add", "test_add", "hw1.1", min(score, 4), 4, "passed", 0.1
        ),
        results.TestResult(
            "hidden/test_h.py::test_mul",
            "test_mul",
            "hw1.2",
            max(score - 4, 0),
            6,
            "passed" if score >= 10 else "failed",
            0.1,
            output="secret detail",
            visibility="hidden",
            staff_output="Traceback: hidden assertion",
        ),
    )
    return SubmissionResult(
        assignment="hw1",
        submission=name,
        key="k-" + name,
        grader_version="test",
        status=status,  # type: ignore[arg-type]
        score=score,
        max_score=10,
        tasks=(TaskScore("hw1.1", "Add", min(score, 4), 4), TaskScore("hw1.2", "Mul", 0, 6)),
        tests=tests,
    )


def save(out: Path, res: SubmissionResult, feedback: str | None = None) -> None:
    """Write a result as the grading does: feedback.md and result.json."""
    folder = out / report_folder(res.submission)
    write_text_atomic(folder / "feedback.md", feedback or markdown.feedback(res))
    write_json_atomic(folder / "result.json", to_dict(res))


@pytest.fixture
def graded(tmp_path) -> Path:
    out = tmp_path / "out" / "hw1"
    save(out, result("ada", 10))
    save(out, result("bo", 7.5))
    save(out, result("cy", 4))
    return out


def upload(out: Path, *extra: str) -> int:
    return main(["canvas", "upload", str(out), "--assignment-id", str(ASSIGNMENT), *extra])


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_dry_run_reads_but_posts_nothing(fake, graded, capsys):
    assert upload(graded) == 0
    printed = capsys.readouterr()
    assert fake.puts == []
    assert {r.method for r in fake.requests} == {"GET"}
    out = lines(printed.out)
    assert out[0] == "[1/3] ada: would post score 10/10 and comment '# hw1: 10/10 points'"
    assert out[1].startswith("[2/3] bo: would post score 7.5/10 and comment")
    assert out[-1] == (
        "dry run: 3 to post, 0 unchanged, 0 not found, 0 failed; nothing was posted "
        "(add --post to post)"
    )
    assert TOKEN not in printed.out + printed.err
    # Every request carried the token; the lists were paged through and asked for comments.
    assert all(r.token == TOKEN for r in fake.requests)
    subs = [r for r in fake.requests if r.path.endswith("/submissions")]
    assert len(subs) == 2  # 3 submissions, 2 per page: one list, two pages
    assert subs[0].query["include[]"] == ["submission_comments"]
    users = [r for r in fake.requests if r.path.endswith("/search_users")]
    assert users[0].query["enrollment_type[]"] == ["student"]
    assert [r.query.get("page") for r in users] == [None, ["2"]]


def test_post_sends_each_grade_and_comment_then_a_rerun_posts_nothing(fake, graded, capsys):
    assert upload(graded, "--post") == 0
    out = lines(capsys.readouterr().out)
    assert out[0] == "[1/3] ada: posted score 10/10 and comment '# hw1: 10/10 points'"
    assert out[-1] == "3 posted, 0 unchanged, 0 not found, 0 failed"
    puts = {r.path: r.form for r in fake.puts}
    assert len(fake.puts) == 3
    base = f"/api/v1/courses/{COURSE}/assignments/{ASSIGNMENT}/submissions"
    for user, name, grade in ((101, "ada", "10"), (102, "bo", "7.5"), (103, "cy", "4")):
        form = puts[f"{base}/{user}"]
        assert form["submission[posted_grade]"] == [grade]
        comment = form["comment[text_comment]"][0]
        feedback = (graded / name / "feedback.md").read_text()
        assert comment.startswith(feedback.strip())
        assert comment.splitlines()[-1].startswith("[llmsys ")
        # The student's feedback: hidden details and staff output never leave.
        assert "secret detail" not in comment and "Traceback" not in comment
        assert fake.scores[user] == float(grade)

    fake.requests.clear()
    assert upload(graded, "--post") == 0
    out = lines(capsys.readouterr().out)
    assert fake.puts == []
    assert out[0] == "[1/3] ada: unchanged on Canvas (score 10, same comment)"
    assert out[-1] == (
        "nothing new to post: all 3 graded student(s) already have this score and comment on Canvas"
    )


def test_a_changed_score_posts_only_that_student(fake, graded, capsys):
    assert upload(graded, "--post") == 0
    save(graded, result("bo", 9))
    fake.requests.clear()
    capsys.readouterr()
    assert upload(graded, "--post") == 0
    out = lines(capsys.readouterr().out)
    assert [r.path.rsplit("/", 1)[1] for r in fake.puts] == ["102"]
    form = fake.puts[0].form
    assert form["submission[posted_grade]"] == ["9"]
    assert form["comment[text_comment]"][0].startswith("# hw1: 9/10 points")
    assert out[-1] == "1 posted, 2 unchanged, 0 not found, 0 failed"
    assert len(fake.comments[102]) == 2


def test_only_a_comment_or_only_a_grade_when_only_one_differs(fake, graded, capsys):
    assert upload(graded, "--post") == 0
    fake.scores[101] = 3  # changed by hand on Canvas
    fake.comments[102].append("A TA's note under the feedback")  # a later comment
    fake.requests.clear()
    assert upload(graded, "--post") == 0
    assert [(r.path.rsplit("/", 1)[1], sorted(r.form)) for r in fake.puts] == [
        ("101", ["submission[posted_grade]"])
    ]
    assert fake.scores[101] == 10
    save(graded, result("cy", 4), feedback="# hw1: 4/10 points\n\nReworded feedback.\n")
    fake.requests.clear()
    assert upload(graded, "--post") == 0
    assert [(r.path.rsplit("/", 1)[1], sorted(r.form)) for r in fake.puts] == [
        ("103", ["comment[text_comment]"])
    ]


def test_an_unknown_student_and_a_server_error_are_one_line_each(fake, graded, capsys):
    save(graded, result("zed", 6))
    fake.fail_put[102] = 500
    assert upload(graded, "--post") == 1
    printed = capsys.readouterr()
    out = lines(printed.out)
    assert [line for line in out if "zed" in line] == [
        "[4/4] zed: not found in course 55 (no student with SIS Login ID 'zed'); skipped"
    ]
    assert [line for line in out if " bo" in line] == [
        "[2/4] bo: posting failed: HTTP 500; not posted"
    ]
    assert out[-1] == "2 posted, 0 unchanged, 1 not found, 1 failed"
    assert sorted(fake.scores) == [101, 103]
    assert "Traceback" not in printed.err
    # The fallback lookup by the SIS prefix was asked once for the unknown name.
    assert [r.path for r in fake.requests if "/users/" in r.path] == [
        f"/api/v1/courses/{COURSE}/users/sis_login_id:zed"
    ]


@pytest.mark.parametrize("status", [401, 404, 503])
def test_an_http_error_for_one_student_names_it_and_its_status(fake, graded, capsys, status):
    fake.fail_put[103] = status
    assert upload(graded, "--post") == 1
    out = lines(capsys.readouterr().out)
    assert [line for line in out if "cy" in line] == [
        f"[3/3] cy: posting failed: HTTP {status}; not posted"
    ]
    assert fake.scores == {101: 10.0, 102: 7.5}


def test_two_submissions_of_one_student_post_only_the_first(fake, tmp_path, capsys):
    out = tmp_path / "out" / "hw1"
    save(out, result("ada", 8))
    save(out, result("ada2", 6))
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section\nAda,101,,ada,A\nAda again,101,,ada2,A\n"
    )
    assert upload(out, "--post", "--roster", str(roster)) == 1
    printed = lines(capsys.readouterr().out)
    assert "[2/2] ada2: the same Canvas student as ada; skipped (one of the two is misnamed)" in (
        printed
    )
    assert fake.scores == {101: 8.0}
    assert len(fake.puts) == 1


def test_a_different_maximum_on_canvas_is_a_notice(fake, graded, capsys):
    fake.points_possible = 100
    assert upload(graded) == 0
    assert (
        "notice: the Canvas assignment is out of 100 points, the grading out of 10; "
        "scores are posted as points"
    ) in capsys.readouterr().out


def test_a_timeout_names_the_student_and_the_others_are_posted(fake, graded, capsys):
    fake.slow_put[101] = 0.6
    where = canvas_api.settings(
        {"CANVAS_URL": fake.url, "CANVAS_API_TOKEN": TOKEN}, str(COURSE), str(ASSIGNMENT), ""
    )
    said: list[str] = []
    summary = canvas_upload.upload(graded, where, post=True, say=said.append, timeout_s=0.3)
    assert said[0] == "[1/3] ada: posting failed: no answer within 0.3 s (timeout); not posted"
    assert summary.failed == ["ada"] and summary.posted == ["bo", "cy"]
    assert not summary.ok


def test_students_the_listing_does_not_show_are_asked_for_by_sis_login_id(fake, graded, capsys):
    fake.hidden_logins = True
    assert upload(graded, "--post") == 0
    looked_up = [r.path.rsplit("/", 1)[1] for r in fake.requests if "/users/" in r.path]
    assert looked_up == ["sis_login_id:ada", "sis_login_id:bo", "sis_login_id:cy"]
    assert sorted(fake.scores) == [101, 102, 103]


def test_a_roster_maps_submission_names_to_canvas_ids(fake, tmp_path, capsys):
    out = tmp_path / "out" / "hw1"
    save(out, result("ada_lovelace", 8))
    save(out, result("bo.b", 6))
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "Student,ID,SIS User ID,SIS Login ID,Section,hw1 (901)\n"
        "    Points Possible,,,,,10\n"
        "Ada,101,S-101,ada_lovelace,A,\n"
        "Bo,,S-102,bo.b,A,\n"
    )
    assert upload(out, "--post", "--roster", str(roster)) == 0
    assert fake.scores == {101: 8.0, 102: 6.0}


def test_the_assignment_id_comes_from_the_manifest(fake, course, graded, capsys):
    manifest = course / "assignments/hw1/assignment.toml"
    assert main(["--root", str(course), "canvas", "upload", str(graded)]) == 2
    err = capsys.readouterr().err
    assert "no Canvas assignment id: the manifest has no canvas_assignment_id" in err
    manifest.write_text(f'canvas_assignment_id = "{ASSIGNMENT}"\n' + manifest.read_text())
    assert main(["--root", str(course), "canvas", "upload", str(graded.parent), "--post"]) == 0
    assert len(fake.puts) == 3


def test_a_submission_not_graded_is_left_out(fake, graded, capsys):
    save(graded, result("dee", 0, status="error"))
    assert upload(graded, "--post") == 0
    out = lines(capsys.readouterr().out)
    assert out[0] == "dee: not graded (status error); left out, as in the gradebook"
    assert len(fake.puts) == 3


def test_a_long_feedback_is_trimmed_with_a_note(fake, graded, capsys):
    long = "# hw1: 4/10 points\n\n" + "".join(f"- line {i} of the feedback\n" for i in range(2000))
    save(graded, result("cy", 4), feedback=long)
    assert upload(graded, "--post") == 0
    comment = fake.comments[103][0]
    assert len(comment) <= canvas_upload.MAX_COMMENT + 40
    assert comment.startswith("# hw1: 4/10 points\n\n- line 0 of the feedback\n")
    assert "the full feedback is hw1/cy/feedback.md" in comment
    # Trimmed comments are recognised too: a rerun posts nothing.
    fake.requests.clear()
    assert upload(graded, "--post") == 0
    assert fake.puts == []


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("CANVAS_API_TOKEN", "error: CANVAS_API_TOKEN is not set"),
        ("CANVAS_URL", "error: CANVAS_URL is not set"),
        ("CANVAS_COURSE_ID", "error: no Canvas course id (--course, or CANVAS_COURSE_ID)"),
    ],
)
def test_missing_settings_are_one_line_with_a_tip(
    fake, graded, capsys, monkeypatch, unset, message
):
    monkeypatch.delenv(unset)
    assert upload(graded) == 2
    err = lines(capsys.readouterr().err)
    assert err[0].startswith(message)
    assert err[1].startswith("tip: ")
    assert len(err) == 2
    assert fake.requests == []


def test_a_refused_token_or_unknown_course_is_one_line(fake, graded, capsys, monkeypatch):
    monkeypatch.setenv("CANVAS_API_TOKEN", "wrong")
    assert upload(graded, "--post") == 2
    err = lines(capsys.readouterr().err)
    assert err[0] == (
        f"error: Canvas at {fake.url} refused the token (HTTP 401) while reading course"
    )
    assert err[1].startswith("tip: check CANVAS_API_TOKEN")
    assert "wrong" not in "\n".join(err)
    monkeypatch.setenv("CANVAS_API_TOKEN", TOKEN)
    assert upload(graded, "--post", "--course", "77") == 2
    err = lines(capsys.readouterr().err)
    assert err[0].startswith("error: course 77 not found at ")
    fake.fail_course = 503
    assert upload(graded, "--post") == 1
    err = lines(capsys.readouterr().err)
    assert err[0] == f"error: Canvas at {fake.url}: HTTP 503 while reading course"
    assert fake.puts == []


def test_a_plain_http_address_off_this_host_is_refused(graded, capsys, monkeypatch):
    monkeypatch.setenv("CANVAS_URL", "http://canvas.example.edu")
    monkeypatch.setenv("CANVAS_API_TOKEN", TOKEN)
    monkeypatch.setenv("CANVAS_COURSE_ID", str(COURSE))
    assert upload(graded) == 2
    assert "the token would travel unencrypted" in capsys.readouterr().err
