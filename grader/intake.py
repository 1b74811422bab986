"""Taking in a submission: a folder or a .zip, checked before anything else sees it.

Only the manifest's `submit` files are taken; everything else of a submission is
ignored, so a student cannot ship tests, conftest files or infrastructure. A zip
is refused whole (with the reason) when it is not a zip, is too large, holds too
many entries, or holds any absolute path, `..` component or symbolic link. A file
may sit under one top-level folder (`hw1/minitorch/operators.py`), as archive
tools tend to make.

A batch screens its entries by name first (`screen`): a name that is not usable,
one of the batch's report files (`RESERVED_NAMES`) or one that two entries share
(`alice/` and `alice.zip`) gets a rejected result rather than a grade. Names and
entry names in reasons are shown with `visible`, never raw: they reach the TA's
terminal.
"""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_ENTRIES = 2000
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
#: The batch's own files in OUT/hwN/ (grader.batch): no submission may be named so.
RESERVED_NAMES = ("gradebook.csv", "junit.xml")


class Rejected(Exception):
    """The submission cannot be graded; the message says why, for the student."""


def visible(text: str) -> str:
    """`text` with every character that is not printable (control characters such as
    the escape of terminal sequences, bidirectional overrides, the undecodable bytes
    of a file name) written as in a Python string literal: `\\x1b`, `\\u202e`,
    `\\udce9`. What it returns changes nothing on a terminal and encodes as UTF-8."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(text: str) -> str:
    """`text` on one line (runs of white space made one space), shown with `visible`."""
    return visible(" ".join(text.split()))


@dataclass(frozen=True)
class Intake:
    name: str  #: the submission's name (folder name, or zip name without .zip)
    files: dict[str, bytes]  #: submitted path -> content, for the submit files found
    missing: tuple[str, ...]  #: submit files not found

    @property
    def digest(self) -> str:
        """Hash of exactly what will be graded."""
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest())
        h.update(b"missing:" + "\0".join(self.missing).encode())
        return h.hexdigest()


def submission_name(path: Path) -> str:
    """The name a submission is known by; Rejected when it is not a safe name."""
    name = path.name[:-4] if path.suffix.lower() == ".zip" and path.is_file() else path.name
    if not NAME.fullmatch(name):  # match() would let a final newline in
        raise Rejected(f"the name {path.name!r} is not usable: use letters, digits, and . _ @ + -")
    return name


@dataclass(frozen=True)
class Refused:
    """An entry of a batch that is not graded, for a reason its name alone gives."""

    path: Path
    #: What its result is called: the entry's name as `shown`, unique in the batch and
    #: never the name of a submission that is graded.
    label: str
    reason: str


def shown(path: Path) -> str:
    """An entry's name as the TA sees it: `visible`, backslashes doubled (so that two
    names never show alike), a folder's with a trailing /."""
    return visible(path.name.replace("\\", "\\\\")) + ("/" if path.is_dir() else "")


def screen(paths: Sequence[Path]) -> tuple[list[Path], list[Refused]]:
    """Split a batch's entries into those to grade and those refused by name: a name
    that is not usable, one of RESERVED_NAMES (any case), or one that several entries
    would be known by (`alice/` and `alice.zip`: all of them are refused, since keeping
    one would be a choice the grader cannot make)."""
    reasons: dict[Path, str] = {}
    names: dict[Path, str] = {}
    for path in paths:
        try:
            name = submission_name(path)
        except Rejected as exc:
            reasons[path] = str(exc)
            continue
        if name.casefold() in RESERVED_NAMES:
            reasons[path] = f"the name {name} is reserved for a report of the batch: rename it"
        else:
            names[path] = name
    by_name: dict[str, list[Path]] = {}
    for path, name in names.items():
        by_name.setdefault(name, []).append(path)
    for name, group in by_name.items():
        if len(group) > 1:
            for path in group:
                reasons[path] = _same_name(name, group)
    # A refused file's label may be a usable name (alice.zip); a submission graded under
    # that name (alice.zip.zip) would then share it: refuse it too, until none does.
    while True:
        labels = {shown(path): path for path in reasons}
        clash = [p for p, name in names.items() if p not in reasons and name in labels]
        if not clash:
            break
        for path in clash:
            reasons[path] = _same_name(names[path], [labels[names[path]], path])
    refused, used = [], set()
    for path, reason in reasons.items():
        label = shown(path)
        # Unique even for entries of different folders that share a name.
        while label in used:
            label += "'"
        used.add(label)
        refused.append(Refused(path, label, reason))
    return [p for p in paths if p not in reasons], sorted(refused, key=lambda r: r.label)


