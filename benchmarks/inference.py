"""How much faster hw6's reference decodes: the KV cache, continuous batching, speculative decoding.

Renders hw6's reference tree (nothing stubbed) into a temporary folder, puts it
first on sys.path and imports its `inference` package, so what is measured is
the reference as students receive it. The model is
`GPT(GPTConfig(--vocab, --n-embd, --n-head, --n-layer, n_positions=enough for
every section), dtype=--dtype, seed=0)`, moved to --device; decoding is greedy
unless a temperature is given. Every time is `time.perf_counter` between two
`torch.cuda.synchronize()` calls (no-ops on the CPU), after an untimed warm-up.

Prints, in one run:

  KV cache     per context length L of --lengths: decode tokens/s of batch-1
               greedy decoding after a seeded L-token prompt, with the cache
               (`forward_cached`, one token a step) and without it (the whole
               sequence through `model(ids)` every step), and the speed-up
               cached / recompute. Both first run the prompt untimed (the
               prefill), then --new-tokens timed steps, each feeding the token
               just produced; "same tokens" says whether both produced the
               same tokens.
  batching     a seeded workload of --requests requests, all there at step 0,
               prompts of uniform length in [--max-prompt // 4, --max-prompt]
               (random tokens), outputs of uniform length in [1, --max-output],
               run by the given `Engine` with --max-num-seqs running at once in
               the same KV memory (--num-blocks blocks of --block-size slots;
               default: a batch of the longest possible requests fits).
               Continuous: one engine, requests join and leave the batch at
               every step. Static: the requests in batches of --max-num-seqs,
               in order, each batch a fresh engine of the same memory run until
               its longest request ends (a new batch starts only when the
               previous one has finished). Per mode: throughput (generated
               tokens / seconds of `Engine.run`), seconds, model steps (steps
               that ran the model, `stats["model_steps"]`), preemptions, peak
               blocks; then the ratios continuous / static of throughput and
               of model steps, and whether every request got the same tokens
               in both modes. On the CPU a step's time grows with the number of
               requests it decodes (and each request's prefill is its own
               pass), so the throughput gains less than the model steps do.
  speculative  target: the model above (the same seeded weights) with the residual
               branches (attention `proj` and the MLP's output Linear) of its
               layers --draft-layers .. --n-layer - 1 scaled by --tail-scale;
               draft: the target's own first --draft-layers layer(s) with the
               same embeddings, final LayerNorm and head (no training, no
               distillation: an untrained GPT's layers each rewrite the
               residual stream, and its first layer alone agrees with the
               whole on almost no token; a trained model's later layers refine
               instead, which the scaling imitates). On --spec-prompts seeded
               prompts of --spec-prompt tokens, --spec-tokens new tokens each:
               plain greedy decoding by the target (one `target(ids)` per
               token), and `speculative_generate(k=--k)` at temperature 0 and
               1.0 (seed = the prompt's index): acceptance rate (accepted /
               proposed, over all prompts), tokens per target call, tokens/s
               and the speed-up over plain greedy decoding; and whether
               temperature 0 gave exactly the greedy tokens. Both models
               recompute the whole sequence per call (the task's contract);
               on a GPU they are wrapped so that the ids the reference builds
               on the CPU go to the device and the logits come back.

    .venv/bin/python benchmarks/inference.py [--device cpu|cuda]
        [--dtype float32|float64] [--threads N] [--vocab V] [--n-embd C]
        [--n-head H] [--n-layer L] [--lengths 64,256,1024] [--new-tokens N]
        [--requests R] [--max-num-seqs S] [--max-prompt P] [--max-output O]
        [--block-size B] [--num-blocks N] [--draft-layers D] [--tail-scale F]
        [--k K] [--spec-prompts N] [--spec-prompt P] [--spec-tokens N]
        [--json OUT]

Defaults per device: on the CPU vocab 256, n_embd 128, 4 heads, 8 layers,
lengths 64,256,1024, 32 decode steps, 32 requests of prompts up to 64 and
outputs up to 128 tokens, 8 at once, blocks of 16, and 4 prompts of 16 tokens
with 64 new tokens for speculative decoding, one intra-op thread (decoding a
small model is bound by per-call overhead; one thread keeps the figures steady
on a shared host; --threads 0 keeps PyTorch's default); a run takes well under
a minute. On cuda vocab 4096, n_embd 1024, 16 heads, 8 layers, lengths
256,1024,4096, 64 decode steps, 128 requests of prompts up to 128 and outputs
up to 256 tokens, 16 at once, 8 prompts of 32 tokens with 128 new tokens.
Both: float32, draft 1 layer, tail scale 0.05, k 4. --device cuda without a
GPU that PyTorch sees prints "error: ..." with a hint and exits 2. --json OUT
also writes every figure and the checks ("same_tokens", "greedy_match").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grader import starter  # noqa: E402
from grader.manifest import Course  # noqa: E402

#: Defaults per device; every key is also an option (dashes for underscores).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "vocab": 256,
        "n_embd": 128,
        "n_head": 4,
        "n_layer": 8,
        "lengths": "64,256,1024",
        "new_tokens": 32,
        "requests": 32,
        "max_num_seqs": 8,
        "max_prompt": 64,
        "max_output": 128,
        "spec_prompts": 4,
        "spec_prompt": 16,
        "spec_tokens": 64,
        "threads": 1,
    },
    "cuda": {
        "vocab": 4096,
        "n_embd": 1024,
        "n_head": 16,
        "n_layer": 8,
        "lengths": "256,1024,4096",
        "new_tokens": 64,
        "requests": 128,
        "max_num_seqs": 16,
        "max_prompt": 128,
        "max_output": 256,
        "spec_prompts": 8,
        "spec_prompt": 32,
        "spec_tokens": 128,
        "threads": 0,
    },
}
#: The temperatures of the speculative section (0: greedy, checked token for token).
TEMPERATURES = (0.0, 1.0)


def sync_clock(device: Any) -> Callable[[], float]:
    """`time.perf_counter()` once the device has finished its queued work."""
    import torch

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    return now


def kv_cache_figures(model: Any, args: argparse.Namespace, clock: Callable[[], float]) -> dict:
    """Cached and recomputed decoding at each context length of --lengths."""
    import torch
    from inference.kv_cache import KVCache, forward_cached

    device = model.lm_head.weight.device

    def cached(prompt: Any, steps: int) -> tuple[list[int], float]:
        cache = KVCache(model.config.n_layer)
        token = forward_cached(model, prompt, cache)[0, -1].argmax()
        tokens = [token]
        start = clock()
        for _ in range(steps):
            token = forward_cached(model, token.view(1, 1), cache)[0, -1].argmax()
            tokens.append(token)
        seconds = clock() - start
        return [int(t) for t in tokens], seconds

    def recompute(prompt: Any, steps: int) -> tuple[list[int], float]:
        ids = prompt
        token = model(ids)[0, -1].argmax()
        tokens = [token]
        start = clock()
        for _ in range(steps):
            ids = torch.cat([ids, token.view(1, 1)], dim=1)
            token = model(ids)[0, -1].argmax()
            tokens.append(token)
        seconds = clock() - start
        return [int(t) for t in tokens], seconds

    def prompt_of(length: int) -> Any:
        rng = random.Random(length)
        ids = [rng.randrange(args.vocab) for _ in range(length)]
        return torch.tensor([ids], dtype=torch.long, device=device)

    warm = prompt_of(args.lengths[0])
    cached(warm, min(4, args.new_tokens))
    recompute(warm, min(4, args.new_tokens))
    rows = []
    for length in args.lengths:
        prompt = prompt_of(length)
        fast_tokens, fast_s = cached(prompt, args.new_tokens)
        slow_tokens, slow_s = recompute(prompt, args.new_tokens)
        rows.append(
            {
                "context": length,
                "cached_tokens_per_s": args.new_tokens / fast_s,
                "recompute_tokens_per_s": args.new_tokens / slow_s,
                "speedup": slow_s / fast_s,
                "same_tokens": fast_tokens == slow_tokens,
            }
        )
    return {"new_tokens": args.new_tokens, "rows": rows}


def batching_figures(model: Any, args: argparse.Namespace, clock: Callable[[], float]) -> dict:
    """The workload through one engine (continuous) and through one engine per batch
    of --max-num-seqs requests (static), at the same KV memory."""
    from inference.engine import Engine
    from inference.scheduler import Request

    rng = random.Random(0)
    requests = []
    for i in range(args.requests):
        n_prompt = rng.randint(max(1, args.max_prompt // 4), args.max_prompt)
        prompt = [rng.randrange(args.vocab) for _ in range(n_prompt)]
        requests.append(Request(f"r{i}", prompt, rng.randint(1, args.max_output)))

    def engine() -> Any:
        return Engine(model, args.num_blocks, args.block_size, args.max_num_seqs)

    def run(batches: list[list[Any]]) -> dict[str, Any]:
        outputs: dict[str, list[int]] = {}
        seconds = 0.0
        totals = dict.fromkeys(("model_steps", "steps", "preemptions", "peak_blocks"), 0)
        for batch in batches:
            e = engine()  # built outside the clock: both modes allocate the same cache
            start = clock()
            outputs.update(e.run(batch))
            seconds += clock() - start
            for key in ("model_steps", "steps", "preemptions"):
                totals[key] += e.stats[key]
            totals["peak_blocks"] = max(totals["peak_blocks"], e.stats["peak_blocks"])
        generated = sum(len(tokens) for tokens in outputs.values())
        return {
            "tokens_per_s": generated / seconds,
            "seconds": seconds,
            "generated_tokens": generated,
            **totals,
            "outputs": outputs,
        }

    warm = [Request(r.id, r.prompt, min(2, r.max_new_tokens)) for r in requests]
    engine().run(warm[: args.max_num_seqs])
    continuous = run([requests])
    size = args.max_num_seqs
    static = run([requests[i : i + size] for i in range(0, len(requests), size)])
    same = continuous.pop("outputs") == static.pop("outputs")
    return {
        "requests": args.requests,
        "max_num_seqs": args.max_num_seqs,
        "num_blocks": args.num_blocks,
        "block_size": args.block_size,
        "continuous": continuous,
        "static": static,
        "throughput_ratio": continuous["tokens_per_s"] / static["tokens_per_s"],
        "model_steps_ratio": continuous["model_steps"] / static["model_steps"],
        "same_tokens": same,
    }


def draft_and_target(args: argparse.Namespace, config: Any, dtype: Any, device: Any) -> tuple:
    """(target, draft): the seeded GPT with its later layers' residual branches scaled
    by --tail-scale, and its first --draft-layers layers with its embeddings and head."""
    import dataclasses

    import torch
    from inference.model import GPT

    target = GPT(config, dtype=dtype, seed=0)
    with torch.no_grad():
        for block in target.blocks[args.draft_layers :]:
            for linear in (block.attn.proj, block.mlp[2]):
                linear.weight.mul_(args.tail_scale)
                linear.bias.mul_(args.tail_scale)
    draft = GPT(dataclasses.replace(config, n_layer=args.draft_layers), dtype=dtype, seed=0)
    kept = {
        name: value
        for name, value in target.state_dict().items()
        if not name.startswith("blocks.") or int(name.split(".")[1]) < args.draft_layers
    }
    draft.load_state_dict(kept)  # strict: every draft parameter comes from the target
    return target.to(device), draft.to(device)


def speculative_figures(
    args: argparse.Namespace, config: Any, dtype: Any, device: Any, clock: Callable[[], float]
) -> dict:
    """Plain greedy decoding by the target against `speculative_generate`."""
    import torch
    from inference.model import make_prompts
    from inference.speculative import speculative_generate

    target_model, draft_model = draft_and_target(args, config, dtype, device)

    def on_device(model: Any) -> Callable[[Any], Any]:
        """The reference builds ids on the CPU and samples with a CPU generator."""

        def call(ids: Any) -> Any:
            return model(ids.to(device)).to("cpu")

        return call

    target, draft = on_device(target_model), on_device(draft_model)

    def greedy(prompt: list[int], n: int) -> list[int]:
        tokens: list[int] = []
        for _ in range(n):
            logits = target(torch.tensor([prompt + tokens], dtype=torch.long))
            tokens.append(int(logits[0, -1].argmax()))
        return tokens

    prompts = make_prompts(args.spec_prompts, args.vocab, args.spec_prompt, args.spec_prompt, 2)
    greedy(prompts[0], min(4, args.spec_tokens))
    speculative_generate(target, draft, prompts[0], min(4, args.spec_tokens), args.k, 0.0, 0)
    start = clock()
    plain = [greedy(prompt, args.spec_tokens) for prompt in prompts]
    plain_s = clock() - start
    total = args.spec_prompts * args.spec_tokens
    runs: dict[str, Any] = {}
    greedy_match = None
    for temperature in TEMPERATURES:
        counts = dict.fromkeys(("proposed", "accepted", "target_calls"), 0)
        outputs = []
        start = clock()
        for seed, prompt in enumerate(prompts):
            tokens, stats = speculative_generate(
                target, draft, prompt, args.spec_tokens, args.k, temperature, seed
            )
            outputs.append(tokens)
            for key in counts:
                counts[key] += stats[key]
        seconds = clock() - start
        if temperature == 0:
            greedy_match = outputs == plain
        runs[f"{temperature:.1f}"] = {
            **counts,
            "acceptance_rate": counts["accepted"] / counts["proposed"] if counts["proposed"] else 0,
            "tokens_per_target_call": total / counts["target_calls"],
            "tokens_per_s": total / seconds,
            "seconds": seconds,
            "speedup": plain_s / seconds,
        }
    return {
        "draft": f"the target's first {args.draft_layers} layer(s), same embeddings and head",
        "tail_scale": args.tail_scale,
        "k": args.k,
        "prompts": args.spec_prompts,
        "new_tokens": args.spec_tokens,
        "greedy_tokens_per_s": total / plain_s,
        "greedy_seconds": plain_s,
        "runs": runs,
        "greedy_match": greedy_match,
    }


def yes(flag: bool | None) -> str:
    return "yes" if flag else "NO"


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Runs every section, prints the figures and returns them (the --json document)."""
    import torch
    from inference.model import GPT, GPTConfig

    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    clock = sync_clock(device)
    positions = max(
        max(args.lengths) + args.new_tokens + 1,
        args.max_prompt + args.max_output,
        args.spec_prompt + args.spec_tokens,
    )
    config = GPTConfig(args.vocab, args.n_embd, args.n_head, args.n_layer, positions)
    model = GPT(config, dtype=dtype, seed=0).to(device)
    threads = torch.get_num_threads()
    print(
        f"hw6 reference on {args.device} ({args.dtype}, {threads} intra-op thread"
        f"{'s' * (threads != 1)}): GPT(vocab {args.vocab}, n_embd {args.n_embd}, "
        f"{args.n_head} heads, {args.n_layer} layers, n_positions {positions}), seed 0",
        flush=True,
    )

    kv = kv_cache_figures(model, args, clock)
    print(
        f"KV cache: batch 1, greedy, {kv['new_tokens']} timed decode steps after a prompt of "
        f"L tokens (prefill untimed)",
        flush=True,
    )
    print("  context L   cached tok/s   recompute tok/s   speed-up   same tokens", flush=True)
    for row in kv["rows"]:
        print(
            f"  {row['context']:9d}   {row['cached_tokens_per_s']:12.1f}   "
            f"{row['recompute_tokens_per_s']:15.1f}   {row['speedup']:7.2f}x   "
            f"{yes(row['same_tokens'])}",
            flush=True,
        )

    batching = batching_figures(model, args, clock)
    print(
        f"Batching: {args.requests} requests at step 0 (prompts "
        f"{max(1, args.max_prompt // 4)}-{args.max_prompt} tokens, outputs 1-{args.max_output}), "
        f"max_num_seqs {args.max_num_seqs}, {args.num_blocks} blocks of {args.block_size} slots "
        f"({args.num_blocks * args.block_size} tokens of KV memory) in both modes",
        flush=True,
    )
    print("  mode              tok/s    seconds   model steps   preemptions   peak blocks")
    for mode in ("continuous", "static"):
        run = batching[mode]
        print(
            f"  {mode:<10} {run['tokens_per_s']:12.1f} {run['seconds']:10.3f} "
            f"{run['model_steps']:13d} {run['preemptions']:13d} {run['peak_blocks']:13d}",
            flush=True,
        )
    print(
        f"  continuous / static: throughput {batching['throughput_ratio']:.2f}x, model steps "
        f"{batching['model_steps_ratio']:.2f}x; same tokens per request: "
        f"{yes(batching['same_tokens'])}",
        flush=True,
    )

    spec = speculative_figures(args, config, dtype, device, clock)
    first, last = args.draft_layers, args.n_layer - 1
    later = f"layer {first}'s" if first == last else f"layers {first}-{last}'s"
    print(
        f"Speculative: target = the model with {later} residual branches scaled by "
        f"{args.tail_scale:g}; draft = {spec['draft']}; k {args.k}; "
        f"{args.spec_prompts} prompts of {args.spec_prompt} tokens, {args.spec_tokens} new tokens "
        f"each; both models recompute the sequence per call",
        flush=True,
    )
    print(f"  plain greedy (target alone): {spec['greedy_tokens_per_s']:.1f} tok/s", flush=True)
    print("  temperature   acceptance   tokens/target call      tok/s   speed-up vs greedy")
    for name, run in spec["runs"].items():
        print(
            f"  {name:>11}   {run['acceptance_rate']:10.3f}   {run['tokens_per_target_call']:18.2f}"
            f"   {run['tokens_per_s']:8.1f}   {run['speedup']:17.2f}x",
            flush=True,
        )
    print(f"  temperature 0 output == plain greedy: {yes(spec['greedy_match'])}", flush=True)
    return {
        "device": args.device,
        "dtype": args.dtype,
        "threads": threads,
        "sizes": {
            "vocab": args.vocab,
            "n_embd": args.n_embd,
            "n_head": args.n_head,
            "n_layer": args.n_layer,
            "n_positions": positions,
        },
        "kv_cache": kv,
        "batching": batching,
        "speculative": spec,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    for key, value in PRESETS["cpu"].items():
        kind = str if isinstance(value, str) else int
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--num-blocks", type=int, default=None)
    parser.add_argument("--draft-layers", type=int, default=1)
    parser.add_argument("--tail-scale", type=float, default=0.05)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    args = parser.parse_args()

    for key, value in PRESETS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.lengths = [int(n) for n in args.lengths.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--lengths takes comma-separated ints, not {args.lengths!r}")
    positive = ["vocab", "n_embd", "n_head", "n_layer", "new_tokens", "requests"]
    positive += ["max_num_seqs", "max_prompt", "max_output", "spec_prompts", "spec_prompt"]
    positive += ["spec_tokens", "block_size", "draft_layers"]
    for key in positive:
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be positive, not {getattr(args, key)}")
    if not args.lengths or min(args.lengths) < 1:
        parser.error("--lengths needs at least one positive length")
    if args.n_embd % args.n_head:
        parser.error(f"n_embd {args.n_embd} is not a multiple of n_head {args.n_head}")
    if args.draft_layers >= args.n_layer:
        parser.error(f"--draft-layers {args.draft_layers} must be below --n-layer {args.n_layer}")
    if args.k < 0 or args.threads < 0 or not 0 < args.tail_scale:
        parser.error("--k and --threads must be >= 0, --tail-scale > 0")
    longest = -(-(args.max_prompt + args.max_output - 1) // args.block_size)
    if args.num_blocks is None:
        args.num_blocks = args.max_num_seqs * longest
    elif args.num_blocks < longest:
        parser.error(f"--num-blocks {args.num_blocks}: the longest request needs {longest}")

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: --device cuda: PyTorch sees no CUDA GPU here; hint: --device cpu "
            "runs every section on the CPU",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="llmsys-bench-") as tmp:
        course = Course.load(REPO)
        starter.copy_tree(starter.render_tree(course, course.get("hw6"), stub_tags=()), Path(tmp))
        sys.path.insert(0, tmp)
        figures = report(args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
