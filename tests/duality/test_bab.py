"""Branch and bound for s(v), the bab certificate and solve_global, checked against enumeration."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.arrangements.patterns import design_matrix
from convexnn.duality._common import cone_support, network_objective
from convexnn.duality.bab import chamber_ascent, relu_dual_norm_bab
from convexnn.duality.global_opt import solve_global
from convexnn.errors import InputError
from convexnn.formulations.losses import get_loss

TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def exact_s(X: np.ndarray, v: np.ndarray, bias: bool) -> float:
    """s(v) over all enumerated chambers (NNLS per chamber)."""
    P = cx.enumerate_patterns(X, bias=bias)
    return cone_support(design_matrix(X, bias), P.masks, v).value


def brute_s(Xa: np.ndarray, v: np.ndarray, k: int = 20000, seed: int = 0) -> float:
    """A value attained by random unit vectors (a lower bound of s(v))."""
    U = np.random.default_rng(seed).standard_normal((k, Xa.shape[1]))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    F = np.maximum(U @ Xa.T, 0.0) @ v
    return float(max(F.max(), (-F).max(), 0.0))


@st.composite
def instances(draw):
    seed = draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(2, 12))
    d = draw(st.integers(1, 3))
    bias = draw(st.booleans())
    kind = draw(st.sampled_from(["random", "duplicates", "scaled", "grid"]))
    X = rng.standard_normal((n, d))
    if kind == "duplicates":
        X[n // 2:] = X[: n - n // 2]
    elif kind == "scaled":
        X = X * np.logspace(-3, 3, d)[None, :]
    elif kind == "grid":
        X = rng.integers(-2, 3, size=(n, d)).astype(float)
    v = rng.standard_normal(n)
    return X, v, bias


@settings(max_examples=40, deadline=None)
@given(instances())
def test_bab_matches_enumeration(inst):
    X, v, bias = inst
    s = exact_s(X, v, bias)
    r = relu_dual_norm_bab(design_matrix(X, bias), v, rtol=1e-10)
    assert r.complete
    scale = max(s, 1e-12 * float(np.abs(v).sum() * np.abs(X).max() + 1e-300))
    assert r.upper >= s - 1e-9 * scale  # the enumeration value is itself an NNLS upper bound
    assert r.lower <= s + 1e-9 * scale
    assert r.upper - r.lower <= 1e-6 * scale
    # the returned neuron attains the lower value
    u = r.neuron / np.linalg.norm(r.neuron)
    Xa = design_matrix(X, bias)
    assert r.sign * float(v @ np.maximum(Xa @ u, 0.0)) == pytest.approx(r.lower, rel=1e-9, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(instances(), st.integers(0, 10**6))
def test_chamber_ascent_values_are_attained_and_below_enumeration(inst, seed):
    """Every ascent value is sigma <v, (X_a u)_+> of its unit u, at least the start's value, and at
    most s(v) of the enumeration; the values are distinct patterns, best first."""
    X, v, bias = inst
    Xa = design_matrix(X, bias)
    rng = np.random.default_rng(seed)
    starts = rng.standard_normal((6, Xa.shape[1]))
    signs = rng.choice([-1, 1], size=6)
    out = chamber_ascent(Xa, v, starts, signs, steps=8)
    s = exact_s(X, v, bias)
    scale = 1e-9 * max(s, float(np.abs(v).sum() * np.abs(Xa).max()), 1e-300)
    vals = [t[0] for t in out]
    assert vals == sorted(vals, reverse=True)
    for val, sig, u in out:
        assert np.linalg.norm(u) == pytest.approx(1.0, rel=1e-12)
        assert sig * float(v @ np.maximum(Xa @ u, 0.0)) == pytest.approx(val, rel=1e-9, abs=scale)
        assert val <= s + scale
    start_vals = [sg * float(v @ np.maximum(Xa @ (u / np.linalg.norm(u)), 0.0)) for u, sg in zip(starts, signs)]
    # the ascent from the best start never ends below that start
    assert (vals[0] if vals else -np.inf) >= max(start_vals) - scale


def test_chamber_ascent_bad_input():
    Xa = np.ones((3, 2))
    with pytest.raises(InputError):
        chamber_ascent(Xa, np.ones(3), np.ones((2, 3)), np.ones(2))
    with pytest.raises(InputError):
        chamber_ascent(Xa, np.ones(3), np.ones((2, 2)), np.array([1, 0]))
    with pytest.raises(InputError):
        chamber_ascent(Xa, np.array([1.0, np.nan, 0.0]), np.ones((1, 2)), np.ones(1))


def test_bab_residual_of_optimum(small):
    """At a C-ReLU optimum s(v) = lam with several maximizing chambers (kinks): still exact."""
    X, y, lam, P, sol = small["X"], small["y"], small["lam"], small["P"], small["sol"]
    Xa = design_matrix(X, True)
    v = y - sol.formulation.predict(sol.weights)
    s = cone_support(Xa, P.masks, v).value
    r = relu_dual_norm_bab(Xa, v, rtol=1e-10)
    assert r.upper >= s * (1 - 1e-9) and r.lower <= s * (1 + 1e-9)
    assert r.upper - r.lower <= 1e-8 * s
    assert s == pytest.approx(lam, rel=1e-4)


def test_threshold_mode_decides():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((25, 2))
    v = rng.standard_normal(25)
    Xa = design_matrix(X, True)
    s = exact_s(X, v, True)
    above = relu_dual_norm_bab(Xa, v, threshold=1.01 * s)
    assert above.complete and s <= above.upper <= 1.01 * s * (1 + 1e-12) and not above.violations
    below = relu_dual_norm_bab(Xa, v, threshold=0.9 * s, stop_at_violation=True)
    assert below.reason == "violation" and below.lower > 0.9 * s
    assert all(val > 0.9 * s for val, _, _ in below.violations)


@pytest.mark.parametrize("limit", [{"max_nodes": 1}, {"max_nodes": 50}, {"time_limit": 0.0}])
def test_early_stop_is_valid(limit):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 3))
    v = rng.standard_normal(40)
    Xa = design_matrix(X, True)
    s = exact_s(X, v, True)
    r = relu_dual_norm_bab(Xa, v, rtol=1e-12, **limit)
    assert not r.complete
    assert r.upper >= s and r.lower <= s * (1 + 1e-12)
    assert r.lower >= brute_s(Xa, v, 10) * (1 - 1e-12)


@settings(max_examples=25, deadline=None)
@given(instances(), st.integers(0, 10**6))
def test_box_bounds_are_valid_and_slopes_tighten(inst, seed):
    """Every box bound is >= sigma f(z)/||z|| at sampled points of its box; optimised slopes never
    loosen it (the fixed slopes are the first iterate)."""
    from convexnn.duality.bab import _Problem

    X, v, bias = inst
    Xa = design_matrix(X, bias)
    rng = np.random.default_rng(seed)
    N, d = 64, Xa.shape[1]
    fi = rng.integers(0, d, N).astype(np.int32)
    sg = rng.choice(np.array([1, -1], dtype=np.int8), N)
    a = rng.uniform(-1, 1, (N, d))
    w = rng.uniform(0, 1, (N, d)) * rng.choice([1.0, 0.1, 1e-3], (N, 1))
    lo, hi = np.clip(a - w, -1, 1), np.clip(a + w, -1, 1)
    face = rng.choice([-1.0, 1.0], N)
    lo[np.arange(N), fi] = hi[np.arange(N), fi] = face
    pb = _Problem(Xa, v)
    pb.slope_iters = 0
    ub0 = pb.bounds(lo, hi, fi, sg)["ub"]
    pb.slope_iters = 4
    ub4 = pb.bounds(lo, hi, fi, sg)["ub"]
    assert np.all(ub4 <= ub0)
    Z = lo[:, None, :] + rng.uniform(0, 1, (N, 200, d)) * (hi - lo)[:, None, :]
    Z = np.concatenate([Z, lo[:, None, :], hi[:, None, :]], axis=1)
    F = sg[:, None] * (np.maximum(Z @ Xa.T, 0.0) @ v) / np.linalg.norm(Z, axis=2)
    scale = np.abs(v) @ np.linalg.norm(Xa, axis=1)
    assert np.all(ub4 >= F.max(axis=1) - 1e-12 * scale)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_anytime_upper_bound_never_increases(seed):
    """A child box lies in its parent, so the bound of the whole search (max over open and
    discarded boxes) is nonincreasing in the number of boxes evaluated, and always >= s(v)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 4))
    v = rng.standard_normal(30)
    Xa = design_matrix(X, True)
    full = relu_dual_norm_bab(Xa, v, rtol=1e-6)
    assert full.complete
    ups = [relu_dual_norm_bab(Xa, v, rtol=1e-6, batch=16, max_nodes=k).upper for k in range(24, 1200, 64)]
    assert all(b <= a for a, b in zip(ups, ups[1:]))
    assert min(ups) >= full.lower * (1 - 1e-12)  # full.lower is a value attained, <= s(v)


