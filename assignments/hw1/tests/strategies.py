"""Shared Hypothesis strategies, settings profiles and helpers for the hw1 tests.

Test modules in this folder import it as a top-level module:

    from strategies import small_floats, assert_close

This works because the folder has no `__init__.py`: pytest's default import mode
("prepend") puts the folder of each test file on `sys.path`.

Importing this module also registers two Hypothesis settings profiles and loads
one of them:

- "ci": fixed seed (`derandomize=True`), 50 examples per test, and a reproduction
  blob printed for every failure. Loaded when the environment variable `CI` is
  set to a non-empty value.
- "dev": random examples, 100 per test. Loaded otherwise.

Neither profile has a deadline: a slow first call (imports, JIT compilation)
must not fail a test.
"""

import math
import os

from hypothesis import Phase, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------------------
# Settings profiles
# ---------------------------------------------------------------------------

# dev: your machine, fresh random examples each run. ci: the same examples on every
# run. grade: the course's grader; the same examples for everyone, and a failing
# example is reported as found, without spending time shrinking it.
settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile("ci", deadline=None, max_examples=50, derandomize=True, print_blob=True)
settings.register_profile(
    "grade",
    deadline=None,
    max_examples=50,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
)
if os.environ.get("LLMSYS_GRADING"):
    settings.load_profile("grade")
else:
    settings.load_profile("ci" if os.environ.get("CI") else "dev")

# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------

#: Floats in [-100, 100]; no nan or infinity (subnormals and -0.0 are included).
small_floats = st.floats(min_value=-100.0, max_value=100.0, allow_nan=False, allow_infinity=False)

#: Floats in [0.1, 100]: safe inputs for `log` and `inv`, and for finite differences.
small_positive_floats = st.floats(
    min_value=0.1, max_value=100.0, allow_nan=False, allow_infinity=False
)

#: Floats in [-100, -0.1] or [0.1, 100]: at least 0.1 away from zero.
small_nonzero_floats = st.one_of(small_positive_floats, small_positive_floats.map(lambda x: -x))

#: Integers in [-100, 100]. Sums and products of a few of them are exact in floating point.
small_ints = st.integers(min_value=-100, max_value=100)

#: Seeds of NumPy random generators (`np.random.default_rng(seed)`): any 32-bit unsigned integer.
seeds = st.integers(min_value=0, max_value=2**32 - 1)


# ---------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------


def float_lists(
    elements: st.SearchStrategy[float] = small_floats, min_size: int = 0, max_size: int = 20
) -> st.SearchStrategy[list[float]]:
    """Lists of floats drawn from `elements` (by default `small_floats`)."""
    return st.lists(elements, min_size=min_size, max_size=max_size)


@st.composite
def paired_lists(
    draw: st.DrawFn,
    elements: st.SearchStrategy[float] = small_floats,
    min_size: int = 0,
    max_size: int = 20,
) -> tuple[list[float], list[float]]:
    """Two lists of floats of the same (random) length."""
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    first = draw(st.lists(elements, min_size=n, max_size=n))
    second = draw(st.lists(elements, min_size=n, max_size=n))
    return first, second


# ---------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------


def assert_close(
    actual: float, expected: float, *, rel_tol: float = 1e-6, abs_tol: float = 1e-6
) -> None:
    """Assert `math.isclose(actual, expected, rel_tol=rel_tol, abs_tol=abs_tol)`.

    The defaults (1e-6 relative, 1e-6 absolute) suit results of a few float
    operations on inputs of size at most 100; tests that need a looser
    tolerance pass it explicitly. The message shows both values and the gap.
    """
    assert math.isclose(actual, expected, rel_tol=rel_tol, abs_tol=abs_tol), (
        f"expected {expected!r}, got {actual!r} "
        f"(difference {abs(actual - expected):.3g}; rel_tol={rel_tol:g}, abs_tol={abs_tol:g})"
    )
