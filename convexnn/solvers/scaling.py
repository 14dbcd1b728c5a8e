r"""Exact power-of-two rescaling of a two-layer program before a solver sees it.

The programs of this package read :math:`\min_u f(\sum_i D_i X_a u_i;\, y) + \lambda\sum_i R(u_i)`
with :math:`R` a norm. Two rescalings map it onto itself:

* **data:** :math:`X_a \to X_a/a`, :math:`u \to a u`, :math:`\lambda \to \lambda/a` (every column
  of :math:`X_a`, the bias column included; the masks :math:`D_i` and the cone constraints
  :math:`(2D_i - I)X_a u_i \ge 0` do not change);
* **targets** (losses with :math:`\ell(s\hat y, s y) = s^2\ell(\hat y, y)`, the squared loss, or
  a loss whose parameters rescale with the targets, the Huber loss with :math:`\delta \to \delta/b`:
  :meth:`~convexnn.formulations.losses.Loss.with_target_scale`):
  :math:`y \to y/b`, :math:`u \to u/b`, :math:`\lambda \to \lambda/b`, objective :math:`\to`
  objective :math:`/b^2`.

Together: :math:`u' = (a/b)\,u`, :math:`\lambda' = \lambda/(ab)`, :math:`F = b^2 F'`; relative
gaps and relative cone violations are unchanged; dual points :math:`v = -\nabla f`, cone
multipliers and absolute cone violations scale by :math:`b`. With
:math:`a` and :math:`b` powers of two every rescaled number is exact in floating point (barring
overflow and underflow), so a point and its certificate mean the same in both scalings. The
solvers' absolute constants (regularizations, floors, starting points, step tests) are chosen for
data and targets of unit size; raw units (prices of :math:`10^6`, targets of :math:`10^{-6}`)
would otherwise put them out of range (the Huber split form of the block interior point: targets of
:math:`10^3\delta` cost it two to three times the iterations of the same program with targets of unit
size). :func:`program_scaling` picks :math:`a` as the power of two nearest the largest column RMS of
:math:`X_a` and :math:`b` (losses that rescale with the targets) nearest the RMS of :math:`y`; the column *ratios* are part of the program (a group norm is not invariant under
column scaling) and stay as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convexnn.solvers.gap import GapResult

__all__ = ["ProgramScaling", "program_scaling"]


def _power_of_two(x: float) -> float:
    """The power of two nearest ``x`` on a log scale (1 for zero or a non-finite ``x``)."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    return float(2.0 ** round(math.log2(x)))


@dataclass(frozen=True)
class ProgramScaling:
    r"""The rescaling of the module docstring: ``data`` = :math:`a`, ``targets`` = :math:`b`
    (powers of two)."""

    data: float = 1.0
    targets: float = 1.0

    @property
    def trivial(self) -> bool:
        """Both factors are 1: the program is solved as given."""
        return self.data == 1.0 and self.targets == 1.0

    def Xa(self, Xa: np.ndarray) -> np.ndarray:
        r""":math:`X_a / a`."""
        return Xa if self.data == 1.0 else Xa * (1.0 / self.data)

    def y(self, y: np.ndarray) -> np.ndarray:
        r""":math:`y / b`."""
        return y if self.targets == 1.0 else y * (1.0 / self.targets)

    def lam(self, lam: float) -> float:
        r""":math:`\lambda' = \lambda / (ab)`."""
        return lam / (self.data * self.targets)

    def lam_back(self, lam: float) -> float:
        r""":math:`\lambda = ab\,\lambda'` (e.g. :math:`\lambda_{\max}` of the rescaled program)."""
        return lam * self.data * self.targets

    def weights_in(self, u: Any) -> Any:
        r"""Weights of the given program in the rescaled one: :math:`u' = (a/b)\,u`."""
        return u if self.trivial else u * (self.data / self.targets)

    def weights_out(self, u: Any) -> Any:
        r"""Weights of the rescaled program in the given one: :math:`u = (b/a)\,u'`."""
        return u if self.trivial else u * (self.targets / self.data)

    def objective_out(self, value: float) -> float:
        r""":math:`F = b^2 F'`."""
        return value * self.targets ** 2

    def loss(self, loss: Any) -> Any:
        r"""The loss of the rescaled program (:meth:`~convexnn.formulations.losses.Loss.with_target_scale`
        with :math:`b`; the loss itself when :math:`b = 1`)."""
        return loss if self.targets == 1.0 else loss.with_target_scale(self.targets)

    def in_target_units(self, g: Any) -> Any:
        r"""A quantity in the units of the targets (dual points :math:`v`, cone multipliers
        :math:`\gamma`, absolute cone violations) in the rescaled program: :math:`g / b`."""
        return g if self.targets == 1.0 else g * (1.0 / self.targets)

    def out_target_units(self, g: Any) -> Any:
        r"""The same back in the given program: :math:`b\,g`."""
        return g if self.targets == 1.0 else g * self.targets

    def gap_out(self, g: GapResult) -> GapResult:
        r"""A certificate of the rescaled program in the given one: primal, dual and gap times
        :math:`b^2`, the dual point times :math:`b`, the dual-constraint values
        :math:`\|A_i^\top\theta\|` times :math:`ab`; the relative gap and the scaling stay."""
        if self.trivial:
            return g
        return replace(g, primal=self.objective_out(g.primal), dual=self.objective_out(g.dual),
                       gap=self.objective_out(g.gap),
                       group_norms=None if g.group_norms is None else g.group_norms * (self.data * self.targets),
                       dual_point=None if g.dual_point is None else self.out_target_units(g.dual_point))

    def history_out(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Solver history entries with their ``objective`` in the given program's units."""
        if self.targets == 1.0:
            return history
        return [{**h, "objective": self.objective_out(h["objective"])} if "objective" in h else h
                for h in history]


def program_scaling(Xa: np.ndarray, y: np.ndarray, loss: Any) -> ProgramScaling:
    r"""The :class:`ProgramScaling` of the data ``Xa`` (``(n, d')``) and targets ``y`` (``(n,)`` or
    ``(n, c)``) for ``loss``: :math:`a` the power of two nearest :math:`\max_j \|X_{a,:j}\|/\sqrt n`,
    :math:`b` the one nearest :math:`\|y\|/\sqrt{\text{size}}` when the loss rescales with the targets
    (``loss.with_target_scale``; else 1)."""
    Xa = np.asarray(Xa, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = max(Xa.shape[0], 1)
    a = _power_of_two(float(np.sqrt(np.max(np.einsum("ij,ij->j", Xa, Xa)) / n))) if Xa.size else 1.0
    b = 1.0
    rescales = getattr(loss, "with_target_scale", None)
    if rescales is not None and rescales(1.0) is not None and y.size:
        b = _power_of_two(float(np.sqrt(np.mean(y * y))))
    return ProgramScaling(a, b)
