"""Second-layer and deeper activation patterns (convexnn.arrangements.layers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convexnn.arrangements.enumerate import enumerate_patterns
from convexnn.arrangements.layers import (
    LayerPatterns,
    all_masks,
    deep_layer_patterns,
    first_layer_combos,
    network_patterns,
    sample_combos,
    second_layer_patterns,
)
from convexnn.errors import InputError, TooLargeError
from convexnn.networks.deep import DeepReLU


def _relu(z):
    return np.maximum(z, 0.0)


def test_all_masks_is_every_nonzero_mask():
    X = np.random.default_rng(0).standard_normal((4, 2))
    A = all_masks(X)
    assert len(A) == 2 ** 4 - 1 and A.exact
    codes = {int(sum(int(b) << i for i, b in enumerate(col))) for col in A.masks.T}
    assert codes == set(range(1, 16))


def test_all_masks_too_large_names_the_estimate():
    X = np.zeros((20, 1)) + np.arange(20)[:, None]
    with pytest.raises(TooLargeError, match=str(2 ** 20 - 1)) as e:
        all_masks(X)
    assert e.value.estimate == 2 ** 20 - 1


def test_sampled_second_layer_masks_are_reproduced_by_their_witnesses():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 3))
    S = second_layer_patterns(X, 3, method="sample", n_samples=40, seed=0, bias=True)
    assert S.level == 2 and not S.exact and len(S) == len(S.witnesses) > 3
    Xa = np.hstack([X, np.ones((9, 1))])
    for mask, (U1, u2) in zip(S.masks.T, S.witnesses):
        assert np.array_equal(_relu(Xa @ U1) @ u2 >= 0, mask)


def test_first_layer_combos_counts():
    X = np.random.default_rng(2).standard_normal((5, 2))
    P = enumerate_patterns(X)
    p = int(np.asarray(P.masks).any(axis=0).sum())
    allc = first_layer_combos(P, 3)
    assert len(allc) == math.comb(2 * p, 3) - math.comb(p, 3)  # drop all-negative
    mixed = first_layer_combos(P, 3, mixed_signs_only=True)
    assert len(mixed) == math.comb(2 * p, 3) - 2 * math.comb(p, 3)
    assert np.all((mixed.signs > 0).any(axis=1) & (mixed.signs < 0).any(axis=1))
    with pytest.raises(TooLargeError, match="max_combos"):
        first_layer_combos(P, 3, max_combos=10)
    with pytest.raises(InputError):
        first_layer_combos(P, 0)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 4))
def test_exact_second_layer_patterns_cover_every_network(seed, n):
    """Exact-by-composition masks: each witness is a consistent network, and every random
    network of width m1 = 2 has its second-layer pre-activation z consistent with some mask."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    S = second_layer_patterns(X, 2, method="exact")
    assert S.exact and S.kind == "composed"
    for mask, (Q, s) in zip(S.masks.T, S.witnesses):
        z = _relu(X @ Q) @ s
        assert np.all((2.0 * mask - 1.0) * z >= -1e-7)
    S2 = 2.0 * S.masks - 1.0
    for _ in range(300):
        U1, u2 = rng.standard_normal((2, 2)), rng.standard_normal(2)
        z = _relu(X @ U1) @ u2
        if np.all(z <= 0):  # output (z)_+ = 0: the dropped all-zero mask
            continue
        assert np.any(np.all(S2 * z[:, None] >= -1e-12, axis=0))


def test_exact_second_layer_patterns_refuse_too_many_lps():
    X = np.random.default_rng(3).standard_normal((6, 2))
    with pytest.raises(TooLargeError, match="linear programs") as e:
        second_layer_patterns(X, 3, method="exact", max_lps=5)
    assert e.value.estimate > 5


def test_sample_combos_match_their_networks():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((7, 2))
    combos, second = sample_combos(X, 3, 30, seed=1)
    M = np.asarray(combos.patterns.masks)
    assert combos.width <= 3 and len(combos) >= 1
    for (U1, u2) in second.witnesses[:10]:
        masks = X @ U1 >= 0
        sg = np.where(u2 >= 0, 1.0, -1.0)
        if not (sg > 0).any():
            continue
        pairs = {(tuple(masks[:, j]), sg[j]) for j in range(3) if masks[:, j].any()}
        found = [c for c in range(len(combos))
                 if pairs == {(tuple(M[:, combos.index[c, j]]), combos.signs[c, j]) for j in range(combos.width)}]
        assert found


def test_deep_layer_patterns_sampled_and_network_patterns():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 3))
    layers = deep_layer_patterns(X, (4, 3, 2), n_samples=10, seed=0)
    assert [getattr(p, "level", 1) for p in layers] == [1, 2, 3]
    for lp in layers[1:]:
        for mask, wit in zip(lp.masks.T, lp.witnesses):
            h = X
            for W in wit[:-1]:
                h = _relu(h @ W)
            assert np.array_equal(h @ wit[-1] >= 0, mask)
    net = DeepReLU([rng.standard_normal((3, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)])
    pats = network_patterns(net, X)
    Z = net.forward(X)
    assert pats[0].contains(Z[0] >= 0).all()
    keep = (Z[1] >= 0).any(axis=0)
    got = {tuple(c) for c in pats[1].masks.T}
    assert all(tuple(c) in got for c in (Z[1] >= 0)[:, keep].T)


def test_layer_patterns_validation():
    X = np.random.default_rng(6).standard_normal((4, 2))
    with pytest.raises(InputError):
        LayerPatterns.build(np.ones((4, 2)), level=1)
    with pytest.raises(InputError):
        LayerPatterns.build(np.full((4, 2), 2))
    A = all_masks(X)
    with pytest.raises(InputError, match="another data matrix"):
        A.check(X + 1.0)
    with pytest.raises(InputError):
        second_layer_patterns(X, 2, method="nope")
    with pytest.raises(InputError):
        deep_layer_patterns(X, (), n_samples=2)
    u = A.union(all_masks(X))
    assert len(u) == len(A)
