"""Sampled pattern sets: reproducibility, dedup, gate structure (conv / sparse), validation."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cnn
from convexnn.errors import InputError


def test_gaussian_reproducible_and_deduplicated():
    X = np.random.default_rng(0).standard_normal((30, 4))
    A = cnn.sample_patterns(X, 500, seed=3)
    B = cnn.sample_patterns(X, 500, seed=3)
    C = cnn.sample_patterns(X, 500, seed=4)
    assert A == B and np.array_equal(A.gates, B.gates)
    assert A != C
    assert not A.exact and A.kind == "gaussian"
    assert len(set(m.tobytes() for m in A.masks.T)) == len(A) <= 500
    assert np.array_equal(X @ A.gates >= 0, A.masks)
    assert A.fingerprint is not None
    A.check(X)


def test_sampling_on_small_arrangement_is_subset_and_nearly_complete():
    X = np.random.default_rng(1).standard_normal((8, 2))
    S = cnn.sample_patterns(X, 5000, seed=0, bias=True)
    P = cnn.enumerate_patterns(X, bias=True)
    assert S.bias and S.n_features == 3
    assert P.contains(S.masks).all()
    assert len(S) >= 0.7 * len(P)  # Gaussian gates miss only thin chambers


def test_conv_gates_supported_on_one_patch():
    rng = np.random.default_rng(2)
    H, W, h, w = 6, 5, 2, 3
    X = rng.standard_normal((20, 2 * H * W))
    S = cnn.sample_patterns(X, 300, seed=1, kind="conv", image_shape=(2, H, W), patch_shape=(h, w))
    assert S.kind == "conv"
    G = S.gates.reshape(2, H, W, -1)
    for i in range(G.shape[-1]):
        nz = np.argwhere(np.abs(G[..., i]).sum(axis=0) > 0)
        assert len(nz) == h * w
        (r0, c0), (r1, c1) = nz.min(axis=0), nz.max(axis=0)
        assert (r1 - r0 + 1, c1 - c0 + 1) == (h, w)
    assert np.array_equal(X @ S.gates >= 0, S.masks)


def test_conv_patterns_are_patch_arrangement_chambers():
    # conv patterns are chambers of one patch matrix X_k (Pilanci (2021 talk), convolutional arrangements)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 9))  # 3x3 images, 2x2 patches at 4 locations
    S = cnn.sample_patterns(X, 2000, seed=0, kind="conv", image_shape=(3, 3), patch_shape=(2, 2))
    imgs = X.reshape(10, 3, 3)
    union = set()
    for r in range(2):
        for c in range(2):
            Xk = imgs[:, r:r + 2, c:c + 2].reshape(10, 4)
            union |= {m.tobytes() for m in cnn.enumerate_patterns(Xk).masks.T}
    assert {m.tobytes() for m in S.masks.T} <= union


def test_feature_sparse_support():
    X = np.random.default_rng(4).standard_normal((15, 7))
    S = cnn.sample_patterns(X, 400, seed=2, kind="feature_sparse", sparsity=2, bias=True)
    nnz = (S.gates[:-1] != 0).sum(axis=0)
    assert nnz.max() <= 2 and nnz.min() >= 1
    assert np.all(S.gates[-1] != 0)
    assert S == cnn.sample_patterns(X, 400, seed=2, kind="feature_sparse", sparsity=2, bias=True)


@pytest.mark.parametrize("kwargs", [
    dict(n_samples=0), dict(n_samples=2.5), dict(n_samples=10, kind="nope"),
    dict(n_samples=10, kind="conv"),
    dict(n_samples=10, kind="conv", image_shape=(3, 3), patch_shape=(2, 2)),  # 9 != 16
    dict(n_samples=10, kind="conv", image_shape=(4, 4), patch_shape=(5, 1)),
    dict(n_samples=10, kind="conv", image_shape=(4, 4), patch_shape=(0, 1)),
    dict(n_samples=10, kind="feature_sparse", sparsity=17),
    dict(n_samples=10, kind="feature_sparse", sparsity=0),
])
def test_sample_bad_arguments(kwargs):
    X = np.random.default_rng(0).standard_normal((5, 16))
    with pytest.raises(InputError):
        cnn.sample_patterns(X, **kwargs)