@pytest.mark.parametrize("seed", [0, 1])
def test_chunked_bounds_agree_with_enumeration(monkeypatch, seed):
    """A batch bounded in chunks of 16 boxes keeps every open box's bound valid and proves the
    enumerated value; the vertex bound evaluated one box per block gives the same bounds as in one
    block."""
    import convexnn.duality.bab as bab

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 3))
    v = rng.standard_normal(40)
    Xa = design_matrix(X, True)
    s = exact_s(X, v, True)
    monkeypatch.setattr(bab, "CHUNK_ENTRIES", 16 * 40)
    # every box kept open has a bound above f(z)/||z|| at points of the box (its own bound or its
    # own parent's, whichever chunk it was bounded in)
    push, low = bab._Boxes.push, []

    def checked_push(self, lo, hi, fi, sg, ub, split):
        Z = lo[:, None, :] + rng.uniform(0, 1, (lo.shape[0], 32, lo.shape[1])) * (hi - lo)[:, None, :]
        F = sg[:, None] * (np.maximum(Z @ Xa.T, 0.0) @ v) / np.linalg.norm(Z, axis=2)
        low.append(float((F.max(axis=1) - ub).max()))
        return push(self, lo, hi, fi, sg, ub, split)

    monkeypatch.setattr(bab._Boxes, "push", checked_push)
    r = relu_dual_norm_bab(Xa, v, rtol=1e-9, batch=64)
    assert r.complete and r.nodes > 2 * 64  # several batches of four chunks each
    assert max(low) <= 1e-12 * float(np.abs(v) @ np.linalg.norm(Xa, axis=1))
    assert r.lower <= s * (1 + 1e-9) and r.upper >= s * (1 - 1e-9)
    assert r.upper - r.lower <= 1e-8 * s
    N, d = 200, Xa.shape[1]
    fi = rng.integers(0, d, N).astype(np.int32)
    sg = rng.choice(np.array([1, -1], dtype=np.int8), N)
    a = rng.uniform(-1, 1, (N, d))
    w = rng.uniform(0, 0.3, (N, d))
    lo, hi = np.clip(a - w, -1, 1), np.clip(a + w, -1, 1)
    lo[np.arange(N), fi] = hi[np.arange(N), fi] = rng.choice([-1.0, 1.0], N)
    pb = bab._Problem(Xa, v)
    one = pb.bounds(lo, hi, fi, sg)["vb"]
    assert np.isfinite(one).sum() > N // 4  # the vertex bound ran on many boxes
    pb.vertex_chunk = 1
    assert np.array_equal(pb.bounds(lo, hi, fi, sg)["vb"], one)