def _same_name(name: str, group: list[Path]) -> str:
    entries = sorted(shown(p) for p in group)
    count = {2: "two", 3: "three"}.get(len(entries), str(len(entries)))
    listed = ", ".join(entries[:-1]) + " and " + entries[-1]
    return f"{count} submissions are named {name} ({listed}): keep one"


def take(path: Path, submit: tuple[str, ...]) -> Intake:
    """Read the submit files of a submission folder or zip."""
    name = submission_name(path)
    try:
        if path.is_symlink():
            raise Rejected("the submission is a symbolic link")
        if path.is_dir():
            found = _from_folder(path, submit)
        elif path.is_file():
            found = _from_zip(path, submit)
        else:
            raise Rejected("a submission is a folder or a .zip file")
    except OSError as exc:
        # e.g. a folder the grader may not read: the batch goes on without it.
        raise Rejected(f"the submission cannot be read: {exc.strerror or exc}") from None
    return Intake(name, found, tuple(p for p in submit if p not in found))


def _from_folder(folder: Path, submit: tuple[str, ...]) -> dict[str, bytes]:
    roots = [folder] + [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.is_symlink()]
    found: dict[str, bytes] = {}
    for rel in submit:
        for root in roots:
            candidate = root / rel
            if _has_link(root, rel):
                shown_path = visible(str(candidate.relative_to(folder)))
                raise Rejected(f"{shown_path} is a symbolic link; links are not accepted")
            if candidate.is_file():
                if candidate.stat().st_size > MAX_FILE_BYTES:
                    raise Rejected(f"{rel} is larger than {MAX_FILE_BYTES // 2**20} MiB")
                found[rel] = candidate.read_bytes()
                break
    return found


def _has_link(root: Path, rel: str) -> bool:
    path = root
    for part in PurePosixPath(rel).parts:
        path = path / part
        if path.is_symlink():
            return True
        if not path.exists():
            return False
    return False


def _from_zip(path: Path, submit: tuple[str, ...]) -> dict[str, bytes]:
    if path.suffix.lower() != ".zip":
        raise Rejected(f"{path.name} is not a .zip file")
    if path.stat().st_size > MAX_ZIP_BYTES:
        raise Rejected(f"the zip is larger than {MAX_ZIP_BYTES // 2**20} MiB")
    if not zipfile.is_zipfile(path):
        raise Rejected(f"{path.name} is not a valid zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            _check_entries(entries)
            by_name = {e.filename.rstrip("/"): e for e in entries if not e.is_dir()}
            found: dict[str, bytes] = {}
            for rel in submit:
                matches = [
                    n
                    for n in by_name
                    if n == rel or (n.endswith("/" + rel) and n.count("/") == rel.count("/") + 1)
                ]
                if len(matches) > 1:
                    listed = ", ".join(visible(m) for m in sorted(matches))
                    raise Rejected(f"{rel} appears more than once: {listed}")
                if matches:
                    entry = by_name[matches[0]]
                    if entry.file_size > MAX_FILE_BYTES:
                        raise Rejected(f"{rel} is larger than {MAX_FILE_BYTES // 2**20} MiB")
                    found[rel] = archive.read(entry)[: MAX_FILE_BYTES + 1]
                    if len(found[rel]) > MAX_FILE_BYTES:
                        raise Rejected(f"{rel} is larger than {MAX_FILE_BYTES // 2**20} MiB")
            return found
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        RuntimeError,
        OSError,
        EOFError,
    ) as exc:
        raise Rejected(f"the zip cannot be read: {visible(str(exc))}") from None


def _check_entries(entries: list[zipfile.ZipInfo]) -> None:
    if len(entries) > MAX_ENTRIES:
        raise Rejected(f"the zip holds more than {MAX_ENTRIES} entries")
    if sum(e.file_size for e in entries) > MAX_UNCOMPRESSED_BYTES:
        raise Rejected(f"the zip unpacks to more than {MAX_UNCOMPRESSED_BYTES // 2**20} MiB")
    for entry in entries:
        name = entry.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise Rejected(f"the zip entry {name!r} points outside the archive")
        mode = entry.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise Rejected(f"the zip entry {name!r} is a symbolic link; links are not accepted")
