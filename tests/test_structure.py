"""The grader's structure as `grader/__init__.py` documents it: layers that import
only downwards, no import cycle, backends that see only the core's interfaces,
Docker code only in the Docker backend, and small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

GRADER = REPO / "grader"

#: Each module imports only from its own layer or lower ones (grader/__init__.py).
LAYERS = [
    "errors schema files interrupts gpus cgroups seccomp sandbox uids wire results intake "
    "hypothesis_inputs testrun reports",
    "manifest markers records worker workers canvas_archive git_intake",
    "starter context plugin runner timing scoring late",
    "backend workspace harness verify examples scaffold",
    "rerun grade reports.canvas reports.gradescope reports.junit reports.markdown "
    "reports.table backends backends.local backends.docker backends.image backends.slurm "
    "backends.slurm_job canvas_api audit",
    "batch commands gradescope_package canvas_upload",
    "grade_command cli __main__",
]
LAYER = {name: n for n, names in enumerate(LAYERS) for name in names.split()}
#: What a backend may import of the grader: the protocol, the context it is given, the
#: low layers it confines with, and the other backend modules.
BACKEND_MAY_IMPORT = {
    "backend", "context", "manifest", "sandbox", "uids", "cgroups", "workers",
    "backends", "backends.image",
}  # fmt: skip
#: The grading core: never a backend module, never the Docker SDK.
CORE = {"grade", "rerun", "workspace", "batch", "backend", "context", "scoring", "harness"}
MAX_LINES = 300


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(GRADER.rglob("*.py")):
        rel = path.relative_to(GRADER).with_suffix("").as_posix().replace("/", ".")
        found[rel.removesuffix(".__init__") if rel != "__init__" else ""] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module of the grader (relative name) or top-level package that `path`
    imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    known = modules()
    found = set()
    for name in names:
        if name == "grader" or name.startswith("grader."):
            rel = name.removeprefix("grader").removeprefix(".")
            # `from grader import x`: x may be a module or a name in grader/__init__.
            while rel and rel not in known:
                rel = rel.rpartition(".")[0]
            if rel:
                found.add(rel)
        else:
            found.add(name.split(".")[0])
    return found


GRAPH = {name: imports(path) for name, path in modules().items()}


def test_every_module_has_a_layer():
    assert sorted(set(GRAPH) - set(LAYER) - {""}) == []


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m))
def test_imports_go_only_down(module: str):
    upward = sorted(
        other for other in GRAPH[module] if other in LAYER and LAYER[other] > LAYER[module]
    )
    assert upward == [], f"grader.{module} (layer {LAYER[module]}) imports higher layers"


def test_no_import_cycle():
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(GRAPH.get(module, ())):
            if other not in GRAPH or other == module or other == "":
                continue
            if state.get(other) == 1:
                raise AssertionError(" -> ".join([*path, module, other]))
            if other not in state:
                visit(other, [*path, module])
        state[module] = 2

    for module in GRAPH:
        if module not in state:
            visit(module, [])


def test_backends_see_only_the_core_interfaces():
    for module in ("backends.local", "backends.docker", "backends.image"):
        grader_imports = {m for m in GRAPH[module] if m in LAYER}
        assert grader_imports <= BACKEND_MAY_IMPORT, (module, grader_imports - BACKEND_MAY_IMPORT)


def test_the_core_imports_no_backend_and_no_docker():
    for module in CORE:
        assert not {m for m in GRAPH[module] if m.startswith("backends")}, module
        assert "docker" not in GRAPH[module] and "requests" not in GRAPH[module], module
    docker_users = sorted(m for m, found in GRAPH.items() if "docker" in found)
    assert docker_users == ["backends.docker", "backends.image", "cli"], docker_users


def test_modules_are_small_or_say_why():
    long = []
    for path in modules().values():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_LINES and "Why above 300 lines" not in text[:3000]:
            long.append(f"grader/{path.relative_to(GRADER)}: {len(text.splitlines())} lines")
    assert long == []