@pytest.mark.parametrize("threshold", [None, 2.0])
def test_threads_do_not_change_the_search(monkeypatch, threshold):
    """Chunks bounded by several threads give the same boxes, bounds and result as one thread."""
    import convexnn.duality.bab as bab

    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 4))
    v = rng.standard_normal(40)
    Xa = design_matrix(X, True)
    monkeypatch.setattr(bab, "CHUNK_ENTRIES", 8 * 40)  # children of 64 boxes in 16 chunks
    runs = [relu_dual_norm_bab(Xa, v, rtol=1e-6, batch=64, threshold=threshold, n_jobs=j) for j in (1, 3)]
    a, b = runs
    assert a.nodes == b.nodes > 8 * 64 and a.upper == b.upper and a.lower == b.lower
    assert np.array_equal(a.neuron, b.neuron) and a.complete and b.complete
    assert a.upper >= brute_s(Xa, v) * (1 - 1e-12)


def test_default_threads_and_serial_searches(monkeypatch):
    """Without n_jobs a search uses the available cores, and one thread inside serial_searches."""
    import convexnn.duality.bab as bab

    pools = []
    real = bab.ThreadPoolExecutor

    def counted(*args, **kwargs):
        pools.append(kwargs.get("max_workers"))
        return real(*args, **kwargs)

    monkeypatch.setattr(bab, "ThreadPoolExecutor", counted)
    monkeypatch.setattr(bab, "available_cores", lambda: 2)
    monkeypatch.setattr(bab, "CHUNK_ENTRIES", 8 * 40)
    rng = np.random.default_rng(2)
    Xa = design_matrix(rng.standard_normal((40, 3)), True)
    v = rng.standard_normal(40)
    with bab.serial_searches():
        serial = relu_dual_norm_bab(Xa, v, rtol=1e-6, batch=64)
    assert pools == []
    threaded = relu_dual_norm_bab(Xa, v, rtol=1e-6, batch=64)
    assert pools == [2]
    assert (serial.nodes, serial.upper, serial.lower) == (threaded.nodes, threaded.upper, threaded.lower)


