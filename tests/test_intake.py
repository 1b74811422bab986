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


def test_visible_writes_out_what_a_terminal_would_obey():
    assert intake.visible("plain name [b] é") == "plain name [b] é"
    assert intake.visible("a\x1b[2Jb\x07\u202ec\udce9") == r"a\x1b[2Jb\x07\u202ec\udce9"
    assert intake.one_line("line one\n\tline\x1b two") == r"line one line\x1b two"


def test_unreadable_submission_is_rejected_not_raised(tmp_path: Path, monkeypatch):
    (tmp_path / "hal/pkg").mkdir(parents=True)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", denied)
    with pytest.raises(Rejected, match="the submission cannot be read: Permission denied"):
        intake.take(tmp_path / "hal", SUBMIT)


def test_names_in_reasons_are_shown_escaped(tmp_path: Path):
    path = make_zip(tmp_path / "ivy.zip", {"a\x1b[2J/pkg/ops.py": b"1", "b/pkg/ops.py": b"2"})
    with pytest.raises(Rejected) as info:
        intake.take(path, SUBMIT)
    assert "\x1b" not in str(info.value)
    assert r"a\x1b[2J/pkg/ops.py" in str(info.value)


def screened(folder: Path) -> tuple[list[str], dict[str, str]]:
    graded, refused = intake.screen(sorted(folder.iterdir()))
    return [p.name for p in graded], {r.label: r.reason for r in refused}


def test_screen_refuses_unusable_reserved_and_shared_names(tmp_path: Path):
    for name in ("ann", "alice", "junit.xml", "-rf", "sp ace", "eve\n"):
        (tmp_path / name).mkdir()
    for name in ("alice.zip", "Gradebook.CSV", "junit.xml.zip", "bob.zip"):
        make_zip(tmp_path / name, {"pkg/ops.py": b"1"})
    os.mkdir(bytes(tmp_path) + b"/caf\xe9")
    graded, refused = screened(tmp_path)
    assert graded == ["ann", "bob.zip"]
    two = "two submissions are named alice (alice.zip and alice/): keep one"
    junit = "the name junit.xml is reserved for a report of the batch: rename it"
    assert refused == {
        "-rf/": "the name '-rf' is not usable: use letters, digits, and . _ @ + -",
        "Gradebook.CSV": "the name Gradebook.CSV is reserved for a report of the batch: rename it",
        "alice.zip": two,
        "alice/": two,
        r"eve\n/": r"the name 'eve\n' is not usable: use letters, digits, and . _ @ + -",
        r"caf\udce9/": r"the name 'caf\udce9' is not usable: use letters, digits, and . _ @ + -",
        "junit.xml.zip": junit,
        "junit.xml/": junit,
        "sp ace/": "the name 'sp ace' is not usable: use letters, digits, and . _ @ + -",
    }


def test_screen_labels_never_name_a_graded_submission(tmp_path: Path):
    # alice.zip is refused (alice/ has the same name) and labelled "alice.zip", which is
    # also the name alice.zip.zip would be graded under: that one is refused as well.
    (tmp_path / "alice").mkdir()
    for name in ("alice.zip", "alice.zip.zip", "carl.zip"):
        make_zip(tmp_path / name, {"pkg/ops.py": b"1"})
    graded, refused = screened(tmp_path)
    assert graded == ["carl.zip"]
    assert refused["alice.zip.zip"] == (
        "two submissions are named alice.zip (alice.zip and alice.zip.zip): keep one"
    )
    assert sorted(refused) == ["alice.zip", "alice.zip.zip", "alice/"]


def test_screen_labels_are_unique_across_folders(tmp_path: Path):
    one, two = tmp_path / "one" / "dan", tmp_path / "two" / "dan"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    graded, refused = intake.screen([one, two])
    assert graded == []
    assert sorted(r.label for r in refused) == ["dan/", "dan/'"]
    assert {r.reason for r in refused} == {
        "two submissions are named dan (dan/ and dan/): keep one"
    }
