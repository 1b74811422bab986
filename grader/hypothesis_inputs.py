"""The same Hypothesis inputs on every grader, backend and grader version alike."""

from __future__ import annotations

from pathlib import Path


def same_inputs_on_every_grader() -> None:
    """Hypothesis draws some inputs from constants in the source of the modules it
    deems local, the grader's own among them when it is installed editable (the
    local backend from a checkout) but not when it is a site package (the Docker
    image): one submission was tested on other inputs, and scored otherwise, by the
    two backends. In grading, the grader's modules give no constants; the tests'
    own still do, on every backend and grader version alike."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - Hypothesis is a dependency
        return
    local = getattr(providers, "is_local_module_file", None)
    if local is None:
        return
    own = str(Path(__file__).resolve().parent) + "/"

    def is_local_module_file(path: str) -> bool:
        return not str(path).startswith(own) and local(path)

    providers.is_local_module_file = is_local_module_file  # type: ignore[attr-defined]