@pytest.mark.parametrize("steps,vertex_dim", [(0, 8), (1, 8), (4, 8), (2, 0), (0, 0)])
def test_slope_steps_enclose_exact_value(steps, vertex_dim):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((30, 3))
    v = rng.standard_normal(30)
    s = exact_s(X, v, True)
    r = relu_dual_norm_bab(design_matrix(X, True), v, rtol=1e-9, slope_steps=steps, vertex_dim=vertex_dim)
    assert r.complete and r.lower <= s * (1 + 1e-9) and r.upper >= s * (1 - 1e-9)
    assert r.upper - r.lower <= 1e-8 * s


def test_zero_and_bad_input():
    X = np.ones((3, 2))
    assert relu_dual_norm_bab(X, np.zeros(3)).upper == 0.0
    with pytest.raises(InputError):
        relu_dual_norm_bab(X, np.zeros(4))
    with pytest.raises(InputError):
        relu_dual_norm_bab(X, np.array([1.0, np.nan, 0.0]))
    with pytest.raises(InputError):
        relu_dual_norm_bab(X, np.ones(3), rtol=2.0)
    with pytest.raises(InputError):
        relu_dual_norm_bab(X, np.ones(3), slope_steps=-1)
    with pytest.raises(InputError):
        relu_dual_norm_bab(X, np.ones(3), vertex_dim=1.5)
    for jobs in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputError, match="n_jobs"):
            relu_dual_norm_bab(X, np.ones(3), n_jobs=jobs)


# --------------------------------------------------------------------------- certificates
def test_certify_bab_agrees_with_enumeration(small):
    X, y, lam, sol = small["X"], small["y"], small["lam"], small["sol"]
    net = sol.to_network()
    ce = cx.certify(net, X, y, lam, method="enumerate", rtol=1e-6)
    cb = cx.certify(net, X, y, lam, method="bab", rtol=1e-4)
    assert cb.method == "bab" and cb.exact and cb.nodes > 0 and ce.method == "enumerate"
    # both are valid lower bounds on the optimum over all chambers, and both certify to 1e-4
    assert cb.lower_bound <= sol.value * (1 + 1e-9) and ce.lower_bound <= sol.value * (1 + 1e-9)
    assert cb.is_optimal and cb.rel_gap <= 1e-4 and ce.is_optimal
    assert cb.s_valid >= cb.s
    assert "branch and bound" in str(cb)


def test_certify_auto_switches_to_bab():
    X, y = cx.load_dataset("diabetes", n_features=2)
    X, y = X[:120], y[:120]
    rng = np.random.default_rng(0)
    W1, w2 = 0.3 * rng.standard_normal((3, 4)), 0.3 * rng.standard_normal(4)
    c = cx.certify((W1, w2), X, y, 1.0, max_patterns=10, time_limit=5.0, rtol=1e-3)
    assert c.method == "bab" and c.exact
    # a random network is not optimal: the improving neuron really lowers the objective
    assert c.improving_neuron is not None and c.improvement_step()[1] < c.primal
    with pytest.raises(InputError):
        cx.certify((W1, w2), X, y, 1.0, method="bab", patterns=cx.sample_patterns(X, 10, bias=True))
    with pytest.raises(InputError):
        cx.certify((W1, w2), X, y, 1.0, method="simplex")


def test_narrow_network_refuted(small):
    X, y, lam, sol = small["X"], small["y"], small["lam"], small["sol"]
    net = sol.to_network()
    W1, w2 = net.W1[:, :1], net.w2[:1]
    cb = cx.certify((W1, w2), X, y, lam, method="bab", rtol=1e-6)
    assert not cb.is_optimal and cb.improving_neuron is not None
    assert cb.improving_score > lam * (1 + 1e-6)
    Xa = design_matrix(X, True)
    u = cb.improving_neuron
    assert cb.improving_sign * float((y - np.maximum(Xa @ W1, 0) @ w2) @ np.maximum(Xa @ u, 0)) == \
        pytest.approx(cb.improving_score, rel=1e-9)
    better = cb.improve()
    L = get_loss("squared")
    assert network_objective(Xa, y, better[0], better[1], lam, L) < cb.primal
    assert cb.lower_bound <= sol.value * (1 + 1e-9)


