r"""Witness gates of the lower-dimensional faces of a data arrangement.

The flats of the reduced arrangement (intersections of its hyperplanes, rank by rank), a gate
in the relative interior of every face (the chambers of the arrangement induced on each flat,
and :math:`g = 0`), and the bit-packed masks :math:`\mathbf 1[X_a g \ge 0]` of those gates
(``enumerate_patterns(..., include_faces=True)``).
"""

from __future__ import annotations

import numpy as np

from convexnn.arrangements.basis import TOL, _Reduced
from convexnn.arrangements.chambers import _chambers
from convexnn.errors import TooLargeError


def _flats(Y: np.ndarray, limit: int) -> list[np.ndarray]:
    """Membership matrices (F_s, k) of the flats of rank s = 1..r of the unit rows ``Y``."""
    k, r = Y.shape
    levels: list[np.ndarray] = []
    # rank 1: closure of each hyperplane (parallel copies)
    G = Y @ Y.T
    cur = np.unique(1.0 - G ** 2 <= TOL ** 2 * 4, axis=0)
    levels.append(cur)
    total = len(cur)
    for s in range(1, r):
        new = []
        for mem in cur:
            Q = np.linalg.svd(Y[mem].T, full_matrices=False)[0][:, :s]
            Rr = Y - (Y @ Q) @ Q.T
            n2 = np.einsum("ij,ij->i", Rr, Rr)
            cand = np.flatnonzero(n2 > TOL ** 2)
            if len(cand) == 0:
                continue
            Gm = Rr[cand] @ Rr.T  # (c, k)
            res = n2[None, :] - Gm ** 2 / n2[cand, None]
            new.append(res <= TOL ** 2)
        if not new:
            break
        cur = np.unique(np.concatenate(new), axis=0)
        total += len(cur)
        if total > limit:
            raise TooLargeError(
                f"the arrangement has more than {limit} flats; face patterns are too many to "
                "enumerate (use include_faces=False).", estimate=total, limit=limit)
        levels.append(cur)
    return levels


def _face_gates(red: _Reduced, limit: int) -> np.ndarray:
    """Gates (P, d') in the relative interiors of all lower-dimensional faces (incl. g = 0)."""
    Y, r = red.Y, red.rank
    gates = [np.zeros((1, red.Xa.shape[1]))]  # the origin: all-ones pattern
    if r <= 1:
        return np.concatenate(gates)
    for s, mems in enumerate(_flats(Y, limit), start=1):
        dim = r - s
        if dim <= 0:
            continue
        subsU, gst, bases = [], [0], []
        for mem in mems:
            # orthonormal basis of the flat (complement of the span of its normals)
            _, sv, vt = np.linalg.svd(Y[mem], full_matrices=True)
            B = vt[s:].T  # (r, dim)
            Z = Y[~mem] @ B
            nz = np.linalg.norm(Z, axis=1)
            Z = Z[nz > TOL] / nz[nz > TOL, None]
            subsU.append(Z)
            gst.append(gst[-1] + len(Z))
            bases.append(B)
        U = np.concatenate(subsU) if subsU else np.zeros((0, dim))
        gst = np.array(gst)
        if dim == 1:
            W = np.array([[1.0], [-1.0]] * len(mems))
            wg = np.repeat(np.arange(len(mems)), 2)
        else:
            W, wg, _, _ = _chambers(U, gst, None, dim)
        Bst = np.stack(bases)  # (F, r, dim)
        g = np.einsum("frd,fd->fr", Bst[wg], W)
        gates.append(red.gates(g).T)
    return np.concatenate(gates)


def _masks_packed(Xa: np.ndarray, G: np.ndarray, relax: float = 0.0) -> np.ndarray:
    """Bit-packed ``1[Xa g >= 0]`` for the columns of ``G`` (chunked), shape (P, ceil(n/8))."""
    n = Xa.shape[0]
    P = G.shape[1]
    out = np.zeros((P, (n + 7) // 8), np.uint8)
    step = max(1, (1 << 22) // max(n, 1))
    rn = np.linalg.norm(Xa, axis=1)[:, None]
    for a in range(0, P, step):
        Gc = G[:, a:a + step]
        V = Xa @ Gc
        if relax:
            V = V + relax * rn * np.linalg.norm(Gc, axis=0)[None, :]
        out[a:a + step] = np.packbits((V >= 0).T, axis=1)
    return out

