"""How much faster hw5's reference trains its GPT in parallel: data parallel, bucketed, pipeline.

Renders hw5's reference tree (nothing stubbed) into a temporary folder, puts it
first on sys.path and imports its `parallel`, `data_parallel` and `pipeline`
packages, so what is measured is the reference as students receive it. Every
run trains `parallel.model.GPT(GPTConfig(--vocab, --n-embd, --n-head,
--n-layer, n_positions=--seq-len))`, float32, seeded 0, with
`torch.optim.AdamW(lr=3e-4)` on a fixed token set (`make_tokens(4 * global
batch, --seq-len + 1, --vocab, seed=1)`, cycled through 4 global batches). A
step is: the mean next-token cross-entropy of the step's rows, backward, the
gradient synchronisation of the wrapper (if any), `AdamW.step`, `zero_grad`.

Prints, in one run:

  data parallel  tokens/s of one rank training alone on --batch rows (no
                 wrapper, no collective) and of --world-size ranks training
                 `DataParallel` (gradients all-reduced one by one after
                 backward, then averaged) on --batch rows each, and the
                 speed-up: N-rank tokens/s / 1-rank tokens/s (the goal is at
                 least 1.8x on 2 GPUs);
  bucketed       at the same N: s/step of `DataParallel` and of
                 `BucketedDataParallel(bucket_cap_mb=--bucket-cap-mb)`
                 (bucket all-reduces started during backward), and their ratio
                 DataParallel / Bucketed (above 1: the overlap pays);
  pipeline       s/step of the naive model-parallel run (the GPT as an
                 `nn.Sequential` of embedding, blocks, final LayerNorm and
                 head, cut into --world-size stages by the reference's
                 `_split_module`; the whole batch of --batch x --world-size rows
                 through stage 0, then stage 1, ...) and of `Pipe` (the same
                 stages, GPipe's schedule over --micro-batches micro-batches),
                 and their ratio naive / Pipe (above 1: the pipeline pays).

How it measures: the ranks are processes started with
`torch.multiprocessing.spawn` (the reference's `run_ranks` joins only gloo
groups and forks), joined through a file store in a temporary folder. With
`--backend gloo` the tensors live on the CPU and each rank runs one intra-op
thread (as `run_ranks` does); with `nccl` rank r uses GPU r
(`torch.cuda.set_device`). Each phase runs --warmup untimed steps, then
--steps steps, each timed with `time.perf_counter` between two
`torch.cuda.synchronize()` calls (no-ops on the CPU); a step's time is the
slowest rank's, and every s/step figure is the median over the timed steps
(tokens/s = tokens of all ranks in a step / that median). The 1-rank figure is
rank 0 training alone while the other ranks wait at a barrier.

The reference `Pipe` runs its stages on worker threads and does not place
them on devices, so the pipeline is always measured on the CPU, with one
intra-op thread (each stage's thread is its own "device"; the backward pass is
autograd's, on the caller's thread, not pipelined), in this process. With
nccl it uses the CPU sizes below, whatever the size options say.

    .venv/bin/python benchmarks/parallel_training.py [--backend gloo|nccl]
        [--world-size 2] [--steps N] [--warmup N] [--batch B] [--seq-len T]
        [--n-embd C] [--n-head H] [--n-layer L] [--vocab V] [--micro-batches 4]
        [--bucket-cap-mb 25] [--json OUT]

The default backend is nccl when PyTorch sees at least 2 CUDA GPUs, else gloo.
Size defaults: on nccl n_embd 1024, 16 heads, 8 layers, seq 256, batch 8 per
rank, vocab 4096, 20 steps after 5 (compute dominates on a GPU); on gloo (and
for the pipeline) n_embd 128, 4 heads, 4 layers, seq 64, batch 8, vocab 256,
10 steps after 2 (a CPU run takes well under a minute). NVLink multicast stays
off (NCCL_NVLS_ENABLE=0 and friends, unless already set). Asking for nccl
without a GPU per rank prints "error: ..." with a hint and exits 2. --json OUT
also writes every figure, and each phase's step times and its first and last
losses (averaged over the ranks: the wrapped runs train on the same data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import starter  # noqa: E402
from grader.manifest import Course  # noqa: E402

#: Sizes and step counts per backend; the pipeline always uses the "gloo" (CPU) sizes.
PRESETS: dict[str, dict[str, int]] = {
    "nccl": {
        "n_embd": 1024,
        "n_head": 16,
        "n_layer": 8,
        "seq_len": 256,
        "batch": 8,
        "vocab": 4096,
        "steps": 20,
        "warmup": 5,
    },
    "gloo": {
        "n_embd": 128,
        "n_head": 4,
        "n_layer": 4,
        "seq_len": 64,
        "batch": 8,
        "vocab": 256,
        "steps": 10,
        "warmup": 2,
    },
}
SIZE_KEYS = ("n_embd", "n_head", "n_layer", "seq_len", "batch", "vocab")
#: Distinct global batches in the token set, cycled through step after step.
N_BATCHES = 4
LR = 3e-4
#: How long a collective may wait before the group gives up (a hung rank).
GROUP_TIMEOUT_S = 600
#: Never NVLink multicast: set before any process starts, unless the caller chose.
NO_MULTICAST = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


def gpt_config(sizes: dict[str, int]) -> Any:
    from parallel.model import GPTConfig

    return GPTConfig(
        vocab_size=sizes["vocab"],
        n_embd=sizes["n_embd"],
        n_head=sizes["n_head"],
        n_layer=sizes["n_layer"],
        n_positions=sizes["seq_len"],
    )


def token_set(sizes: dict[str, int], rows_per_step: int) -> Any:
    """The fixed token set: N_BATCHES global batches of `rows_per_step` rows."""
    from parallel.model import make_tokens

    return make_tokens(N_BATCHES * rows_per_step, sizes["seq_len"] + 1, sizes["vocab"], seed=1)


def next_token_loss(forward: Callable[[Any], Any], ids: Any) -> Any:
    """Mean cross-entropy of predicting ids[:, t + 1] from ids[:, : t + 1] (GPT.loss,
    through `forward` so that a wrapper's forward is the one called)."""
    import torch.nn.functional as F

    logits = forward(ids[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def time_steps(
    step: Callable[[int], Any], warmup: int, steps: int, sync: Callable[[], None]
) -> tuple[list[float], float, float]:
    """(seconds of each timed step, first loss, last loss): `warmup` untimed steps,
    then `steps` steps each between two `sync()` calls. `step(k)` returns the loss."""
    losses = []
    for k in range(warmup):
        losses.append(step(k))
    times = []
    for k in range(warmup, warmup + steps):
        sync()
        start = time.perf_counter()
        losses.append(step(k))
        sync()
        times.append(time.perf_counter() - start)
    return times, float(losses[0]), float(losses[-1])


def _rank_main(
    rank: int, world_size: int, backend: str, store: str, sizes: dict[str, int], opts: dict
) -> None:
    """One rank of the data-parallel phases; rank 0 writes the figures to opts["out"]."""
    import torch
    import torch.distributed as dist
    from data_parallel.bucketed import BucketedDataParallel
    from data_parallel.ddp import DataParallel
    from parallel.model import GPT

    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)

        def sync() -> None:
            torch.cuda.synchronize(device)

        extra = {"device_id": device}
    else:
        torch.set_num_threads(1)  # the ranks share the machine's cores, one each
        device = torch.device("cpu")

        def sync() -> None:
            pass

        extra = {}
    dist.init_process_group(
        backend,
        store=dist.FileStore(store, world_size),
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=GROUP_TIMEOUT_S),
        **extra,
    )
    try:
        config, batch = gpt_config(sizes), sizes["batch"]
        tokens = token_set(sizes, batch * world_size).to(device)

        def rows(k: int, share: int) -> Any:
            """Share `share` (of `batch` rows) of global batch number k."""
            first = (k % N_BATCHES) * batch * world_size + share * batch
            return tokens[first : first + batch]

        def train(model: Any, sync_grads: Callable[[], None] | None) -> Callable[[int], Any]:
            optimizer = torch.optim.AdamW(model.parameters(), lr=LR)

            def step(k: int) -> Any:
                loss = next_token_loss(model, rows(k, rank))
                loss.backward()
                if sync_grads is not None:
                    sync_grads()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                return loss.detach()

            return step

        def slowest(times: list[float], first: float, last: float) -> dict[str, Any]:
            """Each step's time, the slowest rank's; the losses averaged over the ranks."""
            t = torch.tensor(times, dtype=torch.float64, device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            losses = torch.tensor([first, last], dtype=torch.float64, device=device)
            dist.all_reduce(losses)
            losses /= world_size
            return {"times": t.tolist(), "loss": losses.tolist()}

        warmup, steps = opts["warmup"], opts["steps"]
        figures: dict[str, Any] = {}
        dist.barrier()
        if rank == 0:
            model = GPT(config, seed=0).to(device)
            times, first, last = time_steps(train(model, None), warmup, steps, sync)
            figures["single"] = {"times": times, "loss": [first, last]}
            del model
        dist.barrier()  # the others wait here while rank 0 trains alone

        model = DataParallel(GPT(config, seed=0).to(device))
        figures["dp"] = slowest(
            *time_steps(train(model, model.sync_gradients), warmup, steps, sync)
        )
        del model

        bucketed = BucketedDataParallel(
            GPT(config, seed=0).to(device), bucket_cap_mb=opts["bucket_cap_mb"]
        )
        step = train(bucketed, bucketed.finish_gradient_synchronization)
        figures["bucketed"] = slowest(*time_steps(step, warmup, steps, sync))
        figures["bucketed"]["buckets"] = len(bucketed.buckets)
        if rank == 0:
            Path(opts["out"]).write_text(json.dumps(figures))
    finally:
        dist.destroy_process_group()


def data_parallel_figures(
    backend: str, world_size: int, sizes: dict[str, int], opts: dict, folder: str
) -> dict[str, Any]:
    """Rank 0's figures of the data-parallel phases, from `world_size` spawned ranks."""
    import torch.multiprocessing as mp

    opts = {**opts, "out": str(Path(folder) / "figures.json")}
    store = str(Path(folder) / "store")
    mp.spawn(_rank_main, args=(world_size, backend, store, sizes, opts), nprocs=world_size)
    return json.loads(Path(opts["out"]).read_text())


def pipeline_figures(
    sizes: dict[str, int], n_stages: int, micro_batches: int, opts: dict
) -> dict[str, Any]:
    """The naive model-parallel run and `Pipe`'s, on the CPU, one intra-op thread."""
    import torch
    from parallel.model import GPT
    from pipeline.pipe import Pipe
    from torch import nn

    class Embed(nn.Module):
        """The GPT's token + position embeddings, as the first layer of a Sequential."""

        def __init__(self, gpt: Any) -> None:
            super().__init__()
            self.wte, self.wpe = gpt.wte, gpt.wpe

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))

    def as_pipe(split_size: int) -> Pipe:
        gpt = GPT(gpt_config(sizes), seed=0)
        layers = nn.Sequential(Embed(gpt), *gpt.blocks, gpt.ln_f, gpt.lm_head)
        return Pipe(layers, split_size=split_size, n_stages=n_stages)

    rows_per_step = sizes["batch"] * n_stages
    tokens = token_set(sizes, rows_per_step)
    split_size = math.ceil(rows_per_step / micro_batches)

    def train(forward: Callable[[Any], Any], params: Any) -> Callable[[int], Any]:
        optimizer = torch.optim.AdamW(params, lr=LR)

        def step(k: int) -> Any:
            first = (k % N_BATCHES) * rows_per_step
            loss = next_token_loss(forward, tokens[first : first + rows_per_step])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    def naive_forward(stages: Any) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            for stage in stages:
                x = stage(x)
            return x

        return forward

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        naive = as_pipe(split_size)  # only its stages are used, one after the other
        step = train(naive_forward(naive.partitions), naive.parameters())
        naive_run = time_steps(step, opts["warmup"], opts["steps"], lambda: None)
        pipe = as_pipe(split_size)
        pipe_run = time_steps(
            train(pipe, pipe.parameters()), opts["warmup"], opts["steps"], lambda: None
        )
    finally:
        torch.set_num_threads(threads)
    return {
        "stages": [len(stage) for stage in pipe.partitions],
        "micro_batches": math.ceil(rows_per_step / split_size),
        "split_size": split_size,
        "naive": {"times": naive_run[0], "loss": list(naive_run[1:])},
        "pipe": {"times": pipe_run[0], "loss": list(pipe_run[1:])},
    }