def test_early_stopped_certificate_is_valid(small):
    X, y, lam, sol = small["X"], small["y"], small["lam"], small["sol"]
    rng = np.random.default_rng(1)
    W1, w2 = rng.standard_normal((3, 5)), rng.standard_normal(5)
    c = cx.certify((W1, w2), X, y, lam, method="bab", time_limit=0.0)
    assert c.exact and c.bab_complete is False
    assert c.lower_bound <= sol.value * (1 + 1e-9)


def test_certify_bab_logistic():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((16, 2))
    y = np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)
    lam = 0.1
    P = cx.enumerate_patterns(X, bias=True)
    f = cx.c_relu(X, y, P, lam, loss="logistic")
    sol = f.solve("CLARABEL", **TIGHT)
    net = sol.to_network()
    cb = cx.certify(net, X, y, lam, loss="logistic", method="bab", rtol=1e-4)
    assert cb.lower_bound <= sol.value * (1 + 1e-8)
    assert cb.rel_gap <= 1e-3


# --------------------------------------------------------------------------- solve_global
@pytest.mark.parametrize("bias, descent_iter", [(True, 1000), (False, 1000), (True, 0)])
def test_solve_global_reaches_enumerated_optimum(bias, descent_iter):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((25, 2))
    y = np.sin(3 * X[:, 0]) + 0.3 * X[:, 1]
    lam = 0.05
    res = solve_global(X, y, lam, bias=bias, rtol=1e-6, n_init_patterns=10, descent_iter=descent_iter)
    P = cx.enumerate_patterns(X, bias=bias)
    opt = cx.c_relu(X, y, P, lam).solve("CLARABEL", **TIGHT).value
    assert res.certified and res.rel_gap <= 1e-6
    assert res.lower_bound <= opt * (1 + 1e-8)
    assert res.objective == pytest.approx(opt, rel=1e-5)
    assert res.network.objective(X, y, lam) == pytest.approx(res.objective, rel=1e-12)
    # the certificate of the returned network agrees
    c = cx.certify(res.network, X, y, lam, method="enumerate", rtol=1e-5)
    assert c.is_optimal
    # the lower bound is the dual value of a point feasible over every chamber
    Xa = design_matrix(X, bias)
    assert cone_support(Xa, P.masks, res.dual_point).valid <= lam * (1 + 1e-12)
    assert float(get_loss("squared").dual_value(res.dual_point, y)) >= res.lower_bound
    if descent_iter and res.rounds > 2:  # the later rounds descend as well
        assert any(h.get("descent_time", 0.0) > 0 for h in res.history[1:])
    with pytest.raises(InputError):
        solve_global(X, y, lam, bias=bias, init_gates=np.ones((7, 2)))


def test_descended_chambers_are_new_largest_first_and_limited():
    """The descent's chambers: unseen before, at most ``limit``, the largest descended neurons
    first; the chambers of the neurons left out stay unseen (a later round can still add them)."""
    import convexnn.duality.global_opt as go

    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    lam = 0.1
    Xa = design_matrix(X, True)
    L = get_loss("squared")
    W1 = rng.standard_normal((3, 4))
    net = cx.TwoLayerReLU(W1, 0.3 * rng.standard_normal(4), bias=True)
    key = lambda g: np.packbits(Xa @ g >= 0).tobytes()  # noqa: E731
    seen = {key(g) for g in W1.T}
    keys = set(seen)
    first, _ = go._descended_chambers(Xa, y, net, lam, L, keys, np.random.default_rng(0), 200, 3, None)
    assert 0 < len(first) <= 3
    got = [key(g) for g in first]
    assert len(set(got)) == len(got) and not set(got) & seen
    assert keys == seen | set(got)
    # the same descent without a limit: the first three are its largest new chambers
    keys_all = set(seen)
    every, _ = go._descended_chambers(Xa, y, net, lam, L, keys_all, np.random.default_rng(0), 200, None, None)
    assert [key(g) for g in every[:len(first)]] == got
    assert len(every) >= len(first) and keys_all == seen | {key(g) for g in every}


