"""The worker: the only process that runs student code (`python -I -m grader.worker`).

It reads its configuration as the first request frame, confines itself
(`grader.sandbox`) when asked, puts the student's tree first on `sys.path`, and
then answers requests with responses, one frame each, on the two pipe fds\ngiven as its arguments:

    {"op": "run", "id": n, "probe": {"source": ..., "name": ...} | {"path": "pkg.mod.fn"},
     "args": [...]}
    -> {"id": n, "ok": true, "value": ...}
    -> {"id": n, "ok": false, "error": {"type": ..., "message": ..., "traceback": ...}}

Everything in this process is untrusted once student code is imported: student
code may replace this very loop. The harness therefore trusts nothing it sends
back beyond "plain data to compare": verdicts, points and clocks live in the
harness.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings
from typing import Any

from grader import wire
from grader.sandbox import SandboxConfig, confine, die_with_parent


def main(request_fd: int, response_fd: int) -> None:
    read = wire.reader(request_fd)
    config = wire.unpack(read)
    if config.get("sandbox"):
        sandbox = config["sandbox"]
        confine(
            SandboxConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in sandbox.items()})
        )
    die_with_parent(config.get("parent"))
    global _TREE
    _TREE = config["tree"]
    # The tools' own warnings (numba's about parallel loops it could not make, for
    # one) are noise in a student's feedback: what the student's code prints stays.
    for module in TOOL_MODULES:
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
    os.chdir(config["tree"])
    sys.path.insert(0, config["tree"])
    sys.dont_write_bytecode = True
    wire.write_frame(response_fd, {"id": 0, "ok": True, "value": "ready"})
    probes: dict[str, Any] = {}
    while True:
        try:
            request = wire.unpack(read)
        except EOFError:
            return
        wire.write_frame(response_fd, handle(request, probes))


def handle(request: dict[str, Any], probes: dict[str, Any]) -> dict[str, Any]:
    """Run one request; every exception becomes an error response."""
    try:
        function = resolve(request["probe"], probes)
        value = function(*request.get("args", ()))
        wire.encode(value)  # fail here, with the student's traceback, if not plain data
        return {"id": request["id"], "ok": True, "value": value}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"id": request["id"], "ok": False, "error": describe(exc)}


def resolve(probe: dict[str, str], probes: dict[str, Any]) -> Any:
    """The function a request names: probe source (compiled once) or a dotted path."""
    if "path" in probe:
        module_name, _, attribute = probe["path"].rpartition(".")
        return getattr(importlib.import_module(module_name), attribute)
    source = probe["source"]
    if source not in probes:
        namespace: dict[str, Any] = {"__name__": "probe"}
        exec(compile(source, f"<probe {probe['name']}>", "exec"), namespace)
        probes[source] = namespace[probe["name"]]
    return probes[source]


#: Packages whose warnings never reach a student's feedback.
TOOL_MODULES = ("numba", "llvmlite")

#: The student's tree, as this worker sees it: left out of the paths of tracebacks,
#: which then read as paths of the student's own repo (minitorch/operators.py).
_TREE = ""


def describe(exc: BaseException) -> dict[str, str]:
    text = "".join(traceback.format_exception(exc))
    if _TREE:
        text = text.replace(_TREE.rstrip("/") + "/", "")
    return {
        "type": type(exc).__name__,
        "message": _safe_str(exc),
        "traceback": text[-8000:],
    }


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:4000]
    except Exception:
        return "<unprintable exception>"


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
