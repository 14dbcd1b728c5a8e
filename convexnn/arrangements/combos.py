r"""Sub-network shapes of three-layer programs: tuples of (first-layer pattern, sign) pairs.

A neuron of the second layer has pre-activation
:math:`z = \sum_{j=1}^{m_1} s_j\, D_{1j} X_a q_j` with :math:`s_j = \operatorname{sign}(w_{2j})`
and :math:`q_j \in \mathcal K(D_{1j})` (Ergen & Pilanci (ICML 2021) Section 2.1, eq. (14)); the
tuple :math:`(D_{1j}, s_j)_j` is the index :math:`i` of their program (12).

This module provides

* :class:`NeuronCombos` -- a set of such tuples over a :class:`~convexnn.Patterns`;
* :func:`first_layer_combos` (all tuples, exact) and :func:`sample_combos` (sampled from random
  networks, Remark 3), :func:`network_combos` (the tuples a given network uses) and
  :func:`merge_combos` (union of two sets);
* :func:`canonical_second_count` and the canonical second-layer masks
  :math:`(A \setminus B) \cup T`, :math:`T \subseteq A \cap B`, of each tuple (:math:`A`,
  :math:`B` the unions of its positive and negative neurons' masks).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from convexnn.arrangements.layer_patterns import LayerPatterns
from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix
from convexnn.data import check_seed, check_X
from convexnn.errors import InputError, TooLargeError

__all__ = [
    "NeuronCombos",
    "first_layer_combos",
    "sample_combos",
    "network_combos",
    "merge_combos",
    "canonical_second_count",
]


@dataclass(frozen=True, eq=False)
class NeuronCombos:
    r"""Tuples of (first-layer pattern, sign) pairs: the index :math:`i` of program (12).

    Row ``c`` describes one sub-network of width :math:`m_1`: neuron ``j`` has activation
    pattern ``patterns.masks[:, index[c, j]]`` and outgoing (second-layer) weight sign
    ``signs[c, j]`` (:math:`\mathcal I_j` in Ergen & Pilanci (ICML 2021) eq. (10)).

    Attributes
    ----------
    patterns : Patterns
        The first-layer patterns the indices refer to.
    index : ndarray of int, shape (C, m)
    signs : ndarray of float, shape (C, m), entries in {-1, +1}
    exact : bool
        True when every tuple of ``m`` distinct pairs over a complete first-layer arrangement is
        present (up to the dominance reductions documented in :func:`first_layer_combos`).
    kind : str
    second : ndarray of bool, shape (n, C), optional
        The second-layer mask each tuple was sampled with (from a random or trained network);
        ``three_layer(..., second_patterns="matched")`` pairs every tuple with its own mask only.
    """

    patterns: Patterns
    index: np.ndarray
    signs: np.ndarray
    exact: bool = False
    kind: str = "custom"
    second: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.second is not None:
            sec = np.asarray(self.second, dtype=bool)
            want = (self.patterns.n_samples, int(np.shape(self.index)[0]))
            if sec.shape != want:
                raise InputError(f"second must have shape (n, C) = {want}; got {sec.shape}.")
        idx = np.asarray(self.index)
        sg = np.asarray(self.signs, dtype=float)
        if idx.ndim != 2 or sg.shape != idx.shape:
            raise InputError(f"index and signs must both have shape (C, m); got {idx.shape}, {sg.shape}.")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.patterns)):
            raise InputError(f"combo indices must lie in [0, {len(self.patterns)}).")
        if not np.all(np.isin(sg, (-1.0, 1.0))):
            raise InputError("combo signs must be -1 or +1.")

    def __len__(self) -> int:
        return int(np.shape(self.index)[0])

    @property
    def width(self) -> int:
        """Number of neurons per tuple (``m``)."""
        return int(np.shape(self.index)[1])


def _nonzero_pattern_ids(patterns: Patterns) -> np.ndarray:
    return np.flatnonzero(np.asarray(patterns.masks).any(axis=0))


def first_layer_combos(patterns: Patterns, m1: int, *, mixed_signs_only: bool = False,
                       max_combos: int = 200_000) -> NeuronCombos:
    r"""All sub-network shapes of width :math:`m_1`: every set of :math:`\min(m_1, 2P)` distinct
    (pattern, sign) pairs with at least one positive sign.

    Reductions (each keeps the three-layer program exact):

    * the all-zero pattern is dropped (its neurons output 0);
    * repeated pairs are not needed: two neurons with the same pattern and sign merge into one,
      :math:`s D X q_a + s D X q_b = s D X(q_a + q_b)`, with :math:`q_a + q_b` in the same cone
      and :math:`\|q_a + q_b\| \le \|q_a\| + \|q_b\|`; a sub-network with fewer distinct pairs is
      a tuple padded with zero neurons (:math:`0` lies in every cone);
    * all-negative tuples are dropped: then :math:`z \le 0` and the sub-network outputs 0;
    * with ``mixed_signs_only`` (used with the *complete* second-layer patterns) all-positive
      tuples are dropped too when :math:`m_1 \ge 2`: then :math:`z = \sum_j (X q_j)_+ \ge 0`,
      the second ReLU is the identity and the sub-network splits into single-neuron
      sub-networks, each available in a mixed tuple.

    Raises
    ------
    TooLargeError
        When the number of tuples exceeds ``max_combos`` (the message names it).
    """
    if int(m1) < 1:
        raise InputError(f"m1 must be a positive integer; got {m1}.")
    ids = _nonzero_pattern_ids(patterns)
    P = ids.size
    if P == 0:
        raise InputError("the first-layer pattern set has no nonzero pattern.")
    n_pairs = 2 * P
    m = min(int(m1), n_pairs)
    total = math.comb(n_pairs, m)
    if total > max_combos:
        raise TooLargeError(
            f"first_layer_combos: C(2P={n_pairs}, m1={m}) = {total} sub-network shapes exceed "
            f"max_combos={max_combos}; sample them with sample_combos(X, m1, ...) (Ergen & Pilanci (ICML 2021) Remark 3).",
            estimate=total, limit=max_combos)
    pair_pat = np.repeat(ids, 2)
    pair_sign = np.tile([1.0, -1.0], P)
    combos = np.array(list(itertools.combinations(range(n_pairs), m)), dtype=int).reshape(-1, m)
    signs = pair_sign[combos]
    n_pos = (signs > 0).sum(axis=1)
    keep = n_pos >= 1
    if mixed_signs_only and m >= 2:
        keep &= n_pos < m
    combos = combos[keep]
    return NeuronCombos(patterns, pair_pat[combos], pair_sign[combos], exact=bool(patterns.exact),
                        kind="all")


def sample_combos(X: Any, m1: int, n_samples: int, *, bias: bool = False, seed: int | None = None,
                  first_patterns: Patterns | None = None) -> tuple[NeuronCombos, LayerPatterns]:
    r"""Sample sub-network shapes and second-layer patterns from random networks (Ergen & Pilanci (ICML 2021) Remark 3).

    Draw :math:`U_1 \in \mathbb R^{d'\times m_1}` and :math:`u_2 \in \mathbb R^{m_1}` with
    i.i.d. :math:`\mathcal N(0, 1)` entries ``n_samples`` times; the tuple is
    :math:`(\mathbf 1[X_a U_{1,:j} \ge 0], \operatorname{sign}(u_{2j}))_j` and the second-layer
    pattern is :math:`\mathbf 1[(X_a U_1)_+ u_2 \ge 0]`.

    Returns
    -------
    combos : NeuronCombos
        Refers to ``first_patterns`` (extended by the sampled first-layer patterns) or to the
        sampled first-layer patterns alone.
    second : LayerPatterns
        The sampled second-layer patterns with their witness networks ``[U_1, u_2]``.
    """
    Xa = design_matrix(X, bias)
    n, dp = Xa.shape
    if int(n_samples) < 1 or int(m1) < 1:
        raise InputError(f"n_samples and m1 must be positive; got {n_samples}, {m1}.")
    rng = check_seed(seed)
    S, m = int(n_samples), int(m1)
    U1 = rng.standard_normal((S, dp, m))
    u2 = rng.standard_normal((S, m))
    pre1 = np.einsum("nd,sdm->snm", Xa, U1)  # (S, n, m)
    z = np.einsum("snm,sm->sn", np.maximum(pre1, 0.0), u2)
    gates = U1.transpose(1, 0, 2).reshape(dp, S * m)
    sampled = Patterns.from_gates(X, gates, bias=bias, kind="gaussian")
    first = sampled if first_patterns is None else first_patterns.union(sampled)
    first_masks = np.asarray(first.masks)
    # locate each sampled neuron's mask in `first`
    packed_first = np.ascontiguousarray(np.packbits(first_masks.T, axis=1))
    lookup = {packed_first[i].tobytes(): i for i in range(packed_first.shape[0])}
    neuron_masks = (pre1 >= 0).transpose(0, 2, 1).reshape(S * m, n)
    packed = np.packbits(neuron_masks, axis=1)
    index = np.array([lookup[row.tobytes()] for row in packed], dtype=int).reshape(S, m)
    signs = np.where(u2 >= 0, 1.0, -1.0)
    keep = (signs > 0).any(axis=1) & first_masks[:, index].any(axis=0).any(axis=1) \
        if S else np.zeros(0, bool)
    combos = _unique_combos(first, index[keep], signs[keep], kind="sampled", second=(z.T >= 0)[:, keep])
    second = LayerPatterns.build(z.T >= 0, level=2, kind="sampled", bias=bias,
                                 fingerprint=data_fingerprint(check_X(X)),
                                 witnesses=[[U1[s], u2[s]] for s in range(S)])
    return combos, second


def _unique_combos(first: Patterns, index: np.ndarray, signs: np.ndarray, *, kind: str,
                   second: np.ndarray | None = None) -> NeuronCombos:
    """Canonicalize each tuple (merge repeated pairs, sort) and drop duplicates (of the
    (tuple, second mask) pair when ``second`` of shape (n, C) is given)."""
    m = index.shape[1]
    rows = []
    for c, (idx, sg) in enumerate(zip(index, signs)):
        pairs = tuple(sorted(set(zip(idx.tolist(), sg.tolist()))))
        key = b"" if second is None else np.packbits(second[:, c]).tobytes()
        rows.append((pairs, key))
    keys = sorted(set(rows))
    uniq = [k[0] for k in keys]
    sec = None
    if second is not None:
        sec = np.array([np.unpackbits(np.frombuffer(k[1], np.uint8), count=second.shape[0]).astype(bool)
                        for k in keys]).T.reshape(second.shape[0], len(keys))
    width = max((len(r) for r in uniq), default=m)
    out_idx = np.zeros((len(uniq), width), dtype=int)
    out_sg = np.ones((len(uniq), width))
    for c, r in enumerate(uniq):
        # tuples with fewer distinct pairs are padded by repeating their first pair: a repeated
        # pair is harmless (two neurons with the same pattern and sign merge into one)
        padded = list(r) + [r[0]] * (width - len(r))
        out_idx[c] = [p for p, _ in padded]
        out_sg[c] = [s for _, s in padded]
    return NeuronCombos(first, out_idx, out_sg, exact=False, kind=kind, second=sec)


def merge_combos(a: NeuronCombos, b: NeuronCombos) -> NeuronCombos:
    """Union of two tuple sets (re-indexed onto the union of their first-layer patterns)."""
    first = a.patterns.union(b.patterns)
    M = np.asarray(first.masks)
    packed = np.ascontiguousarray(np.packbits(M.T, axis=1))
    lookup = {packed[i].tobytes(): i for i in range(packed.shape[0])}

    def reindex(c: NeuronCombos) -> np.ndarray:
        Mc = np.asarray(c.patterns.masks)
        rows = np.packbits(Mc.T, axis=1)
        old_to_new = np.array([lookup[r.tobytes()] for r in rows], dtype=int)
        return old_to_new[c.index]

    width = max(a.width, b.width)

    def widen(idx: np.ndarray, sg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        extra = width - idx.shape[1]
        if extra == 0:
            return idx, sg
        return (np.hstack([idx, np.repeat(idx[:, :1], extra, axis=1)]),
                np.hstack([sg, np.repeat(sg[:, :1], extra, axis=1)]))

    ia, sa = widen(reindex(a), np.asarray(a.signs, float))
    ib, sb = widen(reindex(b), np.asarray(b.signs, float))
    sec = None
    if a.second is not None and b.second is not None:
        sec = np.hstack([a.second, b.second])
    return _unique_combos(first, np.vstack([ia, ib]), np.vstack([sa, sb]), kind=f"{a.kind}+{b.kind}",
                          second=sec)


def network_combos(net: Any, X: Any) -> tuple[NeuronCombos, LayerPatterns]:
    r"""The tuples and second-layer masks used by a :class:`~convexnn.ThreeLayerReLU` on ``X``.

    Sub-network ``k`` gives the tuple :math:`(\mathbf 1[X_a W_{1k,:j} \ge 0], \operatorname{sign}
    w_{2k,j})_j` and the mask :math:`\mathbf 1[(X_a W_{1k})_+ w_{2k} \ge 0]`; program (12) on
    (a superset of) these contains the network (Remark 3's active-set view), so its value is at
    most the network's objective (4). Sub-networks without an active positive neuron are skipped.
    """
    Xc = check_X(X)
    Xa = design_matrix(Xc, net.bias)
    K, dp, m = net.W1.shape
    pre = np.einsum("nd,kdm->knm", Xa, net.W1)
    z = np.einsum("knm,km->kn", np.maximum(pre, 0.0), net.w2)
    first = Patterns.from_gates(Xc, net.W1.transpose(1, 0, 2).reshape(dp, K * m), bias=net.bias,
                                kind="network")
    M = np.asarray(first.masks)
    packed = np.ascontiguousarray(np.packbits(M.T, axis=1))
    lookup = {packed[i].tobytes(): i for i in range(packed.shape[0])}
    nm = (pre >= 0).transpose(0, 2, 1).reshape(K * m, -1)
    index = np.array([lookup[r.tobytes()] for r in np.packbits(nm, axis=1)], dtype=int).reshape(K, m)
    signs = np.where(net.w2 >= 0, 1.0, -1.0)
    ok = ((signs > 0) & M[:, index].any(axis=0)).any(axis=1)
    if not ok.any():
        raise InputError("the network has no sub-network with an active positive neuron on X.")
    combos = _unique_combos(first, index[ok], signs[ok], kind="network", second=(z.T >= 0)[:, ok])
    second = LayerPatterns.build(z.T >= 0, level=2, kind="network", bias=net.bias,
                                 fingerprint=data_fingerprint(Xc),
                                 witnesses=[[net.W1[k].copy(), net.w2[k].copy()] for k in range(K)])
    return combos, second


def canonical_second_masks(first_masks: np.ndarray, combos: NeuronCombos) -> tuple[np.ndarray, np.ndarray]:
    r"""For each tuple, every *canonical* second-layer mask :math:`(A\setminus B)\cup T`,
    :math:`T \subseteq A\cap B`, with :math:`A` (:math:`B`) the union of the positive (negative)
    neurons' masks. Returns ``(combo_id, masks)`` with ``masks`` of shape ``(n, total)``."""
    M = first_masks[:, combos.index]  # (n, C, m)
    pos = combos.signs > 0
    neg = combos.signs < 0
    A = (M & pos[None]).any(axis=2)  # (n, C)
    B = (M & neg[None]).any(axis=2)
    free = A & B
    ids, cols = [], []
    for c in range(A.shape[1]):
        f = np.flatnonzero(free[:, c])
        k = f.size
        codes = np.arange(2 ** k, dtype=np.int64)
        T = np.zeros((A.shape[0], codes.size), dtype=bool)
        if k:
            T[f] = ((codes[None, :] >> np.arange(k)[:, None]) & 1).astype(bool)
        base = (A[:, c] & ~B[:, c])[:, None]
        cols.append(base | T)
        ids.append(np.full(codes.size, c))
    masks = np.hstack(cols) if cols else np.zeros((A.shape[0], 0), bool)
    return np.concatenate(ids) if ids else np.zeros(0, int), masks


def canonical_second_count(first_masks: np.ndarray, combos: NeuronCombos) -> int:
    """Number of (tuple, canonical second-layer mask) pairs, without building them."""
    M = first_masks[:, combos.index]
    pos = combos.signs > 0
    neg = combos.signs < 0
    free = ((M & pos[None]).any(axis=2) & (M & neg[None]).any(axis=2)).sum(axis=0)
    return int(np.sum(2.0 ** free))

