r"""Implicit linear operators of the two-layer convex programs.

With patterns :math:`D_i = \operatorname{diag}(m_i)` (``masks[:, i] = m_i``) and the design
matrix :math:`\tilde X` (``Xa``, shape ``(n, d')``), both C-GReLU and C-ReLU evaluate

.. math::

    \mathcal A(U) = \sum_{i=1}^P D_i \tilde X u_i, \qquad
    \mathcal A^\top(r) = \bigl(\tilde X^\top D_i r\bigr)_{i=1}^P ,

where :math:`U` stacks the :math:`u_i` as rows (shape ``(P, d')``). The matrix
:math:`[D_1 \tilde X, \dots, D_P \tilde X]` of shape ``n x dP`` is never formed. Writing
:math:`M = [m_1, \dots, m_P]` (shape ``(n, P)``),

.. math::

    \mathcal A(U) = \operatorname{rowsum}\bigl(\tilde X \odot (M U)\bigr), \qquad
    \mathcal A^\top(r) = M^\top \bigl(r \odot \tilde X\bigr),

so each application is one ``(n, P) x (P, d')`` matrix product plus :math:`O(nd')` work.
C-ReLU adds the cone maps :math:`\mathcal G(U) = S \odot (\tilde X U^\top)` with
:math:`S = 2M - 1` (so :math:`u_i \in \mathcal K_i \iff \mathcal G(U)_{:, i} \ge 0`) and its
adjoint :math:`\mathcal G^\top(R) = (S \odot R)^\top \tilde X`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.solvers.backend import Backend

__all__ = ["MaskedDesign"]


class MaskedDesign:
    """The operator :math:`U \\mapsto \\sum_i D_i \\tilde X u_i`, its adjoint and the cone maps.

    Parameters
    ----------
    Xa : array, shape (n, d')
        Design matrix (``[X, 1]`` with a bias).
    masks : bool array, shape (n, P)
    backend : Backend
    """

    def __init__(self, Xa: Any, masks: Any, backend: Backend) -> None:
        self.bk = backend
        self.Xa = backend.asarray(Xa)
        masks_np = np.asarray(masks, dtype=bool) if not hasattr(masks, "detach") else masks
        self.M = backend.asarray(masks_np)
        self.n, self.d = self.Xa.shape
        self.P = self.M.shape[1]
        self._S: Any = None

    def subset(self, idx: np.ndarray) -> "MaskedDesign":
        """The operator restricted to the patterns ``idx`` (a working set)."""
        return MaskedDesign(self.Xa, self.bk.take_columns(self.M, np.asarray(idx, dtype=np.int64)), self.bk)

    # ------------------------------------------------------------ the gated operator
    def fit(self, U: Any) -> Any:
        r""":math:`\sum_i D_i \tilde X u_i` for ``U`` of shape ``(P, d')``; returns shape ``(n,)``."""
        return self.bk.sum(self.Xa * (self.M @ U), axis=1)

    def adjoint(self, r: Any) -> Any:
        r""":math:`(\tilde X^\top D_i r)_i` for ``r`` of shape ``(n,)``; returns shape ``(P, d')``."""
        return self.M.T @ (r[:, None] * self.Xa)

    # ------------------------------------------------------------ the cone maps (C-ReLU)
    @property
    def S(self) -> Any:
        """Signs ``2 * masks - 1`` (computed once)."""
        if self._S is None:
            self._S = 2.0 * self.M - 1.0
        return self._S

    def cone(self, U: Any) -> Any:
        r""":math:`S \odot (\tilde X U^\top)`, shape ``(n, P)``; ``u_i`` is in its cone iff column ``i`` is ``>= 0``."""
        return self.S * (self.Xa @ U.T)

    def cone_adjoint(self, R: Any) -> Any:
        r""":math:`(S \odot R)^\top \tilde X`, shape ``(P, d')``."""
        return (self.S * R).T @ self.Xa

    # ------------------------------------------------------------ norms
    def norm_sq_estimate(self, iters: int = 15, seed: int = 0) -> float:
        r"""Estimate :math:`\|\mathcal A\|_2^2` by power iteration on :math:`\mathcal A^\top\mathcal A`.

        Used only for the first step size; the line search corrects it either way.
        """
        bk = self.bk
        if self.P == 0:
            return 0.0
        U = bk.randn((self.P, self.d), seed=seed)
        nrm = float(bk.sqrt(bk.vdot(U, U)))
        val = 0.0
        for _ in range(iters):
            if nrm == 0.0:
                return 0.0
            U = U / nrm
            U = self.adjoint(self.fit(U))
            nrm = float(bk.sqrt(bk.vdot(U, U)))
            val = nrm
        return float(val)

    def xa_norm_sq_estimate(self, iters: int = 15, seed: int = 1) -> float:
        r"""Estimate :math:`\|\tilde X\|_2^2` (the norm of each cone map :math:`u \mapsto S_i \odot \tilde X u`)."""
        bk = self.bk
        v = bk.randn((self.d,), seed=seed)
        val = 0.0
        for _ in range(iters):
            nrm = float(bk.sqrt(bk.vdot(v, v)))
            if nrm == 0.0:
                return 0.0
            v = v / nrm
            v = self.Xa.T @ (self.Xa @ v)
            val = float(bk.sqrt(bk.vdot(v, v)))
        return float(val)
