"""Public tests of task hw6.3: paged KV memory (inference/block_manager.py).

Everything here is exact (whole numbers). A probe runs a list of operations on
a fresh `BlockManager` (or makes them up with a seeded random driver) and
records, after each one, its result or error and the manager's visible state:
every block table, `seq_len`, `num_cached_tokens`, `num_free_blocks` and every
`ref_count`. `check_trace` replays that record against a model of what must
hold, which knows each sequence's tokens and what every slot holds (a slot
written for position p of a sequence holds the keys of that sequence's first
p + 1 tokens, which is what the real KV cache would hold):

- each sequence of n tokens holds exactly ceil(n / block_size) blocks, none twice;
- each sequence reads back, through its table, its own keys at every position
  (so a block is shared only by sequences with the same tokens there, a prefix
  hit holds the right prefix, and nobody writes into a block someone else reads);
- every reference count equals the number of tables holding the block, and
  used + free == num_blocks; all blocks are free once every sequence is freed;
- new blocks come from the free pool; after `append_token` the writer's last
  block is private (copy-on-write, returning (src, dst), when it was shared);
- `NoFreeBlocks` only when the pool really is short, and then nothing changed;
- `can_allocate(n)` is exactly ceil(n / block_size) <= num_free_blocks.

Directed cases check the documented behaviour: prefix hits share full blocks
(the hash chains over earlier blocks), freed blocks stay cached until reused,
forking shares every block, errors for unknown and duplicate ids.
"""

import pytest

pytestmark = pytest.mark.task("hw6.3")


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------


def probe_ops(num_blocks, block_size, ops, driver):
    """Run `ops` (a list of [name, *args]) on BlockManager(num_blocks, block_size),
    or, when `driver` is [seed, n_ops, vocab], make up n_ops random operations
    (then free every sequence left). Operations: ["allocate", id, tokens],
    ["append", id, token], ["fork", parent, child], ["free", id],
    ["can_allocate", n]. Returns the initial state and, per operation, the
    operation, its result, the error it raised (None, "NoFreeBlocks",
    "KeyError", "ValueError" or "IndexError") and the state after it."""
    import random

    from inference.block_manager import BlockManager, NoFreeBlocks

    bm = BlockManager(num_blocks, block_size)
    known = []  # every id mentioned so far

    def state():
        tables, lens, cached = {}, {}, {}
        for sid in known:
            try:
                tables[sid] = [int(b) for b in bm.block_table(sid)]
            except KeyError:
                tables[sid] = None
                continue
            lens[sid] = int(bm.seq_len(sid))
            cached[sid] = int(bm.num_cached_tokens(sid))
        refs = [int(bm.ref_count(b)) for b in range(num_blocks)]
        return {
            "tables": tables,
            "lens": lens,
            "cached": cached,
            "free": int(bm.num_free_blocks),
            "refs": refs,
        }

    def apply(op):
        name, args = op[0], op[1:]
        named = {"allocate": args[:1], "fork": args[:2]}.get(name, [])
        known.extend(sid for sid in named if sid not in known)
        try:
            if name == "allocate":
                result = [int(b) for b in bm.allocate(args[0], list(args[1]))]
            elif name == "append":
                got = bm.append_token(args[0], args[1])
                result = None if got is None else [int(got[0]), int(got[1])]
            elif name == "fork":
                result = bm.fork(args[0], args[1])
            elif name == "free":
                result = bm.free(args[0])
            elif name == "can_allocate":
                result = bool(bm.can_allocate(args[0]))
            else:
                raise AssertionError(f"unknown operation {name}")
            error = None
        except NoFreeBlocks:
            result, error = None, "NoFreeBlocks"
        except KeyError:
            result, error = None, "KeyError"
        except ValueError:
            result, error = None, "ValueError"
        except IndexError:
            result, error = None, "IndexError"
        return {"op": list(op), "result": result, "error": error, "state": state()}

    initial = state()
    steps = []
    if driver is None:
        for op in ops:
            steps.append(apply(op))
        return {"initial": initial, "steps": steps}

    seed, n_ops, vocab = driver
    rng = random.Random(seed)
    tokens = {}  # live id -> tokens, as this driver believes
    seen = []  # token lists of earlier sequences, to revisit their prefixes
    counter = 0

    def fresh(n):
        return [rng.randrange(vocab) for _ in range(n)]

    for _ in range(n_ops):
        live = sorted(tokens)
        r = rng.random()
        if not live or r < 0.3:
            counter += 1
            sid = f"s{counter}"
            if seen and rng.random() < 0.6:
                base = rng.choice(seen)
                prompt = base[: rng.randint(1, len(base))] + fresh(rng.randint(0, 2 * block_size))
            else:
                prompt = fresh(rng.randint(1, 3 * block_size + 1))
            step = apply(["allocate", sid, prompt])
            if step["error"] is None:
                tokens[sid] = list(prompt)
                seen.append(list(prompt))
        elif r < 0.65:
            sid = rng.choice(live)
            token = rng.randrange(vocab)
            step = apply(["append", sid, token])
            if step["error"] is None:
                tokens[sid].append(token)
        elif r < 0.75:
            counter += 1
            parent, child = rng.choice(live), f"s{counter}"
            step = apply(["fork", parent, child])
            if step["error"] is None:
                tokens[child] = list(tokens[parent])
        elif r < 0.8:
            step = apply(["can_allocate", rng.randint(0, 3 * block_size)])
        else:
            sid = rng.choice(live)
            step = apply(["free", sid])
            if step["error"] is None:
                seen.append(tokens.pop(sid))
        steps.append(step)
    for sid in sorted(tokens):
        steps.append(apply(["free", sid]))
    return {"initial": initial, "steps": steps}


