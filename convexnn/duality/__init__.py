"""Duality: KKT conditions, dual programs and gaps, certificates of global optimality, optimal sets, pruning.

Sign conventions (see ``docs/duality.md``): the dual variable ``v`` is ``-grad loss(yhat)`` at the
optimum (the residual ``y - yhat`` for the squared loss); the multipliers ``rho`` are CVXPY's
nonnegative dual values of ``multiply(S, Xa @ V) >= 0``, entering the Lagrangian as
``- <rho_i, (2 D_i - I) Xa v_i>``.
"""

from convexnn.duality.certify import Certificate, certify
from convexnn.duality.bab import DualNormBound, relu_dual_norm_bab
from convexnn.duality.global_opt import GlobalOptimum, solve_global
from convexnn.duality.sdp import SDPBound, SDPLowerBound, sdp_dual_norm_bound, sdp_lower_bound
from convexnn.duality.dual import DualityGap, DualProblem, dual_problem, duality_gap
from convexnn.duality.kkt import KKT, kkt
from convexnn.duality.optimal_set import OptimalSet, optimal_set
from convexnn.duality.pruning import prune, prune_to

__all__ = [
    "KKT",
    "kkt",
    "DualProblem",
    "dual_problem",
    "DualityGap",
    "duality_gap",
    "Certificate",
    "certify",
    "DualNormBound",
    "relu_dual_norm_bab",
    "GlobalOptimum",
    "solve_global",
    "SDPBound",
    "SDPLowerBound",
    "sdp_dual_norm_bound",
    "sdp_lower_bound",
    "OptimalSet",
    "optimal_set",
    "prune",
    "prune_to",
]
