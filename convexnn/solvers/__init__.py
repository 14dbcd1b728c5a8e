"""First-order solvers: ``solve`` dispatch, R-FISTA for C-GReLU, augmented Lagrangian
for C-ReLU, certified duality gaps, and the numpy / torch array backends.

See ``docs/solvers.md`` for the algorithms and their references.
"""

from convexnn.solvers.backend import Backend, get_backend, torch_available
from convexnn.solvers.dispatch import FIRST_ORDER_KINDS, estimate_interior_seconds, solve
from convexnn.solvers.gap import lam_max

__all__ = [
    "solve",
    "estimate_interior_seconds",
    "FIRST_ORDER_KINDS",
    "lam_max",
    "Backend",
    "get_backend",
    "torch_available",
]
