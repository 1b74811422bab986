"""miniTorch: a small automatic-differentiation library built piece by piece in the course.

Each assignment adds modules to this package. Assignment 1 starts with
`minitorch.operators`, the scalar functions (and their derivatives) that every
later layer is built from; they are re-exported here, so `minitorch.mul` and
`minitorch.operators.mul` are the same function.
"""

# The public names of each module are listed in its `__all__`.
from .autodiff import *  # noqa: F403, RUF100
from .operators import *  # noqa: F403, RUF100
from .scalar import *  # noqa: F403, RUF100
from .scalar_functions import *  # noqa: F403, RUF100
