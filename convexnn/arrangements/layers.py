r"""Activation patterns of the second and deeper layers (three-layer and deep programs).

Notation (Ergen & Pilanci (ICML 2021) Section 2, Mishkin (PhD thesis, Stanford) "layer elimination"). A first-layer pattern is
:math:`D_1 = \operatorname{diag}(\mathbf 1[X_a u \ge 0])` (a :class:`~convexnn.Patterns`). A
neuron of the second layer has pre-activation

.. math::

    z = \sum_{j=1}^{m_1} (X_a u_j)_+ \, w_{2j}
      = \sum_{j=1}^{m_1} s_j\, D_{1j} X_a q_j ,\qquad s_j = \operatorname{sign}(w_{2j}),\
      q_j = |w_{2j}|\, u_j \in \mathcal K(D_{1j}),

so its pattern :math:`D_2 = \operatorname{diag}(\mathbf 1[z \ge 0])` is a pattern of the lifted
matrix :math:`X' = [s_1 D_{11} X_a, \dots, s_{m_1} D_{1m_1} X_a]` restricted to the product of
first-layer cones (Ergen & Pilanci (ICML 2021) Section 2.1, eq. (14)). Deeper layers repeat the construction with the
recursively lifted matrices :math:`X^{(l+1)} = [D^{(l)}_1 X^{(l)}, \dots]` (Mishkin (PhD thesis, Stanford), Ergen & Pilanci (ICML 2021) Remark 5).

This module provides

* :class:`LayerPatterns` -- masks of a layer :math:`l \ge 2` (no linear witness gate exists;
  optional *witness networks* reproduce each mask);
* :class:`NeuronCombos` -- the index ``i`` of program (12): a tuple of :math:`m_1`
  (first-layer pattern, sign) pairs, one per neuron of a sub-network;
* :func:`first_layer_combos` (all tuples, exact) and :func:`sample_combos` (Remark 3);
* :func:`second_layer_patterns` -- sampled per Remark 3, or exact by composing first-layer
  patterns (tiny data, one LP per candidate);
* :func:`all_masks` -- every nonzero mask of ``n`` points: a *complete* (superset) pattern set
  for any layer of tiny data;
* :func:`deep_layer_patterns` -- per-layer patterns of deep networks (sampled from random
  networks, or complete for tiny data);
* :func:`network_patterns` -- the patterns a given network uses (add them to a sampled set so
  that the convex program is at least as good as that network, Ergen & Pilanci (ICML 2021) Remark 3 "active set").

Why supersets are safe. Every program built on these patterns imposes the activation
consistency constraints :math:`(2D - I) z \ge 0`, under which :math:`D z = (z)_+`. A mask that
no network realizes therefore only adds feasible points that *are* networks: the program stays
an upper bound on the network optimum for every pattern set, and becomes exact as soon as the
set contains every realizable pattern.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix
from convexnn.data import check_seed, check_X
from convexnn.errors import InputError, TooLargeError

__all__ = [
    "LayerPatterns",
    "NeuronCombos",
    "first_layer_combos",
    "sample_combos",
    "second_layer_patterns",
    "all_masks",
    "deep_layer_patterns",
    "network_patterns",
    "network_combos",
    "merge_combos",
]


def _dedup_columns(masks: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct column, in canonical (sorted) order."""
    if masks.shape[1] == 0:
        return np.zeros(0, dtype=int)
    packed = np.ascontiguousarray(np.packbits(masks.T, axis=1))
    void = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first = np.unique(void, return_index=True)
    return first


