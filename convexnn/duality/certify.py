r"""Certificates of global optimality for *any* trained two-layer ReLU network.

Weak duality (Mishkin & Pilanci (ICML 2023); Ergen & Pilanci (ICML 2021) eq. (6) and Remark 3). For the network objective
:math:`F(W_1, w_2) = \ell(\hat y, y) + \frac{\lambda}{2}\sum_j(\|W_{1j}\|^2 + w_{2j}^2)` with
:math:`\hat y = \sum_j (X_a W_{1j})_+ w_{2j}` and any :math:`v \in \mathbb R^n` with

.. math::

    s(v) := \max_{\|u\|_2 \le 1,\ \sigma = \pm 1} \sigma\langle v, (X_a u)_+\rangle
          = \max_{i,\sigma} \max_{u \in \mathcal K_i, \|u\| \le 1} \sigma\langle X_a^\top D_i v, u\rangle
          \le \lambda ,

Fenchel-Young gives :math:`\ell(\hat y) \ge -\ell^*(-v) - \langle v, \hat y\rangle` and
:math:`\langle v, \hat y\rangle \le s(v)\sum_j \|W_{1j}\||w_{2j}| \le \frac{\lambda}{2}\sum_j(\|W_{1j}\|^2 + w_{2j}^2)`,
hence :math:`F(W_1, w_2) \ge -\ell^*(-v)` for **every** network of **every** width: the dual
objective of a dual-feasible :math:`v` is a lower bound on the global optimum. The middle
expression is exact when the patterns :math:`D_i` are all chambers of the arrangement
(:func:`convexnn.enumerate_patterns`); the inner maximum is the norm of a cone projection, one
NNLS each (see :func:`convexnn.duality._common.cone_support`).

Recipe of :func:`certify`: rebalance the neurons; take the dual candidate
:math:`v_0 = -\nabla\ell(\hat y)` (:math:`= y - \hat y` for the squared loss); compute
:math:`s(v_0)` and the most violated pattern; scale :math:`v_0` to feasibility and
optimize the scale (and a combination with the zero-network candidate :math:`-\nabla \ell(0)`)
for the best dual objective; report the gap. If :math:`s(v_0) > \lambda` the maximizing
:math:`(u, \sigma)` is an *improving neuron*: adding :math:`(\sqrt t\, u, \sigma\sqrt t)` lowers the
objective for small :math:`t > 0`, since the first-order change is
:math:`t\,(\lambda - \sigma\langle v_0, (X_a u)_+\rangle) < 0`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from convexnn.arrangements.patterns import Patterns
from convexnn.arrangements.patterns import design_matrix
from convexnn.certificate import Certificate as BaseCertificate
from convexnn.certificate import accepts_derived_values
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss
from convexnn.duality._common import (
    ConeSupport,
    NetworkArrays,
    as_network_arrays,
    best_scale,
    certified_dual_value,
    cone_support,
    global_support_bound,
    network_objective,
    network_predict,
    objective_error_bound,
    project_cone,
    rebalance,
    rebuild_network,
    validate,
)
from convexnn.duality.bounds import best_mixture, feasible_dual_value, row_norm_bounds
from convexnn.formulations.penalties import Penalty, get_penalty
from convexnn.rounding import gamma

__all__ = ["Certificate", "TwoLayerCertificate", "certify", "certified_lower_bound", "resolve_patterns"]

IMPROVE_RTOL = 1e-8  # an improving neuron must beat lam by this relative margin
#: without a complete pattern set, the final bound runs the branch and bound over all chambers
#: for at most this many seconds (``time_limit`` overrides it) when ``d'`` is at most BAB_MAX_DIM
BAB_TIME = 10.0
BAB_MAX_DIM = 8
#: seconds of the method="bab" certificate when no time_limit is given (its bound is valid when it stops);
#: pass time_limit=float("inf") to run until the tolerance is proven
BAB_DEFAULT_LIMIT = 60.0
_REFINE_BUDGET = 40000  # refinement working set: at most max(50, _REFINE_BUDGET // n) patterns


def resolve_patterns(X: np.ndarray, bias: bool, patterns: Patterns | None,
                     max_patterns: int | None = None, progress: bool | None = None) -> Patterns:
    """The exact patterns of ``X`` (``patterns=None``) or the validated given ones.

    Raises
    ------
    TooLargeError
        From :func:`convexnn.enumerate_patterns` when the exact set is too large to enumerate.
    InputError
        If given patterns were built for another ``X`` or bias setting.
    """
    if patterns is None:
        from convexnn.arrangements.enumerate import enumerate_patterns

        kwargs: dict[str, Any] = {"bias": bias, "progress": progress}
        if max_patterns is not None:
            kwargs["max_patterns"] = max_patterns
        return enumerate_patterns(X, **kwargs)
    if not isinstance(patterns, Patterns):
        raise InputError(f"patterns must be a convexnn.Patterns object or None; got {type(patterns).__name__}.")
    if patterns.bias != bias:
        raise InputError(f"the patterns have bias={patterns.bias} but the network has bias={bias}; "
                         "build the patterns with the same bias setting as the network.")
    patterns.check(X)
    return patterns


@accepts_derived_values
@dataclass(kw_only=True)
class TwoLayerCertificate(BaseCertificate):
    r"""The certificate of a two-layer ReLU network (:func:`certify`): a :class:`convexnn.Certificate`.

    ``gap``, ``rel_gap``, ``is_optimal``, ``verdict`` and the report are those of
    :class:`convexnn.Certificate` (defined there, once).

    Attributes
    ----------
    primal : float
        The network objective :math:`F(W_1, w_2)` of the network as given.
    primal_error : float
        A bound on the rounding error of ``primal`` (``0.0`` for the branch-and-bound path,
        which does not track it).
    primal_balanced : float
        The objective after rebalancing the neurons (:math:`\le` ``primal``, same predictions).
    lower_bound : float
        A valid lower bound on the global optimum over networks of any width (weak duality). With
        sampled patterns it uses the pattern-free bound of
        :func:`~convexnn.duality._common.global_support_bound`, so it is still valid.
    exact : bool
        True when the bound used a proven-complete pattern set (``patterns.exact``) or the
        branch and bound over all chambers (``method == "bab"``). Every ``lower_bound`` is valid
        over all chambers either way; ``bound_method`` says how it was obtained.
    bound_method : str
        ``"complete pattern set"``, ``"branch and bound over all chambers, capped by the
        pattern-free bound"`` (patterns not proven complete, small ``d'``) or ``"pattern-free
        bound"``.
    patterns_note : str or None
        Why the pattern set is not complete (sampled, or an enumeration that could not be
        proven complete and its reason).
    lam, rtol : float
    loss : Loss
    s : float
        :math:`s(v_0)` over the patterns used (:math:`v_0 = -\nabla\ell(\hat y)`); ``s > lam``
        means the dual constraint is violated and an improving neuron exists.
    s_valid : float
        The upper bound of :math:`s(v_0)` actually used (``= s`` when exact).
    estimate : float or None
        With sampled patterns: the dual objective obtained by trusting the sampled patterns (an
        *estimate* of the bound, not a proof). ``None`` when exact.
    violated_pattern : int or None
        Index (into ``patterns``) of the most violated pattern when ``s > lam``.
    violated_mask : ndarray of bool or None
    improving_sign : int or None
        ``+1`` / ``-1``: sign of the output weight of the improving neuron.
    improving_neuron : ndarray of shape (d',) or None
        Unit first-layer weight :math:`u` with :math:`\sigma\langle v_0, (X_a u)_+\rangle > \lambda`.
    improving_score : float or None
        :math:`\sigma\langle v_0, (X_a u)_+\rangle` for that ``u`` (compare with ``lam``).
    dual_point : ndarray, shape (n,)
        The scaled dual-feasible point whose dual objective is ``lower_bound``.
    n_patterns : int
    n_nnls : int
        NNLS problems solved for ``s(v0)`` and ``s(vz)`` (the rest were pruned by bounds).
    n_refine : int
        Refinement rounds actually run (restricted dual solves).
    time : float
        Seconds spent.
    network : NetworkArrays
        The certified network (arrays).
    method : str
        ``"enumerate"`` or ``"bab"``; ``nodes`` and ``bab_complete`` describe the branch and bound.
    sdp : SDPLowerBound or None
        The semidefinite relaxation's result when it ran (``method="bab"``; see
        :mod:`convexnn.duality.sdp`); ``bound_method`` says whether the lower bound came from it.
    """

    family: ClassVar[str] = "two-layer ReLU network"

    primal_balanced: float
    loss: Loss
    s: float
    s_valid: float
    estimate: float | None
    violated_pattern: int | None
    violated_mask: np.ndarray | None
    improving_sign: int | None
    improving_neuron: np.ndarray | None
    improving_score: float | None
    dual_point: np.ndarray
    n_patterns: int
    n_nnls: int
    n_refine: int
    time: float
    network: NetworkArrays
    _Xa: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    _y: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    method: str = "enumerate"
    nodes: int = 0
    bab_complete: bool | None = None
    bound_method: str = "complete pattern set"
    patterns_note: str | None = None
    sdp: Any = None

    # ------------------------------------------------------------------ improvement
    def improvement_step(self) -> tuple[float, float]:
        r"""Best step for adding the improving neuron: ``(t, new_objective)``.

        The new network appends the neuron :math:`(\sqrt t\,u, \sigma\sqrt t)` (balanced), so the
        objective becomes :math:`\phi(t) = \ell(\hat y + \sigma t a) + \lambda t + R` with
        :math:`a = (X_a u)_+` and :math:`R` the current weight decay. The step is found by a bounded line search on
        :math:`\phi` (for the squared loss its minimizer is
        :math:`t^\star = (\sigma\langle y - \hat y, a\rangle - \lambda)/\|a\|^2`). Raises :class:`InputError` if no
        improving neuron exists.
        """
        if self.improving_neuron is None:
            raise InputError("no improving neuron: the dual constraint is satisfied at the network's "
                             f"residual (s = {self.s:.6g} <= lam = {self.lam:.6g}).")
        net = self.network
        Xa, y, lam, L = self._Xa, self._y, self.lam, self.loss
        u, sig = self.improving_neuron, float(self.improving_sign)
        a = np.maximum(Xa @ u, 0.0)
        pred = network_predict(Xa, net.W1, net.w2)
        reg = 0.5 * (float(np.sum(net.W1 ** 2)) + float(np.sum(net.w2 ** 2)))

        def phi(t: float) -> float:
            return L.value(pred + sig * t * a, y) + lam * (reg + t)

        from scipy.optimize import minimize_scalar

        hi = 1.0
        while phi(2 * hi) < phi(hi) and hi < 1e12:
            hi *= 2
        t = float(minimize_scalar(phi, bounds=(0.0, 2 * hi), method="bounded",
                                  options={"xatol": 1e-12 * hi}).x)
        return t, phi(t)

    def improve(self) -> Any:
        """The network with the improving neuron appended at the best step (strictly lower objective).

        Returns a network of the same kind as the input (a convexnn network; a ``(W1, w2)`` tuple
        for arrays and torch modules).
        """
        t, _ = self.improvement_step()
        u, sig = self.improving_neuron, float(self.improving_sign)  # type: ignore[arg-type]
        W1 = np.hstack([self.network.W1, np.sqrt(t) * u[:, None]])
        w2 = np.append(self.network.w2, sig * np.sqrt(t))
        return rebuild_network(self.network, W1, w2)

    # ------------------------------------------------------------------ report
    def _details(self) -> list[str]:
        lines = [
            f"  after rebalancing            {self.primal_balanced:.10g}",
            f"  dual constraint s(v)/lam     {self.s / self.lam if self.lam else float('inf'):.6g}",
            f"  patterns                     {self.n_patterns} ({'complete: exact bound' if self.exact else 'SAMPLED'}), "
            f"{self.n_nnls} NNLS, {self.time:.3g} s",
        ]
        if self.method == "bab":
            lines[-1] = (f"  branch and bound             {self.nodes} boxes, "
                         f"{'complete' if self.bab_complete else 'stopped early (bound still valid)'}, "
                         f"s(v) <= {self.s_valid:.6g}, {self.time:.3g} s")
            if self.sdp is not None:
                lines.append(f"  semidefinite relaxation      lower bound {self.sdp.lower_bound:.10g} "
                             f"({self.sdp.time:.3g} s); bound from the {self.bound_method}")
        if not self.exact and self.method != "bab":
            lines[-1] = (f"  patterns                     {self.n_patterns} ({self.patterns_note or 'sampled'}), "
                         f"{self.n_nnls} NNLS, {self.time:.3g} s")
            lines.append(f"  NOTE: the patterns do not cover every chamber; the lower bound above is still valid "
                         f"over all chambers: it uses the {self.bound_method}")
            if self.estimate is not None:
                lines.append(f"        (estimate trusting the given patterns: {self.estimate:.10g}, not a bound)")
        if self.improving_neuron is not None and not self.is_optimal:
            t, newobj = self.improvement_step()
            lines.append(f"  most violated pattern        {'#' + str(self.violated_pattern) if self.violated_pattern is not None else '(found by search)'}, sign {self.improving_sign:+d}, "
                         f"score {self.improving_score:.6g} > lam {self.lam:.6g}")
            lines.append(f"  improving neuron             adding it with step t={t:.3g} lowers the objective to "
                         f"{newobj:.10g}")
        return lines


#: :class:`TwoLayerCertificate` under its module-level name (``convexnn.duality.Certificate``).
Certificate = TwoLayerCertificate


def certified_lower_bound(Xa: np.ndarray, masks: np.ndarray | None, loss: Loss, v: np.ndarray,
                          y: np.ndarray, lam: float, *, bab_time: float = 0.0,
                          progress: bool | None = None, penalty: Penalty | None = None,
                          multipliers: np.ndarray | None = None, projections: dict | None = None,
                          rtol: float = 0.0) -> tuple[float, np.ndarray]:
    r"""A rigorous lower bound on the global optimum from the dual candidate ``v`` (weak duality).

    1. ``v`` is moved into the conjugate's domain exactly (:math:`y_j v_j \in [0, 1]` for
       logistic and hinge; nothing for the squared loss);
    2. a *rigorous* upper bound :math:`S \ge s(v)` is computed once: over the complete pattern set ``masks``
       (:attr:`ConeSupport.valid`); without one (``masks=None``), the smaller of the
       pattern-free :func:`global_support_bound` and, when ``bab_time > 0``, the branch and bound
       over all chambers (:func:`convexnn.duality.bab.relu_dual_norm_bab`, at most ``bab_time``
       seconds; its bound is valid whenever it stops);
    3. the best scale :math:`c \le \lambda / (S + \text{rounding})` is taken and the dual objective
       :math:`-\ell^*(-c v)` evaluated with its rounding error subtracted
       (:func:`convexnn.duality.bounds.feasible_dual_value`).

    With a first-layer ``penalty`` :math:`R \ge \|\cdot\|_2` (sparse group lasso) the dual value is
    :math:`s_R(v) \le s(v)`: over a complete pattern set :math:`S` is the rigorous
    :func:`convexnn.duality.dual.relu_dual_value` (:math:`R^*` at cone multipliers), without one
    the Euclidean bounds above (valid, looser). Over ``masks``, ``multipliers`` (``(n, 2P)``, e.g. a
    solver's cone multipliers for ``v``, completed by the ``projections`` of
    :func:`~convexnn.duality.cones.cone_support`) are one more candidate per pattern and sign, and pairs within
    ``1 + rtol`` of the best value are bounded without their NNLS
    (:func:`~convexnn.duality.cones.cone_support`).

    Returns ``(bound, dual_point)``; the bound is valid for the float64 data as given.
    """
    v = loss.project_dual(np.asarray(v, dtype=np.float64), y)
    if not np.any(v):
        return certified_dual_value(loss, v, y), v
    pen = get_penalty(penalty)
    if masks is not None and not pen.group_l2:
        from convexnn.duality.dual import relu_dual_value

        S = relu_dual_value(Xa, masks, v, pen, rigorous=True, multipliers=multipliers).value
    elif masks is not None:
        S = cone_support(Xa, masks, v, multipliers=multipliers, projections=projections, rtol=rtol).valid
    else:
        S = global_support_bound(Xa, v)
        if bab_time > 0 and S > lam:
            from convexnn.duality.bab import relu_dual_norm_bab

            r = relu_dual_norm_bab(Xa, v, threshold=lam, rtol=1e-9, time_limit=bab_time, progress=progress)
            S = min(S, r.upper)
    # one rigorous s(v); the scaled point's rounding is covered by sublinearity
    return feasible_dual_value(loss, v, y, lam, S, row_norm_bounds(Xa))


def _pattern_values(Xa: np.ndarray, masks: np.ndarray, v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    r"""Exact :math:`\max_\sigma\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|` for the patterns ``idx`` (NNLS)."""
    out = np.empty(len(idx))
    for k, i in enumerate(idx):
        m = np.asarray(masks[:, i], dtype=bool)
        g = Xa.T @ np.where(m, v, 0.0)
        sg = np.where(m, 1.0, -1.0)
        out[k] = max(float(np.linalg.norm(project_cone(Xa, sg, g)[0])),
                     float(np.linalg.norm(project_cone(Xa, sg, -g)[0])))
    return out


def _network_pattern_index(pats: Patterns, Xa: np.ndarray, W1: np.ndarray) -> np.ndarray:
    """Indices (into ``pats``) of the activation patterns of the network's neurons that ``pats`` holds."""
    if W1.shape[1] == 0 or len(pats) == 0:
        return np.zeros(0, np.int64)
    q = np.packbits((Xa @ W1 >= 0).T, axis=1)
    width = pats.packed.shape[1]
    mine = np.ascontiguousarray(pats.packed).view(np.dtype((np.void, width))).ravel()
    theirs = np.ascontiguousarray(q).view(np.dtype((np.void, width))).ravel()
    pos = np.searchsorted(mine, theirs)
    pos = np.minimum(pos, len(mine) - 1)
    return np.unique(pos[mine[pos] == theirs])


