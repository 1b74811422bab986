"""Paged KV memory (task hw6.3): `BlockManager`, a pool of fixed-size blocks of
KV-cache slots shared between sequences through reference counts.

    bm = BlockManager(num_blocks=8, block_size=4)
    bm.allocate("a", [5, 1, 7, 2, 9])   # [0, 1]: block 0 holds positions 0-3, block 1 position 4
    bm.append_token("a", 3)             # None: block 1 still has room (position 5)
    bm.fork("a", "b")                   # "b" shares blocks 0 and 1 (reference count 2 each)
    bm.append_token("b", 4)             # (1, 2): copy block 1 to block 2, "b" writes block 2
    bm.allocate("c", [5, 1, 7, 2, 8])   # [0, 3]: block 0 is a prefix hit, now held 3 times
    bm.free("a")                        # block 1 is "a"'s alone now: back to the free pool

The KV cache is one big array of `num_blocks * block_size` slots (see
`paged_attention`); the manager never sees keys or values, only which slots
each sequence owns. A sequence's *block table* lists its blocks in order: its
token at position p lives in slot `table[p // block_size] * block_size +
p % block_size`. A sequence of n tokens holds exactly ceil(n / block_size)
blocks, so it wastes less than one block.

Reference counts. A block's count is the number of block tables that hold it;
a block whose count drops to 0 returns to the free pool. Two sequences may hold
the same block only when that block's slots hold the same keys and values for
both, which means: the same tokens at the same positions after the same prefix.

Prefix caching. A FULL block is identified by its prefix hash,
`block_hash(previous block's hash, its tokens)` (None before the first block),
which chains over every earlier token: two full blocks with equal hashes hold
the same keys and values (the keys of a token depend on every token before it).
`allocate` looks up the prompt's full blocks in order and shares each one
found, stopping at the first miss. A block is registered under its hash when
it becomes full: at `allocate` (every full block of the prompt) or when
`append_token` fills it. A freed block keeps its hash: a later prompt with the
same prefix can still reuse it, until the block is taken for new contents.

Free pool order: least recently freed first. The pool starts as blocks
0, 1, ..., num_blocks - 1 in that order; a block whose count drops to 0 goes to
the back (`free` releases a table's blocks last block first, so the tail of a
cached prefix is evicted before its head); a new block is taken from the front,
and then forgets its old hash. So blocks never used go first, and cached
contents survive as long as possible. A prefix hit on a free block takes that
block out of the pool (wherever it is).

Copy-on-write. A block held by several sequences is read-only. When
`append_token` must write into a last block that is shared (count > 1), it
first gives the writer a private copy: a new block replaces the shared one in
the writer's table (the shared block's count drops by 1), and the call returns
`(src, dst)` so that the caller copies the slots of block `src` into `dst`
before writing.

Clean refusal. An operation that needs more free blocks than there are raises
`NoFreeBlocks` and leaves everything exactly as before the call (tables, counts,
the pool and its order, the cached hashes): check, then change.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

__all__ = ["BlockManager", "NoFreeBlocks", "block_hash"]


class NoFreeBlocks(RuntimeError):
    """An operation needs a free block and none is left (the state is unchanged)."""


def block_hash(previous: int | None, tokens: Sequence[int]) -> int:
    """The prefix hash of a full block holding `tokens`, after a block whose hash
    is `previous` (None for a sequence's first block)."""
    return hash((previous, tuple(int(t) for t in tokens)))


class BlockManager:
    """Blocks of KV-cache slots for sequences named by hashable ids (see the module
    docstring for the rules).

    Attributes:
        num_blocks: blocks in the pool, numbered 0 .. num_blocks - 1.
        block_size: slots (tokens) per block.

    Unknown sequence ids raise KeyError; allocating or forking to an id already
    in use raises ValueError.
    """

    def __init__(self, num_blocks: int, block_size: int) -> None:
        for name, value in (("num_blocks", num_blocks), ("block_size", block_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    @property
    def num_free_blocks(self) -> int:
        """Blocks in the free pool (count 0), cached contents or not."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def ref_count(self, block: int) -> int:
        """How many block tables hold `block` (IndexError outside 0 .. num_blocks - 1)."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def block_table(self, seq_id: Hashable) -> list[int]:
        """A copy of the sequence's block table."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def seq_len(self, seq_id: Hashable) -> int:
        """How many tokens the sequence holds slots for."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def num_cached_tokens(self, seq_id: Hashable) -> int:
        """How many leading tokens of the sequence `allocate` found in the prefix
        cache (a multiple of block_size): their slots already hold their keys and
        values. A forked sequence reports its parent's number."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def can_allocate(self, n_tokens: int) -> bool:
        """Whether `allocate` of any n_tokens tokens is sure to succeed now:
        ceil(n_tokens / block_size) free blocks, prefix hits not counted."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def allocate(self, seq_id: Hashable, tokens: Sequence[int]) -> list[int]:
        """Give a new sequence holding `tokens` (at least one) its block table, and
        return a copy of it.

        The leading full blocks of `tokens` found in the prefix cache are shared
        (count + 1; a hit on a free block takes it out of the pool); the rest are
        new blocks from the front of the pool, and each new FULL block is
        registered under its hash. NoFreeBlocks (nothing changed) when the pool
        cannot supply every block this needs.

        Plan: compute the chained hashes of the full blocks, collect the hits
        up to the first miss, check that the pool covers the new blocks and the
        revived free hits, then take them and record the sequence.
        """
        if seq_id in self._tables:
            raise ValueError(f"sequence {seq_id!r} already has blocks")
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("a sequence needs at least one token")
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def append_token(self, seq_id: Hashable, token: int) -> tuple[int, int] | None:
        """Give the sequence a slot for one more token, `token`.

        When the last block is full, a new block from the pool becomes the last
        one. When the last block has room but is shared (count > 1), it is
        copied first (copy-on-write): returns `(src, dst)`, the shared block and
        the writer's new private block, whose slots the caller copies. Returns
        None otherwise. A block this call fills is registered under its hash.
        NoFreeBlocks (nothing changed) when a new block is needed and none is free.
        """
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def fork(self, parent_id: Hashable, child_id: Hashable) -> None:
        """A new sequence `child_id` with the parent's tokens, sharing every one of
        the parent's blocks (each count + 1). Never needs a free block."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def free(self, seq_id: Hashable) -> None:
        """Forget the sequence: each of its blocks' count - 1, last block first;
        a block at 0 goes to the back of the free pool, keeping its hash."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def _take_free_block(self) -> int:
        """A helper (keep it or not): the block at the front of the pool, taken
        for new contents: now held once, and no longer cached under its old hash."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")

    def _register(self, block: int, h: int) -> None:
        """A helper (keep it or not): record that the full `block` holds the
        prefix whose hash is `h`."""
        raise NotImplementedError("hw6.3: Paged KV memory: the block manager")
