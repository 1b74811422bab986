"""Building the grading image (`llmsys image`) offline, once per grader version.

The build context is assembled in a cache folder: the Dockerfile, the grader's
sources (`src/`), its requirements (PyTorch among them only when the base image
has none) and the wheels of every Python dependency (`wheels/`, fetched
with `pip download` on this host for the base image's Python, from the exact
versions of ci/constraints.txt). The container needs no package index.

Student dependencies come from the manifests (the union of their `dependencies`,
each pinned in ci/constraints.txt): a new assignment's needs reach the image
without an edit here.

The image is tagged `llmsys-grader:<version>-<digest>`, the digest covering the
grader's sources, the Dockerfile and the pinned versions; its labels record
that digest and the base image. `build` reuses an image whose labels match, so
running it again costs a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grader
from grader.manifest import Course

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_BASE = "llmsys-base:bookworm"
REPOSITORY = "llmsys-grader"
LABEL_DIGEST = "org.llmsys.grader-digest"
LABEL_BASE = "org.llmsys.base-image"
#: Where the image's virtual environment is, and its Python.
PYTHON = "/opt/llmsys/bin/python"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmsys"


class ImageError(RuntimeError):
    """The image cannot be built or found; the message says what to do."""


def source_files(root: Path) -> dict[str, bytes]:
    """What goes into the image from the project: the grader package and its
    packaging (README.md only because pyproject.toml names it)."""
    files = {
        rel: (root / rel).read_bytes()
        for rel in ("pyproject.toml", "README.md", "ci/constraints.txt")
    }
    for path in sorted((root / "grader").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json"):
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def digest(root: Path) -> str:
    h = hashlib.sha256((root / "Dockerfile").read_bytes())
    for rel, data in sorted(source_files(root).items()):
        if rel != "README.md":
            h.update(f"{rel}\0".encode() + hashlib.sha256(data).digest())
    h.update("\0".join(student_dependencies(root)).encode())
    return h.hexdigest()[:12]


def student_dependencies(root: Path) -> list[str]:
    """The union of every manifest's `dependencies`: what student code may import in
    the image. Each must be pinned in ci/constraints.txt (ImageError otherwise), so an
    image built today and one built next month hold the same versions."""
    wanted = sorted({d for a in Course.load(root).assignments for d in a.dependencies})
    pinned = {
        _canonical(line.split("==", 1)[0])
        for line in (root / "ci" / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    loose = [d for d in wanted if _name(d) not in pinned]
    if loose:
        raise ImageError(
            f"student dependencies without a pinned version: {', '.join(loose)}; "
            "tip: add NAME==VERSION to ci/constraints.txt"
        )
    return wanted


def _name(requirement: str) -> str:
    """The canonical project name of a requirement string ("torch>=2.4" -> "torch")."""
    return _canonical(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def tag(root: Path) -> str:
    """The image name of this grader's sources."""
    return f"{REPOSITORY}:{grader.__version__}-{digest(root)}"


def requirements(root: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    # PyTorch comes from the base image when it has one (extras then lack "torch"):
    # asking pip for it again would replace the base's CUDA build.
    wanted += [
        d
        for d in student_dependencies(root)
        if d not in wanted and (_name(d) != "torch" or "torch" in extras)
    ]
    # The image's build of the project itself needs setuptools (pyproject's backend).
    return [*wanted, "setuptools>=61"]


def build(
    client: Any,
    root: Path,
    base: str = DEFAULT_BASE,
    say: Callable[[str], None] = print,
    rebuild: bool = False,
) -> str:
    """Build (or reuse) the grading image on `base`; return its tag."""
    name = tag(root)
    if not rebuild:
        labels = _labels(client, name) or {}
        if labels.get(LABEL_DIGEST) == digest(root) and labels.get(LABEL_BASE) == base:
            say(f"image {name} is up to date (base {base})")
            return name
    python, has_torch = _probe_base(client, base)
    extras = [] if has_torch else ["torch"]
    say(
        f"building {name} on {base} (Python {python}"
        f"{', its own PyTorch' if has_torch else ', PyTorch from a wheel'}) ..."
    )
    context = CACHE / "image-context"
    wheels = CACHE / f"wheels-py{python}"
    wheels.mkdir(parents=True, exist_ok=True)
    _download_wheels(root, requirements(root, extras), python, wheels, say)
    shutil.rmtree(context, ignore_errors=True)
    (context / "src").mkdir(parents=True)
    shutil.copy2(root / "Dockerfile", context / "Dockerfile")
    shutil.copy2(root / "ci" / "constraints.txt", context / "constraints.txt")
    (context / "requirements.txt").write_text("\n".join(requirements(root, extras)) + "\n")
    for rel, data in source_files(root).items():
        target = context / "src" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    # Hard links (same file system) keep a 200 MB wheel from being copied each time.
    (context / "wheels").mkdir()
    for wheel in wheels.iterdir():
        try:
            os.link(wheel, context / "wheels" / wheel.name)
        except OSError:
            shutil.copy2(wheel, context / "wheels" / wheel.name)
    stream = client.api.build(
        path=str(context),
        tag=name,
        buildargs={"BASE_IMAGE": base},
        labels={LABEL_DIGEST: digest(root), LABEL_BASE: base},
        rm=True,
        forcerm=True,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise ImageError(f"docker build of {name} failed: {chunk['error'].strip()}")
        line = str(chunk.get("stream", "")).strip()
        if line.startswith("Step "):
            say(f"  {line}")
    shutil.rmtree(context, ignore_errors=True)
    say(f"built {name}")
    return name


def require(client: Any, name: str) -> None:
    """Fail with a tip unless image `name` exists."""
    if _labels(client, name) is None:
        raise ImageError(
            f"the grading image {name} is not built on this host; "
            "tip: run `llmsys image` (or ci/docker.sh), or give --image NAME"
        )


def _labels(client: Any, name: str) -> dict[str, str] | None:
    """The labels of image `name`, None if there is no such image."""
    import docker.errors

    try:
        return dict(client.images.get(name).labels or {})
    except docker.errors.ImageNotFound:
        return None


def _probe_base(client: Any, base: str) -> tuple[str, bool]:
    """The base image's Python version ("3.11") and whether it has PyTorch."""
    import docker.errors

    script = (
        "import importlib.util, json, sys; print(json.dumps(["
        "'%d.%d' % sys.version_info[:2], importlib.util.find_spec('torch') is not None]))"
    )
    try:
        out = client.containers.run(
            base, ["python3", "-c", script], remove=True, network_mode="none"
        )
    except docker.errors.ImageNotFound:
        raise ImageError(
            f"base image {base} is not on this host; tip: ci/docker.sh makes "
            f"{DEFAULT_BASE} offline, or `docker pull`/`docker load` yours"
        ) from None
    except docker.errors.ContainerError as exc:
        raise ImageError(f"base image {base} has no working python3: {exc}") from None
    version, has_torch = json.loads(out.decode().strip().splitlines()[-1])
    return str(version), bool(has_torch)


def _download_wheels(
    root: Path, wanted: list[str], python: str, wheels: Path, say: Callable[[str], None]
) -> None:
    say(f"  wheels for Python {python} into {wheels} (pip download) ...")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        python,
        "--dest",
        str(wheels),
        "-c",
        str(root / "ci" / "constraints.txt"),
        *wanted,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageError(
            "pip download of the image's wheels failed: "
            + (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        )
