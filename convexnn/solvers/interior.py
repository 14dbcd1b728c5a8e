r"""The interior-point solver: CVXPY with MOSEK (when licensed) or Clarabel, and its cost model."""

from __future__ import annotations

from typing import Any

from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.solvers.protocol import Solver

__all__ = ["InteriorPoint"]

#: Seconds per nonzero (:meth:`Formulation.nnz_estimate`: ``4 n P d'`` with cone constraints,
#: ``n P d'`` without, times the outputs) for CVXPY + Clarabel, fitted on this project's
#: measurements (diabetes, n=442, d'=11, P=100: C-ReLU in 18 s, C-GReLU in ~1 s); keyed by
#: :attr:`Formulation.cone_constraints`. Only used to choose a solver.
_IP_SECONDS_PER_NNZ = {True: 9.0e-6, False: 2.0e-6}
class InteriorPoint(Solver):
    """CVXPY with an interior-point solver (MOSEK when licensed, else Clarabel; ``solver=`` names
    another CVXPY solver): :meth:`Formulation.solve`. Supports every program that holds its CVXPY
    problem. ``estimate_seconds``: :data:`_IP_SECONDS_PER_NNZ` times :meth:`Formulation.nnz_estimate`."""

    name = "interior_point"
    family = "interior"
    label = "interior-point"

    def supports(self, formulation: Formulation) -> str | None:
        if getattr(formulation, "deferred", False):
            return (f"the CVXPY program of this {formulation.kind} formulation is too large to build "
                    f"(n={formulation.Xa.shape[0]}, {formulation.n_patterns} patterns); it is deferred and "
                    "solved from the data by the first-order solvers")
        if getattr(formulation, "problem", None) is None:
            return (f"this {formulation.kind} formulation was unpickled or loaded without its CVXPY problem; "
                    "build it again with its builder to solve it with an interior-point method")
        return None

    def estimate_seconds(self, formulation: Formulation) -> float:
        r"""Rough CVXPY + Clarabel time :math:`c\cdot\mathrm{nnz}`: ``nnz`` from
        :meth:`Formulation.nnz_estimate` (``4 n P d' c`` for C-ReLU: two masked products and two
        cone constraints; ``n P d' c`` for C-GReLU), :math:`c` from :data:`_IP_SECONDS_PER_NNZ`."""
        return _IP_SECONDS_PER_NNZ[bool(formulation.cone_constraints)] * float(formulation.nnz_estimate())

    def solve(self, formulation: Formulation, *, solver: str | None = None, verbose: bool = False,
              **options: Any) -> ConvexSolution:
        sol = formulation.solve(solver, verbose=verbose)
        sol.info.setdefault("method", "interior")
        return sol
