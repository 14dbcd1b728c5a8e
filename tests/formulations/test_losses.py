"""Losses: numpy value == CVXPY value, gradients by finite differences, conjugates by a
numerical sup (independent of the closed forms), and the Fenchel-Young inequality."""

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from convexnn import InputError, get_loss

LOSSES = ["squared", "logistic", "hinge"]


def _labels(rng, n, name):
    return rng.choice([-1.0, 1.0], n) if name != "squared" else rng.standard_normal(n)


@pytest.mark.parametrize("name", LOSSES)
def test_value_matches_cvxpy(name):
    rng = np.random.default_rng(0)
    y, p = _labels(rng, 7, name), rng.standard_normal(7)
    loss = get_loss(name)
    assert loss.value(p, y) == pytest.approx(loss.cvx(cp.Constant(p), y).value, rel=1e-10)


@pytest.mark.parametrize("name", ["squared", "logistic"])
def test_gradient_finite_differences(name):
    rng = np.random.default_rng(1)
    y, p = _labels(rng, 5, name), rng.standard_normal(5)
    loss, h = get_loss(name), 1e-6
    fd = np.array([(loss.value(p + h * e, y) - loss.value(p - h * e, y)) / (2 * h) for e in np.eye(5)])
    np.testing.assert_allclose(loss.grad(p, y), fd, rtol=1e-6, atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(LOSSES), yi=st.sampled_from([-1.0, 1.0]), t=st.floats(0.01, 0.99))
def test_conjugate_equals_numerical_sup(name, yi, t):
    """l*(z) = sup_p z p - l(p) for a scalar sample, z inside the domain."""
    loss = get_loss(name)
    y = np.array([yi])
    z = -yi * t if name != "squared" else 3 * t - 1.5  # -y z in (0, 1) for classification losses
    if name == "hinge":  # sup of a piecewise-linear function: attained at the kink p = y
        sup = max(z * p - loss.value(np.array([p]), y) for p in np.linspace(-50, 50, 20001))
    else:
        res = minimize_scalar(lambda p: -(z * p - loss.value(np.array([p]), y)), bounds=(-60, 60),
                              method="bounded", options={"xatol": 1e-12})
        sup = -res.fun
    assert loss.conjugate(np.array([z]), y) == pytest.approx(sup, abs=1e-6)


@pytest.mark.parametrize("name", ["logistic", "hinge"])
def test_conjugate_infinite_outside_domain(name):
    y = np.array([1.0])
    assert get_loss(name).conjugate(np.array([0.5]), y) == np.inf  # -y z = -0.5 < 0
    assert get_loss(name).conjugate(np.array([-1.5]), y) == np.inf  # -y z = 1.5 > 1


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(LOSSES), seed=st.integers(0, 10**6))
def test_fenchel_young(name, seed):
    """l(p) + l*(z) >= <z, p> with equality at z = grad l(p) (smooth losses)."""
    rng = np.random.default_rng(seed)
    loss = get_loss(name)
    y, p = _labels(rng, 6, name), rng.standard_normal(6)
    z = loss.grad(p, y)
    lhs = loss.value(p, y) + loss.conjugate(z, y)
    assert lhs >= z @ p - 1e-9
    if loss.smooth:
        assert lhs == pytest.approx(z @ p, abs=1e-8)


def test_unknown_loss():
    with pytest.raises(InputError, match="unknown loss"):
        get_loss("l1")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 300), log_scale=st.floats(-3, 2), log_cmax=st.floats(-2, 2))
def test_logistic_best_dual_scale_is_the_maximizer_on_its_domain(seed, n, log_scale, log_cmax):
    # phi(c) = -f*(-c v) is concave on 0 <= c y_j v_j <= 1, c <= c_max: the Newton solve attains its
    # maximum (against a fine grid and a bounded golden-section search) and stays in the domain
    from scipy.optimize import minimize_scalar

    L = get_loss("logistic")
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    v = -np.asarray(L.grad(rng.standard_normal(n) * 10.0**log_scale, y)) * rng.uniform(0.2, 3.0)
    c_max = 10.0**log_cmax
    c = L.best_dual_scale(v, y, c_max)
    hi = min(c_max, 1.0 / float(np.max(y * v)))
    assert 0.0 <= c <= hi * (1 + 1e-15) and L.conjugate_domain(-c * v, y)
    phi = lambda t: L.dual_value(t * v, y)  # noqa: E731
    ref = minimize_scalar(lambda t: -phi(t), bounds=(0.0, hi), method="bounded", options={"xatol": 1e-13 * hi})
    best = max([phi(t) for t in np.linspace(0.0, hi, 401)] + [phi(float(ref.x)), phi(hi)])
    assert phi(c) >= best - 1e-10 * max(1.0, abs(best))
    # a sign against the labels leaves c = 0 as the only point of the domain
    w = v.copy()
    w[0] = -w[0] if w[0] != 0 else -y[0]
    assert L.best_dual_scale(w, y, c_max) == 0.0
