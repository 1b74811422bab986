"""Canvas's bulk "Download Submissions" archive, taken in as a batch of submissions.

Canvas (instructure/canvas-lms, lib/content_zipper.rb: `get_filename`,
`add_upload_submission`, `sanitize_user_name`) writes one top-level entry per
uploaded file of each student's latest submission, named

    <name>[_LATE]_<user id>_<attachment id>_<file name>

- `<name>`: the student's sortable name ("Doe, Jane"), lower-cased, `_<digits>_`
  runs joined, then every character that is not a letter, digit or `_` removed:
  `doejane`;
- `_LATE` when Canvas counts the submission late (its own due dates, overrides
  included); it says nothing of how late;
- `<user id>`: the student's Canvas user id (the gradebook export's `ID`);
- `<attachment id>`: the uploaded file's id, larger for a later upload;
- `<file name>`: the file's display name with `/ \\ : * ? " < > |` runs made `_`.
  A student who uploads a file of a name they used before gets Canvas's unique
  name for it (`Attachment.make_unique_filename`): `ops-1.py`, `ops-2.py`.

Text entries and URLs come as `<name>[_LATE]_<user id>_text.html` / `_link.html`,
and anonymous grading puts `anon_<id>` in place of name and user id; neither can be
graded here. Each student's files are laid out by their base names onto the
assignment's `submit` paths (which `check_submit` requires to have distinct base
names), keeping for each the newest upload; a `.zip` upload is the whole work and
is taken in as any zip is (`grader.intake`), the student's other files then ignored
with a notice. Students are named as the gradebook
matches them: their roster row's SIS Login ID, else their Canvas user id.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader import intake
from grader.errors import LlmsysError

ENTRY = re.compile(
    r"^(?P<name>\w*?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>[^/\\]+)$"
)
NOT_A_FILE = re.compile(r"^\w*?(?:_LATE)?_(?P<user>\d+)_(?:text|link)\.html$")
ANONYMOUS = re.compile(r"^(?:LATE_)?anon_\w+?_\d+_")
#: A re-upload's name: `ops-1.py` for `ops.py` (the extension as Canvas reads it).
REUPLOAD = re.compile(
    r"^(?P<stem>.+)-(?P<n>[1-9]\d*)(?P<ext>(?:\.[A-Za-z][A-Za-z0-9]*)*\.[A-Za-z0-9]*)?$"
)
#: Canvas's archives hold one entry per file; more is not an archive of a course.
MAX_ENTRIES = 20000
MAX_ARCHIVE_BYTES = 8 * 1024**3


@dataclass(frozen=True)
class Upload:
    """One uploaded file of the archive."""

    entry: str  #: the archive entry's name
    user_id: str  #: the student's Canvas user id
    sortable: str  #: the student's name as Canvas wrote it (`doejane`)
    late: bool  #: Canvas's LATE mark
    attachment_id: int
    filename: str  #: the file's name as Canvas shows it (`ops-1.py`)
    original: str  #: without a re-upload suffix (`ops.py`)
    reupload: int  #: the suffix's number, 0 without one


@dataclass(frozen=True)
class Archive:
    path: Path
    uploads: tuple[Upload, ...]
    skipped: tuple[str, ...]  #: one line per entry that is not an uploaded file


@dataclass(frozen=True)
class Staged:
    """One student of the archive, laid out as a submission of the batch."""

    name: str  #: the submission's name (SIS Login ID, else Canvas user id)
    user_id: str
    path: Path  #: the folder or .zip laid out for `grader.intake`
    marked_late: bool
    notices: tuple[str, ...]  #: for the student: files ignored, which upload counted
    keys: tuple[str, ...]  #: the roster's ids of the student, for CSV lookups


#: Every notice of this module starts so: a result taken again (a rerun) gets the
#: archive's notices anew, not twice.
NOTICE_PREFIX = "Canvas upload: "


def parse_entry(entry: str) -> Upload | None:
    """The upload an archive entry holds; None when it is not named as one."""
    match = ENTRY.match(entry)
    if match is None:
        return None
    filename = match["file"]
    again = REUPLOAD.match(filename)
    return Upload(
        entry=entry,
        user_id=match["user"],
        sortable=match["name"],
        late=bool(match["late"]),
        attachment_id=int(match["attachment"]),
        filename=filename,
        original=again["stem"] + (again["ext"] or "") if again else filename,
        reupload=int(again["n"]) if again else 0,
    )


def read(path: Path) -> Archive:
    """The uploads of Canvas's archive `path`; LlmsysError (one line) when it is not
    a readable zip archive."""
    hint = "pass the .zip of Canvas's Download Submissions as it came, or a folder"
    try:
        if path.stat().st_size > MAX_ARCHIVE_BYTES:
            raise LlmsysError(f"{path}: larger than {MAX_ARCHIVE_BYTES // 1024**3} GiB", hint)
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise LlmsysError(f"{path} is not a readable zip archive ({exc})", hint) from None
    except OSError as exc:
        raise LlmsysError(f"cannot read {path}: {exc.strerror or exc}", hint) from None
    if len(entries) > MAX_ENTRIES:
        raise LlmsysError(f"{path}: more than {MAX_ENTRIES} entries", hint)
    uploads, skipped = [], []
    for info in entries:
        name = info.filename
        shown = intake.visible(name)
        upload = None if info.is_dir() else parse_entry(name)
        if upload is not None:
            uploads.append(upload)
        elif ANONYMOUS.match(name):
            skipped.append(f"{shown}: anonymous grading hides the student; not graded")
        elif NOT_A_FILE.match(name):
            skipped.append(f"{shown}: a text entry or URL, not an uploaded file; not graded")
        else:
            skipped.append(f"{shown}: not named as Canvas names an uploaded file; ignored")
    if not uploads:
        raise LlmsysError(f"{path} holds no uploaded file named as Canvas names them", hint)
    return Archive(path, tuple(uploads), tuple(skipped))


def check_submit(submit: Sequence[str]) -> None:
    """Files are laid out by base name: the assignment's must be distinct."""
    names: dict[str, str] = {}
    for rel in submit:
        base = PurePosixPath(rel).name
        if base in names:
            raise LlmsysError(
                f"{names[base]} and {rel} share the name {base}: a Canvas upload cannot say "
                "which it is",
                "grade this assignment from a folder of submissions instead",
            )
        names[base] = rel


