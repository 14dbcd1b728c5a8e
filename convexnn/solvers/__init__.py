"""Solvers: the ``solve`` entry point over a registry of solvers (``protocol``: ``Solver``,
``register_solver``), R-FISTA for C-GReLU, the active-set polish and the augmented Lagrangian
for C-ReLU, certified duality gaps, and the numpy / torch array backends.

See ``docs/solvers.md`` for the algorithms and their references, and ``docs/DESIGN.md``
("Solvers") for adding a solver.
"""

from convexnn.solvers.backend import Backend, get_backend, torch_available
from convexnn.solvers.dispatch import estimate_interior_seconds, solve
from convexnn.solvers.gap import lam_max
from convexnn.solvers.protocol import (
    Decline,
    Solver,
    get_solver,
    register_solver,
    registered_solvers,
    unregister_solver,
)

__all__ = [
    "solve",
    "estimate_interior_seconds",
    "Solver",
    "Decline",
    "register_solver",
    "unregister_solver",
    "registered_solvers",
    "get_solver",
    "lam_max",
    "Backend",
    "get_backend",
    "torch_available",
]
