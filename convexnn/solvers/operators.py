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

**Row blocks.** On numpy with at least :data:`CHUNK_MIN_ROWS` samples every map is evaluated over
blocks of rows, :math:`\mathcal A(U)_{B} = \operatorname{rowsum}(\tilde X_B \odot (M_B U))` and
:math:`\mathcal A^\top(r) = \sum_B M_B^\top (r_B \odot \tilde X_B)` (the same for the cone
maps, with :math:`S_B = 2M_B - 1` formed per block): the ``n x d'`` and ``n x P`` temporaries
of the one-shot products become block-sized ones that stay in cache (less memory traffic,
no page faults of fresh ``n x d'`` arrays), and no ``n x P`` sign matrix is stored.
The forward maps are the same row by row; the adjoints differ from the one-shot products
only in the order of the sums over samples (rounding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.solvers.backend import Backend

__all__ = ["MaskedDesign", "CHUNK_ROWS"]

#: numpy: rows per block of the maps (see the module docstring); 8192 rows keep a block of ``M``
#: (``P = 200``: 13 MB) and of ``Xa`` near the caches
CHUNK_ROWS = 8192
#: numpy: the maps run over row blocks from this many samples on (by default); below, the
#: one-shot products are as fast (``bench/bench_scale.py``: n = 1e5 the same, n = 1e6 1.2-1.5x
#: faster per product with blocks on one BLAS thread)
CHUNK_MIN_ROWS = 2**17


class MaskedDesign:
    """The operator :math:`U \\mapsto \\sum_i D_i \\tilde X u_i`, its adjoint and the cone maps.

    Parameters
    ----------
    Xa : array, shape (n, d')
        Design matrix (``[X, 1]`` with a bias).
    masks : bool array, shape (n, P)
    backend : Backend
    chunk_rows : int, optional
        Rows per block of the numpy maps (``n`` or more: one block). Default: :data:`CHUNK_ROWS`
        when ``n >= CHUNK_MIN_ROWS``, else one block. Ignored on torch.

    Notes
    -----
    ``masks`` may also be given as a float array of zeros and ones in the backend's dtype (as
    :func:`convexnn.c_grelu` stores it): it is then used without a copy.
    """

    def __init__(self, Xa: Any, masks: Any, backend: Backend, chunk_rows: int | None = None) -> None:
        self.bk = backend
        self.Xa = backend.asarray(Xa)
        if hasattr(masks, "detach") or (isinstance(masks, np.ndarray) and masks.dtype == backend.dtype):
            masks_np = masks
        else:
            masks_np = np.asarray(masks, dtype=bool)
        self.M = backend.asarray(masks_np)
        self.n, self.d = self.Xa.shape
        self.P = self.M.shape[1]
        self._S: Any = None
        if chunk_rows is None:
            rows = CHUNK_ROWS if self.n >= CHUNK_MIN_ROWS else self.n
        else:
            rows = max(int(chunk_rows), 1)
        #: rows per block, or None (one block: torch, or ``n <= chunk_rows``)
        self.chunk: int | None = rows if backend.lib == "numpy" and self.n > rows else None
        self._ones = backend.asarray(np.ones(self.d))

    def subset(self, idx: np.ndarray) -> "MaskedDesign":
        """The operator restricted to the patterns ``idx`` (a working set)."""
        return MaskedDesign(self.Xa, self.bk.take_columns(self.M, np.asarray(idx, dtype=np.int64)), self.bk,
                            chunk_rows=self.chunk or self.n)

    def _blocks(self) -> range:
        return range(0, self.n, self.chunk or max(self.n, 1))

    # ------------------------------------------------------------ the gated operator
    def fit(self, U: Any) -> Any:
        r""":math:`\sum_i D_i \tilde X u_i` for ``U`` of shape ``(P, d')``; returns shape ``(n,)``."""
        if self.chunk is None:
            return self.bk.sum(self.Xa * (self.M @ U), axis=1)
        # per block, the row sum as a product with ones (one BLAS call, no strided reduction)
        out = np.empty(self.n, dtype=self.Xa.dtype)
        c = self.chunk
        for s in self._blocks():
            t = self.M[s:s + c] @ U
            t *= self.Xa[s:s + c]
            np.dot(t, self._ones, out=out[s:s + c])
        return out

    def adjoint(self, r: Any) -> Any:
        r""":math:`(\tilde X^\top D_i r)_i` for ``r`` of shape ``(n,)``; returns shape ``(P, d')``."""
        if self.chunk is None:
            return self.M.T @ (r[:, None] * self.Xa)
        out = np.zeros((self.P, self.d), dtype=self.Xa.dtype)
        c = self.chunk
        for s in self._blocks():
            out += self.M[s:s + c].T @ (r[s:s + c, None] * self.Xa[s:s + c])
        return out

    # ------------------------------------------------------------ the cone maps (C-ReLU)
    @property
    def S(self) -> Any:
        """Signs ``2 * masks - 1`` (computed once)."""
        if self._S is None:
            self._S = 2.0 * self.M - 1.0
        return self._S

    def cone(self, U: Any) -> Any:
        r""":math:`S \odot (\tilde X U^\top)`, shape ``(n, P)``; ``u_i`` is in its cone iff column ``i`` is ``>= 0``."""
        if self.chunk is None:
            return self.S * (self.Xa @ U.T)
        out = np.empty((self.n, self.P), dtype=self.Xa.dtype)
        c = self.chunk
        for s in self._blocks():
            blk = out[s:s + c]
            np.dot(self.Xa[s:s + c], U.T, out=blk)
            blk *= 2.0 * self.M[s:s + c] - 1.0
        return out

    def cone_adjoint(self, R: Any) -> Any:
        r""":math:`(S \odot R)^\top \tilde X`, shape ``(P, d')``."""
        if self.chunk is None:
            return (self.S * R).T @ self.Xa
        out = np.zeros((self.P, self.d), dtype=self.Xa.dtype)
        c = self.chunk
        for s in self._blocks():
            t = 2.0 * self.M[s:s + c] - 1.0
            t *= R[s:s + c]
            out += t.T @ self.Xa[s:s + c]
        return out

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
