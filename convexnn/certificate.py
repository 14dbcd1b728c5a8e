r"""The certificate of a trained network: one type, and the gap and verdict math written once.

Every model family certifies a network the same way (weak duality; Pilanci & Ergen, *Neural
Networks are Convex Regularizers*, ICML 2020): the network's objective :math:`P` (``primal``, a
float evaluation whose rounding error is at most ``primal_error``) is compared with a lower bound
:math:`D` on the global optimum (``lower_bound``, the dual value of a dual-feasible point). Then

.. math::

    P^{\text{exact}} - P^\star \;\le\; \text{gap} := \max\bigl(P - (D - e),\ 0\bigr), \qquad
    \text{rel\_gap} := \max\bigl(\operatorname{relative\_gap}(P,\ D - e),\ 0\bigr)
                     = \frac{\text{gap}}{\max(|P|, 10^{-300})},

with :math:`e` = ``primal_error`` and :func:`convexnn.gap.relative_gap` the one relative gap of the
package. ``rel_gap <= rtol`` proves global optimality up to ``rtol`` when the bound is a proof
(``rigorous``: valid over networks of every width, rounding errors counted).

The families (:func:`convexnn.certify`, :func:`convexnn.certify_bn`, :func:`convexnn.certify_conv`,
:func:`convexnn.three_layer_gap`) return subclasses of :class:`Certificate` that only add their
own fields (dual constraint values, improving neurons, dual points, ...); ``gap``, ``rel_gap``,
``is_optimal``, ``verdict`` and the report are the ones defined here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from convexnn.gap import REL_GAP_FLOOR, relative_gap

__all__ = ["Certificate", "accepts_derived_values"]


@dataclass(kw_only=True)
class Certificate:
    r"""A bound on the suboptimality of a trained network (weak duality); the base of every family's certificate.

    Attributes
    ----------
    primal : float
        The network's objective, evaluated in float64.
    lower_bound : float
        A lower bound on the global optimum of the training problem (the dual value of a
        dual-feasible point). When ``rigorous`` it is valid over networks of **every** width for
        the float64 data as given, rounding errors counted.
    lam : float
        The regularization strength of the training problem.
    rtol : float
        Relative gap accepted as a proof of optimality.
    exact : bool
        The bound used a complete pattern set (the family's arrangement proven complete). A
        rigorous bound is valid either way; ``bound_method`` says how it was obtained.
    primal_error : float
        A bound on the rounding error of ``primal`` (``0.0`` when it is not tracked, ``inf`` when it
        cannot be bounded: then nothing is claimed about optimality).
    rigorous : bool
        ``gap`` is a proof: ``lower_bound`` is valid over every width with rounding counted, and
        ``primal`` (within ``primal_error``) is the objective of the network certified. False when
        the bound holds only over the patterns used, or the candidate is not a network (a convex
        solution whose constraints hold to the solver's accuracy); ``note`` says why.
    method : str
        How the certificate was computed (family-specific, e.g. ``"enumerate"`` or ``"bab"``).
    bound_method : str
        How ``lower_bound`` was obtained (e.g. ``"complete pattern set"``, ``"pattern-free bound"``).
    improving_neuron : ndarray or None
        A first-layer weight whose addition to the network lowers its objective by more than the
        rounding errors: a refutation of optimality. ``None`` when none was found.
    note : str or None
        Why the certificate is not a proof, or what limits it.

    Derived (written once, here): ``gap``, ``rel_gap``, ``is_optimal``, ``verdict``, ``report()``.
    """

    #: What the certificate is about, in the first line of the report.
    family: ClassVar[str] = "network"

    primal: float
    lower_bound: float
    lam: float
    rtol: float = 1e-6
    exact: bool = False
    primal_error: float = 0.0
    rigorous: bool = True
    method: str = ""
    bound_method: str = ""
    improving_neuron: np.ndarray | None = None
    note: str | None = None

    # ------------------------------------------------------------------ the math, once
    @property
    def gap(self) -> float:
        r"""Upper bound of the suboptimality, :math:`\max(P - (D - e), 0)` with :math:`e` = ``primal_error``."""
        return max(float(self.primal) - (float(self.lower_bound) - float(self.primal_error)), 0.0)

    @property
    def rel_gap(self) -> float:
        r""":math:`\max(\operatorname{relative\_gap}(P, D - e), 0) = \text{gap} / \max(|P|, 10^{-300})`."""
        return max(relative_gap(self.primal, float(self.lower_bound) - float(self.primal_error)), 0.0)

    @property
    def is_optimal(self) -> bool:
        """``rigorous and rel_gap <= rtol``: a proof that the network is globally optimal up to ``rtol``."""
        return bool(self.rigorous and self.rel_gap <= self.rtol)

    @property
    def verdict(self) -> str:
        """``GLOBALLY OPTIMAL (certified)``, ``NOT OPTIMAL: ...`` (a refutation) or ``NOT CERTIFIED: <reason>``."""
        if self.is_optimal:
            how = "" if self.exact or not self.bound_method else f" by the {self.bound_method}"
            return "GLOBALLY OPTIMAL (certified)" + how
        if self.improving_neuron is not None:
            return "NOT OPTIMAL: an improving neuron exists"
        note = f" ({self.note})" if self.note else ""
        if not self.rigorous:
            return "NOT CERTIFIED: not a proof" + note
        if not math.isfinite(self.primal_error):
            return "NOT CERTIFIED: the rounding error of the objective cannot be bounded" + note
        return "NOT CERTIFIED: gap above tolerance" + note

    # ------------------------------------------------------------------ report
    def _details(self) -> list[str]:
        """Family-specific lines of the report, between the gap and the verdict."""
        return []

    def report(self) -> str:
        """A human-readable summary: objective, lower bound, gap, the family's details, verdict."""
        err = f"  (+- {self.primal_error:.2g})" if self.primal_error else ""
        lines = [
            f"Certificate of global optimality ({self.family})",
            f"  network objective (primal)   {self.primal:.10g}{err}",
            f"  lower bound on the optimum   {self.lower_bound:.10g}",
            f"  duality gap                  {self.gap:.4g}   (relative {self.rel_gap:.3g}, tolerance {self.rtol:g})",
            *self._details(),
            f"  verdict                      {self.verdict}",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


_DERIVED = ("gap", "rel_gap", "is_optimal")


def accepts_derived_values(cls: type[Certificate]) -> type[Certificate]:
    """Class decorator: the constructor also takes ``gap``, ``rel_gap``, ``is_optimal`` and checks them.

    The values are derived from the fields; given ones must agree with them (up to rounding of
    the last digits), otherwise ``ValueError`` names the mismatch, so a caller computing its own
    gap with another definition is caught instead of silently overridden.
    """
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Certificate, *args: Any, **kwargs: Any) -> None:
        given = {k: kwargs.pop(k) for k in _DERIVED if k in kwargs}
        init(self, *args, **kwargs)
        for k, v in given.items():
            mine = getattr(self, k)
            if k == "is_optimal":
                ok = bool(v) == mine
            else:
                # the sums of the two definitions may round differently in their last digits
                e = float(self.primal_error) if math.isfinite(self.primal_error) else 0.0
                tol = 8 * np.finfo(float).eps * max(abs(float(self.primal)), abs(float(self.lower_bound)), abs(e))
                if k == "rel_gap":
                    tol /= max(abs(float(self.primal)), REL_GAP_FLOOR)
                ok = float(v) == mine or abs(float(v) - mine) <= tol
            if not ok:
                raise ValueError(f"{cls.__name__}: {k}={v!r} disagrees with the value derived from the fields "
                                 f"({mine!r}); {k} is gap = max(primal - (lower_bound - primal_error), 0), "
                                 "rel_gap = gap / max(|primal|, 1e-300), is_optimal = rigorous and rel_gap <= rtol.")

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls
