"""A continuous-batching inference engine on a simulated clock: `Engine`.

    engine = Engine(GPT(GPTConfig()), num_blocks=32, block_size=4, max_num_seqs=4)
    outputs = engine.run([Request("a", [3, 1, 4], 5), Request("b", [1, 5], 3, arrival=2)])
    outputs["a"]                    # 5 tokens, greedy: the same as decoding "a" alone
    engine.stats                    # steps, preemptions, peak blocks in use, ...

One step of the clock is one call of `Scheduler.step`, then one pass of the
model: a batched decode of every running request (one token each, through
`paged_attention`), then the prefill of each admitted request. Every layer's
keys and values live in a paged cache of `num_blocks` blocks of `block_size`
slots, which the scheduler's `BlockManager` hands out. Decoding is greedy
(argmax), so a request's output does not depend on what else runs, on
preemptions or on the prefix cache: it equals greedy decoding of the request
alone, recomputing everything each token.

This file is given.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .block_manager import BlockManager
from .model import GPT, attend, causal_mask
from .paged_attention import paged_attention, write_kv
from .scheduler import Request, Scheduler

__all__ = ["Engine"]


class Engine:
    """Runs requests through `model` with a paged KV cache and a `Scheduler`.

    Attributes:
        model: the GPT (not trained: inference only).
        block_manager: the pool of `num_blocks` blocks of `block_size` slots.
        scheduler: FCFS continuous batching over `block_manager`, `max_num_seqs` at once.
        k_cache, v_cache: (n_layer, num_blocks, block_size, n_head, head_dim).
        device: where the model's parameters are; the caches and every tensor
            the engine builds live there too.
        stats: filled by `run` (see there).
    """

    def __init__(self, model: GPT, num_blocks: int, block_size: int, max_num_seqs: int) -> None:
        self.model = model
        self.block_manager = BlockManager(num_blocks, block_size)
        self.scheduler = Scheduler(self.block_manager, max_num_seqs)
        config = model.config
        shape = (
            config.n_layer,
            num_blocks,
            block_size,
            config.n_head,
            config.n_embd // config.n_head,
        )
        dtype, self.device = model.lm_head.weight.dtype, model.lm_head.weight.device
        self.k_cache = torch.zeros(shape, dtype=dtype, device=self.device)
        self.v_cache = torch.zeros(shape, dtype=dtype, device=self.device)
        self.stats: dict[str, int] = {}

    def run(self, requests: list[Request]) -> dict:
        """Generate every request's `max_new_tokens` tokens; returns {id: tokens}.
        Call it once per engine (request ids stay taken).

        The requests are copied (their `output` is ignored) and queued in order
        of arrival (ties in the given order). `stats` then holds: `steps` (clock
        steps until every request finished and was retired), `model_steps`
        (steps that ran the model), `preemptions`, `peak_blocks` (most blocks in
        use after a step's scheduling), `max_running` (most requests running at
        once), `prefill_tokens` (tokens whose keys the prefills computed; the
        prefix cache saves the rest) and `free_blocks_at_end`.
        """
        limit = self.model.config.n_positions
        queued = sorted(
            (
                Request(r.id, [int(t) for t in r.prompt], r.max_new_tokens, r.arrival)
                for r in requests
            ),
            key=lambda r: r.arrival,
        )
        for request in queued:
            if len(request.prompt) + request.max_new_tokens - 1 > limit:
                raise ValueError(f"request {request.id!r} runs past n_positions {limit}")
            self.scheduler.add(request)
        bm = self.block_manager
        stats = dict.fromkeys(
            ("steps", "model_steps", "preemptions", "peak_blocks", "max_running", "prefill_tokens"),
            0,
        )
        # Each step the oldest running request gains a token and is never preempted, or
        # the clock waits for an arrival: a correct scheduler needs far fewer steps.
        last_arrival = max((r.arrival for r in queued), default=0)
        budget = 2 * (last_arrival + sum(r.max_new_tokens for r in queued)) + 10
        now = 0
        while self.scheduler.has_unfinished():
            if now > budget:
                raise RuntimeError(f"no progress: requests still unfinished after {now} steps")
            out = self.scheduler.step(now)
            stats["preemptions"] += len(out.preempted)
            stats["peak_blocks"] = max(stats["peak_blocks"], bm.num_blocks - bm.num_free_blocks)
            stats["max_running"] = max(stats["max_running"], len(self.scheduler.running))
            for src, dst in out.copies:
                self.k_cache[:, dst] = self.k_cache[:, src]
                self.v_cache[:, dst] = self.v_cache[:, src]
            # Decodes first: a block that a decode fills this step may be a prefix hit
            # of a request admitted this step, whose prefill must then read it written.
            if out.decodes:
                for request, token in zip(out.decodes, self._decode(out.decodes), strict=True):
                    request.output.append(token)
            for request in out.prefills:
                request.output.append(self._prefill(request, stats))
            if out.decodes or out.prefills:
                stats["model_steps"] += 1
            now += 1
        stats["steps"] = now
        stats["free_blocks_at_end"] = bm.num_free_blocks
        self.stats = stats
        return {r.id: list(r.output) for r in queued}

    def _slots(self, seq_id: object, positions: range) -> Tensor:
        """The flat cache slots of the sequence's tokens at `positions`."""
        table = self.block_manager.block_table(seq_id)
        size = self.block_manager.block_size
        return torch.tensor(
            [table[p // size] * size + p % size for p in positions],
            dtype=torch.long,
            device=self.device,
        )

    def _prefill(self, request: Request, stats: dict[str, int]) -> int:
        """Write the keys and values of the request's tokens that the prefix cache
        did not supply, and return the token that follows them (greedy)."""
        model, bm = self.model, self.block_manager
        tokens = request.tokens
        n = len(tokens)
        cached = bm.num_cached_tokens(request.id)
        # With the whole sequence cached, recompute the last token anyway: its logits
        # give the next token. Its keys are already in the (shared) cache: not rewritten.
        start = min(cached, n - 1)
        stats["prefill_tokens"] += n - start
        first = max(cached, start)  # the first position whose keys this prefill writes
        new_slots = self._slots(request.id, range(first, n))
        device = self.device
        table = torch.tensor(bm.block_table(request.id), dtype=torch.long, device=device)
        ids = torch.tensor([tokens[start:]], device=device)
        x = model.wte(ids) + model.wpe(torch.arange(start, n, device=device))
        mask = causal_mask(n - start, n, device)
        for layer, block in enumerate(model.blocks):
            attn = block.attn
            q, k, v = (attn.split_heads(t) for t in attn.qkv(block.ln_1(x)).split(x.shape[-1], -1))
            # (1, H, T, D) rows from `first` on, as (T, H, D)
            new_k, new_v = (t[0, :, first - start :].transpose(0, 1) for t in (k, v))
            write_kv(self.k_cache[layer], self.v_cache[layer], new_slots, new_k, new_v)
            if start:
                # The cached prefix, gathered in order through the block table.
                heads = self.k_cache.shape[3:]
                past_k = self.k_cache[layer][table].reshape(-1, *heads)[:start]
                past_v = self.v_cache[layer][table].reshape(-1, *heads)[:start]
                k = torch.cat([past_k.transpose(0, 1)[None], k], dim=2)
                v = torch.cat([past_v.transpose(0, 1)[None], v], dim=2)
            x = x + attn.proj(attn.merge_heads(attend(q, k, v, mask)))
            x = x + block.mlp(block.ln_2(x))
        return int(model.lm_head(model.ln_f(x[0, -1])).argmax())

    def _decode(self, requests: list[Request]) -> list[int]:
        """Feed each request's last output token (one batch) and return the next
        tokens (greedy)."""
        model, bm = self.model, self.block_manager
        lengths = [bm.seq_len(r.id) for r in requests]
        tables = [bm.block_table(r.id) for r in requests]
        width = max(len(t) for t in tables)
        padded = [t + [-1] * (width - len(t)) for t in tables]
        block_tables = torch.tensor(padded, dtype=torch.long, device=self.device)
        context_lens = torch.tensor(lengths, dtype=torch.long, device=self.device)
        slots = torch.cat(
            [self._slots(r.id, range(n - 1, n)) for r, n in zip(requests, lengths, strict=True)]
        )
        last = torch.tensor([r.output[-1] for r in requests], device=self.device)
        x = model.wte(last) + model.wpe(context_lens - 1)
        for layer, block in enumerate(model.blocks):
            attn = block.attn
            h = block.ln_1(x)[:, None]  # (B, 1, C): one token per sequence
            q, k, v = (attn.split_heads(t)[:, :, 0] for t in attn.qkv(h).split(x.shape[-1], -1))
            write_kv(self.k_cache[layer], self.v_cache[layer], slots, k, v)
            y = paged_attention(
                q, self.k_cache[layer], self.v_cache[layer], block_tables, context_lens
            )
            x = x + attn.proj(attn.merge_heads(y[:, :, None])[:, 0])
            x = x + block.mlp(block.ln_2(x))
        return model.lm_head(model.ln_f(x)).argmax(dim=-1).tolist()