@dataclass(frozen=True, eq=False)
class LayerPatterns:
    r"""Activation patterns of a layer :math:`l \ge 2` of one data matrix.

    Attributes
    ----------
    masks : ndarray of bool, shape (n, P)
        Column ``i`` is :math:`\operatorname{diag}(D^{(l)}_i)`; deduplicated, canonical order,
        read-only.
    level : int
        The layer ``l >= 2`` the patterns belong to.
    exact : bool
        True when the set contains every pattern a network can produce at this layer (given
        complete patterns at the previous layers); programs built on it are then exact.
    kind : str
        ``"sampled"``, ``"composed"``, ``"all_masks"``, ``"network"``, ...
    bias : bool
        Whether the first layer acts on ``[X, 1]``.
    fingerprint : str
        :func:`~convexnn.arrangements.patterns.data_fingerprint` of ``X``.
    witnesses : list of list of ndarray, optional
        ``witnesses[i] = [W_1, ..., W_{l-1}, w_l]``: a network prefix whose single output
        neuron has pre-activation
        :math:`z = (\cdots((X_a W_1)_+ W_2)_+ \cdots)_+ w_l` with
        :math:`(2 D_i - I) z \ge 0` (so :math:`D_i z = (z)_+`). ``None`` for masks that no
        network was recorded for (e.g. :func:`all_masks`).
    """

    masks: np.ndarray
    level: int = 2
    exact: bool = False
    kind: str = "custom"
    bias: bool = False
    fingerprint: str | None = None
    witnesses: list[list[np.ndarray]] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, masks: Any, *, level: int = 2, exact: bool = False, kind: str = "custom",
              bias: bool = False, fingerprint: str | None = None,
              witnesses: Sequence[Sequence[np.ndarray]] | None = None,
              drop_empty: bool = True) -> "LayerPatterns":
        """Deduplicate (and by default drop the all-zero mask, which contributes nothing)."""
        m = np.asarray(masks)
        if m.ndim != 2:
            raise InputError(f"masks must have shape (n, P); got {m.shape}.")
        if m.dtype != np.bool_:
            if not np.all(np.isin(m, (0, 1))):
                raise InputError("masks must be boolean (or 0/1).")
            m = m.astype(bool)
        if int(level) < 2:
            raise InputError(f"LayerPatterns are for layers l >= 2; got level={level}.")
        if witnesses is not None and len(witnesses) != m.shape[1]:
            raise InputError(f"got {len(witnesses)} witnesses for {m.shape[1]} masks.")
        keep = np.arange(m.shape[1])
        if drop_empty:
            keep = keep[m.any(axis=0)]
        first = keep[_dedup_columns(m[:, keep])]
        out = np.ascontiguousarray(m[:, first])
        out.setflags(write=False)
        wit = None if witnesses is None else [list(witnesses[i]) for i in first]
        return cls(out, level=int(level), exact=bool(exact), kind=str(kind), bias=bool(bias),
                   fingerprint=fingerprint, witnesses=wit)

    def __len__(self) -> int:
        return int(self.masks.shape[1])

    @property
    def n_samples(self) -> int:
        return int(self.masks.shape[0])

    def union(self, other: "LayerPatterns") -> "LayerPatterns":
        """Union of two sets for the same data and layer (``exact`` if either is)."""
        if (other.n_samples != self.n_samples or other.level != self.level
                or other.bias != self.bias):
            raise InputError("cannot merge layer patterns of different data, layers or bias settings.")
        if self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint:
            raise InputError("cannot merge layer patterns built for different data matrices.")
        wit = None
        if self.witnesses is not None and other.witnesses is not None:
            wit = self.witnesses + other.witnesses
        return LayerPatterns.build(np.hstack([self.masks, other.masks]), level=self.level,
                                   exact=self.exact or other.exact,
                                   kind=f"{self.kind}+{other.kind}", bias=self.bias,
                                   fingerprint=self.fingerprint or other.fingerprint, witnesses=wit)

    def check(self, X: Any) -> None:
        """Raise :class:`InputError` unless these patterns were built for ``X``."""
        Xc = check_X(X)
        if Xc.shape[0] != self.n_samples:
            raise InputError(f"layer-{self.level} patterns were built for n={self.n_samples} points "
                             f"but X has {Xc.shape[0]} rows.")
        if self.fingerprint is not None and data_fingerprint(Xc) != self.fingerprint:
            raise InputError(f"these layer-{self.level} patterns were built for another data matrix X.")

    def __repr__(self) -> str:
        return (f"LayerPatterns(P={len(self)}, n={self.n_samples}, level={self.level}, "
                f"kind={self.kind!r}, exact={self.exact})")


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


def _random_network(rng: np.random.Generator, dims: Sequence[int]) -> list[np.ndarray]:
    """Gaussian weights ``W_l`` of shapes ``(dims[l], dims[l+1])``."""
    return [rng.standard_normal((dims[i], dims[i + 1])) for i in range(len(dims) - 1)]


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


def all_masks(X: Any, *, level: int = 2, bias: bool = False, max_n: int = 16) -> LayerPatterns:
    r"""Every nonzero mask of the ``n`` data points: a complete pattern set for any layer.

    Exact (``exact=True``) in the sense of the programs: it contains every pattern a network can
    produce, so programs built on it are exact; most masks need not be realizable (harmless,
    see the module notes). Only for tiny data: :math:`2^n - 1` masks.

    Raises
    ------
    TooLargeError
        When ``n > max_n`` (the message names :math:`2^n - 1`).
    """
    Xc = check_X(X)
    n = Xc.shape[0]
    if n > max_n:
        raise TooLargeError(f"all_masks: 2^{n} - 1 = {2 ** n - 1} masks for n={n} points exceed the "
                            f"limit (n <= {max_n}); sample patterns instead.", estimate=2 ** n - 1,
                            limit=2 ** max_n - 1)
    codes = np.arange(1, 2 ** n, dtype=np.int64)
    masks = ((codes[None, :] >> np.arange(n)[:, None]) & 1).astype(bool)
    return LayerPatterns.build(masks, level=level, exact=True, kind="all_masks", bias=bias,
                               fingerprint=data_fingerprint(Xc))


