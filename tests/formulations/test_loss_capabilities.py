"""Solvers state what they need from a loss; a loss lacking it is refused with the capability named."""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pytest

import convexnn as cx
from convexnn.arrangements.sample import sample_patterns
from convexnn.backend import NUMPY
from convexnn.errors import InputError
from convexnn.formulations.losses import LOSSES, Loss, get_loss


@dataclass(frozen=True)
class AbsLoss(Loss):
    """sum |p - y|: a primal CVXPY form and a value only (no Lipschitz gradient, no dual form)."""

    name: str = "abs_test"

    def value_on(self, bk, z, y):
        return bk.sum(bk.abs(z - y))

    def cvx(self, pred, y):
        return cp.sum(cp.abs(pred - y))


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 2))
    y = X[:, 0] - X[:, 1] ** 2
    return X, y, sample_patterns(X, 10, seed=0)


def test_interior_point_needs_only_the_cvx_form(problem):
    X, y, P = problem
    f = cx.c_grelu(X, y, P, 0.1, loss=AbsLoss())
    sol = cx.solve(f, method="auto")
    assert sol.info["method"] == "interior"
    assert "Lipschitz" in sol.info["auto_reason"]
    assert sol.value == pytest.approx(AbsLoss().value(sol.fit, y) + 0.1 * np.linalg.norm(sol.U, axis=1).sum(),
                                      rel=1e-6)


def test_first_order_names_the_missing_capability(problem):
    X, y, P = problem
    f = cx.c_grelu(X, y, P, 0.1, loss=AbsLoss())
    with pytest.raises(InputError, match="Lipschitz gradient"):
        cx.solve(f, method="first_order")


def test_dual_problem_names_the_missing_capability(problem):
    X, y, P = problem
    f = cx.c_relu(X, y, P, 0.1, loss=AbsLoss())
    with pytest.raises(InputError, match="CVXPY dual form"):
        cx.dual_problem(f)
    with pytest.raises(InputError, match="gradient"):
        AbsLoss().grad(np.zeros(3), np.zeros(3))


@pytest.mark.parametrize("name", ["squared", "logistic", "hinge", "huber"])
def test_builtin_losses_agree_with_their_own_forms(name):
    """value = CVXPY primal form; -f*(-v) = CVXPY dual form on the domain; grad by differences."""
    L = get_loss(name)
    rng = np.random.default_rng(1)
    y = np.sign(rng.standard_normal(9)) if L.classification else rng.standard_normal(9)
    p = 2 * rng.standard_normal(9)
    assert float(L.cvx(cp.Constant(p), y).value) == pytest.approx(L.value(p, y), rel=1e-10)
    v = L.project_dual(rng.standard_normal(9), y)
    assert L.conjugate_domain(-v, y, 0.0)
    obj, cons = L.dual_cvx(cp.Constant(v), y)
    assert all(bool(np.all(c.value)) for c in cons)
    assert float(obj.value) == pytest.approx(L.dual_value(v, y), rel=1e-9, abs=1e-12)
    if L.smooth:
        h = 1e-6
        fd = np.array([(L.value(p + h * e, y) - L.value(p - h * e, y)) / (2 * h) for e in np.eye(9)])
        assert np.allclose(L.grad(p, y), fd, atol=1e-5)
        # Fenchel-Young: f(p) + f*(g) = <g, p> at g = grad f(p)
        g = L.grad(p, y)
        assert L.value(p, y) + L.conjugate(g, y) == pytest.approx(float(g @ p), abs=1e-9)
        assert float(L.bregman_on(NUMPY, p + 0.3, p, y)) >= 0


def test_registry_accepts_only_losses():
    with pytest.raises(InputError):
        cx.formulations.register_loss("not a loss")
    assert {"squared", "logistic", "hinge", "huber"} <= set(LOSSES)