@pytest.mark.parametrize("rounds", [1, 3])
def test_solve_global_bound_before_convergence_is_valid(rounds):
    """Stopped while violators exist (the search proves a bound above them): still a valid bound."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    lam = 0.1
    res = solve_global(X, y, lam, rtol=1e-6, n_init_patterns=4, max_rounds=rounds, descent_iter=0)
    P = cx.enumerate_patterns(X, bias=True)
    opt = cx.c_relu(X, y, P, lam, bias=True).solve("CLARABEL", **TIGHT).value
    assert not res.certified
    assert res.lower_bound <= opt * (1 + 1e-8) <= res.objective * (1 + 2e-8)
    # each round's search proves a bound just above the best violation found (a completed search);
    # scout rounds (no search) carry no upper bound
    for h in res.history:
        if h["nodes"] == 0:
            assert np.isnan(h["s_upper"])
        else:
            assert h["s_upper"] <= max(h["s_lower"] * (1 + 1e-6), lam + 1.5 * (h["s_lower"] - lam)) * (1 + 1e-9)
    Xa = design_matrix(X, True)
    assert cone_support(Xa, P.masks, res.dual_point).valid <= lam * (1 + 1e-12)


@pytest.mark.parametrize("schedule", ["scout", "final", "loose"])
def test_solve_global_schedules_reach_enumerated_optimum(monkeypatch, schedule):
    """Every round a scout (ascent violators only, a search when they are all known), every search
    the last one (all the time left, the tightest level), or loose restricted solves (the global gap
    as their tolerance, tightened when they leave nothing to add): same optimum, valid bounds."""
    import convexnn.duality.global_opt as go

    if schedule == "scout":
        monkeypatch.setattr(go, "PROOF_SPACING", 1e12)
    elif schedule == "final":
        monkeypatch.setattr(go, "FINAL_FACTOR", 1e12)
    else:
        monkeypatch.setattr(go, "RESTRICTED_FRACTION", 1.0)
        monkeypatch.setattr(go, "RESTRICTED_MAX", 1e-2)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((30, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    lam = 0.1
    res = solve_global(X, y, lam, rtol=1e-6, n_init_patterns=4, descent_iter=0,
                       time_limit=600.0 if schedule == "final" else None)
    P = cx.enumerate_patterns(X, bias=True)
    opt = cx.c_relu(X, y, P, lam, bias=True).solve("CLARABEL", **TIGHT).value
    assert res.certified and res.rel_gap <= 1e-6
    assert res.lower_bound <= opt * (1 + 1e-8)
    assert res.objective == pytest.approx(opt, rel=1e-5)
    Xa = design_matrix(X, True)
    assert cone_support(Xa, P.masks, res.dual_point).valid <= lam * (1 + 1e-12)
    for h in res.history[1:]:
        assert h["lower_bound"] <= opt * (1 + 1e-8)
        if h["nodes"] == 0:  # a scout: its value is attained by a unit neuron
            assert np.isnan(h["s_upper"])
        else:  # the search's enclosure holds
            assert h["s_lower"] <= h["s_upper"] * (1 + 1e-12)
    if schedule == "scout":
        assert any(h["nodes"] == 0 for h in res.history[1:])
    elif schedule == "final":
        # the tightest level: each search of a round that did not certify proves s(v) within rtol
        # of the best violation found
        for h in res.history[1:-1]:
            if h["s_lower"] > lam * (1 + 1e-3):
                assert h["s_upper"] <= h["s_lower"] * (1 + 1e-6) * (1 + 1e-9)


def test_time_left_after_a_long_search_goes_to_a_last_search(monkeypatch):
    """A search that leaves less time than a restricted solve: instead of stopping, the time left
    goes to a last search at that round's dual point (tightest level), and its bound is valid.
    A clock ahead of the real one makes the first restricted solve take 10 s and the first search 85 s
    of a 100 s limit."""
    import types

    import convexnn.duality.global_opt as go
    import convexnn.solvers.active_set as asm

    ahead = {"s": 0.0, "searches": 0}
    monkeypatch.setattr(go, "time", types.SimpleNamespace(perf_counter=lambda: time.perf_counter() + ahead["s"]))
    solve, search = asm.solve_relu_active_set, go.relu_dual_norm_bab

    def slow_solve(*a, **k):
        r = solve(*a, **k)
        ahead["s"] += 10.0
        return r

    def slow_first_search(*a, **k):
        r = search(*a, **k)
        ahead["searches"] += 1
        if ahead["searches"] == 1:
            ahead["s"] += 85.0
        return r

    monkeypatch.setattr(asm, "solve_relu_active_set", slow_solve)
    monkeypatch.setattr(go, "relu_dual_norm_bab", slow_first_search)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    lam = 0.1
    res = solve_global(X, y, lam, rtol=1e-6, n_init_patterns=4, descent_iter=0, time_limit=100.0)
    P = cx.enumerate_patterns(X, bias=True)
    opt = cx.c_relu(X, y, P, lam, bias=True).solve("CLARABEL", **TIGHT).value
    assert res.rounds == 1 and ahead["searches"] == 2 and res.reason in ("time_limit", "certified")
    last, first = res.history[-1], res.history[-2]
    assert last["solve_time"] == 0.0 and last["nodes"] > 0  # the last search, without a restricted solve
    assert first["lower_bound"] <= last["lower_bound"] == res.lower_bound <= opt * (1 + 1e-8)
    assert last["s_lower"] <= last["s_upper"] * (1 + 1e-12)
    Xa = design_matrix(X, True)
    assert cone_support(Xa, P.masks, res.dual_point).valid <= lam * (1 + 1e-12)


def test_solve_global_time_limit_is_valid():
    X, y = cx.load_dataset("diabetes", n_features=2)
    res = solve_global(X[:150], y[:150], 1.0, rtol=1e-9, time_limit=1.0, n_init_patterns=5)
    assert res.lower_bound <= res.objective
    assert res.solution.formulation.predict(res.solution.weights).shape == (150,)


def test_certify_bab_refined_bound_of_suboptimal_network():
    """A narrow network far from optimal: the refined bab bound is close to the enumeration bound."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    lam = 0.5
    W1, w2 = 0.5 * rng.standard_normal((3, 3)), 0.5 * rng.standard_normal(3)
    P = cx.enumerate_patterns(X, bias=True)
    opt = cx.c_relu(X, y, P, lam).solve("CLARABEL", **TIGHT).value
    ce = cx.certify((W1, w2), X, y, lam, method="enumerate", rtol=1e-4)
    cb = cx.certify((W1, w2), X, y, lam, method="bab", rtol=1e-4)
    c0 = cx.certify((W1, w2), X, y, lam, method="bab", rtol=1e-4, time_limit=0.0)
    assert cb.method == "bab" and cb.exact and not cb.is_optimal and cb.n_refine > 0
    assert cb.lower_bound <= opt * (1 + 1e-9) and c0.lower_bound <= opt * (1 + 1e-9)
    assert cb.lower_bound >= ce.lower_bound - 1e-3 * abs(opt)
    # the dual point is feasible over every chamber and its dual value is the bound
    Xa = design_matrix(X, True)
    assert cone_support(Xa, P.masks, cb.dual_point).valid <= lam * (1 + 1e-9)
    L = get_loss("squared")
    assert float(L.dual_value(cb.dual_point, y)) >= cb.lower_bound


