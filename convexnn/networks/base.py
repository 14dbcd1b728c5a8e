"""Pieces shared by the network classes.

:class:`ScalarObjective` is the training objective of a scalar-output network written once:
:math:`\\ell(f(X), y) + \\lambda R(\\theta)` with the network's own :meth:`predict` and
:meth:`regularizer` (:math:`R` is half the sum of the squared regularized parameters).
"""

from __future__ import annotations

from typing import Any

from convexnn.data import check_lam, check_y
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss

__all__ = ["ScalarObjective"]


class ScalarObjective:
    """Mixin for scalar-output networks that define ``predict(X)`` and ``regularizer()``."""

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r"""Training objective :math:`\ell(f(X), y) + \lambda R(\theta)` (``R = regularizer()``)."""
        lo = get_loss(loss)
        pred = self.predict(X)  # type: ignore[attr-defined]
        yy = check_y(y, pred.shape[0], loss=lo.name)
        if yy.ndim != 1:
            raise InputError(f"{type(self).__name__} has a scalar output; y must have shape (n,), got {yy.shape}.")
        return lo.value(pred, yy) + check_lam(lam, allow_zero=True) * self.regularizer()  # type: ignore[attr-defined]
