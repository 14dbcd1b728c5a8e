"""Program (12) of Ergen & Pilanci (ICML 2021) (three-layer ReLU sub-networks): mapping, exactness, duality, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convexnn.arrangements.enumerate import enumerate_patterns
from convexnn.arrangements.layers import all_masks, sample_combos, second_layer_patterns
from convexnn.errors import InputError, TooLargeError
from convexnn.formulations.three_layer import three_layer, three_layer_gap
from convexnn.networks.deep import ThreeLayerReLU, train_three_layer


def _data(seed: int, n: int, d: int = 2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    return X, y


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 4), m1=st.integers(1, 2),
       lam=st.sampled_from([0.05, 0.3]))
def test_mapped_network_attains_convex_value_exact_double_arrangement(seed, n, m1, lam):
    X, y = _data(seed, n)
    P = enumerate_patterns(X)
    f = three_layer(X, y, P, "complete", lam, m1=m1)
    assert f.exact and f.problem.is_dcp() and f.problem.is_dpp()
    sol = f.solve()
    net = sol.to_network()
    assert isinstance(net, ThreeLayerReLU) and net.m1 == m1
    assert net.constraint_violation() <= 1e-12
    assert _rel(net.objective(X, y, lam), sol.value) <= 1e-6
    assert _rel(sol.objective(), sol.value) <= 1e-6
    # the composed (LP-certified) exact second-layer set is another complete construction
    S2 = second_layer_patterns(X, m1, method="exact", first_patterns=P)
    g = three_layer(X, y, P, S2, lam, m1=m1)
    assert g.exact
    sol2 = g.solve()
    assert _rel(sol2.value, sol.value) <= 1e-6
    assert _rel(sol2.to_network().objective(X, y, lam), sol2.value) <= 1e-6


def test_convex_value_lower_bounds_random_networks_and_certificate():
    X, y = _data(11, 4)
    lam = 0.2
    P = enumerate_patterns(X)
    f = three_layer(X, y, P, "complete", lam, m1=2)
    sol = f.solve()
    rng = np.random.default_rng(0)
    for _ in range(50):
        K = int(rng.integers(1, 4))
        net = ThreeLayerReLU(rng.standard_normal((K, 2, 2)), rng.standard_normal((K, 2)),
                             rng.standard_normal(K)).projected()
        assert sol.value <= net.objective(X, y, lam) + 1e-7
    cert = three_layer_gap(f)
    assert cert.exact and "global" in cert.note
    assert cert.dual <= sol.value + 1e-9 and 0 <= cert.gap <= 1e-6
    # a poor network: the certificate's dual bound still lies below the optimum
    bad = ThreeLayerReLU(np.ones((1, 2, 2)) / 2, np.ones((1, 2)), np.ones(1))
    cb = three_layer_gap(f, bad)
    assert cb.dual <= sol.value + 1e-9
    assert cb.gap >= bad.objective(X, y, lam) - sol.value - 1e-9


def test_sampled_patterns_give_upper_bound_and_relative_certificate():
    X, y = _data(3, 6)
    lam = 0.1
    combos, second = sample_combos(X, 2, 15, seed=0)
    fs = three_layer(X, y, combos, second, lam, m1=2)
    assert not fs.exact
    ss = fs.solve()
    fe = three_layer(X, y, enumerate_patterns(X), "complete", lam, m1=2)
    se = fe.solve()
    assert se.value <= ss.value + 1e-7
    assert _rel(ss.to_network().objective(X, y, lam), ss.value) <= 1e-6
    cert = three_layer_gap(fs)
    assert not cert.exact and "relative to the sampled patterns" in cert.note
    assert cert.gap <= 1e-5


def test_lam_parameter_resolve_and_logistic_loss():
    X, y = _data(5, 4)
    P = enumerate_patterns(X)
    f = three_layer(X, y, P, all_masks(X), 0.5, m1=1)
    v1 = f.solve().value
    f.lam.value = 0.05
    s2 = f.solve()
    assert s2.value < v1
    assert _rel(s2.to_network().objective(X, y, 0.05), s2.value) <= 1e-6
    yl = np.where(y >= 0, 1.0, -1.0)
    g = three_layer(X, yl, P, "complete", 0.1, m1=2, loss="logistic")
    sg = g.solve()
    assert _rel(sg.to_network().objective(X, yl, 0.1, "logistic"), sg.value) <= 1e-6


def test_bias_first_layer():
    X, y = _data(8, 4, d=1)
    P = enumerate_patterns(X, bias=True)
    f = three_layer(X, y, P, "complete", 0.1, m1=2)
    sol = f.solve()
    net = sol.to_network()
    assert net.bias and net.W1.shape[1] == 2
    assert _rel(net.objective(X, y, 0.1), sol.value) <= 1e-6


def test_errors_are_clear():
    X, y = _data(1, 5)
    P = enumerate_patterns(X)
    with pytest.raises(TooLargeError, match="estimated size") as e:
        three_layer(X, y, P, "complete", 0.1, m1=3, max_size=1000)
    assert e.value.estimate > 1000 and str(e.value.estimate) in str(e.value)
    with pytest.raises(InputError, match="scalar"):
        three_layer(X, np.ones((5, 2)), P, "complete", 0.1, m1=1)
    with pytest.raises(InputError):
        three_layer(X, y, P, "complete", 0.0, m1=1)
    with pytest.raises(InputError):
        three_layer(X, y, P, "complete", 0.1, m1=0)
    with pytest.raises(InputError):
        three_layer(X, y, P, "everything", 0.1, m1=1)
    with pytest.raises(InputError):
        three_layer(X + 1.0, y, P, "complete", 0.1, m1=1)
    with pytest.raises(InputError):
        three_layer(X, y, P, all_masks(X + 1.0), 0.1, m1=1)
    with pytest.raises(InputError):
        three_layer(X, y[:4], P, "complete", 0.1, m1=1)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(InputError):
        three_layer(Xn, y, P, "complete", 0.1, m1=1)
    with pytest.raises(InputError, match="W1_k"):
        ThreeLayerReLU(np.ones((1, 2, 2)), np.ones((1, 2)), np.ones(1)).objective(X, y, 0.1)


@pytest.mark.slow
def test_figure4_setup_convex_below_every_adam_trial():
    """Ergen & Pilanci (ICML 2021) Figure 4: (n, d, m1, beta) = (5, 2, 3, 0.002), K = 5 teacher, X ~ N(0, I)."""
    rng = np.random.default_rng(0)
    n, d, m1, beta = 5, 2, 3, 0.002
    X = rng.standard_normal((n, d))
    teacher = ThreeLayerReLU(rng.standard_normal((5, d, m1)), rng.standard_normal((5, m1)),
                             rng.standard_normal(5)).projected()
    y = teacher.predict(X)
    f = three_layer(X, y, enumerate_patterns(X), "complete", beta, m1=m1)
    assert f.exact
    sol = f.solve()
    net = sol.to_network()
    assert _rel(net.objective(X, y, beta), sol.value) <= 1e-6
    assert sol.value <= teacher.objective(X, y, beta) + 1e-9  # the teacher is a feasible K = 5 network
    trials = [train_three_layer(X, y, K=5, m1=m1, lam=beta, steps=800, lr=1e-2, seed=s) for s in range(5)]
    objs = [t.objective(X, y, beta) for t in trials]
    assert all(sol.value <= o + 1e-9 for o in objs), (sol.value, objs)


def test_matched_sampled_blocks_plus_network_patterns_beat_the_network():
    """Remark 3 active set: a trained network's own tuples/masks make program (12) at most its
    objective (4); the mapped network attains the program's value."""
    from convexnn.arrangements.layers import merge_combos, network_combos

    X, y = _data(21, 12, d=3)
    lam = 0.05
    net = train_three_layer(X, y, K=3, m1=2, lam=lam, steps=200, lr=2e-2, seed=0)
    sampled, _ = sample_combos(X, 2, 10, seed=0)
    own, own_masks = network_combos(net, X)
    assert own.second is not None and len(own_masks) >= 1
    f = three_layer(X, y, merge_combos(sampled, own), "matched", lam, m1=2)
    assert not f.exact and f.n_blocks <= 2 * (10 + 3)
    sol = f.solve()
    assert sol.value <= net.objective(X, y, lam) + 1e-7
    assert _rel(sol.to_network().objective(X, y, lam), sol.value) <= 1e-6
    with pytest.raises(InputError, match="matched"):
        three_layer(X, y, enumerate_patterns(X), "matched", lam, m1=2)
