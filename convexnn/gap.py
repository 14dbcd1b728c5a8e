r"""The relative duality gap: one definition for every solver, gap and certificate.

For a primal value :math:`P` (an objective at a feasible point) and a lower bound :math:`D` on
the optimum (a dual value),

.. math::

    \operatorname{rel\_gap} = \frac{P - D}{\max(|P|, \tau)}, \qquad \tau = 10^{-300},

the suboptimality of the primal point relative to its own objective: :math:`\operatorname{rel\_gap}
\le \varepsilon` proves :math:`P \le P^\star (1 + \varepsilon) + \ldots` (for :math:`P \ge 0`,
:math:`P - P^\star \le \varepsilon P`). A negative value means the bound met the objective up to
rounding. The tiny floor :math:`\tau` only avoids a division by zero (an all-zero objective).
"""

from __future__ import annotations

__all__ = ["REL_GAP_FLOOR", "relative_gap"]

#: Smallest denominator of :func:`relative_gap`.
REL_GAP_FLOOR = 1e-300


def relative_gap(primal: float, dual: float) -> float:
    r""":math:`(P - D)/\max(|P|, 10^{-300})` for the primal value ``primal`` and the lower bound ``dual``."""
    return (float(primal) - float(dual)) / max(abs(float(primal)), REL_GAP_FLOOR)