def stage(
    archive: Archive, roster: Sequence[dict[str, str]], submit: Sequence[str], dest: Path
) -> tuple[list[Staged], list[str]]:
    """Lay out each student of the archive in `dest` (empty) as a submission; the
    students and one warning line per student left out or entry skipped."""
    check_submit(submit)
    by_base = {PurePosixPath(rel).name: rel for rel in submit}
    rows = {row["ID"]: row for row in roster if row.get("ID")}
    students: dict[str, list[Upload]] = {}
    for upload in archive.uploads:
        students.setdefault(upload.user_id, []).append(upload)
    staged: list[Staged] = []
    warnings = list(archive.skipped)
    with zipfile.ZipFile(archive.path) as zf:
        for user_id, uploads in sorted(students.items()):
            row = rows.get(user_id)
            if row is None:
                warnings.append(
                    f"Canvas user {user_id} ({intake.visible(uploads[0].sortable)}) is not in "
                    "the roster: not graded"
                )
                continue
            login = row.get("SIS Login ID", "")
            name = login if intake.NAME.fullmatch(login) else user_id
            keys = row_ids(row)
            path, notices = _lay_out(zf, uploads, by_base, dest / name)
            staged.append(Staged(name, user_id, path, any(u.late for u in uploads), notices, keys))
    return staged, warnings


def row_ids(row: Mapping[str, str]) -> tuple[str, str, str]:
    """A roster row's ID, SIS User ID and SIS Login ID ("" where the row lacks one).

    A student may be named by any of them (by a submission, by a row of the extensions
    file), so callers keep all three to find the student by any other.
    """
    return row.get("ID", ""), row.get("SIS User ID", ""), row.get("SIS Login ID", "")


def _newest(uploads: list[Upload]) -> Upload:
    return max(uploads, key=lambda u: (u.attachment_id, u.reupload))


def _lay_out(
    zf: zipfile.ZipFile, uploads: list[Upload], by_base: dict[str, str], folder: Path
) -> tuple[Path, tuple[str, ...]]:
    """Write one student's files: a folder with the submit paths, or their .zip."""
    notices: list[str] = []
    zips = [u for u in uploads if u.original.lower().endswith(".zip")]
    if zips:
        chosen = _newest(zips)
        target = folder.with_name(folder.name + ".zip")
        _copy(zf, chosen.entry, target, intake.MAX_ZIP_BYTES)
        for other in uploads:
            if other is not chosen:
                notices.append(
                    f"{NOTICE_PREFIX}{intake.visible(other.filename)} ignored: your newest .zip "
                    f"({intake.visible(chosen.filename)}) is graded"
                )
        return target, tuple(notices)
    folder.mkdir(parents=True)
    groups: dict[str, list[Upload]] = {}
    for upload in uploads:
        # An exact name of a submit file wins over reading `-N` as a re-upload.
        base = upload.filename if upload.filename in by_base else upload.original
        if base not in by_base:
            notices.append(
                f"{NOTICE_PREFIX}{intake.visible(upload.filename)} is not a file this "
                "assignment takes; ignored"
            )
            continue
        groups.setdefault(base, []).append(upload)
    for base, group in sorted(groups.items()):
        chosen = _newest(group)
        _copy(zf, chosen.entry, folder / by_base[base], intake.MAX_FILE_BYTES)
        if len(group) > 1:
            older = ", ".join(intake.visible(u.filename) for u in group if u is not chosen)
            notices.append(
                f"{NOTICE_PREFIX}{intake.visible(chosen.filename)} graded as {by_base[base]} "
                f"(your newest upload of it; not {older})"
            )
        elif chosen.filename != base:
            notices.append(
                f"{NOTICE_PREFIX}{intake.visible(chosen.filename)} graded as {by_base[base]}"
            )
    return folder, tuple(notices)


def _copy(zf: zipfile.ZipFile, entry: str, target: Path, limit: int) -> None:
    """Copy an entry out, at most `limit` + 1 bytes: the intake refuses what is larger
    with its reason, without the whole of it being written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zf.open(entry) as source, open(target, "wb") as out:
            shutil.copyfileobj(_Limited(source, limit + 1), out)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        raise LlmsysError(
            f"{intake.visible(entry)} of the archive cannot be read: {exc}",
            "download the archive from Canvas again",
        ) from None


class _Limited:
    """A reader that ends after `limit` bytes."""

    def __init__(self, source, limit: int) -> None:  # noqa: ANN001 - any binary reader
        self.source, self.left = source, limit

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.source.read(size)
        self.left -= len(data)
        return data
