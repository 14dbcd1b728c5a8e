"""Convex WGANs: quadratic discriminator, two-layer ReLU generator (Sahiner et al., ICLR 2022)."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn as cx
from convexnn.zoo import (
    QuadraticDiscriminator,
    best_discriminator,
    convex_wgan,
    discriminator_value,
    fit_generator,
    wgan_generator_output,
    wgan_moment_sdp,
)


def _data(n=12, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ np.diag([3.0, 1.5, 0.4][:d])


@pytest.mark.parametrize("lam", [0.5, 10.0, 40.0])
def test_closed_form_matches_the_moment_sdp(lam):
    X = _data(seed=1)
    out = wgan_generator_output(X, lam)
    sdp = wgan_moment_sdp(X, lam).solve()
    scale = max(1.0, out.value)
    assert sdp.value == pytest.approx(out.value, abs=1e-6 * scale)
    assert np.allclose(sdp.M, out.M, atol=1e-5 * scale)
    assert np.allclose(sdp.G, out.G, atol=1e-4 * np.sqrt(scale))


def test_optimality_certificate():
    """Weak duality: tr M >= tr(Y M) >= tr(Y (A - lam I)) for every feasible M, equality at M*."""
    X = _data(seed=2)
    lam = 8.0
    out = wgan_generator_output(X, lam)
    A = X.T @ X
    Y = out.dual
    ev = np.linalg.eigvalsh(Y)
    assert ev.min() >= -1e-12 and ev.max() <= 1 + 1e-12
    assert np.trace(Y @ (A - lam * np.eye(3))) == pytest.approx(out.value, rel=1e-12)
    assert np.linalg.norm(A - out.G.T @ out.G, 2) <= lam * (1 + 1e-10)
    assert np.sum(out.G ** 2) == pytest.approx(out.value, rel=1e-12)
    assert np.allclose(out.G.T @ out.G, out.M, atol=1e-10)
    # the talk's formula G* = U (Sigma^2 - lam I)_+^{1/2} V^T
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    assert np.allclose(out.G, U @ np.diag(np.sqrt(np.maximum(s ** 2 - lam, 0))) @ Vt, atol=1e-10)


def test_exact_penalty_descent_never_beats_the_closed_form():
    """min ||G||^2 + rho (||X^T X - G^T G||_2 - lam)_+ >= p* for rho >= tr Y (exact penalty), from any start."""
    torch = pytest.importorskip("torch")
    X = _data(n=8, seed=3)
    lam = 5.0
    out = wgan_generator_output(X, lam)
    rho = out.rank + 1.0
    A = torch.tensor(X.T @ X)
    finals = []
    for seed in range(3):
        torch.manual_seed(seed)
        G = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([G], lr=0.05)
        for _ in range(1500):
            opt.zero_grad()
            pen = torch.relu(torch.linalg.matrix_norm(A - G.T @ G, ord=2) - lam)
            obj = (G ** 2).sum() + rho * pen
            obj.backward()
            opt.step()
        finals.append(float(obj.detach()))
    assert min(finals) >= out.value * (1 - 1e-9)
    assert min(finals) <= out.value * 1.02


def test_discriminator_best_response():
    X = _data(seed=4)
    lam = 6.0
    G = wgan_generator_output(X, lam).G
    val, _ = best_discriminator(X, G, lam)
    assert val == 0.0
    rng = np.random.default_rng(5)
    for _ in range(50):  # no discriminator gains against the optimal generator
        V = rng.standard_normal((3, 4))
        D = QuadraticDiscriminator(V / np.linalg.norm(V, axis=0), 10 * rng.standard_normal(4))
        assert discriminator_value(D, X, G, lam) <= 1e-8
    val, D = best_discriminator(X, 0.95 * G, lam)  # a generator with too little energy loses
    assert val == np.inf
    assert discriminator_value(D, X, 0.95 * G, lam) > 0
    _, D2 = best_discriminator(X, 0.95 * G, lam, scale=10.0)
    assert discriminator_value(D2, X, 0.95 * G, lam) == pytest.approx(10 * discriminator_value(D, X, 0.95 * G, lam))


def test_generator_reproduces_the_output_with_minimum_weight_decay():
    rng = np.random.default_rng(6)
    X = _data(n=10, d=2, seed=6)
    Z = rng.standard_normal((10, 2))
    gan = convex_wgan(X, Z, lam=3.0)
    assert np.allclose(gan.sample(), gan.output.G, atol=1e-5)
    assert gan.generator.regularizer() == pytest.approx(gan.solution.value, rel=1e-6)
    # group regularizer: the program decouples over output coordinates (independent scalar programs)
    P = cx.enumerate_patterns(Z, bias=True)
    cols = sum(cx.min_norm_interpolation(Z, gan.output.G[:, k], P).solve().value for k in range(2))
    assert cols == pytest.approx(gan.solution.value, rel=1e-6)


def test_bad_inputs():
    X = _data()
    with pytest.raises(cx.InputError):
        wgan_generator_output(X, 0.0)
    with pytest.raises(cx.InputError, match="rank"):
        wgan_generator_output(X, 0.1, n_generated=2)
    with pytest.raises(cx.InputError, match="orthonormal"):
        wgan_generator_output(X, 0.1, Q=np.ones((12, 3)))
    with pytest.raises(cx.InputError, match="rows"):
        fit_generator(np.ones((5, 2)), np.ones((6, 2)))
    with pytest.raises(cx.InputError, match="columns"):
        best_discriminator(X, np.ones((4, 2)), 1.0)