def _refine(Xa: np.ndarray, y: np.ndarray, masks: np.ndarray, lam: float, L: Loss, v0: np.ndarray,
            cs0: ConeSupport, lower: float, vbest: np.ndarray, rounds: int,
            seed: np.ndarray | None = None) -> tuple[float, np.ndarray, int]:
    """Cutting-plane refinement of the dual point (see :func:`certify`, ``refine``).

    Working set: the patterns of the network's own neurons (``seed``: by complementary
    slackness their dual constraints are the active ones at an optimum, whatever subgradient
    ``v0`` picks for a non-smooth loss) and the patterns whose dual constraint at ``v0`` is
    within 0.1% of active (exact values, computed only where the cheap bound allows it), at
    most ``max(50, 40000 // n)``;
    each round solves the dual restricted to the working set with Clarabel, rescales the
    solution into the feasible set of all patterns (exact ``s``), and adds the patterns it
    violates.
    """
    import cvxpy as cp

    from convexnn.duality.dual import build_dual

    n, P = masks.shape
    kmax = max(50, _REFINE_BUDGET // max(n, 1))
    ncand = 20000

    def near(bounds: np.ndarray, v: np.ndarray, level: float, exclude: np.ndarray) -> np.ndarray:
        cand = np.flatnonzero((bounds >= level) & ~exclude)
        if cand.size > ncand:
            cand = cand[np.argsort(-bounds[cand])[:ncand]]
        vals = _pattern_values(Xa, masks, v, cand)
        keep = vals >= level
        return cand[keep][np.argsort(-vals[keep])]

    chosen = np.zeros(P, dtype=bool)
    if seed is not None and seed.size:
        chosen[seed[:kmax]] = True
    first = near(cs0.bounds, v0, lam * (1 - 1e-3), chosen)[:kmax]
    chosen[first] = True
    if not chosen.any():
        return lower, vbest, 0
    done = 0
    for _ in range(rounds):
        D = build_dual(Xa, y, masks[:, chosen], lam, L, cones=True)
        try:
            with warnings.catch_warnings():  # an inaccurate solve is harmless: the bound is re-derived
                warnings.simplefilter("ignore", UserWarning)
                D.solve(solver=cp.CLARABEL)
        except (cp.error.SolverError, ValueError, ArithmeticError):
            break
        done += 1
        if D.v.value is None or not np.all(np.isfinite(D.v.value)):
            break
        v1 = np.asarray(D.v.value, dtype=np.float64)
        v1 = L.project_dual(v1, y)  # the solver's point can leave the conjugate's domain by rounding
        cs1 = cone_support(Xa, masks, v1)
        if cs1.value <= 0:
            break
        c, val = best_scale(L, v1, y, lam / cs1.value)
        if val > lower:
            lower, vbest = val, c * v1
        if cs1.value <= lam * (1 + 1e-9):
            break
        add = near(cs1.bounds, v1, lam * (1 + 1e-9), chosen)[: max(kmax // 2, 1)]
        if add.size == 0:
            break
        chosen[add] = True
    return lower, vbest, done


def certify(
    network: Any,
    X: Any,
    y: Any,
    lam: float | None = None,
    *,
    loss: str | Loss = "squared",
    patterns: Patterns | None = None,
    rtol: float = 1e-6,
    max_patterns: int = 10**6,
    refine: int = 3,
    weight_decay: float | None = None,
    reduction: str = "mean",
    method: str = "auto",
    time_limit: float | None = None,
    progress: bool | None = None,
    penalty: str | Penalty | None = None,
    sdp: bool | None = None,
) -> TwoLayerCertificate:
    r"""Certify (or refute) the global optimality of a trained two-layer ReLU network.

    Parameters
    ----------
    network : TwoLayerReLU, tuple (W1, w2), or torch module
        ``W1`` of shape ``(d', m)`` (``d' = d + 1`` when it has a hidden bias), ``w2`` of shape
        ``(m,)``; or a torch ``Linear(d, m) -> ReLU -> Linear(m, 1, bias=False)`` module.
    X : array, shape (n, d)
    y : array, shape (n,)
    lam : float
        Weight decay, in the convention :math:`\frac{\lambda}{2}\sum_j(\|W_{1j}\|^2 + w_{2j}^2)`.
        Give either ``lam`` or ``weight_decay``.
    weight_decay, reduction : float, {"mean", "sum"}
        The PyTorch hyper-parameters instead of ``lam``: ``lam =
        convexnn.lam_from_torch(weight_decay, len(X), reduction, loss=loss)`` (``MSELoss(reduction="mean")``
        with coupled weight decay gives ``lam = n * weight_decay / 2``). The certificate then refers
        to the objective that was trained: ``rel_gap`` and ``is_optimal`` are the same, and
        ``primal`` / ``lower_bound`` times :func:`convexnn.torch_objective_scale` are in the
        units of the PyTorch objective.
    loss : {"squared", "logistic", "hinge"} or Loss
    patterns : Patterns, optional
        ``None`` (default): enumerate all chambers exactly (raises
        :class:`~convexnn.errors.TooLargeError` when too many). A sampled set is accepted; then
        ``exact=False`` and the lower bound uses the pattern-free bound
        :math:`s(v) \le \min(\|v_\pm\|\sigma_{\max}(X_a), \sum_j (v_j)_\pm\|x_j\|)` (valid, looser).
    rtol : float
        Relative gap below which the network is declared globally optimal.
    max_patterns : int
        Largest exact pattern set to enumerate (forwarded to :func:`convexnn.enumerate_patterns`,
        which raises :class:`~convexnn.errors.TooLargeError` with the estimate beyond it).
    refine : int
        Rounds of dual refinement (exact patterns only; 0 disables): solve the dual restricted to
        the patterns whose dual constraints are nearly active at the network's residual (at most
        ``max(50, 40000 // n)``), rescale the solution into the feasible set of **all** patterns,
        add the patterns it violates, repeat. Each round is a cutting-plane step; the bound stays
        valid whatever the restricted solve returns, and it tightens the certificate from the
        accuracy of the network's residual to that of the solver (and, for a network far from
        optimal, towards the global optimum itself).
    method : {"auto", "enumerate", "bab"}
        ``"enumerate"``: the exact chambers (or the given ``patterns``); ``"bab"``: branch and bound
        over all chambers without enumeration (:func:`convexnn.duality.certify_bab.certify_bab`,
        ``Certificate.method == "bab"``, a proof whether or not it completes); ``"auto"``:
        enumerate when ``patterns`` is given or the estimated number of chambers is at most
        ``max_patterns``, else branch and bound.
    time_limit : float, optional
        Seconds for the branch and bound (its bound is valid when it stops). Default: 60 s for
        ``method="bab"`` (:data:`BAB_DEFAULT_LIMIT`; ``float("inf")`` runs until ``rtol`` is
        proven) and 10 s for the final bound over incomplete pattern sets (:data:`BAB_TIME`).
    progress : bool, optional
        tqdm progress bars of the enumeration and of the branch and bound (with the current
        bound and gap); ``None`` shows them for long runs on a terminal.
    penalty : {"group_l2", "sparse_group"} or Penalty, optional
        First-layer norm :math:`R` of the weight decay :math:`\tfrac\lambda2\sum_j(R(W_{1j})^2 +
        w_{2j}^2)` (default: the network's ``penalty`` attribute, else :math:`\|\cdot\|_2`). The
        dual constraint becomes :math:`s_R(v) \le \lambda` (:func:`certified_lower_bound`);
        ``method="bab"`` supports the default only.
    sdp : bool, optional
        ``method="bab"`` only: also bound by the semidefinite relaxation of the dual constraint
        (:mod:`convexnn.duality.sdp`; default: for input dimension :math:`d' \ge 7`, where it is
        the tighter bound within minutes).

    Returns
    -------
    TwoLayerCertificate

    Notes
    -----
    The lower bound is valid whatever the accuracy of the NNLS solves: every computed
    :math:`s(v)` is an upper bound of the true maximum (see :mod:`convexnn.duality._common`).
    Complexity: one ``(n, d') x (d', P)`` product for the cheap bounds, then one NNLS of size
    ``d' x n`` per pattern that the bounds cannot discard.
    """
    t0 = time.perf_counter()
    if weight_decay is not None or lam is None:
        from convexnn.torch_interop import resolve_lam

        lam = resolve_lam(lam, weight_decay, reduction, X, loss)
    Xc, yc, lam, L = validate(X, y, lam, loss)
    net = as_network_arrays(network, Xc.shape[1], Xc)
    pen = get_penalty(getattr(network, "penalty", None) if penalty is None else penalty)
    if not 0 < rtol < 1:
        raise InputError(f"rtol must be in (0, 1); got {rtol}.")
    if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
        raise InputError(f"refine must be a nonnegative integer; got {refine!r}.")
    Xa = design_matrix(Xc, net.bias)
    if method not in ("auto", "enumerate", "bab"):
        raise InputError(f"method must be 'auto', 'enumerate' or 'bab'; got {method!r}.")
    if method == "bab" and patterns is not None:
        raise InputError("method='bab' covers all chambers without patterns; pass patterns=None.")
    if method == "auto" and patterns is None:
        from convexnn.errors import TooLargeError

        try:
            pats = resolve_patterns(Xc, net.bias, patterns, max_patterns, progress)
        except TooLargeError:
            method = "bab"
    if method == "bab" and not pen.group_l2:
        raise InputError(f"the branch-and-bound certificate covers the group_l2 weight decay only, not the "
                         f"{pen.name!r} penalty; pass a complete pattern set (patterns=None with "
                         "enumerable data, or enumerate_patterns(X)).")
    if method == "bab":
        from convexnn.duality.certify_bab import certify_bab

        return certify_bab(network, Xc, yc, lam, loss=L, rtol=rtol,
                           time_limit=BAB_DEFAULT_LIMIT if time_limit is None else time_limit, progress=progress,
                           sdp=sdp)
    if method != "auto" or patterns is not None:
        pats = resolve_patterns(Xc, net.bias, patterns, max_patterns, progress)
    masks = pats.masks
    exact = bool(pats.exact)

    with np.errstate(over="ignore", invalid="ignore"):
        primal = network_objective(Xa, yc, net.W1, net.w2, lam, L, pen)
        big = np.float64(np.max(np.abs(Xa))) ** 2 * Xa.size * max(float(np.max(np.abs(yc), initial=1.0)), 1.0)
    if not (np.isfinite(primal) and np.isfinite(big)):
        raise InputError("the certificate's products overflow float64 (|X| up to "
                         f"{float(np.max(np.abs(Xa))):.3g}, objective {primal:.3g}); rescale X, y and the "
                         "network (the arrangement and the ratio of objectives are scale-invariant).")
    W1b, w2b = rebalance(net.W1, net.w2, pen)
    primal_bal = network_objective(Xa, yc, W1b, w2b, lam, L, pen)
    pred = network_predict(Xa, net.W1, net.w2)

    v0 = -L.grad(pred, yc)  # dual candidate at the network's fit
    vz = -L.grad(np.zeros_like(yc), yc)  # dual candidate of the zero network
    cs0: ConeSupport = cone_support(Xa, masks, v0)
    csz: ConeSupport = cone_support(Xa, masks, vz)
    s0, sz = cs0.value, csz.value
    # the dual point is chosen with the patterns at hand; the bound is re-derived rigorously below
    s0v, szv = s0, sz
    # the best combination of the two candidates by sublinearity of s (bounds.best_mixture), with the
    # values of s over the patterns at hand: an estimate when they are not complete
    norms = row_norm_bounds(Xa)
    lower, vbest = best_mixture(L, v0, s0v, vz, szv, yc, lam, norms)
    if not np.isfinite(lower):  # no candidate with a positive, finite s: the zero point
        lower, vbest = float(L.dual_value(0 * v0, yc)), 0 * v0
    estimate = None if exact else lower
    # the sublinear bound is pessimistic for the mixture; rescale with its own s
    if np.any(vbest):
        sb = cone_support(Xa, masks, vbest).value
        if sb > 0:
            c, val = best_scale(L, vbest, yc, lam / sb)
            if val > lower:
                lower, vbest = val, c * vbest
    n_refine = 0
    if refine > 0 and (exact or pats.kind == "exact") and pen.group_l2:
        seed = _network_pattern_index(pats, Xa, W1b[:, np.abs(w2b) > 0])
        lower, vbest, n_refine = _refine(Xa, yc, masks, lam, L, v0, cs0, lower, vbest, refine, seed)
    # the proof: re-derive the bound for the final dual point with every rounding error counted;
    # without a complete pattern set the dual constraint is bounded over all chambers by the
    # branch and bound (useful for small d') and the pattern-free bound
    bab_time = 0.0
    if not exact and Xa.shape[1] <= BAB_MAX_DIM:
        bab_time = BAB_TIME if time_limit is None else float(time_limit)
    lower, vbest = certified_lower_bound(Xa, masks if exact else None, L, vbest, yc, lam, bab_time=bab_time,
                                         progress=progress, penalty=pen)
    bound_method = ("complete pattern set" if exact else
                    "branch and bound over all chambers, capped by the pattern-free bound" if bab_time > 0
                    else "pattern-free bound")
    if exact:
        patterns_note = None
    elif pats.kind == "exact":
        patterns_note = f"enumeration not proven complete: {pats.reason}"
    else:
        patterns_note = f"{pats.kind}, not a complete set"
    err_primal = objective_error_bound(Xa, yc, net.W1, net.w2, lam, L)
    if not pen.group_l2:  # rounding of (1/2) sum_j R(W1_j)^2: gamma(2 d' + m + 16) relative
        err_primal += lam * pen.network_value(net.W1, net.w2) * gamma(2 * Xa.shape[1] + net.W1.shape[1] + 16)

    cert = TwoLayerCertificate(
        primal=primal, primal_error=err_primal, primal_balanced=primal_bal, lower_bound=float(lower),
        exact=exact, lam=lam, rtol=rtol, loss=L, s=s0, s_valid=s0v,
        estimate=estimate, dual_point=vbest, n_patterns=len(pats),
        n_nnls=cs0.n_nnls + csz.n_nnls, n_refine=n_refine, time=0.0, network=net, _Xa=Xa, _y=yc,
        bound_method=bound_method, patterns_note=patterns_note,
        violated_pattern=None, violated_mask=None, improving_sign=None, improving_neuron=None, improving_score=None,
    )
    # improving neuron: the maximizer of the most violated dual constraint, kept only when adding it
    # lowers the objective by more than the rounding error of both objective values
    if not pen.group_l2:
        cert.note = (f"first-layer penalty {pen.name!r}: the dual constraint uses s_R(v) <= s(v), bounded "
                     "by the dual norm R* at cone multipliers over a complete pattern set (else by the "
                     "Euclidean s(v)); no refinement rounds and no improving-neuron search")
    if pen.group_l2 and s0 > lam * (1 + IMPROVE_RTOL) and cs0.index >= 0:
        q = cs0.direction
        nq = float(np.linalg.norm(q))
        if nq > 0:
            uu = q / nq
            sc = cs0.sign * float(v0 @ np.maximum(Xa @ uu, 0.0))
            if sc > lam * (1 + IMPROVE_RTOL):
                cert.violated_pattern, cert.violated_mask = cs0.index, np.array(masks[:, cs0.index])
                cert.improving_sign, cert.improving_neuron, cert.improving_score = cs0.sign, uu, sc
                t, new_obj = cert.improvement_step()
                W1n = np.hstack([net.W1, np.sqrt(t) * uu[:, None]])
                w2n = np.append(net.w2, cs0.sign * np.sqrt(t))
                noise = err_primal + objective_error_bound(Xa, yc, W1n, w2n, lam, L)
                if not new_obj < primal - noise:  # no decrease beyond rounding: not a refutation
                    cert.improving_sign = cert.improving_neuron = cert.improving_score = None
                    cert.violated_pattern = cert.violated_mask = None
                    cert.note = (f"the most violated dual constraint (score {sc:.6g} vs lam {lam:.6g}) "
                                 f"changes the objective by {primal - new_obj:.3g}, within its rounding "
                                 f"error {noise:.3g}: neither a refutation nor a proof")
    cert.time = time.perf_counter() - t0
    return cert