@st.composite
def boxes(draw):
    """Random data (d' up to 5), dual vector and boxes on the faces of the cube, of all sizes."""
    seed = draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(2, 14))
    d = draw(st.integers(1, 4))
    bias = draw(st.booleans())
    X = rng.standard_normal((n, d))
    if draw(st.booleans()):
        X = rng.integers(-2, 3, size=(n, d)).astype(float)  # many hyperplanes through common points
    Xa = design_matrix(X, bias)
    v = rng.standard_normal(n)
    N, dd = 48, Xa.shape[1]
    fi = rng.integers(0, dd, N).astype(np.int32)
    sg = rng.choice(np.array([1, -1], dtype=np.int8), N)
    a = rng.uniform(-1, 1, (N, dd))
    w = rng.uniform(0, 1, (N, dd)) * rng.choice([1.0, 0.1, 1e-3], (N, 1))
    lo, hi = np.clip(a - w, -1, 1), np.clip(a + w, -1, 1)
    face = rng.choice([-1.0, 1.0], N)
    lo[np.arange(N), fi] = hi[np.arange(N), fi] = face
    return Xa, v, lo, hi, fi, sg, rng


def _sampled_max(Xa, v, lo, hi, sg, rng, k=300):
    N, d = lo.shape
    Z = lo[:, None, :] + rng.uniform(0, 1, (N, k, d)) * (hi - lo)[:, None, :]
    corners = rng.integers(0, 2, (N, 64, d)).astype(float)
    Z = np.concatenate([Z, lo[:, None, :] + corners * (hi - lo)[:, None, :]], axis=1)
    return (sg[:, None] * (np.maximum(Z @ Xa.T, 0.0) @ v) / np.linalg.norm(Z, axis=2)).max(axis=1)


