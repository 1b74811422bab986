"""Build your submission: `python submit.py` writes `<assignment>-submission.zip`.

It takes exactly the files the grader takes (listed under [tool.llmsys] in
pyproject.toml), checks that each exists and compiles, tells you which tasks
still hold the starter's `NotImplementedError` stubs, and zips them at their
paths. Upload the zip as the course page says. Nothing else of this folder is
graded: the grader lays these files over a clean copy of the starter.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent
STUB = re.compile(r'raise NotImplementedError\("(hw\d+\.\d+):')


def main(argv: list[str] | None = None) -> int:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assignment, files = settings["llmsys"]["assignment"], settings["llmsys"]["submit"]
    parser = argparse.ArgumentParser(description="Build your submission zip.")
    parser.add_argument("--out", default=f"{assignment}-submission.zip", help="the zip to write")
    args = parser.parse_args(argv)

    problems, stubbed = [], set()
    for rel in files:
        path = ROOT / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        text = path.read_text(encoding="utf-8")
        if rel.endswith(".py"):
            try:
                compile(text, rel, "exec")
            except SyntaxError as exc:
                problems.append(f"{rel}:{exc.lineno}: syntax error: {exc.msg}")
        stubbed.update(STUB.findall(text))
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print("no zip written: fix the files above and run submit.py again", file=sys.stderr)
        return 1
    out = Path(args.out)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in files:
            archive.write(ROOT / rel, rel)
    print(f"wrote {out} with {len(files)} file(s): {', '.join(files)}")
    if stubbed:
        print(f"note: still stubbed (NotImplementedError): {', '.join(sorted(stubbed))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
