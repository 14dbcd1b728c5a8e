"""Deep tensor programs (Mishkin (PhD thesis, Stanford)): L = 2 reproduces C-ReLU / C-GReLU, L = 3 matches program (12),
lower bounds on trained networks, mappings, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convexnn.arrangements.enumerate import enumerate_patterns
from convexnn.arrangements.layers import all_masks, deep_layer_patterns, network_patterns
from convexnn.errors import InputError, TooLargeError
from convexnn.formulations.deep import deep_grelu, deep_relu
from convexnn.formulations.three_layer import three_layer
from convexnn.formulations.two_layer import c_grelu, c_relu
from convexnn.networks.deep import DeepGatedReLU, DeepReLU, ThreeLayerReLU, train_deep


def _data(seed: int, n: int, d: int = 2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


@pytest.mark.parametrize("bias", [False, True])
def test_two_layers_reproduce_c_relu_and_c_grelu(bias):
    X, y = _data(0, 7)
    P = enumerate_patterns(X, bias=bias)
    lam = 0.2
    dr = deep_relu(X, y, [P], lam).solve()
    assert _rel(dr.value, c_relu(X, y, P, lam).solve().value) <= 1e-6
    assert _rel(dr.to_network().objective(X, y, lam), dr.value) <= 1e-6
    dg = deep_grelu(X, y, [P], lam).solve()
    assert _rel(dg.value, c_grelu(X, y, P, lam).solve().value) <= 1e-6
    net = dg.to_network()
    assert isinstance(net, DeepGatedReLU)
    assert _rel(net.objective(X, y, lam), dg.value) <= 1e-6


def test_three_layers_match_program_12():
    """deep_relu(L=3) is program (12) with one tuple holding every (pattern, sign) pair:
    equal values for m1 = 2 P1; <= program (12) for every smaller m1 (its blocks embed)."""
    X, y = _data(1, 4)
    y = 3 * y
    lam = 0.5
    P = enumerate_patterns(X)
    S2 = all_masks(X)
    d3 = deep_relu(X, y, [P, S2], lam)
    assert d3.exact and d3.problem.is_dcp() and d3.problem.is_dpp()
    s3 = d3.solve()
    p1 = int(np.asarray(P.masks).any(axis=0).sum())
    t_full = three_layer(X, y, P, S2, lam, m1=2 * p1).solve()
    assert _rel(s3.value, t_full.value) <= 1e-6
    for m1 in (1, 2):
        t = three_layer(X, y, P, S2, lam, m1=m1).solve()
        assert s3.value <= t.value + 1e-7
        # the three-layer network, read as a fully connected DeepReLU, is feasible for the deep program
        net3 = t.to_network()
        assert net3.as_deep().objective(X, y, lam) <= net3.objective(X, y, lam) + 1e-9
        assert s3.value <= net3.as_deep().objective(X, y, lam) + 1e-7
    net = s3.to_network()
    assert isinstance(net, DeepReLU) and net.depth == 3
    assert _rel(net.objective(X, y, lam), s3.value) <= 1e-6
    g3 = deep_grelu(X, y, [P, S2], lam).solve()
    assert g3.value <= s3.value + 1e-7
    assert _rel(g3.to_network().objective(X, y, lam), g3.value) <= 1e-6


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), widths=st.sampled_from([(3, 2), (4, 3), (2, 2)]))
def test_relaxation_lower_bounds_trained_deep_networks(seed, widths):
    X, y = _data(seed, 4)
    lam = 0.1
    layers = deep_layer_patterns(X, widths, method="complete")
    f = deep_relu(X, y, layers, lam)
    assert f.exact
    sol = f.solve()
    net = train_deep(X, y, widths=widths, lam=lam, steps=300, lr=2e-2, seed=seed)
    assert sol.value <= net.objective(X, y, lam) + 1e-7
    rng = np.random.default_rng(seed)
    for _ in range(20):
        r = DeepReLU([rng.standard_normal((2, widths[0])), rng.standard_normal(widths),
                      rng.standard_normal(widths[1])])
        assert sol.value <= r.objective(X, y, lam) + 1e-7
    assert _rel(sol.to_network().objective(X, y, lam), sol.value) <= 1e-6


def test_sampled_plus_network_patterns_beat_the_network():
    """Active-set view (Ergen & Pilanci (ICML 2021) Remark 3): adding a trained network's patterns to sampled ones makes
    the deep program at most the network's objective; the mapped tree network attains it."""
    X, y = _data(7, 10, d=3)
    lam = 0.05
    net = train_deep(X, y, widths=(3, 2), lam=lam, steps=400, lr=2e-2, seed=0)
    sampled = deep_layer_patterns(X, (3, 2), n_samples=3, seed=0)
    mine = network_patterns(net, X)
    layers = [sampled[0].union(mine[0]), sampled[1].union(mine[1])]
    f = deep_relu(X, y, layers, lam)
    assert not f.exact
    sol = f.solve()
    assert sol.value <= net.objective(X, y, lam) + 1e-7
    assert _rel(sol.to_network().objective(X, y, lam), sol.value) <= 1e-6


def test_widths_mapping_refuses_when_too_narrow():
    X, y = _data(2, 4)
    y = 3 * y
    P = enumerate_patterns(X)
    f = deep_relu(X, y, [P, all_masks(X)], 0.3)
    sol = f.solve()
    need = sol.to_network().widths
    with pytest.raises(InputError, match="needs hidden widths"):
        f.network(sol, widths=(1, 1))
    big = f.network(sol, widths=(need[0] + 2, need[1] + 1))
    assert big.widths == (need[0] + 2, need[1] + 1)
    assert _rel(big.objective(X, y, 0.3), sol.value) <= 1e-6
    g = deep_relu(X, y, [P, all_masks(X)], 0.3, widths=(1, 1))
    with pytest.raises(InputError, match="d_l >= 2 P_l d_\\(l\\+1\\)"):
        g.solve().to_network()


def test_errors_are_clear():
    X, y = _data(3, 6)
    P = enumerate_patterns(X)
    S2, S3 = all_masks(X, level=2), all_masks(X, level=3)
    with pytest.raises(TooLargeError, match="estimated size") as e:
        deep_relu(X, y, [P, S2, S3], 0.1)
    assert str(e.value.estimate) in str(e.value)
    with pytest.raises(InputError, match="layer-3"):
        deep_relu(X, y, [P, S3], 0.1)
    with pytest.raises(InputError):
        deep_relu(X, y, [S2], 0.1)
    with pytest.raises(InputError):
        deep_relu(X, y, [], 0.1)
    with pytest.raises(InputError):
        deep_relu(X, y, [P], -1.0)
    with pytest.raises(InputError, match="scalar"):
        deep_grelu(X, np.ones((6, 2)), [P], 0.1)
    with pytest.raises(InputError):
        deep_relu(X + 1, y, [P], 0.1)
    with pytest.raises(InputError):
        DeepReLU([np.ones((2, 3)), np.ones(4)])
    g = DeepGatedReLU([np.ones((2, 1)), np.ones(1)], [np.ones((6, 1), bool)], X)
    with pytest.raises(InputError, match="training data"):
        g.predict(X + 1)


def test_three_layer_network_as_deep_is_same_function():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 3))
    net = ThreeLayerReLU(rng.standard_normal((3, 3, 2)), rng.standard_normal((3, 2)),
                         rng.standard_normal(3)).projected()
    deep = net.as_deep()
    assert np.allclose(deep.predict(X), net.predict(X))
    bal = net.balanced()
    assert np.allclose(bal.predict(X), net.predict(X))
    assert deep.path_norm() <= bal.regularizer() + 1e-12