def _canonical_second_masks(first_masks: np.ndarray, combos: NeuronCombos) -> tuple[np.ndarray, np.ndarray]:
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


def second_layer_patterns(X: Any, m1: int, *, method: str = "sample", n_samples: int = 100,
                          first_patterns: Patterns | None = None, bias: bool = False,
                          seed: int | None = None, max_lps: int = 20_000) -> LayerPatterns:
    r"""Second-layer activation patterns :math:`D_2` of three-layer networks of width ``m1``.

    Parameters
    ----------
    X : array, shape (n, d)
    m1 : int
        First hidden layer width of each sub-network.
    method : {"sample", "exact"}
        ``"sample"`` (Ergen & Pilanci (ICML 2021) Remark 3): :math:`\mathbf 1[(X_a U_1)_+ u_2 \ge 0]` for ``n_samples``
        Gaussian draws of :math:`(U_1, u_2)`; not exact.
        ``"exact"`` (tiny data): compose the first-layer patterns. For every tuple of
        (pattern, sign) pairs (:func:`first_layer_combos`) and every candidate
        :math:`T \subseteq A \cap B` one linear program decides whether some
        :math:`q_j \in \mathcal K(D_{1j})` gives :math:`z_i \ge 0` on :math:`T` and
        :math:`z_i \le -1` on :math:`(A\cap B)\setminus T`; the realizable canonical masks
        :math:`(A\setminus B) \cup T` are returned with their witnesses
        :math:`U_1 = [q_j]`, :math:`u_2 = s`. Every network's second layer satisfies
        :math:`(2D - I)z \ge 0` for one of them, so the set is complete (``exact=True``)
        when ``first_patterns`` is.
    n_samples : int
        Number of random networks (``"sample"``).
    first_patterns : Patterns, optional
        First-layer patterns for ``"exact"`` (default: :func:`convexnn.enumerate_patterns`).
    bias : bool
    seed : int, optional
    max_lps : int
        ``"exact"`` refuses (:class:`TooLargeError` naming the count) above this many LPs.
    """
    Xa = design_matrix(X, bias)
    fp = data_fingerprint(check_X(X))
    if method == "sample":
        _, second = sample_combos(X, m1, n_samples, bias=bias, seed=seed)
        return second
    if method != "exact":
        raise InputError(f"method must be 'sample' or 'exact'; got {method!r}.")
    if first_patterns is None:
        from convexnn.arrangements.enumerate import enumerate_patterns

        first_patterns = enumerate_patterns(X, bias=bias)
    first_patterns.check(X)
    combos = first_layer_combos(first_patterns, m1, mixed_signs_only=False)
    count = canonical_second_count(np.asarray(first_patterns.masks), combos)
    if count > max_lps:
        raise TooLargeError(f"second_layer_patterns(method='exact') needs {count} linear programs "
                            f"(max_lps={max_lps}); use method='sample' or three_layer(..., "
                            "second_patterns='complete').", estimate=count, limit=max_lps)
    from scipy.optimize import linprog

    M1 = np.asarray(first_patterns.masks)
    cid, cand = _canonical_second_masks(M1, combos)
    n, dp = Xa.shape
    m = combos.width
    Mc = M1[:, combos.index]  # (n, C, m)
    pos = combos.signs > 0
    A = (Mc & pos[None]).any(axis=2)
    B = (Mc & ~pos[None]).any(axis=2)
    keep_masks, witnesses = [], []
    for k in range(cand.shape[1]):
        c = cid[k]
        free = A[:, c] & B[:, c]
        idx, sg = combos.index[c], combos.signs[c]
        # z = sum_j s_j D_j Xa q_j  as a (n, m*dp) matrix acting on vec(q)
        Z = np.hstack([sg[j] * (M1[:, idx[j]][:, None] * Xa) for j in range(m)])
        cone = [-(np.where(M1[:, idx[j]], 1.0, -1.0)[:, None] * Xa) for j in range(m)]
        G = [np.hstack([cone[j] if jj == j else np.zeros((n, dp)) for jj in range(m)]) for j in range(m)]
        T = cand[:, k] & free
        Fm = free & ~cand[:, k]
        A_ub = np.vstack(G + [-Z[T], Z[Fm]])
        b_ub = np.concatenate([np.zeros(n * m + int(T.sum())), -np.ones(int(Fm.sum()))])
        res = linprog(np.zeros(m * dp), A_ub=A_ub, b_ub=b_ub, bounds=(None, None), method="highs")
        if res.status == 0:
            keep_masks.append(cand[:, k])
            q = res.x.reshape(m, dp).T
            witnesses.append([q.copy(), sg.copy()])
    masks = np.array(keep_masks).T if keep_masks else np.zeros((n, 0), bool)
    return LayerPatterns.build(masks, level=2, exact=bool(first_patterns.exact), kind="composed",
                               bias=bias, fingerprint=fp, witnesses=witnesses)


