"""Solution markers: parsing, errors with file:line, and rendering stubs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from grader import markers
from grader.errors import MarkerError
from tests.conftest import KERNEL, OPS


def stub_all(tag: str) -> str:
    return f"{tag}: Title of {tag}"


def test_parse_finds_regions_with_lines_and_indent():
    regions = markers.parse(OPS, "ops.py")
    assert [(r.tag, r.begin, r.end, r.indent) for r in regions] == [
        ("hw1.1", 6, 8, "    "),
        ("hw1.2", 13, 16, "    "),
        ("hw2.1", 21, 23, "    "),
    ]


def test_python_stub_keeps_signature_docstring_and_indent():
    out = markers.render(
        OPS,
        "ops.py",
        markers.parse(OPS, "ops.py"),
        lambda tag: stub_all(tag) if tag == "hw1.2" else None,
    )
    assert (
        'def mul(x: int, y: int) -> int:\n    """x * y"""\n'
        '    raise NotImplementedError("hw1.2: Title of hw1.2")\n' in out
    )
    assert "result = x * y" not in out
    # Kept regions lose their markers and nothing else.
    assert "    return x + y\n" in out and "return -x" in out
    assert "BEGIN" not in out and "END SOLUTION" not in out
    namespace: dict = {}
    exec(compile(out, "ops.py", "exec"), namespace)
    assert namespace["add"](2, 3) == 5
    with pytest.raises(NotImplementedError, match=r"^hw1\.2: Title of hw1\.2$"):
        namespace["mul"](2, 3)


def test_cuda_stub_leaves_outputs_untouched():
    out = markers.render(KERNEL, "k.cu", markers.parse(KERNEL, "k.cu"), stub_all)
    assert "out[i] = -in[i]" not in out
    assert "    // TODO hw2.1: Title of hw2.1: not implemented yet" in out
    assert out.count("{") == out.count("}")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_stubbed_cuda_compiles_with_nvcc(tmp_path: Path):
    out = markers.render(KERNEL, "k.cu", markers.parse(KERNEL, "k.cu"), stub_all)
    source = tmp_path / "k.cu"
    source.write_text(out)
    done = subprocess.run(
        ["nvcc", "-arch=sm_90", "-c", str(source), "-o", str(tmp_path / "k.o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("x = 1\n# END SOLUTION\n", 2, "END SOLUTION without a BEGIN"),
        ("def f():\n    # BEGIN SOLUTION hw1.1\n    return 1\n", 2, "never closed"),
        (
            "# BEGIN SOLUTION hw1.1\n# BEGIN SOLUTION hw1.2\n# END SOLUTION\n# END SOLUTION\n",
            2,
            "nested BEGIN SOLUTION",
        ),
        ("# BEGIN ASSIGN1_1\nx = 1\n# END ASSIGN1_1\n", 1, "malformed marker"),
        ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", 1, "malformed marker"),
        ("# BEGIN SOLUTION hw1.1\nx = 1\n# END SOLUTION hw1.1\n", 3, "malformed marker"),
        ("x = 1\n// BEGIN SOLUTION hw1.1\n", 2, "must be a '#' comment"),
    ],
)
def test_malformed_markers_name_the_line(text: str, line: int, message: str):
    with pytest.raises(MarkerError) as info:
        markers.parse(text, "pkg/mod.py")
    assert info.value.line == line
    assert info.value.message.startswith(f"pkg/mod.py:{line}: ")
    assert message in info.value.message


def test_ordinary_comments_are_not_markers():
    text = "# END of the loop\n# BEGINNING\n# begin solution hw1.1\nx = 1  # BEGIN\n"
    assert markers.parse(text, "a.py") == []


def test_markers_in_unsupported_files_are_errors():
    with pytest.raises(MarkerError, match="not supported in this file type"):
        markers.parse("# BEGIN SOLUTION hw1.1\n# END SOLUTION\n", "notes.md")


def test_stub_that_breaks_python_is_reported_at_the_region():
    text = "x = [\n    # BEGIN SOLUTION hw1.1\n    1,\n    # END SOLUTION\n]\n"
    regions = markers.parse(text, "a.py")
    with pytest.raises(MarkerError, match=r"^a\.py:2: the generated file is not valid Python"):
        markers.render(text, "a.py", regions, stub_all)


def test_crlf_files_keep_their_line_endings():
    text = OPS.replace("\n", "\r\n")
    out = markers.render(text, "ops.py", markers.parse(text, "ops.py"), stub_all)
    assert "\r\n" in out and "\n" not in out.replace("\r\n", "")