@settings(max_examples=30, deadline=None)
@given(boxes())
def test_vertex_bound_is_valid_and_tightens(data):
    """The vertex bound (quasiconvexity of Q(z)/g^T z) is >= the maximum of f(z)/||z|| sampled on the
    box and its corners, never above the relaxation bound it is combined with, and independent of
    the block size (up to the order of the floating-point sums)."""
    from convexnn.duality.bab import _Problem

    Xa, v, lo, hi, fi, sg, rng = data
    pb = _Problem(Xa, v)
    pb.vertex_dim = 0
    ub_off = pb.bounds(lo, hi, fi, sg)["ub"]
    pb.vertex_dim, pb.vertex_cost = 8, np.inf
    ub_on = pb.bounds(lo, hi, fi, sg)["ub"]
    pb.vertex_chunk = 8  # many small blocks: the same numbers up to the order of the sums
    ub_blk = pb.bounds(lo, hi, fi, sg)["ub"]
    assert np.all(ub_on <= ub_off)
    assert np.allclose(ub_on, ub_blk, rtol=1e-12, atol=1e-300)
    F = _sampled_max(Xa, v, lo, hi, sg, rng)
    scale = np.abs(v) @ np.linalg.norm(Xa, axis=1)
    assert np.all(ub_on >= F - 1e-12 * scale)


def test_vertex_bound_is_exact_without_negative_crossings():
    """With every crossing unit of sign sigma v_j > 0, Q = f on the box: the vertex bound is the
    largest f(z_v)/(g^T z_v) over the 2^(d'-1) vertices (g the unit centre), computed here directly."""
    import itertools

    from convexnn.duality.bab import _Problem

    rng = np.random.default_rng(4)
    Xa = design_matrix(rng.standard_normal((30, 3)), True)
    v = np.abs(rng.standard_normal(30))  # sigma = +1: every unit positive
    pb = _Problem(Xa, v)
    pb.vertex_cost = np.inf
    d = Xa.shape[1]
    for trial in range(20):
        i = trial % d
        c = rng.uniform(-0.8, 0.8, d)
        r = rng.uniform(0.01, 0.2, d)
        lo, hi = c - r, c + r
        lo[i] = hi[i] = 1.0
        res = pb.bounds(lo[None], hi[None], np.array([i], dtype=np.int32), np.array([1], dtype=np.int8))
        m = 0.5 * (lo + hi)
        g = m / np.linalg.norm(m)
        free = [k for k in range(d) if k != i]
        vals = []
        for bits in itertools.product((0, 1), repeat=d - 1):
            z = m.copy()
            z[free] = np.where(np.array(bits) == 1, hi[free], lo[free])
            vals.append(float(v @ np.maximum(Xa @ z, 0.0)) / float(g @ z))
        ref = max(max(vals), 0.0)
        assert res["vb"][0] == pytest.approx(ref, rel=1e-9, abs=1e-12) and res["vb"][0] >= ref
        assert res["ub"][0] <= res["vb"][0]


def test_bab_certificate_is_never_below_the_pattern_free_bound_at_large_dimension():
    """At d' = 31 the boxes are loose; the certificate still keeps the pattern-free bound of the network's
    own residual (both are valid upper bounds of s(v); the smaller one is used), and stays below the
    network's objective (weak duality)."""
    from convexnn.duality.bounds import feasible_dual_value, row_norm_bounds
    from convexnn.duality.cones import global_support_bound

    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 30))
    y = np.maximum(X[:, 0], 0) - X[:, 1] + 0.1 * rng.standard_normal(200)
    W1 = 0.3 * rng.standard_normal((31, 6))
    w2 = 0.3 * rng.standard_normal(6)
    lam = 0.5
    c = cx.certify((W1, w2), X, y, lam=lam, method="bab", time_limit=1.0, refine=0)
    L = get_loss("squared")
    Xa = design_matrix(X, True)
    v0 = L.project_dual(-L.grad(np.maximum(Xa @ W1, 0.0) @ w2, y), y)
    ref = feasible_dual_value(L, v0, y, lam, global_support_bound(Xa, v0), row_norm_bounds(Xa))[0]
    assert c.lower_bound >= ref - 1e-12 * abs(ref)
    assert c.lower_bound <= network_objective(Xa, y, W1, w2, lam, L)
