r"""The certified global optimum of two-layer ReLU training, by column generation over chambers.

Training a two-layer ReLU network with weight decay,

.. math::

    \min_{m, W_1, w_2}\ \ell\Big(\sum_j (X_a W_{1j})_+ w_{2j},\ y\Big)
    + \frac{\lambda}{2}\sum_j\big(\|W_{1j}\|_2^2 + w_{2j}^2\big),

has the same optimal value as the C-ReLU program over **all** chambers of the arrangement of
:math:`X_a` (Pilanci & Ergen, "Neural Networks are Convex Regularizers", ICML 2020), which is
far too large to write down on real data. :func:`solve_global` solves it by column generation:

1. solve C-ReLU restricted to a working set of chambers (random gates to start) with the
   active-set solver (:func:`convexnn.solvers.active_set.solve_relu_active_set`, Clarabel);
2. *price* all chambers at once with the branch and bound of
   :func:`convexnn.duality.bab.relu_dual_norm_bab` applied to :math:`v = -\nabla\ell(\hat y)`:
   every chamber with :math:`\|\Pi_{\mathcal K_i}(\pm X_a^\top D_i v)\| > \lambda` is a violated
   dual constraint (Mishkin & Pilanci, "Optimal Sets and Solution Paths of ReLU Networks",
   ICML 2023), found as a unit :math:`u` whose pattern :math:`\mathbf 1[X_a u \ge 0]` joins the
   working set; a local ascent over adjacent chambers
   (:func:`convexnn.duality.bab.chamber_ascent`) from the network's neurons and the last
   violators adds the violated neighbours of the active chambers, which the search's box centres
   rarely hit;
3. stop when the search proves that :math:`v` scaled by :math:`\lambda / U` is dual feasible over
   every chamber with a dual value within ``rtol`` of the network's objective.

While the ascent finds a chamber of value :math:`s_0 > T` (the level that would certify
``rtol``), no proof is possible at this :math:`v`; the search then proves the weaker bound
:math:`U \le \max(s_0 (1 + \mathrm{rtol}),\ \lambda + 1.5 (s_0 - \lambda))` on a box budget, which gives
an anytime lower bound of about the current suboptimality. Such proofs at dual points that will
not be the last take at most about half the time: the rounds between them (*scout* rounds) add
the ascent's violators only (it starts from the best of 16,384 random directions as well), so
the primal side gets about twice the rounds; a scout round whose violators are all known chambers
searches after all. The last search before ``time_limit`` gets all the time left and the level
:math:`\max(T, s_0(1 + \mathrm{rtol}))`, as does every search that is cheap next to its round's
restricted solve (small :math:`d'`); when a search on a budget leaves less time than a restricted
solve, the time left goes to such a last search at that round's dual point. The restricted solves are certified to a fraction of the
current global gap (down to ``rtol / 100``): a tighter solve on a working set that will change
again costs repeated interior-point solves at its accuracy floor. None of this schedule touches
the proof: each lower bound comes from a completed or interrupted search, valid either way, and
the schedule depends on the measured times. After the first restricted solve, a
local descent of the non-convex objective (L-BFGS, :func:`convexnn.networks.two_layer.descend`)
from its network and random neurons moves every neuron across chambers at once; the chambers of
the descended neurons join the working set (that first residual is not priced). Column generation alone adds a few
chambers per round and needs many rounds to reach the same objective (``bench/RESULTS_bab.md``).
Every later round descends again, from the restricted optimum's network (a stationary point of
the non-convex objective: alone it does not move) and fresh random neurons, and the chambers of
the largest descended neurons join with the round's violators: the pricing finds the most
violated chambers of the current residual, the descent the chambers that a better network
occupies, and the column generation's slow tail (each round's restricted optimum missing the
chambers next to its neurons) shortens.

The lower bound is weak duality with the rigorous :math:`U \ge s(v)`, so the returned gap is a
proof over networks of every width; the network is the C -> NC mapping of the restricted
solution, and its objective is evaluated directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convexnn.arrangements.facets import ChamberFacets
from convexnn.arrangements.patterns import Patterns, design_matrix
from convexnn.duality._common import network_objective, validate
from convexnn.duality.bab import chamber_ascent, relu_dual_norm_bab
from convexnn.duality.bounds import best_mixture, feasible_dual_value, row_norm_bounds
from convexnn.duality.certify_bab import SDP_MIN_DIM, SDP_SHARE, needed_threshold
from convexnn.duality.sdp import relaxation_bound
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss
from convexnn.networks.two_layer import TwoLayerReLU, descend

__all__ = ["GlobalOptimum", "solve_global"]


@dataclass
class GlobalOptimum:
    r"""Result of :func:`solve_global`.

    Attributes
    ----------
    network : TwoLayerReLU
        The trained network (one neuron per nonzero block of the convex solution).
    solution : ConvexSolution
        The C-ReLU solution restricted to ``patterns`` (``solution.weights["V"]``, ``["W"]``).
    patterns : Patterns
        The final working set of chambers.
    objective : float
        The network's objective :math:`F(W_1, w_2)`, evaluated directly.
    lower_bound : float
        A rigorous lower bound on the global optimum over all widths.
    gap, rel_gap : float
        ``objective - lower_bound`` (at least 0) and ``gap / |objective|``.
    certified : bool
        ``rel_gap <= rtol``: the network is globally optimal up to ``rtol`` (a proof).
    rounds : int
        Restricted solves.
    nodes : int
        Boxes explored by the pricing searches together.
    time : float
    reason : str
        ``"certified"``, ``"time_limit"``, ``"max_rounds"`` or ``"no_new_chamber"``.
    history : list of dict
        Per round: objective, lower bound, working-set size, s(v) enclosure, nodes, seconds since
        the start (``time``) and of the round's restricted solve, ascent and search (``solve_time``,
        ``ascent_time``, ``search_time``) and local descent (``descent_time``). The first round,
        with the longer local descent, is not priced (s(v) enclosure NaN, 0 nodes) and also records
        ``descent_objective``.
        Scout rounds (no search) record the ascent's best value as ``s_lower``, ``s_upper`` NaN and
        0 nodes; a scout round that searches after all has a second entry with the same ``round``.
    dual_point : ndarray, shape (n,)
        The dual-feasible point (over every chamber) whose certified dual value is
        ``lower_bound``.
    """

    network: Any
    solution: Any
    patterns: Patterns
    objective: float
    lower_bound: float
    gap: float
    rel_gap: float
    certified: bool
    rounds: int
    nodes: int
    time: float
    reason: str
    history: list[dict[str, float]] = field(default_factory=list)
    dual_point: np.ndarray | None = None

    def __str__(self) -> str:
        return (f"global optimum of two-layer ReLU training: objective {self.objective:.10g}, lower bound "
                f"{self.lower_bound:.10g}, rel gap {self.rel_gap:.3g} "
                f"({'CERTIFIED' if self.certified else 'not certified: ' + self.reason}); "
                f"{self.network.W1.shape[1]} neurons, {len(self.patterns)} chambers, {self.rounds} rounds, "
                f"{self.nodes} boxes, {self.time:.3g} s")


def _network(V: np.ndarray, W: np.ndarray, bias: bool) -> Any:
    """The C -> NC map of the restricted C-ReLU solution: one neuron per nonzero block."""
    from convexnn.formulations.blocks import group_neurons

    (cv, ov), (cw, ow) = group_neurons(V, 1.0, 0.0), group_neurons(W, -1.0, 0.0)
    if cv.shape[1] + cw.shape[1] == 0:
        return TwoLayerReLU(np.zeros((V.shape[1], 1)), np.zeros(1), bias=bias)
    return TwoLayerReLU(np.hstack([cv, cw]), np.concatenate([ov, ow]), bias=bias)


def _ascent_starts(Xa: np.ndarray, v: np.ndarray, net: Any, found: Any, U0: np.ndarray,
                   per_sign: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Starts of the pricing ascent: neurons, last violators, best random units and the two gradients."""
    g0 = Xa.T @ v
    starts = [net.W1.T, g0[None, :], -g0[None, :]]
    signs = [np.sign(net.w2).astype(int), np.array([1]), np.array([-1])]
    if found is not None:
        starts.append(found[0])
        signs.append(found[1])
    chunk = max(1, 2_000_000 // Xa.shape[0])
    F0 = np.concatenate([np.maximum(U0[i:i + chunk] @ Xa.T, 0.0) @ v for i in range(0, U0.shape[0], chunk)])
    for sig in (1, -1):
        k = np.argsort(-sig * F0)[:per_sign]
        starts.append(U0[k])
        signs.append(np.full(len(k), sig))
    S, s = np.vstack(starts), np.concatenate(signs)
    keep = (s != 0) & np.any(S != 0, axis=1)
    return S[keep], s[keep]


#: boxes x n x d' of a pricing search in a round whose ascent already found a violator above the
#: certification threshold (no proof of ``rtol`` is possible at that dual point: the search proves
#: a bound a little above the violation and finds the violators the ascent misses); a box costs
#: O(n d') (400,000 boxes at n = 500, d' = 5; 57,000 at n = 569, d' = 31); it doubles after every
#: search that it stopped
PRICING_WORK = 1e9
#: certified relative gap of the restricted solves: ``RESTRICTED_FRACTION`` times the certified
#: global gap of the last round, between ``RESTRICTED_RTOL`` times ``rtol`` and ``RESTRICTED_MAX``
#: (a tighter one costs repeated solves at the interior point's accuracy floor while the working
#: set still changes: synthetic n = 2000, d' = 3)
RESTRICTED_RTOL = 1e-2
RESTRICTED_FRACTION = 1e-2
RESTRICTED_MAX = 1e-4
#: a round whose ascent found a violator above the certification threshold runs the search (a
#: proof at its dual point) only when the time since the last search ended is at least
#: ``PROOF_SPACING`` times the time that search took; the other rounds (*scout* rounds) add the
#: ascent's violators only, and search after all when those are all known chambers
PROOF_SPACING = 1.0
#: the search of a round is the last one before the time limit, and gets all the time left, the
#: tightest level and no stop at violators, when the time left is below ``FINAL_FACTOR`` times the
#: round's restricted solve and ascent plus the last search
FINAL_FACTOR = 2.0
#: seconds left at least for the last search at the last round's dual point, when the time left
#: does not fit another restricted solve (and that round's search was not the final one)
FINAL_MIN_SECONDS = 0.5
#: the tightest level also when the last search took less than ``TIGHT_FACTOR`` times its round's
#: restricted solve and ascent (cheap searches: small d')
TIGHT_FACTOR = 1.0
#: random unit directions of the ascent's starts (``ASCENT_POOL``); it ascends from the best
#: ``ASCENT_WORK / (n d')`` of them per output sign (between 4 and ``ASCENT_STARTS``): at d' = 6
#: the best random directions reach violators within 0.1 % of the search's, at a tenth of its time
ASCENT_POOL = 16384
ASCENT_STARTS = 64
ASCENT_WORK = 1e5
#: chambers of the ascent's best local maxima that join per round (next to the search's violators)
ASCENT_ADD = 12


#: neurons x d' of the local descent at most: every descended neuron's chamber joins the working
#: set, and the restricted solves cost about (blocks x d')^3 (breast cancer, d' = 31: 330 neurons
#: made the next restricted solve take 90 s)
DESCENT_SIZE = 4000
#: the later rounds' local descents: L-BFGS iterations, and the chambers of the largest descended
#: neurons (by |w_2| ||w_1||) not yet in the working set that join per round
ROUND_DESCENT_ITER = 300
ROUND_DESCENT_ADD = 100


def _descent_start(Xa: np.ndarray, y: np.ndarray, net: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Start of the local descent: the network's neurons and ``max(32, 2 m)`` random neurons (unit
    directions over the rows' rms norm, outputs of the size of ``std(y) / sqrt(m)``), at most
    :data:`DESCENT_SIZE` / d' neurons in all."""
    W1, w2 = net.W1, net.w2
    dp, m = W1.shape
    m0 = max(0, min(max(32, 2 * m), DESCENT_SIZE // dp - m))
    G = rng.standard_normal((dp, m0))
    G /= np.linalg.norm(G, axis=0) * max(float(np.sqrt(np.mean(np.sum(Xa * Xa, axis=1)))), 1e-300)
    a = max(float(np.std(y)), 1e-3) * rng.standard_normal(m0) / np.sqrt(m0)
    return np.hstack([W1, G]), np.concatenate([w2, a])


def _unseen(candidates: Any, Xa: np.ndarray, keys: set, limit: int | None = None) -> list:
    r"""The gates among ``candidates`` whose chambers :math:`\mathbf 1[X_a g \ge 0]` are not yet in
    ``keys`` (updated), the first ``limit`` of them at most (the chambers of the others stay unseen)."""
    new = []
    for g in candidates:
        if limit is not None and len(new) >= limit:
            break
        key = np.packbits(Xa @ g >= 0).tobytes()
        if key not in keys:
            keys.add(key)
            new.append(g)
    return new


def _descended_chambers(Xa: np.ndarray, y: np.ndarray, net: Any, lam: float, loss: Loss, keys: set,
                        rng: np.random.Generator, max_iter: int, limit: int | None,
                        deadline: float | None) -> tuple[list, float]:
    r"""A local descent of the non-convex objective from ``net`` and random neurons
    (:func:`_descent_start`): the gates of the unseen chambers of its neurons, largest
    :math:`|w_2|\,\|w_1\|` first (``limit`` of them at most), and the descended objective."""
    W1d, w2d, fd = descend(Xa, y, *_descent_start(Xa, y, net, rng), lam, loss, max_iter=max_iter, deadline=deadline)
    size = np.abs(w2d) * np.linalg.norm(W1d, axis=0)
    order = np.argsort(-size, kind="stable")
    return _unseen(W1d.T[order[size[order] > 0]], Xa, keys, limit), fd


def _new_gates(violations: list, level: float, Xa: np.ndarray, keys: set, rng: np.random.Generator) -> list:
    """Gates of the chambers of the violators not yet in ``keys`` (updated).

    A violator's value must exceed ``level``, set a little above ``lam``: the chambers next to the
    active ones have values equal to ``lam`` up to the restricted solve's accuracy, and adding
    them changes nothing.

    The maximizer of a chamber usually lies on a face (a cone projection): the chambers around it
    are reached by tiny random perturbations and join as well.
    """
    new = []
    for val, _sig, u in violations:
        if val > level:
            new += _unseen(u[None, :] + 1e-7 * rng.standard_normal((8, Xa.shape[1])), Xa, keys)
    return new


def _join(Xa: np.ndarray, gates: list, masks: np.ndarray, new: list) -> np.ndarray:
    """Append the gates ``new`` to ``gates`` and return the working set's masks with their chambers."""
    g = np.array(new).T
    gates.append(g)
    return np.hstack([masks, Xa @ g >= 0])


def solve_global(
    X: Any,
    y: Any,
    lam: float,
    *,
    bias: bool = True,
    loss: str | Loss = "squared",
    rtol: float = 1e-4,
    time_limit: float | None = None,
    n_init_patterns: int | None = None,
    seed: int = 0,
    max_rounds: int = 100,
    add_per_round: int = 32,
    progress: bool = False,
    init_gates: Any = None,
    descent_iter: int = 1000,
    sdp: bool | None = None,
) -> GlobalOptimum:
    r"""Globally optimal two-layer ReLU network (any width) with a certificate, by column generation.

    See the module docstring for the algorithm.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,)
    lam : float
        Weight decay :math:`\frac{\lambda}{2}\sum_j(\|W_{1j}\|^2 + w_{2j}^2)`.
    bias : bool
        Hidden-layer bias (regularized with the weights).
    loss : {"squared", "logistic"} or Loss
    rtol : float
        Target certified relative gap.
    time_limit : float, optional
        Seconds; the result then carries the gap reached (still a valid bound). A restricted
        solve is not started when the time left is shorter than the previous one took (it cannot
        be interrupted); the pricing searches stop on time, and the last one gets all the time left
        (:data:`FINAL_FACTOR`).
    n_init_patterns : int, optional
        Random gates of the initial working set (default ``min(200, 20 d')``).
    seed : int
        Seed of the initial gates.
    max_rounds : int
        Restricted solves at most.
    add_per_round : int
        Violating chambers added per round at most.
    progress : bool
        Print one line per round.
    init_gates : array of shape (d', k), optional
        Extra gates whose chambers :math:`\mathbf 1[X_a g \ge 0]` join the initial working set
        (e.g. the first-layer weights of a trained network).
    descent_iter : int
        L-BFGS iterations of the local descent after the first restricted solve (0: no descents),
        from its network and random neurons (:func:`convexnn.networks.two_layer.descend`); the
        chambers of the descended neurons join the working set. Every later round descends
        again (:data:`ROUND_DESCENT_ITER` iterations) and adds the chambers of its
        :data:`ROUND_DESCENT_ADD` largest new neurons. A heuristic for the primal side only: the
        proof is unchanged.
    sdp : bool, optional
        Also bound by the semidefinite relaxation (:func:`convexnn.duality.sdp.sdp_lower_bound`,
        once, after the first restricted solve, with the sign pattern of its residual; up to
        :data:`~convexnn.duality.certify_bab.SDP_SHARE` of the time) and combine its dual point
        with the searches' (sublinearity). Default: when :math:`d' \ge`
        :data:`~convexnn.duality.certify_bab.SDP_MIN_DIM`, where the searches do not complete within
        minutes and the relaxation is the tighter bound.

    Returns
    -------
    GlobalOptimum

    Raises
    ------
    InputError
        On invalid data, ``rtol`` outside ``(0, 1)``, or an unsupported loss.

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> rng = np.random.default_rng(0); X = rng.standard_normal((30, 2)); y = np.sin(3 * X[:, 0])
    >>> res = cx.solve_global(X, y, lam=0.1, rtol=1e-4)
    >>> res.certified and res.rel_gap <= 1e-4
    True
    """
    from convexnn.arrangements.sample import sample_patterns
    from convexnn.formulations.formulation import ConvexSolution
    from convexnn.formulations.two_layer import c_relu
    from convexnn.solvers.active_set import solve_relu_active_set

    t0 = time.perf_counter()
    Xc, yc, lam, L = validate(X, y, lam, loss)
    if L.name not in ("squared", "logistic"):
        raise InputError(f"solve_global supports the squared and logistic losses; got {L.name!r}.")
    if not 0 < rtol < 1:
        raise InputError(f"rtol must be in (0, 1); got {rtol}.")
    if sdp is not None and not isinstance(sdp, (bool, np.bool_)):
        raise InputError(f"sdp must be True, False or None; got {sdp!r}.")
    Xa = design_matrix(Xc, bias)
    n, d = Xa.shape
    use_sdp = d >= SDP_MIN_DIM if sdp is None else bool(sdp)
    relaxed = None  # the relaxation's result, once it ran
    k0 = int(n_init_patterns) if n_init_patterns is not None else min(200, 20 * d)
    P0 = sample_patterns(Xc, max(k0, 1), seed=seed, bias=bias)
    rng = np.random.default_rng(seed)
    gates = [np.asarray(P0.gates, dtype=np.float64)]
    if init_gates is not None:
        G = np.asarray(init_gates, dtype=np.float64)
        if G.ndim != 2 or G.shape[0] != d or not np.all(np.isfinite(G)):
            raise InputError(f"init_gates must be a finite array of shape ({d}, k); got {G.shape}.")
        gates.append(G)
    gates = [np.hstack(gates)]
    masks = Xa @ gates[0] >= 0
    # the chambers' facet rows, computed once per chamber over all rounds (cached by mask)
    facets = ChamberFacets(Xa)
    keys = {np.packbits(masks[:, i]).tobytes() for i in range(masks.shape[1])}
    V = W = None
    history: list[dict[str, float]] = []
    lower = -np.inf
    norms = row_norm_bounds(Xa)
    dual_point = np.zeros(n)
    nodes = 0
    rounds = 0
    reason = "max_rounds"
    obj = np.inf
    best_net = None
    found = None  # (units, signs) of the last round's violators: starts of the next ascent
    U0 = np.random.default_rng(seed).standard_normal((max(ASCENT_POOL, 64 * d), d))
    U0 /= np.linalg.norm(U0, axis=1, keepdims=True)
    last_solve = 0.0  # seconds of the last restricted solve
    t_proof, t_last_proof = 0.0, t0  # seconds of the last proof search, and its end
    work_scale = 1.0  # box budget of the proofs, in units of PRICING_WORK
    force_tight = False  # the next restricted solve to tol_min
    tol_min = max(min(rtol * RESTRICTED_RTOL, 1e-6), 1e-10)  # certified gap of the last restricted solves
    deadline = None if time_limit is None else t0 + time_limit

    def time_left() -> float | None:
        return None if deadline is None else deadline - time.perf_counter()

    def record(objective: float, chambers: int, s_lower: float, s_upper: float, nodes_: int, solve_time: float,
               ascent_time: float, search_time: float, descent_time: float, **extra: float) -> None:
        """One entry of ``history`` (the round and lower bound as they stand)."""
        history.append({"round": rounds, "objective": objective, "lower_bound": lower, "chambers": chambers,
                        "s_lower": s_lower, "s_upper": s_upper, "nodes": nodes_, "solve_time": solve_time,
                        "ascent_time": ascent_time, "search_time": search_time, "descent_time": descent_time,
                        **extra, "time": time.perf_counter() - t0})

    pending = None  # (v, level) of the last round's dual point when its search was not the final one
    while rounds < max_rounds:
        if rounds and deadline is not None and time_left() < last_solve:
            # the restricted solve cannot be interrupted: do not start one that would overrun the limit;
            # the time left goes to a last search at the last round's dual point, at its tightest level
            reason = "time_limit"
            left = time_left()
            if pending is not None and left > FINAL_MIN_SECONDS:
                v_last, T_last = pending
                r = relu_dual_norm_bab(Xa, v_last, threshold=T_last, rtol=0.5 * rtol, time_limit=left,
                                       max_violations=0, stop_at_violation=0)
                nodes += r.nodes
                val, p = feasible_dual_value(L, v_last, yc, lam, r.upper, norms)
                if val > lower:
                    lower, dual_point = val, p
                record(obj, masks.shape[1], r.lower, r.upper, r.nodes, 0.0, 0.0, r.time, 0.0)
                if progress:
                    print(f"last search: lower {lower:.10g} s/lam <= {r.upper / lam:.6g} boxes {r.nodes}", flush=True)
                if obj - lower <= rtol * abs(obj):
                    reason = "certified"
            break
        rounds += 1
        P = masks.shape[1]
        V0 = W0 = None
        if V is not None:
            V0 = np.vstack([V, np.zeros((P - V.shape[0], d))])
            W0 = np.vstack([W, np.zeros((P - W.shape[0], d))])
        # the restricted solves' certified gap: a fraction of the certified global gap (the working
        # set changes again while that is large), tol_min near the target
        gap_now = (obj - lower) / max(abs(obj), 1e-300) if np.isfinite(lower) else np.inf
        tol_r = tol_min if force_tight else max(tol_min, min(RESTRICTED_MAX, RESTRICTED_FRACTION * gap_now))
        force_tight = False
        level = lam * (1.0 + 10.0 * tol_r)  # a chamber above it is violated beyond the restricted solve's accuracy
        ts = time.perf_counter()
        # no loose restricted solves: each round starts from the previous round's optimum, and
        # loose solves there cost rounds (synthetic n = 500, d' = 5, one minute: 6 rounds and a gap
        # of 0.027 with them, 10 rounds and 0.0073 without)
        # the gates of the working set's chambers: directions inside them for the facet rows
        res = solve_relu_active_set(Xa, masks, yc, lam, L, V0=V0, W0=W0, tol=tol_r, eps_loose=0.0,
                                    deadline=deadline, gates=np.hstack(gates), facets=facets)
        last_solve = time.perf_counter() - ts
        V, W = res.V, res.W
        net = _network(V, W, bias)
        obj_r = network_objective(Xa, yc, net.W1, net.w2, lam, L)
        if obj_r < obj:
            obj, best_net, best_VW = obj_r, net, (V.copy(), W.copy(), masks.copy())
        if rounds == 1 and use_sdp and (deadline is None or time_left() > 0):
            fit1 = np.maximum(Xa @ net.W1, 0.0) @ net.w2
            relaxed = relaxation_bound(Xc, yc, lam, L, bias, -np.asarray(L.grad(fit1, yc), dtype=np.float64),
                                       None if deadline is None else SDP_SHARE * time_left(), sdp is not None)
            if relaxed is not None and relaxed.lower_bound > lower:
                lower, dual_point = relaxed.lower_bound, relaxed.dual_point
        if rounds == 1 and descent_iter > 0 and rounds < max_rounds:
            # primal side first: a local descent of the non-convex objective moves every neuron
            # across chambers at once, and the chambers of its neurons join the working set (the
            # first restricted solution's residual is a poor dual point: it is not priced)
            td = time.perf_counter()
            new, fd = _descended_chambers(Xa, yc, net, lam, L, keys, rng, descent_iter, None, deadline)
            record(obj_r, P, np.nan, np.nan, 0, last_solve, 0.0, 0.0, time.perf_counter() - td, descent_objective=fd)
            if progress:
                print(f"round {rounds}: objective {obj_r:.10g}; local descent {fd:.10g}, {len(new)} new chambers",
                      flush=True)
            if new:
                masks = _join(Xa, gates, masks, new)
                continue
        # the primal side of the later rounds: the restricted optimum's network is a stationary point
        # of the non-convex objective, but a descent from it *and random neurons* moves neurons
        # into chambers that the pricing reaches one round at a time; the largest ones join with
        # the round's violators
        descended, t_descent = [], 0.0
        if rounds > 1 and descent_iter > 0:
            td = time.perf_counter()
            descended, _ = _descended_chambers(Xa, yc, net, lam, L, keys, rng, ROUND_DESCENT_ITER,
                                               ROUND_DESCENT_ADD, deadline)
            t_descent = time.perf_counter() - td
            if descended:  # (the pricing below does not read the working set)
                masks = _join(Xa, gates, masks, descended)
        fit = np.maximum(Xa @ net.W1, 0.0) @ net.w2
        v = -np.asarray(L.grad(fit, yc), dtype=np.float64)
        T = needed_threshold(L, v, yc, lam, obj - rtol * abs(obj))
        T = max(T, lam) if np.isfinite(T) else lam
        left = time_left()
        if left is not None and left <= 0:
            reason = "time_limit"
            break
        # pricing: the branch and bound (the proof, and violators where its bounds lead it) and a
        # local ascent over chambers from the network's neurons, the last violators and the best
        # random directions (the neighbours of the active chambers, which the search's box
        # centres rarely hit): both sets of violators join the working set. When the ascent already
        # found a value above T, no proof is possible at this v: the search gets a box budget
        starts, signs = _ascent_starts(Xa, v, net, found, U0, int(np.clip(ASCENT_WORK / (n * d), 4, ASCENT_STARTS)))
        ta = time.perf_counter()
        heur = chamber_ascent(Xa, v, starts, signs, steps=16, deadline=deadline)
        left = time_left()
        t_ascent = time.perf_counter() - ta
        t_heur = t_ascent + t_descent  # the round's heuristics next to its restricted solve
        T_s, budget, scout = T, None, False
        # the last search before the time limit (the next round's restricted solve, ascent and
        # proof would not fit next to it) gets all the time left, and the tightest level
        final = left is not None and left < FINAL_FACTOR * (last_solve + t_heur + t_proof)
        s0 = heur[0][0] if heur else 0.0
        if s0 > T:
            # no proof of s(v) <= T is possible at this v: prove a bound a little above the violation
            # found instead (a valid lower bound of about the current suboptimality), on a box budget
            # (the tightest level when the last search took less time than the rest of its round)
            tight = final or (0.0 < t_proof < TIGHT_FACTOR * (last_solve + t_heur))
            T_s = max(T, s0 * (1.0 + rtol)) if tight else max(T, s0 * (1.0 + rtol), lam + 1.5 * (s0 - lam))
            if not final:
                budget = max(20_000, int(work_scale * PRICING_WORK / (n * d)))
                # proofs at dual points that are not the last one take at most about half the time:
                # between them, scout rounds add the ascent's violators only (and search after all
                # when those are known chambers). At d' = 5 and 6 the primal then gets twice the
                # rounds, and the search its time at the better dual points
                scout = np.isfinite(lower) and time.perf_counter() - t_last_proof < PROOF_SPACING * t_proof
        while True:
            if scout:  # the ascent's violators only
                r = None
                violations = heur[:ASCENT_ADD]
                s_low, s_up, r_nodes, r_time = s0, np.nan, 0, 0.0
            else:
                # (the last search does not stop at violators: its bound is what the time left buys)
                r = relu_dual_norm_bab(Xa, v, threshold=T_s, rtol=0.5 * rtol, time_limit=left, max_nodes=budget,
                                       max_violations=add_per_round, stop_at_violation=0 if final else add_per_round)
                nodes += r.nodes
                t_proof, t_last_proof = r.time, time.perf_counter()
                if r.reason == "max_nodes":  # the budget limited the proof: the next one gets twice as much
                    work_scale *= 2.0
                val, p = feasible_dual_value(L, v, yc, lam, r.upper, norms)
                if val > lower:
                    lower, dual_point = val, p
                # the search lists the points above T; its best point (above lam, below T) is a
                # violator too. The ascent adds its best few only: more chambers per round make the
                # restricted solves slower than the rounds they save (diabetes with 3 features,
                # bench/RESULTS_bab.md)
                best = [(r.lower, r.sign, r.neuron)] if r.lower > lam else []
                violations = sorted(r.violations + best, key=lambda t: -t[0])[:add_per_round]
                violations = sorted(violations + heur[:ASCENT_ADD], key=lambda t: -t[0])
                s_low, s_up, r_nodes, r_time = max(r.lower, s0), r.upper, r.nodes, r.time
            record(obj_r, P, s_low, s_up, r_nodes, last_solve, t_ascent, r_time, t_descent)
            if progress:
                print(f"round {rounds}: objective {obj_r:.10g} lower {lower:.10g} chambers {P} "
                      f"s/lam in [{s_low / lam:.6g}, {s_up / lam:.6g}] boxes {r_nodes}", flush=True)
            new = _new_gates(violations, level, Xa, keys, rng)
            if new or not scout or obj - lower <= rtol * abs(obj):
                break
            scout = False  # nothing new to add: prove at this v after all
            left = time_left()
        if obj - lower <= rtol * abs(obj):
            reason = "certified"
            break
        pending = None if final else (v, max(T, s0 * (1.0 + rtol)))
        above = [(u, sig) for val, sig, u in violations if val > level]
        found = (np.array([u for u, _ in above]), np.array([sg for _, sg in above])) if above else None
        if not new and tol_r > tol_min:
            # the violators below the level of this round's (loose) restricted solve, or else the
            # same working set solved to tol_min
            new = _new_gates(violations, lam * (1.0 + 10.0 * tol_min), Xa, keys, rng)
            if not new:
                force_tight = True
                continue
        if not new:
            stopped = r is not None and r.reason == "time_limit"
            if descended and not stopped:
                continue  # no violator, but the descent's chambers joined: solve with them
            reason = "time_limit" if stopped else "no_new_chamber"
            break
        masks = _join(Xa, gates, masks, new)
    if relaxed is not None:  # combinations of the searches' point and the relaxation's (both proven feasible)
        val, p = best_mixture(L, dual_point, lam, relaxed.dual_point, lam, yc, lam, norms)
        if val > lower:
            lower, dual_point = val, p
    if not np.isfinite(lower):  # stopped before any pricing: the pattern-free bound is still valid
        from convexnn.duality._common import global_support_bound

        fit = np.maximum(Xa @ best_net.W1, 0.0) @ best_net.w2
        v = -np.asarray(L.grad(fit, yc), dtype=np.float64)
        lower, dual_point = feasible_dual_value(L, v, yc, lam, global_support_bound(Xa, v), norms)
    # the convex solution on canonical patterns (Patterns sorts and deduplicates the masks)
    Vb, Wb, Mb = best_VW
    Gall = np.hstack(gates)
    pats = Patterns(Mb, Gall[:, : Mb.shape[1]], bias=bias, kind="column_generation")
    pk = {np.packbits(pats.masks[:, i]).tobytes(): i for i in range(len(pats))}
    Vc, Wc = np.zeros((len(pats), d)), np.zeros((len(pats), d))
    for i in range(Mb.shape[1]):
        j = pk[np.packbits(Mb[:, i]).tobytes()]
        Vc[j] += Vb[i]
        Wc[j] += Wb[i]
    form = c_relu(Xc, yc, pats, lam, loss=L, bias=bias)
    sol = ConvexSolution(form, {"V": Vc, "W": Wc}, float(obj), "optimal", "active_set+branch_and_bound",
                         lam=lam, info={"lower_bound": float(lower), "rounds": rounds, "nodes": nodes})
    gap = max(obj - lower, 0.0)
    rel = gap / max(abs(obj), 1e-300)
    return GlobalOptimum(best_net, sol, pats, float(obj), float(lower), gap, rel, bool(rel <= rtol), rounds, nodes,
                         time.perf_counter() - t0, reason, history, dual_point)
