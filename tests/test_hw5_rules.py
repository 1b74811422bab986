"""hw5's rule check (assignments/hw5/tests/test_rules.py) catches each way of naming
PyTorch's finished parallel wrappers, and not the collectives students build with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "assignments/hw5/tests/test_rules.py"


def load_rules():
    spec = importlib.util.spec_from_file_location("hw5_rules", RULES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_check_finds_each_way_of_naming_a_wrapper():
    uses_of_forbidden = load_rules().uses_of_forbidden
    caught = [
        "from torch.nn.parallel import DistributedDataParallel as D\n",
        "import torch.nn.parallel\n",
        "import torch\nm = torch.nn.parallel.DistributedDataParallel(model)\n",
        "from torch.distributed.optim import ZeroRedundancyOptimizer\n",
        "import importlib\nimportlib.import_module('torch.distributed.pipelining')\n",
        "from torch.distributed import pipelining\n",
        "x = getattr(torch.distributed, 'fully_shard')\n",
    ]
    for source in caught:
        assert uses_of_forbidden(source), source
    allowed = (
        "import torch.distributed as dist\n"
        "handle = dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True)\n"
        "dist.broadcast(p.data, src=0)\ndist.reduce_scatter(out, chunks)\n"
        "parallel = 2  # a word that is no wrapper\n"
    )
    assert uses_of_forbidden(allowed) == []
