"""Regularization paths and lam_max, checked against fresh independent solves and the closed form."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import convexnn as cx


def _data(n=18, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0], 0) - np.maximum(X[:, 1], 0) + 0.05 * rng.standard_normal(n)
    return X, y


def test_lam_max_closed_form_and_threshold():
    X, y = _data()
    P = cx.sample_patterns(X, 15, seed=1, bias=True)
    Xa = np.hstack([X, np.ones((len(X), 1))])
    brute = max(np.linalg.norm(Xa.T @ (P.masks[:, i] * y)) for i in range(len(P)))
    lm = cx.lam_max(X, y, P)
    assert lm == pytest.approx(brute, rel=1e-12)
    # above: zero is optimal (value = loss of the zero network); below: it is not (C-GReLU threshold is exact)
    zero_loss = 0.5 * float(y @ y)
    above = cx.c_grelu(X, y, P, lm * (1 + 1e-6)).solve()
    assert above.value == pytest.approx(zero_loss, rel=1e-7)
    below = cx.c_grelu(X, y, P, 0.9 * lm).solve()
    assert below.value < zero_loss * (1 - 1e-4)
    # vector targets: the outputs separate, lam_max is the largest per-output threshold
    Y = np.column_stack([y, -2 * y])
    assert cx.lam_max(X, Y, P) == pytest.approx(max(cx.lam_max(X, y, P), cx.lam_max(X, -2 * y, P)))
    # logistic loss: grad l(0) = -y / 2
    t = np.sign(y + 1e-12)
    assert cx.lam_max(X, t, P, loss="logistic") == pytest.approx(cx.lam_max(X, t / 2, P), rel=1e-12)


@pytest.mark.parametrize("kind", ["c_relu", "c_grelu"])
def test_interior_path_matches_fresh_solves(kind):
    X, y = _data()
    P = cx.sample_patterns(X, 12, seed=0, bias=True)
    res = cx.path(X, y, n_lams=5, patterns=P, kind=kind, method="interior")
    assert res.lams[0] == pytest.approx(res.lam_max) and np.all(np.diff(res.lams) < 0)
    assert res.n_active[0] == 0
    # one formulation, its lam parameter updated in place (compiled once)
    assert all(s.formulation is res.solutions[0].formulation for s in res.solutions)
    build = cx.c_relu if kind == "c_relu" else cx.c_grelu
    for lam, sol, val in zip(res.lams, res.solutions, res.objectives):
        fresh = build(X, y, P, lam).solve().value
        assert val == pytest.approx(fresh, rel=1e-6, abs=1e-9)
        assert sol.lam == lam
    # the optimal value is nondecreasing in lam; parts add up
    assert np.all(np.diff(res.objectives) <= 1e-7 * res.objectives[0])
    np.testing.assert_allclose(res.losses + res.lams * res.regularizers, res.objectives, rtol=1e-6)
    assert np.all(res.gaps[np.isfinite(res.gaps)] < 1e-5)


def test_first_order_path_is_warm_started_and_agrees():
    X, y = _data(n=24, seed=2)
    P = cx.sample_patterns(X, 16, seed=0, bias=True)
    lams = [2.0, 0.5, 0.1]
    fo = cx.path(X, y, lams, patterns=P, method="first_order", tol=1e-9)
    ip = cx.path(X, y, lams, patterns=P, method="interior")
    np.testing.assert_allclose(fo.objectives, ip.objectives, rtol=1e-6)
    assert fo.method == "first_order" and np.all(fo.gaps <= 1e-8)
    np.testing.assert_allclose(fo.lams, sorted(lams, reverse=True))


def test_to_dict_is_json_and_plot(monkeypatch):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    X, y = _data()
    res = cx.path(X, y, n_lams=3, patterns=8, seed=0, bias=True)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["n_active"][0] == 0 and len(d["lams"]) == 3
    ax = res.plot()
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), res.lams)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"convexnn\[plot\]"):
        res.plot()


def test_path_input_errors():
    X, y = _data()
    with pytest.raises(cx.InputError):
        cx.path(X, y, lams=[0.1, -1.0], patterns=5)
    with pytest.raises(cx.InputError):
        cx.path(X, y, kind="three_layer", patterns=5)
    with pytest.raises(cx.InputError):
        cx.path(X, y, lam_min_ratio=2.0, patterns=5)
    with pytest.raises(cx.InputError):
        cx.lam_max(X, y, patterns="many")


@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
def test_sparse_group_path_matches_clarabel_and_lam_max(kind):
    """l1_ratio along the path: every point is the sparse-group program's optimum (Clarabel at that lam,
    built independently), zero at lam_max (the R* threshold) and nonzero just below it."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 4))
    y = np.maximum(X[:, 0], 0) - X[:, 1]
    pats = cx.sample_patterns(X, 12, seed=0, bias=True)
    res = cx.path(X, y, n_lams=4, lam_min_ratio=0.05, patterns=pats, kind=kind, l1_ratio=0.6, method="interior")
    build = cx.c_relu if kind == "c_relu" else cx.c_grelu
    for lam, val in zip(res.lams, res.objectives):
        ref = build(X, y, pats, float(lam), l1_ratio=0.6).solve("CLARABEL").value
        assert val == pytest.approx(ref, rel=1e-6, abs=1e-9)
    lmax = cx.lam_max(X, y, pats, l1_ratio=0.6)
    assert lmax == pytest.approx(res.lam_max)
    assert lmax < cx.lam_max(X, y, pats)   # R >= ||.||_2, so R* <= ||.||_2: a lower threshold
    below = cx.c_grelu(X, y, pats, 0.98 * lmax, l1_ratio=0.6).solve("CLARABEL")
    assert below.value < 0.5 * float(y @ y) - 1e-9            # nonzero just below lam_max
    at = cx.c_grelu(X, y, pats, lmax, l1_ratio=0.6).solve("CLARABEL")
    assert at.value == pytest.approx(0.5 * float(y @ y), rel=1e-7)   # zero is optimal at lam_max
