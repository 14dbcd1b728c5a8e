r"""Regularization paths: solve C-ReLU / C-GReLU for a decreasing sequence of ``lam``.

For :math:`\lambda \ge \lambda_{\max}` the zero network is optimal, with

.. math::

    \lambda_{\max} = \max_i \big\|(D_i X_a)^\top \nabla_{\hat y}\,\ell(0, y)\big\|_2

(the dual point :math:`v = -\nabla\ell(0)` is feasible exactly up to there; for the squared loss
:math:`\nabla\ell(0) = -y`). This is the exact threshold of C-GReLU and a sufficient one for
C-ReLU (Mishkin, Sahiner & Pilanci, *Fast Convex Optimization for Two-Layer ReLU Networks*,
ICML 2022). :func:`path` starts just below it and decreases ``lam`` geometrically:

* interior point: **one** formulation is built; ``lam`` is its ``cp.Parameter``, so each new
  value only updates the parameter and re-solves (CVXPY reuses the compiled problem);
* first order: each solve is warm-started from the previous solution (weights, and the
  multipliers of the C-ReLU solvers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convexnn.arrangements.enumerate import enumerate_patterns
from convexnn.arrangements.patterns import Patterns
from convexnn.arrangements.sample import sample_patterns
from convexnn.data import add_bias, check_bool, check_lam, check_X, check_y
from convexnn.errors import InputError
from convexnn.formulations.formulation import ConvexSolution
from convexnn.formulations.losses import get_loss
from convexnn.formulations.penalties import get_penalty

__all__ = ["lam_max", "path", "PathResult"]


def resolve_patterns(Xc: np.ndarray, patterns: Any, bias: bool | None, seed: Any) -> Patterns:
    if isinstance(patterns, Patterns):
        if bias is not None and check_bool(bias, "bias") != patterns.bias:
            raise InputError(f"bias={bias} but the patterns were built with bias={patterns.bias}.")
        patterns.check(Xc)
        return patterns
    b = check_bool(bias, "bias") if bias is not None else False
    if patterns is None or patterns == "exact":
        return enumerate_patterns(Xc, bias=b)
    if isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        return sample_patterns(Xc, int(patterns), seed=seed, bias=b)
    raise InputError(f"patterns must be a Patterns object, None / 'exact' (enumerate every chamber) or an "
                     f"integer (number of sampled gates); got {patterns!r}.")


def lam_max(X: Any, y: Any, patterns: Patterns | int | str | None = None, *, loss: str = "squared",
            bias: bool | None = None, seed: Any = None, l1_ratio: float | None = None) -> float:
    r"""Smallest ``lam`` at which the zero network solves C-GReLU (and C-ReLU) with these patterns.

    .. math:: \lambda_{\max} = \max_{i,k} R^*\big((D_i X_a)^\top \nabla\ell(0, y_{:,k})\big)

    with :math:`R^* = \|\cdot\|_2` for the group lasso and the dual norm of the sparse group lasso
    with ``l1_ratio``.

    (maximum over outputs ``k`` for vector targets: with the group regularizer the outputs
    separate). Exact threshold for C-GReLU; for C-ReLU every ``lam >= lam_max`` gives the zero
    solution and the exact threshold can be smaller.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,) or (n, c)
    patterns : Patterns, None, "exact" or int
        ``None`` / ``"exact"``: enumerate every chamber (then the value is also the threshold
        of the network trained with weight decay over all gates); an integer samples that many
        gates (``seed``).
    loss : {"squared", "logistic"}
    bias : bool, optional
        Gates and weights act on ``[X, 1]``; default: the patterns' setting, else False.
    l1_ratio : float in [0, 1), optional
        The sparse-group first-layer penalty (:class:`~convexnn.SparseGroup`).

    Returns
    -------
    float
    """
    from convexnn.solvers.gap import lam_max as _lam_max

    Xc = check_X(X)
    L = get_loss(loss)
    if L.name not in ("squared", "logistic"):
        raise InputError(f"lam_max is defined here for the smooth losses 'squared' and 'logistic'; got {L.name!r}.")
    yc = check_y(y, Xc.shape[0], loss=L.name)
    pats = resolve_patterns(Xc, patterns, bias, seed)
    Xa = add_bias(Xc) if pats.bias else Xc
    Y = yc if yc.ndim == 2 else yc[:, None]
    pen = get_penalty(None, l1_ratio)
    return max(_lam_max(Xa, pats.masks, Y[:, k], L, pen) for k in range(Y.shape[1]))


def _zero_solution(f: Any, lam: float) -> ConvexSolution:
    r"""The zero solution for ``lam >= lam_max`` (optimal: zero duality gap with the dual point
    :math:`-\nabla\ell(0)`, which is feasible exactly when ``lam >= lam_max``)."""
    P, d = len(f.patterns), f.Xa.shape[1]
    shape = (P, d) if f.y.ndim == 1 else (P, d, f.y.shape[1])
    keys = f.weight_keys
    weights = {k: np.zeros(shape) for k in keys}
    value = float(f.loss.value(np.zeros_like(f.y), f.y))
    return ConvexSolution(formulation=f, weights=weights, value=value, status="optimal", solver="lam_max",
                          iterations=0, lam=lam, info={"method": "lam_max", "gap": 0.0, "zero_solution": True})


@dataclass
class PathResult:
    r"""A regularization path.

    Attributes
    ----------
    lams : ndarray, shape (k,)
        Decreasing regularization strengths.
    solutions : list of ConvexSolution
        One per ``lam``. They share one formulation (its ``lam`` parameter holds the last value);
        ``solution.lam`` is the value each one solved for.
    objectives, losses, regularizers : ndarray
        Optimal values and their two parts :math:`\ell(\hat y, y)` and :math:`\sum_i \|\cdot\|`.
    n_active : ndarray of int
        Neurons of the mapped network (nonzero blocks).
    gaps : ndarray
        Certified relative duality gaps (:func:`convexnn.duality_gap` at the dual point
        :math:`-\nabla\ell(\hat y)`, or the first-order solver's certificate); ``nan`` where none
        was computed.
    lam_max : float
    kind, method : str
    patterns : Patterns
    times : ndarray
        Seconds per solve (solver plus compilation).
    """

    lams: np.ndarray
    solutions: list[ConvexSolution]
    objectives: np.ndarray
    losses: np.ndarray
    regularizers: np.ndarray
    n_active: np.ndarray
    gaps: np.ndarray
    lam_max: float
    kind: str
    method: str
    patterns: Patterns
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return int(self.lams.size)

    def networks(self) -> list[Any]:
        """The mapped networks, one per ``lam``."""
        return [s.to_network() for s in self.solutions]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no weights)."""
        def fl(a: np.ndarray) -> list[Any]:
            return [None if not math.isfinite(float(v)) else float(v) for v in a]

        return {"kind": self.kind, "method": self.method, "lam_max": float(self.lam_max),
                "n_patterns": len(self.patterns), "exact_patterns": bool(self.patterns.exact),
                "lams": fl(self.lams), "objectives": fl(self.objectives), "losses": fl(self.losses),
                "regularizers": fl(self.regularizers), "n_active": [int(v) for v in self.n_active],
                "gaps": fl(self.gaps), "status": [s.status for s in self.solutions], "times": fl(self.times)}

    def plot(self, ax: Any = None) -> Any:
        """Plot the training loss and the number of active neurons against ``lam`` (log scale).

        Needs matplotlib (``pip install 'convexnn[plot]'``). Returns the axes.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("PathResult.plot needs matplotlib: pip install 'convexnn[plot]'.") from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        ax.semilogx(self.lams, self.losses, "o-", color="C0", label="training loss")
        ax.set_xlabel(r"$\lambda$")
        ax.set_ylabel("training loss", color="C0")
        ax2 = ax.twinx()
        ax2.semilogx(self.lams, self.n_active, "s--", color="C1", label="active neurons")
        ax2.set_ylabel("active neurons", color="C1")
        ax.axvline(self.lam_max, color="gray", lw=0.8, ls=":")
        ax.set_title(f"{self.kind} regularization path ({len(self.patterns)} patterns)")
        return ax

    def __repr__(self) -> str:
        return (f"PathResult({self.kind}, {len(self)} lams from {self.lams[0]:.3g} to {self.lams[-1]:.3g}, "
                f"lam_max={self.lam_max:.3g}, active neurons {int(self.n_active[0])} -> {int(self.n_active[-1])})")


def path(
    X: Any,
    y: Any,
    lams: Any = None,
    *,
    n_lams: int = 20,
    lam_min_ratio: float = 1e-3,
    patterns: Patterns | int | str | None = None,
    kind: str = "c_relu",
    loss: str = "squared",
    bias: bool | None = None,
    method: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    solver: str | None = None,
    device: str | None = None,
    seed: Any = None,
    gaps: bool = True,
    progress: bool = False,
    executor: Any = None,
    n_chunks: int | None = None,
    l1_ratio: float | None = None,
) -> PathResult:
    r"""Warm-started regularization path of C-ReLU or C-GReLU, from :func:`lam_max` down.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,) or (n, c)
    lams : array, optional
        Values of ``lam`` (solved in decreasing order). Default: ``n_lams`` values
        geometrically spaced from ``lam_max`` down to ``lam_min_ratio * lam_max``.
    n_lams : int
    lam_min_ratio : float in (0, 1)
    patterns : Patterns, None, "exact" or int
        ``None`` / ``"exact"`` enumerates every chamber (exact programs); an integer samples
        that many gates (``seed``).
    kind : {"c_relu", "c_grelu"}
    loss : {"squared", "logistic", "hinge"}
    bias : bool, optional
    method, tol, max_iter, solver, device
        Forwarded to :func:`convexnn.solve` (``method`` is resolved once, on the first ``lam``).
    gaps : bool
        Compute certified relative duality gaps for interior-point solves (scalar outputs,
        squared / logistic loss); first-order solves always carry theirs.
    progress : bool
        tqdm progress bar over the path (over the completed chunks with ``executor``).
    executor : None, "local", dask.distributed.Client, Dask cluster or scheduler address
        ``None`` (default): serial. Otherwise the grid is split into ``n_chunks`` contiguous
        chunks (default: one per worker thread), each solved on a Dask worker as its own
        warm-started path (:func:`convexnn.distributed.resolve_executor`). The solutions
        equal the serial path's up to the solver tolerance: first-order solves start each
        chunk cold, and each chunk compiles its own interior-point problem (re-solving a
        compiled problem with a new ``lam`` is not bit-identical to a fresh solve). With
        ``method="auto"`` each chunk picks the method at its first ``lam``; pass ``method``
        to solve every chunk as the serial path does. The solutions share one formulation
        built here.
    n_chunks : int, optional
        Number of chunks (tasks) with ``executor``.
    l1_ratio : float in [0, 1), optional
        Sparse-group first-layer penalty (:class:`~convexnn.SparseGroup`; feature selection along
        the path); ``lam_max`` uses its dual norm.

    Returns
    -------
    PathResult

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> rng = np.random.default_rng(0); X = rng.standard_normal((20, 2)); y = X[:, 0] ** 2
    >>> res = cx.path(X, y, n_lams=5, bias=True)
    >>> int(res.n_active[0]) == 0 and bool(np.all(np.diff(res.objectives) <= 1e-7))
    True
    """
    from tqdm.auto import tqdm

    from convexnn.duality.dual import duality_gap
    from convexnn.formulations.two_layer import c_grelu, c_relu
    from convexnn.solvers.dispatch import solve

    if kind not in ("c_relu", "c_grelu"):
        raise InputError(f"kind must be 'c_relu' or 'c_grelu'; got {kind!r}.")
    Xc = check_X(X)
    L = get_loss(loss)
    yc = check_y(y, Xc.shape[0], loss=L.name)
    pats = resolve_patterns(Xc, patterns, bias, seed)
    get_penalty(None, l1_ratio)  # validates l1_ratio
    lmax = (lam_max(Xc, yc, pats, loss=L.name, l1_ratio=l1_ratio) if L.name != "hinge" else float("nan"))
    if lams is None:
        if isinstance(n_lams, bool) or not isinstance(n_lams, (int, np.integer)) or n_lams < 1:
            raise InputError(f"n_lams must be a positive integer; got {n_lams!r}.")
        if not (isinstance(lam_min_ratio, (int, float)) and 0 < lam_min_ratio < 1):
            raise InputError(f"lam_min_ratio must be in (0, 1); got {lam_min_ratio!r}.")
        if not (math.isfinite(lmax) and lmax > 0):
            raise InputError("lams must be given for the hinge loss or when lam_max is 0 (y = 0); "
                             f"lam_max = {lmax}.")
        grid = np.geomspace(lmax, lmax * lam_min_ratio, int(n_lams))
    else:
        arr = np.atleast_1d(np.asarray(lams, dtype=object))  # each entry validated by check_lam
        if arr.ndim != 1 or arr.size == 0:
            raise InputError("lams must be a non-empty 1-D sequence of positive numbers.")
        grid = np.array(sorted((check_lam(v) for v in arr), reverse=True))
    if executor is not None:
        from convexnn.distributed import distributed_path

        return distributed_path(Xc, yc, grid, pats, lmax, kind=kind, loss=L, executor=executor, n_chunks=n_chunks,
                                progress=progress, opts={"method": method, "tol": tol, "max_iter": max_iter,
                                                         "solver": solver, "device": device, "gaps": gaps,
                                                         "l1_ratio": l1_ratio})
    build = c_relu if kind == "c_relu" else c_grelu
    f = build(Xc, yc, pats, float(grid[0]), loss=L, bias=pats.bias, l1_ratio=l1_ratio)
    sols: list[ConvexSolution] = []
    obj, los, reg, act, gap, times = [], [], [], [], [], []
    chosen = method
    prev: ConvexSolution | None = None
    for lam in tqdm(grid, desc=f"{kind} path", disable=not progress, unit="lam"):
        f.lam.value = float(lam)
        if lam >= lmax:  # exact: the dual point -grad l(0) is feasible, so zero is optimal
            sol = _zero_solution(f, float(lam))
        else:
            sol = solve(f, method=chosen, tol=tol, max_iter=max_iter, solver=solver, device=device,
                        warm_start=prev if chosen == "first_order" else None)
            chosen = sol.info.get("method", chosen)
        prev = sol
        fit = sol.fit
        g = sol.info.get("gap")
        if g is None and gaps and yc.ndim == 1 and L.name in ("squared", "logistic"):
            g = duality_gap(f, sol.weights, -L.grad(fit, yc)).rel_gap
        sols.append(sol)
        obj.append(sol.value)
        los.append(L.value(fit, yc))
        reg.append(f.regularizer(sol.weights))
        act.append(sol.to_network().n_neurons)
        gap.append(float("nan") if g is None else float(g))
        times.append(sol.solve_time + sol.compile_time)
    return PathResult(lams=grid, solutions=sols, objectives=np.array(obj), losses=np.array(los),
                      regularizers=np.array(reg), n_active=np.array(act, dtype=int), gaps=np.array(gap),
                      lam_max=lmax, kind=kind, method=str(chosen), patterns=pats, times=np.array(times))
