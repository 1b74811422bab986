"""Submission intake: folders and zips, and every way a zip can be refused."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from grader import intake
from grader.intake import Rejected

SUBMIT = ("pkg/ops.py", "pkg/extra.py")


def make_zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def test_folder_takes_only_submit_files(tmp_path: Path):
    sub = tmp_path / "alice"
    (sub / "pkg").mkdir(parents=True)
    (sub / "pkg/ops.py").write_text("x = 1\n")
    (sub / "pkg/conftest.py").write_text("evil = 1\n")
    (sub / "tests").mkdir()
    (sub / "tests/test_x.py").write_text("evil = 1\n")
    taken = intake.take(sub, SUBMIT)
    assert taken.name == "alice"
    assert taken.files == {"pkg/ops.py": b"x = 1\n"}
    assert taken.missing == ("pkg/extra.py",)


def test_folder_with_one_top_level_folder(tmp_path: Path):
    (tmp_path / "bob/hw1/pkg").mkdir(parents=True)
    (tmp_path / "bob/hw1/pkg/ops.py").write_text("y = 2\n")
    assert intake.take(tmp_path / "bob", SUBMIT).files == {"pkg/ops.py": b"y = 2\n"}


def test_zip_with_top_level_folder(tmp_path: Path):
    path = make_zip(tmp_path / "carol.zip", {"hw1/pkg/ops.py": b"z = 3\n", "hw1/x.txt": b""})
    taken = intake.take(path, SUBMIT)
    assert taken.name == "carol" and taken.files == {"pkg/ops.py": b"z = 3\n"}


def test_digest_depends_on_content_only(tmp_path: Path):
    a = make_zip(tmp_path / "a.zip", {"pkg/ops.py": b"1"})
    b = make_zip(tmp_path / "b.zip", {"top/pkg/ops.py": b"1"})
    c = make_zip(tmp_path / "c.zip", {"pkg/ops.py": b"2"})
    digests = [intake.take(p, SUBMIT).digest for p in (a, b, c)]
    assert digests[0] == digests[1] != digests[2]


@pytest.mark.parametrize(
    ("entries", "links", "reason"),
    [
        ({"../../etc/evil.py": b"x"}, None, "points outside the archive"),
        ({"/abs/pkg/ops.py": b"x"}, None, "points outside the archive"),
        ({"pkg/ops.py": b"x"}, {"pkg/extra.py": "/etc/passwd"}, "is a symbolic link"),
        ({"a/pkg/ops.py": b"1", "b/pkg/ops.py": b"2"}, None, "appears more than once"),
        ({"pkg/ops.py": b"x" * (intake.MAX_FILE_BYTES + 1)}, None, "larger than"),
    ],
)
def test_bad_zips_are_rejected_with_a_reason(tmp_path: Path, entries, links, reason):
    path = make_zip(tmp_path / "dave.zip", entries, links)
    with pytest.raises(Rejected, match=reason):
        intake.take(path, SUBMIT)


def test_not_a_zip(tmp_path: Path):
    fake = tmp_path / "erin.zip"
    fake.write_text("this is not a zip")
    with pytest.raises(Rejected, match="not a valid zip archive"):
        intake.take(fake, SUBMIT)
    other = tmp_path / "frank.tar"
    other.write_text("x")
    with pytest.raises(Rejected, match=r"is not a \.zip file"):
        intake.take(other, SUBMIT)


def test_links_in_a_folder_are_rejected(tmp_path: Path):
    (tmp_path / "gina/pkg").mkdir(parents=True)
    secret = tmp_path / "secret.py"
    secret.write_text("SECRET = 1\n")
    os.symlink(secret, tmp_path / "gina/pkg/ops.py")
    with pytest.raises(Rejected, match="symbolic link"):
        intake.take(tmp_path / "gina", SUBMIT)


def test_unsafe_names_are_rejected(tmp_path: Path):
    odd = tmp_path / "-rf"
    odd.mkdir()
    with pytest.raises(Rejected, match="not usable"):
        intake.take(odd, SUBMIT)
