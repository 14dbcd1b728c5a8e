"""convexnn.plot: figures render with Agg, axes are labelled, artists match the mathematics."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import convexnn as cx  # noqa: E402
from convexnn import plot as cplot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render(fig) -> None:
    fig.canvas.draw()  # raises if anything cannot be drawn


def _gid(ax, kind):
    return [a for a in (ax.lines if kind == "hyperplane" else ax.texts) if a.get_gid() == kind]


@pytest.mark.parametrize("n, d, bias, seed", [(5, 2, False, 0), (7, 2, False, 1), (6, 1, True, 2), (5, 2, True, 3)])
def test_arrangement_lines_and_one_label_per_chamber(n, d, bias, seed):
    X = np.random.default_rng(seed).standard_normal((n, d))
    res = cplot.plot_arrangement(X, bias=bias)
    axes = np.atleast_1d(res)
    _render(axes[0].figure)
    for ax in axes:  # each chart draws one line per row
        assert len(_gid(ax, "hyperplane")) == n
        assert ax.get_xlabel() and ax.get_ylabel()
    labels = [t for ax in axes for t in _gid(ax, "chamber")]
    assert len(labels) == cx.count_patterns(X, bias=bias)
    # each label is the pattern of a gate of the arrangement, and all labels differ
    P = cx.enumerate_patterns(X, bias=bias)
    expected = {cplot.pattern_label(P.masks[:, i]) for i in range(len(P))}
    assert {t.get_text() for t in labels} == expected


def test_arrangement_label_positions_lie_in_their_chamber():
    """In the central 2-D case a label sits at a gate g with 1[X g >= 0] equal to its text."""
    X = np.random.default_rng(5).standard_normal((6, 2))
    ax = cplot.plot_arrangement(X)
    for t in _gid(ax, "chamber"):
        g = np.array(t.get_position())
        assert cplot.pattern_label(X @ g >= 0) == t.get_text()


def test_arrangement_sampled_subset_and_paper_example():
    X = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 0.0]])   # parallel rows share one line
    ax = cplot.plot_arrangement(X, label="pattern")
    assert sorted(t.get_text() for t in _gid(ax, "chamber")) == ["000", "001", "110", "111"]
    S = cx.sample_patterns(np.random.default_rng(0).standard_normal((8, 2)), 3, seed=0)
    ax2 = cplot.plot_arrangement(np.random.default_rng(0).standard_normal((8, 2)), patterns=S, label="index")
    assert len(_gid(ax2, "chamber")) == len(S)


def test_arrangement_rejects_other_dimensions():
    with pytest.raises(cx.InputError):
        cplot.plot_arrangement(np.ones((4, 3)), bias=True)
    with pytest.raises(cx.InputError):
        cplot.plot_arrangement(np.ones((4, 2)), label="nope")


def test_network_function_1d_matches_predict():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 1))
    net = cx.TwoLayerReLU(rng.standard_normal((2, 4)), rng.standard_normal(4), bias=True)
    ax = cplot.plot_network_function(net, X, net.predict(X), label="net")
    _render(ax.figure)
    (line,) = ax.lines
    xs, ys = line.get_data()
    assert np.allclose(ys, net.predict(xs[:, None]))
    assert xs.min() < X.min() and xs.max() > X.max()
    assert ax.get_xlabel() == "$x$" and ax.get_ylabel() == "$f(x)$"


def test_network_function_2d_contour_and_solution_input():
    X, y = cx.load_dataset("diabetes", n_features=2)
    X, y = X[:15], y[:15]
    sol = cx.c_grelu(X, y, cx.sample_patterns(X, 20, seed=0, bias=True), lam=1.0).solve()
    ax = cplot.plot_network_function(sol, X, y, resolution=30)
    _render(ax.figure)
    assert len(ax.collections) >= 2            # filled contours + data points
    assert ax.get_xlabel() == "$x_1$" and ax.get_ylabel() == "$x_2$"
    with pytest.raises(cx.InputError):
        cplot.plot_network_function(sol, np.ones((3, 3)))


def test_trace_from_solver_history_and_plain_arrays():
    X, y = cx.load_dataset("diabetes", n_features=3)
    X, y = X[:60], y[:60]
    f = cx.c_grelu(X, y, cx.sample_patterns(X, 40, seed=0, bias=True), lam=0.5)
    sol = cx.solve(f, method="first_order", tol=1e-7)
    hist = sol.info["history"]
    ax = cplot.plot_trace({"R-FISTA": hist, "plain": [1.0, 0.1, 0.01]}, x="iter", y="rel_gap")
    _render(ax.figure)
    assert len(ax.lines) == 2
    assert np.allclose(ax.lines[0].get_ydata(), [h["rel_gap"] for h in hist])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "iteration"
    ax2 = cplot.plot_trace({"objective": [3.0, 2.0, 1.5]}, y="objective", optimum=1.4)
    assert [l.get_gid() for l in ax2.lines].count("optimum") == 1
    ax3 = cplot.plot_trace({"run": ([0, 1, 2], [3.0, 2.0, 1.5])}, y="objective", optimum=1.4,
                           subtract_optimum=True)
    assert np.allclose(ax3.lines[0].get_ydata(), [1.6, 0.6, 0.1])


def test_path_panels():
    lams = np.logspace(-2, 0, 5)
    fig = cplot.plot_path(lams, objective=lams * 2, active=[5, 4, 3, 1, 0], test_error=lams, train_error=lams / 2)
    _render(fig)
    assert len(fig.axes) == 3
    assert all(ax.get_xscale() == "log" and ax.get_xlabel() == "$\\lambda$" for ax in fig.axes)
    assert len(fig.axes[2].lines) == 2
    with pytest.raises(cx.InputError):
        cplot.plot_path(lams)
    with pytest.raises(cx.InputError):
        cplot.plot_path(lams, objective=[1.0, 2.0])


def test_optimal_set_networks_agree_on_data():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (8, 1))
    y = np.sin(3 * X[:, 0])
    sol = cx.c_relu(X, y, cx.enumerate_patterns(X, bias=True), lam=0.01).solve()
    S = cx.optimal_set(sol)
    ax = cplot.plot_optimal_set(S, X, k=3, y=y)
    _render(ax.figure)
    assert len(ax.lines) == 4                # 3 sampled networks + the minimal model
    for a in S.sample_alphas(3, seed=0):      # the functions agree on the training data
        assert np.allclose(S.network(a).predict(X), S.fit, atol=1e-6)
    X2, y2 = rng.standard_normal((6, 2)), rng.standard_normal(6)
    S2 = cx.optimal_set(cx.c_relu(X2, y2, cx.enumerate_patterns(X2, bias=True), lam=0.05).solve())
    ax2 = cplot.plot_optimal_set(S2, X2, k=2)
    assert ax2.get_ylabel() == "$\\alpha_i$" and len(ax2.lines) == 3


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.delitem(sys.modules, "convexnn.plot", raising=False)
    with pytest.raises(ImportError, match=r"convexnn\[plot\]"):
        importlib.import_module("convexnn.plot")
