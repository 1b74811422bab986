"""Talking to Canvas for `llmsys canvas upload`: where (settings from the command
line and the environment), a canvasapi client with a time limit per request, the
HTTP status of its errors, and finding a submission's student in the course.

Kept apart from `grader.canvas_upload`, which decides what to post, so that the
rules of the upload read without the plumbing of the API. The token comes from
the environment only; nothing here prints or writes it.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from grader.errors import CheckFailed, LlmsysError
from grader.reports import canvas

ENV_URL = "CANVAS_URL"
ENV_TOKEN = "CANVAS_API_TOKEN"
ENV_COURSE = "CANVAS_COURSE_ID"
#: Seconds one request may take; canvasapi sets none, so a stalled server would hang.
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Settings:
    """Where to post: from the command line, else the environment."""

    url: str
    token: str = field(repr=False)
    course_id: str
    assignment_id: str


def settings(
    env: Mapping[str, str], course: str | None, assignment_id: str | None, manifest_id: str
) -> Settings:
    """The Canvas URL and token from `env`, the course from `course` or `env`, the
    assignment from `assignment_id` or the manifest's `canvas_assignment_id`."""
    url = env.get(ENV_URL, "").strip()
    token = env.get(ENV_TOKEN, "").strip()
    if not url:
        raise LlmsysError(
            f"{ENV_URL} is not set: the address of your Canvas is needed",
            f"export {ENV_URL}=https://canvas.example.edu (the address you open Canvas at)",
        )
    if not token:
        raise LlmsysError(
            f"{ENV_TOKEN} is not set: Canvas needs an access token to read and post grades",
            "make one in Canvas (Account > Settings > New access token) as a teacher or TA "
            f"of the course, and export {ENV_TOKEN}=... in this shell (never pass it as an "
            "argument)",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LlmsysError(
            f"{ENV_URL} is not a web address: {url!r}",
            f"export {ENV_URL}=https://canvas.example.edu",
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise LlmsysError(
            f"{ENV_URL} is a plain http:// address ({url}): the token would travel unencrypted",
            f"use the https:// address of your Canvas in {ENV_URL}",
        )
    # canvasapi wants the site's address; one copied from an API link is trimmed.
    url = re.sub(r"/api/v1/?$", "", url.rstrip("/"))
    course_id = (course or env.get(ENV_COURSE, "")).strip()
    if not course_id.isdigit():
        raise LlmsysError(
            f"no Canvas course id (--course, or {ENV_COURSE})"
            if not course_id
            else f"the Canvas course id must be a number, got {course_id!r}",
            "it is the number in the course's address: .../courses/<ID>",
        )
    aid = (assignment_id or manifest_id).strip()
    if not aid.isdigit():
        raise LlmsysError(
            "no Canvas assignment id: the manifest has no canvas_assignment_id"
            if not aid
            else f"the Canvas assignment id must be a number, got {aid!r}",
            "pass --assignment-id ID, or set canvas_assignment_id in the assignment's "
            "assignment.toml (the number in the assignment's address: .../assignments/<ID>)",
        )
    return Settings(url, token, course_id, aid)


# -- Finding students --------------------------------------------------------------------


class NotFound(Exception):
    """Canvas knows no such user in the course."""


#: How a submission names its student: ("id" | "sis_user_id" | "sis_login_id", value).
Target = tuple[str, str]


def target(name: str, roster_rows: list[dict[str, str]] | None) -> Target:
    """How the gradebook CSV would find this submission's student: by its roster
    row's ID, else SIS User ID, else SIS Login ID; without a row, by the name as
    SIS Login ID."""
    if roster_rows is None:
        return "sis_login_id", name
    i = canvas.roster_index(roster_rows, name)
    if i is None:
        # As in the CSV, a name the roster lacks is tried as a SIS Login ID.
        return "sis_login_id", name
    row = roster_rows[i]
    if row["ID"].isdigit():
        return "id", row["ID"]
    if row["SIS User ID"]:
        return "sis_user_id", row["SIS User ID"]
    return "sis_login_id", row["SIS Login ID"] or name


def describe(who: Target) -> str:
    kind, value = who
    label = {"id": "Canvas ID", "sis_user_id": "SIS User ID", "sis_login_id": "SIS Login ID"}
    return f"{label[kind]} {value!r}"


def find(students: list[Any], who: Target) -> int | None:
    """The Canvas id of the listed student `who` names (any case), if listed."""
    kind, value = who
    attribute = {"id": "id", "sis_user_id": "sis_user_id", "sis_login_id": "login_id"}[kind]
    wanted = value.casefold()
    for user in students:
        if str(getattr(user, attribute, "") or "").casefold() == wanted:
            return int(user.id)
    return None


def look_up(course: Any, who: Target) -> int:
    """Ask Canvas for one user the student listing did not show (a caller without
    the right to see login ids gets none in the listing)."""
    from canvasapi.exceptions import ResourceDoesNotExist

    kind, value = who
    try:
        if kind == "id":
            user = course.get_user(int(value))
        else:
            user = course.get_user(value, kind)
    except ResourceDoesNotExist:
        raise NotFound from None
    return int(user.id)


# -- Talking to Canvas -------------------------------------------------------------------


class Client:
    """A canvasapi client with a time limit per request, whose whole-upload steps
    turn Canvas errors into one line and a tip."""

    def __init__(self, where: Settings, timeout_s: float) -> None:
        try:
            import requests
            from canvasapi import Canvas
        except ImportError:  # pragma: no cover - it is a dependency
            raise LlmsysError(
                "the canvasapi package is not installed",
                "reinstall llmsys (pip install -e .), which depends on it",
            ) from None

        class _TimedSession(requests.Session):
            def request(self, *args: Any, **kwargs: Any) -> Any:
                kwargs.setdefault("timeout", timeout_s)
                return super().request(*args, **kwargs)

        with warnings.catch_warnings():
            # Its warning about http:// is for loopback servers only (`settings` refuses
            # any other).
            warnings.simplefilter("ignore", UserWarning)
            self.client = Canvas(where.url, where.token)
        # canvasapi keeps its requests session private and sets no timeout.
        requester = getattr(self.client, "_Canvas__requester", None)
        if requester is not None:
            requester._session = _TimedSession()
        self.where = where
        self.timeout_s = timeout_s

    def call(self, doing: str, step: Callable[[Any], Any]) -> Any:
        try:
            return step(self.client)
        except Exception as exc:
            raise self._error(doing, exc) from None

    def _error(self, doing: str, exc: Exception) -> LlmsysError:
        status = _status(exc)
        w = self.where
        if status == 401:
            return LlmsysError(
                f"Canvas at {w.url} refused the token (HTTP 401) while {doing}",
                f"check {ENV_TOKEN}: a current access token of a teacher or TA of course "
                f"{w.course_id}",
            )
        if status in (403, 404):
            what = (
                f"assignment {w.assignment_id} of course {w.course_id}"
                if "assignment" in doing
                else f"course {w.course_id}"
            )
            return LlmsysError(
                f"{what} not found at {w.url}, or not yours to grade (HTTP {status})",
                f"check --course / {ENV_COURSE} and --assignment-id (or the manifest's "
                "canvas_assignment_id): the numbers in their Canvas addresses",
            )
        return CheckFailed(
            f"Canvas at {w.url}: {problem(exc, self.timeout_s)} while {doing}",
            "nothing was posted; try again later, or check the address in " + ENV_URL,
        )


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


_STATUS_OF = {
    "BadRequest": 400,
    "Unauthorized": 401,
    "InvalidAccessToken": 401,
    "Forbidden": 403,
    "ResourceDoesNotExist": 404,
    "Conflict": 409,
    "UnprocessableEntity": 422,
    "RateLimitExceeded": 429,
}


def _status(exc: Exception) -> int | None:
    """The HTTP status of a canvasapi error (its exceptions carry it in their class,
    or in the text "status code N" for the others)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _STATUS_OF:
            return _STATUS_OF[cls.__name__]
    m = re.search(r"status code (\d{3})", str(exc))
    return int(m.group(1)) if m else None


def problem(exc: Exception, timeout_s: float) -> str:
    """One short phrase for a failed request: its HTTP status, a timeout, no answer."""
    import requests

    status = _status(exc)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout_s:g} s (timeout)"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    if isinstance(exc, requests.RequestException):
        return type(exc).__name__
    raise exc