def _forward_pre(Xa: np.ndarray, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Pre-activations of every layer of a fully connected ReLU network (hidden layers only)."""
    pres, h = [], Xa
    for W in weights:
        z = h @ W
        pres.append(z)
        h = np.maximum(z, 0.0)
    return pres


def deep_layer_patterns(X: Any, widths: Sequence[int], *, method: str = "sample", n_samples: int = 50,
                        bias: bool = False, seed: int | None = None,
                        first_patterns: Patterns | None = None) -> list[Patterns | LayerPatterns]:
    r"""Patterns of every hidden layer of deep ReLU networks with hidden widths ``widths``.

    Parameters
    ----------
    widths : sequence of int
        Hidden widths :math:`(m_1, \dots, m_{L-1})` of the sampling networks (``"sample"``) or
        only their number ``L - 1`` (``"complete"``).
    method : {"sample", "complete"}
        ``"sample"`` (Ergen & Pilanci (ICML 2021) Remark 3 applied layer by layer): the masks
        :math:`\mathbf 1[Z^{(l)}_{:,j} \ge 0]` of every neuron of ``n_samples`` Gaussian networks;
        layer ``l >= 2`` masks carry their witness prefix networks.
        ``"complete"`` (tiny data): the exact first-layer arrangement and :func:`all_masks` for
        every deeper layer; programs built on it are exact.

    Returns
    -------
    list
        ``[Patterns (layer 1), LayerPatterns (layer 2), ..., LayerPatterns (layer L-1)]``.
    """
    Xc = check_X(X)
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise InputError(f"widths must be a non-empty sequence of positive ints; got {widths}.")
    fp = data_fingerprint(Xc)
    if method == "complete":
        if first_patterns is None:
            from convexnn.arrangements.enumerate import enumerate_patterns

            first_patterns = enumerate_patterns(Xc, bias=bias)
        return [first_patterns] + [all_masks(Xc, level=l + 1, bias=bias) for l in range(1, len(widths))]
    if method != "sample":
        raise InputError(f"method must be 'sample' or 'complete'; got {method!r}.")
    Xa = design_matrix(Xc, bias)
    rng = check_seed(seed)
    dims = [Xa.shape[1]] + widths
    gates1, masks, wits = [], [[] for _ in widths[1:]], [[] for _ in widths[1:]]
    for _ in range(int(n_samples)):
        Ws = _random_network(rng, dims)
        pres = _forward_pre(Xa, Ws)
        gates1.append(Ws[0])
        for l in range(1, len(widths)):
            masks[l - 1].append(pres[l] >= 0)
            for j in range(widths[l]):
                wits[l - 1].append([W.copy() for W in Ws[:l]] + [Ws[l][:, j].copy()])
    first = Patterns.from_gates(Xc, np.hstack(gates1), bias=bias, kind="gaussian")
    if first_patterns is not None:
        first = first_patterns.union(first)
    out: list[Patterns | LayerPatterns] = [first]
    for l in range(1, len(widths)):
        out.append(LayerPatterns.build(np.hstack(masks[l - 1]), level=l + 1, kind="sampled", bias=bias,
                                       fingerprint=fp, witnesses=wits[l - 1]))
    return out


def network_patterns(net: Any, X: Any) -> list[Patterns | LayerPatterns]:
    r"""The activation patterns used by a :class:`~convexnn.DeepReLU` (or
    :class:`~convexnn.ThreeLayerReLU`, via ``net.as_deep()``) on ``X``, layer by layer.

    Union them with a sampled set: the deep program on the union is then at most the network's
    path-norm objective (the network is feasible for it), which makes sampled programs
    comparable with trained networks (the active-set view of Ergen & Pilanci (ICML 2021) Remark 3).
    """
    if hasattr(net, "as_deep"):
        net = net.as_deep()
    Xc = check_X(X)
    Xa = design_matrix(Xc, net.bias)
    fp = data_fingerprint(Xc)
    hidden = list(net.weights[:-1])
    pres = _forward_pre(Xa, hidden)
    first = Patterns.from_gates(Xc, hidden[0], bias=net.bias, kind="network")
    out: list[Patterns | LayerPatterns] = [first]
    for l in range(1, len(hidden)):
        wit = [[W.copy() for W in hidden[:l]] + [hidden[l][:, j].copy()] for j in range(hidden[l].shape[1])]
        out.append(LayerPatterns.build(pres[l] >= 0, level=l + 1, kind="network", bias=net.bias,
                                       fingerprint=fp, witnesses=wit))
    return out


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
