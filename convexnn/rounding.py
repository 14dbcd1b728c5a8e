r"""Floating-point rounding constants of the certified bounds (IEEE float64, round to nearest).

:math:`u = 2^{-53}` is the unit roundoff and :math:`\gamma_k = ku/(1 - ku)` bounds the relative
error of a sum or product of :math:`k` float64 operations (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., SIAM 2002, §3.1): every certificate that accounts for rounding
inflates its bounds by such a :math:`\gamma_k`.
"""

from __future__ import annotations

__all__ = ["UNIT_ROUNDOFF", "dot_error_bound", "gamma"]

#: Unit roundoff of float64, :math:`2^{-53}`.
UNIT_ROUNDOFF = 2.0 ** -53


def gamma(k: int) -> float:
    r""":math:`\gamma_k = ku / (1 - ku)` with :math:`u = 2^{-53}` (valid for :math:`ku < 1`)."""
    ku = k * UNIT_ROUNDOFF
    return ku / (1.0 - ku)


def dot_error_bound(abs_dot, d: int):
    r"""Bound on :math:`|\mathrm{fl}(a^\top g) - a^\top g|` for :math:`a, g \in \mathbb R^d`, given
    ``abs_dot`` :math:`= |a|^\top|g|` (a scalar or an array of them):
    :math:`\gamma_{d+2}|a|^\top|g| + 2^{-1000}` (the last term covers underflow). A computed product
    larger than this in modulus has the sign of the exact one."""
    return gamma(d + 2) * abs_dot + 2.0 ** -1000
