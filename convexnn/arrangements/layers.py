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

* :func:`second_layer_patterns` -- sampled per Remark 3, or exact by composing first-layer
  patterns (tiny data, one LP per candidate);
* :func:`all_masks` -- every nonzero mask of ``n`` points: a *complete* (superset) pattern set
  for any layer of tiny data;
* :func:`deep_layer_patterns` -- per-layer patterns of deep networks (sampled from random
  networks, or complete for tiny data);
* :func:`network_patterns` -- the patterns a given network uses (add them to a sampled set so
  that the convex program is at least as good as that network, Ergen & Pilanci (ICML 2021) Remark 3 "active set").

It re-exports the pattern container of deeper layers, :class:`LayerPatterns`
(:mod:`~convexnn.arrangements.layer_patterns`), and the sub-network shapes of three-layer
programs, :class:`NeuronCombos` with :func:`first_layer_combos`, :func:`sample_combos`,
:func:`network_combos`, :func:`merge_combos` (:mod:`~convexnn.arrangements.combos`).

Why supersets are safe. Every program built on these patterns imposes the activation
consistency constraints :math:`(2D - I) z \ge 0`, under which :math:`D z = (z)_+`. A mask that
no network realizes therefore only adds feasible points that *are* networks: the program stays
an upper bound on the network optimum for every pattern set, and becomes exact as soon as the
set contains every realizable pattern.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from convexnn.arrangements.combos import (
    NeuronCombos,
    canonical_second_masks,
    canonical_second_count,
    first_layer_combos,
    merge_combos,
    network_combos,
    sample_combos,
)
from convexnn.arrangements.layer_patterns import LayerPatterns
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
    cid, cand = canonical_second_masks(M1, combos)
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


def _random_network(rng: np.random.Generator, dims: Sequence[int]) -> list[np.ndarray]:
    """Gaussian weights ``W_l`` of shapes ``(dims[l], dims[l+1])``."""
    return [rng.standard_normal((dims[i], dims[i + 1])) for i in range(len(dims) - 1)]


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

