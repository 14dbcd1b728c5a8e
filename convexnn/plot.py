r"""Figures for teaching and reports: arrangements, network functions, traces, paths, optimal sets.

matplotlib is an optional dependency (``pip install 'convexnn[plot]'``); importing this module
without it raises an ``ImportError`` that names the extra. Every function draws into ``ax``
(a new figure when ``ax`` is None) and returns the Axes (or the Figure for multi-panel plots),
so figures can be composed and saved with the usual matplotlib calls.

* :func:`plot_arrangement`: the hyperplane arrangement :math:`\{g : x_i^\top g = 0\}` of the
  rows of :math:`X_a` in *gate space*, with each chamber labelled by its activation pattern
  :math:`\mathbf 1[X_a g \ge 0]` (Pilanci & Ergen, ICML 2020; Pilanci, "The Hidden Convex
  Optimization Landscape of Deep Neural Networks", 2021 talk).
* :func:`plot_network_function`: the function a network computes on 1-D or 2-D inputs.
* :func:`plot_trace`: objective / duality-gap traces against time or iterations.
* :func:`plot_path`: a regularization path (objective, active neurons, test error against
  :math:`\lambda`) from plain arrays.
* :func:`plot_optimal_set`: several optimal networks of one C-ReLU program (Mishkin & Pilanci,
  "Optimal Sets and Solution Paths of ReLU Networks", ICML 2023).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from convexnn.arrangements.patterns import Patterns, design_matrix
from convexnn.data import check_X
from convexnn.errors import InputError

try:  # pragma: no cover - exercised only without matplotlib
    import matplotlib.pyplot as plt
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "convexnn.plot needs matplotlib, an optional dependency: pip install 'convexnn[plot]'"
    ) from exc

__all__ = [
    "plot_arrangement",
    "plot_network_function",
    "plot_trace",
    "plot_path",
    "plot_optimal_set",
    "pattern_label",
]


def pattern_label(mask: np.ndarray) -> str:
    """The pattern :math:`\\mathbf 1[X_a g \\ge 0]` as a bit string, row 1 first (``"0110"``)."""
    return "".join("1" if b else "0" for b in np.asarray(mask, dtype=bool))


def _new_ax(ax: Any, figsize: tuple[float, float] = (5.0, 4.0)) -> Any:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _chamber_center(A: np.ndarray, mask: np.ndarray, offset: np.ndarray, box: float) -> tuple[np.ndarray, float]:
    """Center of the largest ball in a chamber, inside the drawing window.

    Maximize ``t`` s.t. ``s_j (A_j p + offset_j) >= t ||A_j||`` for the rows with
    ``||A_j|| > 0`` and ``|p|_inf <= box`` (one small HiGHS LP; ``p`` in the 2-D chart).
    """
    from scipy.optimize import linprog

    s = np.where(mask, 1.0, -1.0)
    nrm = np.linalg.norm(A, axis=1)
    keep = nrm > 1e-12
    A, s, nrm, off = A[keep], s[keep], nrm[keep], offset[keep]
    k = A.shape[1]
    # variables (p, t); constraints -s_j A_j p + ||A_j|| t <= s_j off_j
    A_ub = np.hstack([-s[:, None] * A, nrm[:, None]])
    b_ub = s * off
    c = np.zeros(k + 1)
    c[-1] = -1.0
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(-box, box)] * k + [(None, box)], method="highs")
    if res.status != 0:
        return np.zeros(k), -np.inf
    return res.x[:k], float(res.x[-1])


def plot_arrangement(
    X: Any,
    *,
    bias: bool = False,
    patterns: Patterns | None = None,
    label: str = "pattern",
    extent: float | None = None,
    ax: Any = None,
) -> Any:
    r"""Draw the arrangement :math:`\{g : x_i^\top g = 0\}` in gate space, chambers labelled.

    Each row :math:`x_i` of :math:`X_a` (``X``, or ``[X, 1]`` with ``bias=True``) is a hyperplane
    through the origin of gate space :math:`\mathbb R^{d'}`; the pattern
    :math:`\mathbf 1[X_a g \ge 0]` is constant on each open chamber. The number of chambers is
    ``convexnn.count_patterns(X, bias=bias)`` (Zaslavsky 1975), at most the Cover (1965) bound.

    * :math:`d' = 2` (two features without bias, or one feature with bias): one axes; the
      hyperplanes are lines through the origin and the chambers are sectors.
    * :math:`d' = 3` (two features with bias): a central arrangement in :math:`\mathbb R^3`
      is drawn in two affine charts, :math:`g = (w, +1)` and :math:`g = (w, -1)`: line
      :math:`i` is :math:`x_{i,1}w_1 + x_{i,2}w_2 = \mp x_{i,3}` in the (w1, w2) plane. A chamber
      that crosses :math:`b = 0` shows up in both charts; it is labelled once.

    Parameters
    ----------
    X : array, shape (n, d)
        Data (n small: one line per nonzero row, parallel rows give coincident lines).
    bias : bool
        Gates act on ``[X, 1]``.
    patterns : Patterns, optional
        Chambers to label (default: all, ``enumerate_patterns(X, bias=bias)``); pass a sampled
        set to see which chambers sampling found.
    label : {"pattern", "index", "none"}
        Label text: the bit string ``1[X_a g >= 0]`` (row 1 first), the index in ``patterns``,
        or no labels.
    extent : float, optional
        Half-width of the drawing window (default: chosen from the data).
    ax : Axes or pair of Axes, optional

    Returns
    -------
    Axes (d' = 2) or ndarray of two Axes (d' = 3). Lines are ``Line2D`` artists with
    ``gid="hyperplane"`` and labels are ``Text`` artists with ``gid="chamber"`` (one per pattern).

    Raises
    ------
    InputError
        If :math:`d' \notin \{2, 3\}` or ``label`` is unknown.
    """
    from convexnn.arrangements import enumerate_patterns

    X = check_X(X)
    Xa = design_matrix(X, bias)
    n, dp = Xa.shape
    if dp not in (2, 3):
        raise InputError(f"plot_arrangement draws gate spaces of dimension 2 or 3; X_a has {dp} columns "
                         f"(d = {X.shape[1]}, bias = {bias}).")
    if label not in ("pattern", "index", "none"):
        raise InputError(f"label must be 'pattern', 'index' or 'none'; got {label!r}.")
    P = enumerate_patterns(X, bias=bias) if patterns is None else patterns
    if P.n_samples != n:
        raise InputError(f"patterns were built for {P.n_samples} rows; X has {n}.")
    masks = np.asarray(P.masks, dtype=bool)
    nonzero = np.linalg.norm(Xa, axis=1) > 1e-12 * max(float(np.abs(Xa).max()), 1e-300)

    def text(i: int) -> str:
        return pattern_label(masks[:, i]) if label == "pattern" else str(i)

    colors = plt.get_cmap("tab10")
    if dp == 2:
        ax = _new_ax(ax, (5.0, 5.0))
        R = 1.0 if extent is None else float(extent)
        rays = []
        for j in np.flatnonzero(nonzero):
            u = np.array([-Xa[j, 1], Xa[j, 0]]) / np.linalg.norm(Xa[j])
            rays += [np.arctan2(u[1], u[0]), np.arctan2(-u[1], -u[0])]
            ax.plot([-1.5 * R * u[0], 1.5 * R * u[0]], [-1.5 * R * u[1], 1.5 * R * u[1]], color=colors(j % 10),
                    lw=1.5, gid="hyperplane", label=f"$x_{{{j + 1}}}^\\top g = 0$")
        rays = np.unique(np.mod(rays, 2 * np.pi))
        if label != "none":
            for i in range(masks.shape[1]):
                c, _ = _chamber_center(Xa, masks[:, i], np.zeros(n), 1.0)
                if np.linalg.norm(c) < 1e-12:
                    c = P.gates[:, i]
                th = float(np.mod(np.arctan2(c[1], c[0]), 2 * np.pi))
                if rays.size:  # bisect the sector between the two boundary rays around the witness
                    k = int(np.searchsorted(rays, th))
                    lo_, hi_ = rays[k - 1] if k > 0 else rays[-1] - 2 * np.pi, rays[k] if k < rays.size else rays[0] + 2 * np.pi
                    th = 0.5 * (lo_ + hi_)
                c = 0.72 * R * np.array([np.cos(th), np.sin(th)])
                ax.text(c[0], c[1], text(i), ha="center", va="center", fontsize=8, gid="chamber",
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.9))
        ax.set_xlim(-R, R)
        ax.set_ylim(-R, R)
        ax.set_aspect("equal")
        ax.set_xlabel("$g_1$" if not bias else "$g_1$ (weight)")
        ax.set_ylabel("$g_2$" if not bias else "$g_2$ (bias)")
        ax.set_title(f"{masks.shape[1]} chambers of {int(nonzero.sum())} hyperplanes")
        return ax

    # d' = 3: two affine charts b = +1 and b = -1
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 5.0))
    else:
        axes = np.asarray(ax).ravel()
        if axes.size != 2:
            raise InputError("for two features with bias, pass ax as a pair of Axes (two charts).")
        fig = axes[0].figure
    A = Xa[:, :2]
    scale = np.abs(Xa[:, 2]) / np.maximum(np.linalg.norm(A, axis=1), 1e-12)
    R = float(extent) if extent is not None else float(min(max(2.5 * np.median(scale[nonzero]), 1.0), 20.0))
    t = np.linspace(-3 * R, 3 * R, 2)
    for k, b in enumerate((1.0, -1.0)):
        axk = axes[k]
        for j in np.flatnonzero(nonzero):
            a = A[j]
            na = np.linalg.norm(a)
            if na < 1e-12:  # the hyperplane b = 0 (a zero data row with bias): not in either chart
                continue
            p0 = -b * Xa[j, 2] * a / na ** 2
            u = np.array([-a[1], a[0]]) / na
            axk.plot(p0[0] + t * u[0], p0[1] + t * u[1], color=colors(j % 10), lw=1.2, gid="hyperplane",
                     label=f"$x_{{{j + 1}}}$" if k == 0 else None)
        axk.set_xlim(-R, R)
        axk.set_ylim(-R, R)
        axk.set_aspect("equal")
        axk.set_xlabel("$w_1$")
        axk.set_ylabel("$w_2$")
        axk.set_title(f"chart $b = {b:+.0f}$: $w^\\top x_i + b = 0$")
    if label != "none":
        for i in range(masks.shape[1]):
            best = (-np.inf, 0, np.zeros(2))
            for k, b in enumerate((1.0, -1.0)):
                c, tt = _chamber_center(A, masks[:, i], b * Xa[:, 2], 0.9 * R)
                if tt > best[0]:
                    best = (tt, k, c)
            tt, k, c = best
            if tt <= 0:  # not visible in the window: place it at the edge in the direction of its witness
                g = P.gates[:, i]
                k = 0 if g[2] >= 0 else 1
                w = g[:2] / max(abs(g[2]), 1e-12)
                c = 0.9 * R * w / max(np.abs(w).max(), 1e-12) if np.abs(w).max() > 0.9 * R else w
            axes[k].text(c[0], c[1], text(i), ha="center", va="center", fontsize=7, gid="chamber",
                         bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="0.7", alpha=0.85))
    fig.suptitle(f"{masks.shape[1]} chambers of {int(nonzero.sum())} hyperplanes in $(w_1, w_2, b)$")
    return axes


def _predictor(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    if hasattr(model, "predict"):
        return model.predict
    if hasattr(model, "to_network"):
        return model.to_network().predict
    if callable(model):
        return model
    raise InputError("model must have .predict (a convexnn network), .to_network() (a solution), or be callable.")


def plot_network_function(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    ax: Any = None,
    resolution: int = 200,
    margin: float = 0.15,
    label: str | None = None,
    **style: Any,
) -> Any:
    r"""The function a network computes, over the range of 1-D or 2-D data.

    Parameters
    ----------
    model : network, ConvexSolution or callable
        Anything with ``.predict(X)`` (``TwoLayerReLU``, ``GatedReLU`` is evaluated through its
        fixed gates, ``ThreeLayerReLU``, ``DeepReLU``), a solution (``.to_network()``), or a
        function of an ``(m, d)`` array.
    X : array, shape (n, 1) or (n, 2)
    y : array, shape (n,), optional
        Training targets, drawn as points (1-D) or as the colours of the points (2-D).
    resolution : int
        Grid points per axis.
    margin : float
        Fraction of the data range added on each side.
    label : str, optional
        Legend entry of the curve (1-D).
    **style
        Passed to ``ax.plot`` (1-D) or ``ax.contourf`` (2-D).

    Returns
    -------
    Axes
    """
    X = check_X(X)
    f = _predictor(model)
    d = X.shape[1]
    if d not in (1, 2):
        raise InputError(f"plot_network_function draws 1-D or 2-D inputs; X has {d} columns.")
    ax = _new_ax(ax)
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-12)
    lo, hi = lo - pad, hi + pad
    if d == 1:
        grid = np.linspace(lo[0], hi[0], resolution)[:, None]
        ax.plot(grid[:, 0], np.asarray(f(grid)).reshape(resolution, -1)[:, 0], label=label, **style)
        if y is not None:
            ax.scatter(X[:, 0], np.asarray(y).reshape(len(X), -1)[:, 0], color="k", s=18, zorder=3,
                       label="data" if not any(t.get_label() == "data" for t in ax.collections) else None)
        ax.set_xlabel("$x$")
        ax.set_ylabel("$f(x)$")
        return ax
    g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    Z = np.asarray(f(np.c_[g1.ravel(), g2.ravel()])).reshape(resolution * resolution, -1)[:, 0]
    Z = Z.reshape(g1.shape)
    style.setdefault("levels", 20)
    style.setdefault("cmap", "RdBu_r")
    cs = ax.contourf(g1, g2, Z, **style)
    ax.figure.colorbar(cs, ax=ax, label="$f(x)$")
    if y is not None:
        ax.scatter(X[:, 0], X[:, 1], c=np.asarray(y).reshape(len(X), -1)[:, 0], cmap=style["cmap"],
                   norm=cs.norm, edgecolors="k", s=30, zorder=3)
    else:
        ax.scatter(X[:, 0], X[:, 1], color="k", s=10, zorder=3)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if label:
        ax.set_title(label)
    return ax


def _trace_arrays(trace: Any, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(trace, Mapping):
        if y not in trace:
            raise InputError(f"trace has no {y!r} entry; keys: {sorted(trace)}.")
        yy = np.asarray(trace[y], dtype=np.float64)
        xx = np.asarray(trace[x], dtype=np.float64) if x in trace else np.arange(len(yy), dtype=np.float64)
        return xx, yy
    if isinstance(trace, tuple) and len(trace) == 2:
        return np.asarray(trace[0], dtype=np.float64), np.asarray(trace[1], dtype=np.float64)
    seq = list(trace)
    if seq and isinstance(seq[0], Mapping):  # a solver history: list of dicts
        if y not in seq[0]:
            raise InputError(f"history entries have no {y!r}; keys: {sorted(seq[0])}.")
        yy = np.array([h[y] for h in seq], dtype=np.float64)
        xx = np.array([h.get(x, i) for i, h in enumerate(seq)], dtype=np.float64)
        return xx, yy
    yy = np.asarray(seq, dtype=np.float64)
    return np.arange(len(yy), dtype=np.float64), yy


def plot_trace(
    traces: Any,
    *,
    x: str = "time",
    y: str = "rel_gap",
    optimum: float | None = None,
    subtract_optimum: bool = False,
    log: bool = True,
    ax: Any = None,
) -> Any:
    r"""Objective or duality-gap traces of solvers / training runs.

    Parameters
    ----------
    traces : trace or mapping name -> trace
        A trace is a solver history (``sol.info["history"]``: a list of dicts with keys such
        as ``"iter"``, ``"time"``, ``"objective"``, ``"rel_gap"``), a dict of arrays, a pair
        ``(x_values, y_values)`` or a plain sequence of values (plotted against its index).
    x, y : str
        Keys of the x and y values (``x`` falls back to the index when absent).
    optimum : float, optional
        Drawn as a horizontal line labelled "convex optimum" (e.g. the C-ReLU value: a lower
        bound on every network's objective).
    subtract_optimum : bool
        Plot ``y - optimum`` (suboptimality) instead of ``y``.
    log : bool
        Logarithmic y axis.

    Returns
    -------
    Axes
    """
    ax = _new_ax(ax)
    items = traces.items() if isinstance(traces, Mapping) and not _is_array_dict(traces) else [(None, traces)]
    for name, tr in items:
        xx, yy = _trace_arrays(tr, x, y)
        if subtract_optimum:
            if optimum is None:
                raise InputError("subtract_optimum=True needs optimum=.")
            yy = yy - optimum
        if log:
            yy = np.where(yy > 0, yy, np.nan)
        ax.plot(xx, yy, label=name, lw=1.4)
    if optimum is not None and not subtract_optimum:
        ax.axhline(optimum, color="k", ls="--", lw=1.2, label="convex optimum", gid="optimum")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel({"time": "time (s)", "iter": "iteration", "epoch": "epoch"}.get(x, x))
    ax.set_ylabel({"rel_gap": "relative duality gap", "objective": "objective",
                   "gap": "duality gap"}.get(y, y) + (" - optimum" if subtract_optimum else ""))
    if any(name is not None for name, _ in items) or optimum is not None:
        ax.legend(fontsize=8)
    return ax


def _is_array_dict(d: Mapping) -> bool:
    """A single trace given as a dict of arrays (as opposed to a mapping name -> trace)."""
    return bool(d) and all(np.ndim(v) == 1 and not isinstance(v, (Mapping, tuple)) and
                           not (len(v) and isinstance(v[0], Mapping)) for v in d.values()) and \
        any(k in d for k in ("time", "iter", "objective", "rel_gap", "gap", "epoch"))


def plot_path(
    lams: Sequence[float],
    *,
    objective: Sequence[float] | None = None,
    active: Sequence[float] | None = None,
    test_error: Sequence[float] | None = None,
    train_error: Sequence[float] | None = None,
    axes: Any = None,
) -> Any:
    r"""A regularization path: one panel per series, against :math:`\lambda` (log scale).

    Takes plain arrays, so it works with any path object (a loop over ``f.lam.value = ...;
    f.solve()``, a first-order warm-started path, ...).

    Parameters
    ----------
    lams : sequence of float
    objective : sequence, optional
        Optimal values :math:`p^*(\lambda)`.
    active : sequence, optional
        Number of active neurons (nonzero blocks) at each :math:`\lambda`.
    test_error, train_error : sequence, optional
        Errors of the fitted networks (drawn in one panel).
    axes : sequence of Axes, optional
        One per panel.

    Returns
    -------
    Figure
    """
    lam = np.asarray(lams, dtype=np.float64)
    panels = []
    if objective is not None:
        panels.append(("objective", {"$p^*(\\lambda)$": objective}))
    if active is not None:
        panels.append(("active neurons", {"active neurons": active}))
    if test_error is not None or train_error is not None:
        panels.append(("error", {k: v for k, v in (("train", train_error), ("test", test_error)) if v is not None}))
    if not panels:
        raise InputError("plot_path needs at least one of objective, active, test_error, train_error.")
    if axes is None:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
        axes = axes[0]
    else:
        axes = np.asarray(axes).ravel()
        if axes.size != len(panels):
            raise InputError(f"need {len(panels)} axes, got {axes.size}.")
        fig = axes[0].figure
    for axk, (ylabel, series) in zip(axes, panels):
        for name, vals in series.items():
            v = np.asarray(vals, dtype=np.float64)
            if v.shape != lam.shape:
                raise InputError(f"{name} has shape {v.shape}; lams has {lam.shape}.")
            axk.plot(lam, v, marker="o", ms=3, label=name, drawstyle="steps-mid" if ylabel == "active neurons" else None)
        axk.set_xscale("log")
        axk.set_xlabel("$\\lambda$")
        axk.set_ylabel(ylabel)
        if len(series) > 1:
            axk.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_optimal_set(
    optimal_set: Any,
    X: Any,
    *,
    k: int = 5,
    seed: int | None = 0,
    y: Any = None,
    ax: Any = None,
) -> Any:
    r"""Several networks of one optimal set (Mishkin & Pilanci, ICML 2023).

    All of them have the same fit on the training data and the same objective; between the data
    points they may differ. With 1-D data the functions are drawn (``k`` random points of the
    polytope and the minimal model); otherwise the coordinates :math:`\alpha` of the sampled
    points are drawn per candidate block (one line per network).

    Parameters
    ----------
    optimal_set : OptimalSet
        From ``convexnn.optimal_set(sol)``.
    X : array, shape (n, d)
        The training data (for the plotting range).
    k : int
        Number of sampled optimal networks.
    y : array, optional
        Training targets (1-D: drawn as points).

    Returns
    -------
    Axes
    """
    X = check_X(X)
    ax = _new_ax(ax)
    S = optimal_set
    alphas = S.sample_alphas(k, seed=seed)
    minimal = S.minimal_alpha()
    if X.shape[1] == 1:
        cmap = plt.get_cmap("viridis")
        for j, a in enumerate(alphas):
            net = S.network(a)
            plot_network_function(net, X, None, ax=ax, color=cmap(j / max(k - 1, 1)), lw=1.0, alpha=0.8,
                                  label=f"optimal network {j + 1} ({net.n_neurons} neurons)")
        mnet = S.network(minimal)
        plot_network_function(mnet, X, y, ax=ax, color="k", ls="--", lw=1.6,
                              label=f"minimal model ({mnet.n_neurons} neurons)")
        ax.legend(fontsize=7)
        ax.set_title(f"{k} optimal networks, objective {S.objective(S.alpha0):.4g}")
        return ax
    idx = np.arange(len(S.alpha0))
    for j, a in enumerate(alphas):
        ax.plot(idx, a, marker="o", ms=3, lw=0.8, label=f"sample {j + 1}")
    ax.plot(idx, minimal, marker="s", color="k", ls="--", lw=1.2, label="minimal model")
    ax.set_xlabel("candidate block")
    ax.set_ylabel("$\\alpha_i$")
    ax.legend(fontsize=7)
    return ax
