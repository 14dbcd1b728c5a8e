r"""Floating-point rounding constants of the certified bounds (IEEE float64, round to nearest).

:math:`u = 2^{-53}` is the unit roundoff and :math:`\gamma_k = ku/(1 - ku)` bounds the relative
error of a sum or product of :math:`k` float64 operations (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., SIAM 2002, §3.1): every certificate that accounts for rounding
inflates its bounds by such a :math:`\gamma_k`.
"""

from __future__ import annotations

__all__ = ["UNIT_ROUNDOFF", "dot_error_bound", "gamma", "positive_definite_exact"]

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


def positive_definite_exact(M) -> bool:
    r"""Whether the symmetric float64 matrix ``M`` is positive definite, decided in exact arithmetic.

    Every float is a dyadic rational, so :math:`2^k M` is an integer matrix for a common power of
    two; fraction-free (Bareiss) elimination computes its leading principal minors exactly in
    Python integers, and :math:`M \succ 0` iff they are all positive (Sylvester's criterion). No
    rounding enters the decision. Cost :math:`O(m^3)` integer operations for order :math:`m`
    (fine for the small matrices of the certificates, :math:`m \lesssim 100`).
    """
    import numpy as np

    A = np.asarray(M, dtype=np.float64)
    m = A.shape[0]
    if A.ndim != 2 or A.shape[1] != m or not np.all(np.isfinite(A)):
        return False
    ratios = [[float(a).as_integer_ratio() for a in row] for row in A.tolist()]
    den = max(q for row in ratios for _, q in row)
    B = [[p * (den // q) for p, q in row] for row in ratios]
    prev = 1
    for k in range(m):
        piv = B[k][k]
        if piv <= 0:
            return False
        for i in range(k + 1, m):
            Bi, Bk = B[i], B[k]
            bik = Bi[k]
            for j in range(k + 1, m):
                Bi[j] = (Bi[j] * piv - bik * Bk[j]) // prev
        prev = piv
    return True
