"""The assignment's rule: you write the parallelism yourself.

PyTorch's finished implementations (`DistributedDataParallel`, FSDP,
`ZeroRedundancyOptimizer`, `torch.distributed.pipelining`, the tensor-parallel
`parallelize_module` styles, DTensor) do the work of these tasks: a task whose
file uses one of them, by name, import or string, scores 0 whatever its other
tests say. The collectives themselves (`torch.distributed.broadcast`,
`all_reduce`, `all_gather`, `reduce_scatter`, `send`/`recv`, async handles) are
what you build with. Run this file to check your files before you submit.
"""

from __future__ import annotations

import ast

import pytest

#: Names, attributes and module paths that give a task's work away.
FORBIDDEN = (
    "DistributedDataParallel",
    "FullyShardedDataParallel",
    "fully_shard",
    "ZeroRedundancyOptimizer",
    "PipelineStage",
    "pipelining",
    "parallelize_module",
    "ColwiseParallel",
    "RowwiseParallel",
    "DTensor",
    "distribute_tensor",
    "torch.nn.parallel",
    "torch.distributed.fsdp",
    "torch.distributed.optim",
    "torch.distributed.tensor",
    "torch.distributed.pipelining",
    "torch.distributed.algorithms",
    "torch.distributed._composable",
)

FILES = {
    "hw5.1": "data_parallel/dataset.py",
    "hw5.2": "data_parallel/ddp.py",
    "hw5.3": "data_parallel/bucketed.py",
    "hw5.4": "data_parallel/zero.py",
    "hw5.5": "pipeline/pipe.py",
    "hw5.6": "tensor_parallel/mlp.py",
}


def uses_of_forbidden(source: str) -> list[str]:
    """Each forbidden name the source mentions, with its line: identifiers,
    attributes, imported modules and names, and string constants."""
    found = []
    for node in ast.walk(ast.parse(source)):
        words: list[str] = []
        if isinstance(node, ast.Name):
            words = [node.id]
        elif isinstance(node, ast.Attribute):
            words = [node.attr]
        elif isinstance(node, ast.Import):
            words = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            words = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            words += [alias.name for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = [node.value]
        for word in words:
            for name in FORBIDDEN:
                if (
                    name == word
                    or ("." in name and name in word)
                    or (isinstance(node, ast.Constant) and name in word)
                ):
                    found.append(f"line {node.lineno}: {name}")
    return sorted(set(found))


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=task, marks=[pytest.mark.task(task, points=0), pytest.mark.rule])
        for task, path in FILES.items()
    ],
)
def test_no_finished_parallel_implementation(student, path):
    uses = uses_of_forbidden(student.source(path))
    assert not uses, (
        f"{path} uses PyTorch's finished implementation of what this task asks you to "
        f"write ({', '.join(uses)}): the task scores 0 while it does"
    )
