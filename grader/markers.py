"""Solution markers: find them, check them, and replace them with stubs.

A solution region is written in place in the reference code::

    def mul(x: float, y: float) -> float:
        \"\"\"f(x, y) = x * y\"\"\"
        # BEGIN SOLUTION hw1.1
        return x * y
        # END SOLUTION

(`// BEGIN SOLUTION hw2.1` ... `// END SOLUTION` in CUDA and C++). A stubbed
region becomes one line at the BEGIN line's indentation: in Python
`raise NotImplementedError("hw1.1: <task title>")`, in C++ a `// TODO` comment
that leaves every output untouched, so the file still compiles. A kept region
loses its two marker lines and nothing else.

Anything that looks like a marker but is not exactly one (`# BEGIN ASSIGN1_1`,
`# END SOLUTION hw1.1`, a BEGIN without END) is an error with `file:line`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from grader.errors import MarkerError

#: Comment leader of each file type that may hold markers.
COMMENT = {
    ".py": "#",
    ".cu": "//",
    ".cuh": "//",
    ".h": "//",
    ".hpp": "//",
    ".cpp": "//",
    ".cc": "//",
    ".c": "//",
}
#: A line that claims to be a marker: BEGIN or END, then an upper-case word or nothing.
_CANDIDATE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<leader>#|//)[ \t]*(?P<kind>BEGIN|END)"
    r"(?=[ \t]+[A-Z_]|[ \t]*$)(?P<rest>.*)$"
)
_BEGIN = re.compile(r"^[ \t]+SOLUTION[ \t]+(?P<tag>hw\d+\.\d+[\w.-]*)[ \t]*$")
_END = re.compile(r"^[ \t]+SOLUTION[ \t]*$")


@dataclass(frozen=True)
class Region:
    """Lines `begin`..`end` (1-based, inclusive, marker lines included)."""

    tag: str
    begin: int
    end: int
    indent: str


def parse(text: str, path: str) -> list[Region]:
    """Every region of a file, in order; MarkerError on any malformed marker."""
    leader = _leader(path)
    regions: list[Region] = []
    open_tag: tuple[str, int, str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _CANDIDATE.match(line)
        if not match:
            continue
        if leader is None:
            raise MarkerError(
                path,
                number,
                "solution markers are not supported in this file type",
                f"markers work in {', '.join(sorted(COMMENT))} files",
            )
        if match["leader"] != leader:
            raise MarkerError(path, number, f"marker must be a '{leader}' comment in this file")
        kind, rest = match["kind"], match["rest"]
        if kind == "BEGIN":
            begin = _BEGIN.match(rest)
            if not begin:
                raise MarkerError(
                    path,
                    number,
                    f"malformed marker {line.strip()!r}",
                    f"write '{leader} BEGIN SOLUTION hwN.K'",
                )
            if open_tag is not None:
                raise MarkerError(
                    path,
                    number,
                    f"nested BEGIN SOLUTION (region {open_tag[0]} opened at "
                    f"line {open_tag[1]} is not closed)",
                    "close the open region with END SOLUTION first",
                )
            open_tag = (begin["tag"], number, match["indent"])
        else:
            if not _END.match(rest):
                raise MarkerError(
                    path,
                    number,
                    f"malformed marker {line.strip()!r}",
                    f"write '{leader} END SOLUTION' (no tag)",
                )
            if open_tag is None:
                raise MarkerError(path, number, "END SOLUTION without a BEGIN SOLUTION")
            tag, begin_line, indent = open_tag
            regions.append(Region(tag, begin_line, number, indent))
            open_tag = None
    if open_tag is not None:
        raise MarkerError(
            path,
            open_tag[1],
            f"BEGIN SOLUTION {open_tag[0]} is never closed",
            "add END SOLUTION after the region",
        )
    return regions


def render(
    text: str, path: str, regions: list[Region], stub_message: Callable[[str], str | None]
) -> str:
    """The file with every region either stubbed or kept without its markers.

    `stub_message(tag)` returns the stub's message ("hw1.1: Operators") for a
    region to stub, or None to keep the region's solution.
    """
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    out: list[str] = []
    cursor = 0
    for region in regions:
        out.extend(lines[cursor : region.begin - 1])
        message = stub_message(region.tag)
        if message is None:
            out.extend(lines[region.begin : region.end - 1])
        else:
            out.append(region.indent + _stub_line(path, message) + newline)
        cursor = region.end
    out.extend(lines[cursor:])
    rendered = "".join(out)
    if path.endswith(".py") and regions:
        _check_python(rendered, path, regions)
    return rendered


def _stub_line(path: str, message: str) -> str:
    if _leader(path) == "#":
        quoted = message.replace("\\", "\\\\").replace('"', '\\"')
        return f'raise NotImplementedError("{quoted}")'
    return f"// TODO {message}: not implemented yet (outputs are left untouched)."


def _check_python(source: str, path: str, regions: list[Region]) -> None:
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise MarkerError(
            path,
            regions[0].begin,
            f"the generated file is not valid Python: {exc.msg} (generated line {exc.lineno})",
            "a region must be whole statements, e.g. a function body",
        ) from None


def _leader(path: str) -> str | None:
    dot = path.rfind(".")
    return COMMENT.get(path[dot:]) if dot >= 0 else None
