"""Small 2-D classification datasets for training the networks of task hw1.6.

Each generator returns a `Graph`: `N` points in the unit square and a label
(0 or 1) per point. The same `seed` always gives the same points.

- `simple`: left half is 1 (x0 < 0.5), right half 0;
- `diag`: 1 below the diagonal x0 + x1 < 0.5;
- `split`: 1 in the two outer strips (x0 < 0.2 or x0 > 0.8);
- `xor`: 1 where exactly one coordinate is above 0.5;
- `circle`: 1 outside the circle of radius^2 0.1 around the centre;
- `spiral`: two interleaved spirals (the hard one).

This file is given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DATASETS", "Graph", "circle", "diag", "simple", "spiral", "split", "xor"]


@dataclass
class Graph:
    """A labelled point set: `X[i]` is a point `[x0, x1]`, `y[i]` its label (0 or 1)."""

    N: int
    X: list[list[float]]
    y: list[int]


def _points(n: int, rng: random.Random) -> list[list[float]]:
    return [[rng.random(), rng.random()] for _ in range(n)]


def simple(n: int, seed: int = 0) -> Graph:
    X = _points(n, random.Random(seed))
    return Graph(n, X, [1 if x0 < 0.5 else 0 for x0, _ in X])


def diag(n: int, seed: int = 0) -> Graph:
    X = _points(n, random.Random(seed))
    return Graph(n, X, [1 if x0 + x1 < 0.5 else 0 for x0, x1 in X])


def split(n: int, seed: int = 0) -> Graph:
    X = _points(n, random.Random(seed))
    return Graph(n, X, [1 if x0 < 0.2 or x0 > 0.8 else 0 for x0, _ in X])


def xor(n: int, seed: int = 0) -> Graph:
    X = _points(n, random.Random(seed))
    return Graph(n, X, [1 if (x0 < 0.5) != (x1 < 0.5) else 0 for x0, x1 in X])


def circle(n: int, seed: int = 0) -> Graph:
    X = _points(n, random.Random(seed))
    return Graph(n, X, [1 if (x0 - 0.5) ** 2 + (x1 - 0.5) ** 2 > 0.1 else 0 for x0, x1 in X])


def spiral(n: int, seed: int = 0) -> Graph:
    """Two spirals of n // 2 points each, turned half a turn from each other."""
    rng = random.Random(seed)
    half = n // 2
    X: list[list[float]] = []
    y: list[int] = []
    for label, turn in ((0, 0.0), (1, math.pi)):
        for i in range(half):
            t = 3.0 * math.pi * (i + 1) / half
            r = 0.45 * (i + 1) / half
            jitter = 0.01 * (rng.random() - 0.5)
            X.append([0.5 + r * math.cos(t + turn) + jitter, 0.5 + r * math.sin(t + turn) + jitter])
            y.append(label)
    return Graph(len(X), X, y)


#: The generators by name.
DATASETS: dict[str, Callable[..., Graph]] = {
    "simple": simple,
    "diag": diag,
    "split": split,
    "xor": xor,
    "circle": circle,
    "spiral": spiral,
}
