"""miniTorch: a small automatic-differentiation library built piece by piece in the course.

Assignment 1 builds it bottom up: scalar operators (`operators`), scalar
autodiff (`autodiff`, `scalar`, `scalar_functions`), tensors (`tensor_data`,
`tensor_ops`, `tensor_functions`, `tensor`), fast compiled tensor operations
(`fast_ops`) and a trained network (`module`, `optim`, `nn`, `datasets`).
The public names of each module are listed in its `__all__` and re-exported
here, so `minitorch.mul` and `minitorch.operators.mul` are the same function.
"""

from .autodiff import *  # noqa: F403, RUF100
from .datasets import *  # noqa: F403, RUF100
from .fast_ops import *  # noqa: F403, RUF100
from .module import *  # noqa: F403, RUF100
from .nn import *  # noqa: F403, RUF100
from .operators import *  # noqa: F403, RUF100
from .optim import *  # noqa: F403, RUF100
from .scalar import *  # noqa: F403, RUF100
from .scalar_functions import *  # noqa: F403, RUF100
from .tensor import *  # noqa: F403, RUF100
from .tensor_data import *  # noqa: F403, RUF100
from .tensor_functions import *  # noqa: F403, RUF100
from .tensor_ops import *  # noqa: F403, RUF100