# ---------------------------------------------------------------------------
# The model of what must hold
# ---------------------------------------------------------------------------


def blocks_for(n, block_size):
    return -(-n // block_size)


def check_trace(trace, num_blocks, block_size, what):
    """Replay a trace of `probe_ops` against the model of the module docstring.
    Returns the model's live sequences at the end ({id: tokens})."""
    seqs = {}  # live id -> tokens
    content = {}  # block -> {offset: the prefix whose keys the slot holds}
    prev = trace["initial"]
    assert prev["free"] == num_blocks, f"{what}: a new manager must have every block free"
    assert prev["refs"] == [0] * num_blocks, f"{what}: a new manager must hold no block"
    for i, step in enumerate(trace["steps"]):
        op, error, result, now = step["op"], step["error"], step["result"], step["state"]
        where = f"{what}, operation {i} {op}"
        name = op[0]
        expected = expected_error(op, seqs)
        if expected is not None:
            assert error == expected, f"{where}: must raise {expected}, got {error}"
            assert same(now, prev), f"{where}: a refused operation must change nothing"
            continue
        if error == "NoFreeBlocks":
            assert same(now, prev), f"{where}: NoFreeBlocks must leave the state exactly as before"
            if name == "allocate":
                assert op[1] not in seqs, f"{where}: NoFreeBlocks for an id in use"
                need = blocks_for(len(op[2]), block_size)
                assert prev["free"] < need, (
                    f"{where}: NoFreeBlocks with {prev['free']} free blocks, "
                    f"enough for {len(op[2])} tokens"
                )
            elif name == "append":
                n, last = len(seqs[op[1]]), prev["tables"][op[1]][-1]
                needs_block = n % block_size == 0 or prev["refs"][last] > 1
                assert prev["free"] == 0 and needs_block, f"{where}: NoFreeBlocks although " + (
                    "blocks are free" if prev["free"] else "no block was needed"
                )
            else:
                raise AssertionError(f"{where}: only allocate and append may run out of blocks")
            continue
        assert error is None, f"{where}: raised {error}"
        if name == "allocate":
            sid, tokens = op[1], list(op[2])
            table, cached = now["tables"][sid], now["cached"][sid]
            assert result == table, f"{where}: allocate must return the block table"
            seqs[sid] = tokens
            assert cached % block_size == 0 and 0 <= cached <= len(tokens), (
                f"{where}: num_cached_tokens {cached} must be a multiple of the block "
                f"size and at most the {len(tokens)} tokens"
            )
            first_new = cached // block_size
            assert len(table) >= first_new
            for b in table[first_new:]:
                assert prev["refs"][b] == 0 and now["refs"][b] == 1, (
                    f"{where}: block {b} past the prefix hits must be a new block "
                    f"from the free pool (reference counts {prev['refs'][b]} -> "
                    f"{now['refs'][b]})"
                )
            for p in range(cached, len(tokens)):
                if p // block_size < len(table):
                    write(content, table, p, tokens, block_size)
        elif name == "append":
            sid, token = op[1], op[2]
            n, before, table = len(seqs[sid]), prev["tables"][sid], now["tables"][sid]
            if n % block_size == 0:
                assert result is None, f"{where}: a new block needs no copy, got {result}"
                assert len(table) == len(before) + 1 and table[:-1] == before, (
                    f"{where}: a full last block must be followed by one new block "
                    f"(table {before} -> {table})"
                )
                assert prev["refs"][table[-1]] == 0, f"{where}: the new block was not free"
            elif prev["refs"][before[-1]] > 1:
                assert result is not None, (
                    f"{where}: the last block {before[-1]} is shared "
                    f"(count {prev['refs'][before[-1]]}): copy-on-write must return (src, dst)"
                )
                src, dst = result
                assert src == before[-1] and table == [*before[:-1], dst], (
                    f"{where}: copy-on-write must replace the shared last block {src} by "
                    f"the new block {dst} (table {before} -> {table})"
                )
                assert prev["refs"][dst] == 0, f"{where}: the copy {dst} was not a free block"
                content[dst] = dict(content.get(src, {}))
            else:
                assert result is None, f"{where}: a private last block needs no copy"
                assert table == before, f"{where}: the last block had room (table changed)"
            seqs[sid] = [*seqs[sid], token]
            assert now["refs"][table[-1]] == 1, (
                f"{where}: after append_token the writer's last block {table[-1]} must be "
                f"its own (count {now['refs'][table[-1]]})"
            )
            write(content, table, n, seqs[sid], block_size)
        elif name == "fork":
            parent, child = op[1], op[2]
            assert now["tables"][child] == now["tables"][parent] == prev["tables"][parent], (
                f"{where}: the child must share exactly the parent's blocks"
            )
            seqs[child] = list(seqs[parent])
        elif name == "free":
            del seqs[op[1]]
        elif name == "can_allocate":
            want = blocks_for(op[1], block_size) <= prev["free"]
            assert result == want, (
                f"{where}: can_allocate({op[1]}) with {prev['free']} free blocks "
                f"(block size {block_size}) must be {want}"
            )
        check_state(now, seqs, content, num_blocks, block_size, where)
        prev = now
    return seqs


def same(state, other):
    """Equal states (ids without a table, e.g. one just refused, do not count)."""

    def live(s):
        return {**s, "tables": {k: t for k, t in s["tables"].items() if t is not None}}

    return live(state) == live(other)


def expected_error(op, seqs):
    """The error an operation must raise given the live sequences, or None."""
    name = op[0]
    if name == "allocate":
        return "ValueError" if op[1] in seqs or not op[2] else None
    if name in ("append", "free"):
        return None if op[1] in seqs else "KeyError"
    if name == "fork":
        if op[1] not in seqs:
            return "KeyError"
        return "ValueError" if op[2] in seqs else None
    return None


def write(content, table, p, tokens, block_size):
    """The caller writes the keys of position p of `tokens` into its slot."""
    content.setdefault(table[p // block_size], {})[p % block_size] = tuple(tokens[: p + 1])


def check_state(state, seqs, content, num_blocks, block_size, where):
    tables = state["tables"]
    live = {sid for sid, table in tables.items() if table is not None}
    assert live == set(seqs), (
        f"{where}: sequences with a block table {sorted(live)}, expected {sorted(seqs)}"
    )
    holders = [0] * num_blocks
    for sid, tokens in seqs.items():
        table = tables[sid]
        assert state["lens"][sid] == len(tokens), (
            f"{where}: seq_len({sid!r}) is {state['lens'][sid]}, expected {len(tokens)}"
        )
        assert len(table) == blocks_for(len(tokens), block_size), (
            f"{where}: {sid!r} holds {len(table)} blocks for {len(tokens)} tokens "
            f"(block size {block_size}): it must hold exactly ceil(n / block_size)"
        )
        assert len(set(table)) == len(table), f"{where}: {sid!r}'s table {table} repeats a block"
        for b in table:
            assert 0 <= b < num_blocks, f"{where}: {sid!r}'s table {table} names no block"
            holders[b] += 1
        for p in range(len(tokens)):
            b, offset = table[p // block_size], p % block_size
            if content.get(b, {}).get(offset) != tuple(tokens[: p + 1]):
                raise AssertionError(
                    f"{where}: {sid!r} reads position {p} from block {b}, slot {offset}, "
                    "which holds keys of another sequence or prefix (a block shared or "
                    "reused wrongly, or written while shared)"
                )
    assert state["refs"] == holders, (
        f"{where}: reference counts {state['refs']}, but the tables hold the blocks {holders} times"
    )
    used = sum(1 for h in holders if h)
    assert state["free"] == num_blocks - used, (
        f"{where}: {state['free']} free blocks, {used} in use, {num_blocks} in all"
    )


def run(student, num_blocks, block_size, ops, what):
    trace = student.run(probe_ops, num_blocks, block_size, ops, None)
    check_trace(trace, num_blocks, block_size, what)
    return trace["steps"]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_allocate_and_append(student):
    ops = [
        ["can_allocate", 5],
        ["allocate", "a", [5, 1, 7, 2, 9]],
        ["append", "a", 3],
        ["append", "a", 3],
        ["append", "a", 0],
        ["append", "a", 4],
        ["can_allocate", 21],  # 6 blocks, 5 free
        ["can_allocate", 20],
        ["allocate", "b", [1]],
        ["free", "a"],
        ["free", "b"],
    ]
    steps = run(student, 8, 4, ops, "allocate and append")
    a = steps[1]["state"]
    assert len(a["tables"]["a"]) == 2 and a["free"] == 6
    assert [s["result"] for s in steps[2:6]] == [None] * 4
    assert len(steps[5]["state"]["tables"]["a"]) == 3, "the 9th token needs a third block"
    assert [steps[0]["result"], steps[6]["result"], steps[7]["result"]] == [True, False, True]
    assert steps[-1]["state"]["free"] == 8


def test_fork_and_copy_on_write(student):
    ops = [
        ["allocate", "a", [5, 1, 7, 2, 9, 9]],
        ["fork", "a", "b"],
        ["append", "b", 4],
        ["append", "a", 6],
        ["append", "b", 1],
        ["fork", "b", "c"],
        ["append", "b", 2],
        ["append", "c", 3],
    ]
    steps = run(student, 8, 4, ops, "fork and copy-on-write")
    a_table = steps[0]["state"]["tables"]["a"]
    forked = steps[1]["state"]
    assert forked["tables"]["b"] == a_table and forked["free"] == 6
    assert [forked["refs"][b] for b in a_table] == [2, 2]
    src, dst = steps[2]["result"]
    assert src == a_table[1] and steps[2]["state"]["tables"]["a"] == a_table
    assert steps[2]["state"]["tables"]["b"] == [a_table[0], dst]
    assert steps[3]["result"] is None, "after b's copy, a's last block is a's alone"
    # b's block is full after 8 tokens: the fork shares full blocks only, no copy needed
    assert steps[6]["result"] is None and steps[7]["result"] is None
    assert steps[7]["state"]["refs"][a_table[0]] == 3


def test_free_decrements_reference_counts(student):
    ops = [
        ["allocate", "a", [3, 3, 3, 3, 3]],
        ["fork", "a", "b"],
        ["fork", "a", "c"],
        ["free", "a"],
        ["free", "c"],
        ["append", "b", 1],
        ["free", "b"],
    ]
    steps = run(student, 4, 4, ops, "free")
    table = steps[0]["state"]["tables"]["a"]
    assert [steps[3]["state"]["refs"][b] for b in table] == [2, 2]
    assert [steps[4]["state"]["refs"][b] for b in table] == [1, 1]
    assert steps[5]["result"] is None, "b holds its blocks alone after a and c are freed"
    assert steps[-1]["state"]["free"] == 4


def test_prefix_hits_share_full_blocks(student):
    a = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    ops = [
        ["allocate", "a", a],
        ["allocate", "b", [*a[:8], 11]],  # 2 full blocks in common
        ["allocate", "c", [*a[:6], 0, 0]],  # 1 full block in common
        ["allocate", "d", a[:8]],  # exactly 2 full blocks: nothing new
        ["allocate", "e", [*a[:3], 0, 5, 6, 7, 8]],  # first block differs
    ]
    steps = run(student, 16, 4, ops, "prefix hits")
    final = steps[-1]["state"]
    ta = final["tables"]["a"]
    assert final["tables"]["b"][:2] == ta[:2] and final["cached"]["b"] == 8
    assert final["tables"]["c"][:1] == ta[:1] and final["tables"]["c"][1] != ta[1]
    assert final["cached"]["c"] == 4
    assert final["tables"]["d"] == ta[:2] and final["cached"]["d"] == 8
    assert steps[3]["state"]["free"] == steps[2]["state"]["free"], "d needed no new block"
    assert not set(final["tables"]["e"]) & set(ta) and final["cached"]["e"] == 0
    assert [final["refs"][b] for b in ta] == [4, 3, 1]


def test_prefix_hash_chains_over_earlier_blocks(student):
    ops = [
        ["allocate", "a", [1, 2, 3, 4, 5, 6, 7, 8, 9]],
        # its first block has the tokens of a's second block, after another prefix
        ["allocate", "b", [5, 6, 7, 8, 9]],
        ["allocate", "c", [7, 7, 7, 7, 7, 7, 7, 7, 1]],
        # the same tokens twice: the second block is c's second block, not its first
        ["allocate", "d", [7, 7, 7, 7, 7, 7, 7, 7, 2]],
    ]
    final = run(student, 16, 4, ops, "chained prefix hash")[-1]["state"]
    assert not set(final["tables"]["b"]) & set(final["tables"]["a"])
    assert final["cached"]["b"] == 0
    assert final["tables"]["d"][:2] == final["tables"]["c"][:2] and final["cached"]["d"] == 8


def test_freed_blocks_stay_cached(student):
    a = [4, 4, 1, 2, 6, 6, 3, 0, 5]
    ops = [
        ["allocate", "a", a],
        ["free", "a"],
        ["allocate", "x", [9, 9, 9]],  # never-used blocks go first
        ["allocate", "a2", [*a[:8], 7, 7]],
        ["free", "x"],
        ["free", "a2"],
    ]
    steps = run(student, 8, 4, ops, "freed blocks stay cached")
    old = steps[0]["state"]["tables"]["a"]
    again = steps[3]["state"]
    assert again["tables"]["a2"][:2] == old[:2] and again["cached"]["a2"] == 8
    assert steps[-1]["state"]["free"] == 8


def test_no_free_blocks_is_a_clean_refusal(student):
    ops = [
        ["allocate", "a", [1, 2, 3]],  # 2 of 4 blocks
        ["allocate", "b", [5, 6, 7, 8, 9]],  # needs 3: refused, nothing taken
        ["allocate", "c", [5, 6, 7, 8]],  # 2: fits
        ["append", "a", 4],  # room in a's last block
        ["append", "a", 5],  # needs a fifth block: refused
        ["fork", "c", "d"],
        ["append", "d", 1],  # needs a new block: refused
        ["free", "a"],
        ["allocate", "b", [5, 6, 7, 8, 9]],  # c's block is shared: 1 new block
        ["allocate", "e", [1, 2]],  # the last free block
        ["append", "b", 2],  # b's last block has room
        ["allocate", "f", [5, 6, 7, 8, 1]],  # a hit, but no block for the rest
    ]
    steps = run(student, 4, 2, ops, "clean refusal")
    errors = [s["error"] for s in steps]
    assert errors == [
        None,
        "NoFreeBlocks",
        None,
        None,
        "NoFreeBlocks",
        None,
        "NoFreeBlocks",
        None,
        None,
        None,
        None,
        "NoFreeBlocks",
    ]
    assert steps[1]["state"]["tables"]["b"] is None, "a refused allocate must not record b"


def test_errors_for_unknown_and_duplicate_ids(student):
    ops = [
        ["allocate", "a", [1, 2]],
        ["allocate", "a", [3]],
        ["allocate", "z", []],
        ["append", "nobody", 1],
        ["free", "nobody"],
        ["fork", "nobody", "b"],
        ["fork", "a", "a"],
        ["free", "a"],
        ["free", "a"],
    ]
    steps = run(student, 4, 2, ops, "errors")
    got = [s["error"] for s in steps]
    want = [None, "ValueError", "ValueError", "KeyError", "KeyError", "KeyError", "ValueError"]
    assert got == [*want, None, "KeyError"]


@pytest.mark.parametrize(
    ("num_blocks", "block_size", "vocab", "seed"),
    [(12, 4, 3, 0), (10, 2, 2, 1), (16, 3, 4, 2)],
)
def test_random_operations_keep_the_invariants(student, num_blocks, block_size, vocab, seed):
    trace = student.run(probe_ops, num_blocks, block_size, None, [seed, 250, vocab])
    check_trace(trace, num_blocks, block_size, f"random operations (seed {seed})")
    steps = trace["steps"]
    errors = [s["error"] for s in steps]
    # the driver must have met what it is meant to test (a property of the test itself)
    assert "NoFreeBlocks" in errors
    assert any(s["op"][0] == "append" and s["result"] is not None for s in steps), "no copy"
    assert any(max(s["state"]["cached"].values(), default=0) for s in steps), "no prefix hit"
    assert steps[-1]["state"]["refs"] == [0] * num_blocks