def describe(sizes: dict[str, int]) -> str:
    return (
        f"GPT(vocab {sizes['vocab']}, n_embd {sizes['n_embd']}, {sizes['n_head']} heads, "
        f"{sizes['n_layer']} layers), seq {sizes['seq_len']}"
    )


def report(
    backend: str, world_size: int, sizes: dict[str, int], pipe_sizes: dict[str, int], args: Any
) -> dict[str, Any]:
    """Runs every phase, prints the figures and returns them (the --json document)."""
    opts = {"steps": args.steps, "warmup": args.warmup, "bucket_cap_mb": args.bucket_cap_mb}
    where = f"{world_size} GPUs (nccl)" if backend == "nccl" else "CPU (gloo, 1 thread per rank)"
    print(
        f"{describe(sizes)}, batch {sizes['batch']} per rank; {world_size} ranks on {where}; "
        f"AdamW; median of {args.steps} timed steps after {args.warmup}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="llmsys-parallel-") as folder:
        dp = data_parallel_figures(backend, world_size, sizes, opts, folder)
    median = {name: statistics.median(dp[name]["times"]) for name in ("single", "dp", "bucketed")}
    tokens = sizes["batch"] * sizes["seq_len"]
    one, many = tokens / median["single"], world_size * tokens / median["dp"]
    if backend == "nccl" and world_size == 2:
        goal = " (goal >= 1.8x: " + ("met)" if many / one >= 1.8 else "NOT met)")
    else:
        goal = " (goal on 2 GPUs: >= 1.8x)"
    print(
        f"data parallel   1 rank {one:10.0f} tok/s ({median['single']:.4f} s/step)   "
        f"{world_size} ranks DataParallel {many:10.0f} tok/s ({median['dp']:.4f} s/step)   "
        f"speed-up {many / one:.2f}x{goal}",
        flush=True,
    )
    buckets = dp["bucketed"]["buckets"]
    print(
        f"bucketed        DataParallel {median['dp']:.4f} s/step   BucketedDataParallel "
        f"(cap {args.bucket_cap_mb:g} MiB, {buckets} bucket{'s' * (buckets != 1)}) "
        f"{median['bucketed']:.4f} s/step   ratio DataParallel / Bucketed "
        f"{median['dp'] / median['bucketed']:.2f}x",
        flush=True,
    )
    pipe = pipeline_figures(pipe_sizes, world_size, args.micro_batches, opts)
    naive_s, pipe_s = (statistics.median(pipe[name]["times"]) for name in ("naive", "pipe"))
    print(
        f"pipeline        on the CPU, 1 thread per stage (the reference Pipe places no stage "
        f"on a device); {describe(pipe_sizes)}, batch {pipe_sizes['batch'] * world_size}; "
        f"{world_size} stages of {pipe['stages']} layers",
        flush=True,
    )
    print(
        f"                naive model parallel {naive_s:.4f} s/step   Pipe ({pipe['micro_batches']}"
        f" micro-batches of {pipe['split_size']} rows) {pipe_s:.4f} s/step   ratio naive / Pipe "
        f"{naive_s / pipe_s:.2f}x",
        flush=True,
    )
    return {
        "backend": backend,
        "world_size": world_size,
        "sizes": sizes,
        "pipeline_sizes": pipe_sizes,
        "steps": args.steps,
        "warmup": args.warmup,
        "data_parallel": {
            "single_tokens_per_s": one,
            "parallel_tokens_per_s": many,
            "speedup": many / one,
            "single_s_per_step": median["single"],
            "dp_s_per_step": median["dp"],
        },
        "bucketed": {
            "bucket_cap_mb": args.bucket_cap_mb,
            "buckets": dp["bucketed"]["buckets"],
            "dp_s_per_step": median["dp"],
            "bucketed_s_per_step": median["bucketed"],
            "ratio": median["dp"] / median["bucketed"],
        },
        "pipeline": {
            "device": "cpu",
            "stages": pipe["stages"],
            "micro_batches": pipe["micro_batches"],
            "split_size": pipe["split_size"],
            "naive_s_per_step": naive_s,
            "pipe_s_per_step": pipe_s,
            "ratio": naive_s / pipe_s,
        },
        "runs": {**dp, "pipeline_naive": pipe["naive"], "pipeline_pipe": pipe["pipe"]},
    }


def nccl_shortfall(world_size: int) -> str | None:
    """Why nccl cannot run `world_size` ranks here (one GPU each), or None."""
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_nccl_available():
        return "this PyTorch has no nccl backend"
    found = torch.cuda.device_count()
    if found < world_size:
        return f"nccl needs {world_size} CUDA GPUs (one per rank) and PyTorch sees {found}"
    return None


def main() -> None:
    for name, value in NO_MULTICAST.items():
        os.environ.setdefault(name, value)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("gloo", "nccl"), default=None)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="rows per rank and step")
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--n-embd", type=int, default=None)
    parser.add_argument("--n-head", type=int, default=None)
    parser.add_argument("--n-layer", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=None)
    parser.add_argument("--micro-batches", type=int, default=4)
    parser.add_argument("--bucket-cap-mb", type=float, default=25.0)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    args = parser.parse_args()

    import torch

    backend = args.backend or ("nccl" if torch.cuda.device_count() >= 2 else "gloo")
    if args.world_size < 2:
        parser.error("--world-size must be at least 2")
    for name in ("steps", "warmup", "batch", "seq_len", "n_embd", "n_head", "n_layer", "vocab"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, not {value}")
    if args.micro_batches < 1 or args.bucket_cap_mb <= 0:
        parser.error("--micro-batches and --bucket-cap-mb must be positive")
    preset = PRESETS[backend]
    args.steps = args.steps if args.steps is not None else preset["steps"]
    args.warmup = args.warmup if args.warmup is not None else preset["warmup"]
    sizes = {key: getattr(args, key) or preset[key] for key in SIZE_KEYS}
    # The pipeline runs on the CPU: the size options apply to it only on gloo.
    pipe_sizes = sizes if backend == "gloo" else {key: PRESETS["gloo"][key] for key in SIZE_KEYS}
    for checked in (sizes, pipe_sizes):
        if checked["n_embd"] % checked["n_head"]:
            parser.error(
                f"n_embd {checked['n_embd']} is not a multiple of n_head {checked['n_head']}"
            )
    if pipe_sizes["n_layer"] + 3 < args.world_size:
        parser.error(
            f"{pipe_sizes['n_layer'] + 3} pipeline layers cannot fill {args.world_size} stages"
        )
    if backend == "nccl":
        reason = nccl_shortfall(args.world_size)
        if reason is not None:
            print(
                f"error: {reason}; hint: --backend gloo runs the ranks on the CPU", file=sys.stderr
            )
            sys.exit(2)

    with tempfile.TemporaryDirectory(prefix="llmsys-bench-") as tmp:
        course = Course.load(REPO)
        starter.copy_tree(starter.render_tree(course, course.get("hw5"), stub_tags=()), Path(tmp))
        # First on the path, for the spawned ranks too (spawn hands them this sys.path).
        sys.path.insert(0, tmp)
        if backend == "gloo":
            from parallel.launch import loopback_interface

            os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback_interface())
        figures = report(backend, args.world_size, sizes, pipe_sizes, args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
