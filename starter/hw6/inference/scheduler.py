"""Continuous batching (task hw6.4, with `paged_attention.py`): `Scheduler` decides,
step by step, which requests run, over a `BlockManager`'s blocks.

    scheduler = Scheduler(BlockManager(num_blocks=64, block_size=4), max_num_seqs=8)
    for request in requests:                 # in order of arrival
        scheduler.add(request)
    now = 0
    while scheduler.has_unfinished():
        out = scheduler.step(now)            # who is prefilled, who decodes, who was preempted
        ...                                  # the engine runs the model, appends to each output
        now += 1

A request's tokens are its prompt followed by its output so far. A running
request holds KV slots (in the block manager, under its id) for every token
but the last one it generated: each step feeds that token to the model, which
writes its keys and values and produces the next token. So a step needs, for
every running request, one more slot (`append_token` with its last output
token), and a new block whenever its last block is full.

Requests wait in FIFO order (first come, first served, none overtaking
another) and join the running batch as soon as they have arrived and their
blocks fit (admission by free blocks: `can_allocate`), up to `max_num_seqs`
running at once. They leave it as
soon as they have `max_new_tokens` tokens. When a running request needs a
block and none is free, the scheduler preempts the request admitted most
recently: it frees its blocks and puts it back at the FRONT of the waiting
queue; once readmitted it is prefilled again from its prompt and the tokens it
had generated (recomputation), and continues from there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from .block_manager import BlockManager, NoFreeBlocks

__all__ = ["Request", "Scheduler", "SchedulerOutput"]


@dataclass
class Request:
    """A generation request: `max_new_tokens` tokens after `prompt`, not before
    step `arrival`. The engine appends each generated token to `output`."""

    id: Hashable
    prompt: list[int]
    max_new_tokens: int
    arrival: int = 0
    output: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> list[int]:
        """The prompt followed by the output so far."""
        return [*self.prompt, *self.output]

    @property
    def finished(self) -> bool:
        """Whether `output` holds its `max_new_tokens` tokens."""
        return len(self.output) >= self.max_new_tokens


@dataclass
class SchedulerOutput:
    """What one step decided, each list in the order the scheduler handled it.

    Attributes:
        prefills: requests admitted this step (their blocks are allocated for all
            their tokens): the engine computes the keys and values of every
            token the prefix cache did not supply and generates one token.
        decodes: running requests given a slot for their last token: the engine
            feeds that token and generates one token.
        preempted: running requests preempted this step (blocks freed, back in
            the waiting queue).
        finished: requests retired this step (blocks freed): they were done.
        copies: (src, dst) block copies that copy-on-write asked for; the engine
            performs them before writing.
    """

    prefills: list[Request] = field(default_factory=list)
    decodes: list[Request] = field(default_factory=list)
    preempted: list[Request] = field(default_factory=list)
    finished: list[Request] = field(default_factory=list)
    copies: list[tuple[int, int]] = field(default_factory=list)


class Scheduler:
    """FCFS continuous batching with preemption by recomputation.

    Attributes:
        block_manager: the blocks; a running request holds them under its id.
        max_num_seqs: most requests running at once.
        waiting: deque of requests not running, the next to admit at the front.
        running: list of running requests, in order of admission (oldest first).
    """

    def __init__(self, block_manager: BlockManager, max_num_seqs: int) -> None:
        if isinstance(max_num_seqs, bool) or not isinstance(max_num_seqs, int) or max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be a positive int, not {max_num_seqs!r}")
        self.block_manager = block_manager
        self.max_num_seqs = max_num_seqs
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self._ids: set[Hashable] = set()
        self._last_arrival = 0

    def add(self, request: Request) -> None:
        """Queue `request` at the back. Requests come in order of arrival, with
        different ids, a prompt and at least one token to generate, and each
        must fit in the pool when alone (ValueError otherwise)."""
        if request.id in self._ids:
            raise ValueError(f"request id {request.id!r} is already in use")
        if not request.prompt or request.max_new_tokens < 1 or request.output:
            raise ValueError(
                f"request {request.id!r}: need a prompt, no output, max_new_tokens >= 1"
            )
        if request.arrival < self._last_arrival:
            raise ValueError(f"request {request.id!r} arrives before the one added before it")
        bm = self.block_manager
        # The last generated token is never fed back, so it never needs a slot.
        needs = -(-(len(request.prompt) + request.max_new_tokens - 1) // bm.block_size)
        if needs > bm.num_blocks:
            raise ValueError(
                f"request {request.id!r} needs {needs} blocks, the pool has {bm.num_blocks}"
            )
        self._ids.add(request.id)
        self._last_arrival = request.arrival
        self.waiting.append(request)

    def has_unfinished(self) -> bool:
        """Whether any request still waits or runs (finished ones are retired by `step`)."""
        return bool(self.waiting or self.running)

    def step(self, now: int) -> SchedulerOutput:
        """Decide step `now`, in this order:

        1. retire: every running request that is finished frees its blocks and
           leaves (`finished`);
        2. decode: each running request, oldest first, gets a slot for its last
           output token (`append_token`; any copy-on-write pair goes to
           `copies`). When no block is free, preempt the most recently admitted
           running request (possibly the one asking, when it is the newest
           left) and try again: the preempted request frees its blocks and goes
           to the front of the waiting queue (so requests preempted in one step
           keep their order) (`preempted`); the others get their slot (`decodes`);
        3. admit: from the front of the waiting queue, while the front request
           has arrived (arrival <= now), fewer than `max_num_seqs` run, and
           `can_allocate` its tokens (prompt + output so far): allocate them and
           append it to `running` (`prefills`). Stop at the first that cannot be
           admitted: no request overtakes another.

        Plan: three passes over the queues, in the order above; a request that
        decodes this step is never preempted later in the same step (the victims
        come from the newest end).
        """
        raise NotImplementedError("hw6.4: Paged attention and a continuous-batching scheduler")

    def _preempt(self, request: Request) -> None:
        """A helper (keep it or not): free the blocks of running `request` and put
        it at the front of the waiting queue, to be recomputed when readmitted."""
        raise NotImplementedError("hw6.4: Paged attention and a continuous-batching scheduler")
