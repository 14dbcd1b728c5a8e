"""The exact rescaling of the programs before the solvers (convexnn/solvers/scaling.py): the maps,
the invariance of the solves under the two symmetries, and programs in raw units."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.backend import NUMPY
from convexnn.formulations import HuberLoss
from convexnn.formulations.losses import get_loss
from convexnn.solvers import lam_max
from convexnn.solvers.scaling import ProgramScaling, program_scaling


def test_standardized_data_is_not_rescaled():
    X, y = cx.load_dataset("diabetes")
    Xa = np.hstack([X, np.ones((len(X), 1))])
    assert program_scaling(Xa, y, get_loss("squared")).trivial
    assert program_scaling(Xa, np.sign(y), get_loss("logistic")).trivial


def test_factors_are_powers_of_two_and_the_maps_are_exact_inverses():
    rng = np.random.default_rng(0)
    Xa = np.hstack([3.7e5 * rng.standard_normal((50, 3)), np.ones((50, 1))])
    y = 2e-6 * rng.standard_normal(50)
    sc = program_scaling(Xa, y, get_loss("squared"))
    for f in (sc.data, sc.targets):
        assert f > 0 and np.log2(f) == round(np.log2(f))
    # the largest column RMS and the targets' RMS land within a factor sqrt(2) of 1
    assert 2 ** -0.5 <= np.sqrt(np.max(np.mean(sc.Xa(Xa) ** 2, axis=0))) <= 2 ** 0.5
    assert 2 ** -0.5 <= np.sqrt(np.mean(sc.y(y) ** 2)) <= 2 ** 0.5
    u = rng.standard_normal((7, 4))
    assert np.array_equal(sc.weights_out(sc.weights_in(u)), u)
    assert sc.lam_back(sc.lam(0.3)) == 0.3
    # the targets are not rescaled for a loss without the symmetry
    assert program_scaling(Xa, np.sign(y), get_loss("logistic")).targets == 1.0
    assert ProgramScaling().trivial


def _program(kind: str, loss: str, seed: int, data: float, targets: float):
    """A small program without bias (so that scaling X scales every column of Xa) in the units
    ``data`` and ``targets``, at ``lam = 0.05 lam_max`` of the unit program times ``data * targets``
    (``loss="huber"``: threshold 0.3 in the unit program, times ``targets``)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((30, 3))
    y = X @ rng.standard_normal(3) + 0.3 * rng.standard_normal(30)
    if loss == "logistic":
        y = np.where(y > 0, 1.0, -1.0)
        targets = 1.0
    unit_loss, loss = (HuberLoss(0.3), HuberLoss(0.3 * targets)) if loss == "huber" else (loss, loss)
    G = rng.standard_normal((3, 12))
    lam = 0.05 * lam_max(X, cx.Patterns.from_gates(X, G, bias=False).masks, y, unit_loss)
    pat = cx.Patterns.from_gates(data * X, G, bias=False)  # the same masks
    return getattr(cx, kind)(data * X, targets * y, pat, lam * data * targets, loss=loss, bias=False), targets


@settings(max_examples=30, deadline=None)
@given(delta=st.floats(1e-6, 1e6), b=st.integers(-60, 60),
       r=st.lists(st.floats(-1e8, 1e8), min_size=1, max_size=20))
def test_huber_threshold_scales_with_the_targets_exactly(delta, b, r):
    # h_{delta/2^b}(r/2^b) = h_delta(r)/4^b: the loss of the rescaled program, bit for bit
    L = HuberLoss(delta)
    Ls = L.with_target_scale(2.0 ** b)
    assert Ls.delta == delta / 2.0 ** b
    r = np.asarray(r)
    zero = np.zeros_like(r)
    assert float(Ls.value_on(NUMPY, r / 2.0 ** b, zero)) == float(L.value_on(NUMPY, r, zero)) / 4.0 ** b
    # a loss without the symmetry has no rescaled counterpart; the squared loss is its own
    assert get_loss("logistic").with_target_scale(2.0) is None
    assert get_loss("squared").with_target_scale(2.0) is get_loss("squared")


def test_huber_targets_far_beyond_the_threshold_are_rescaled_and_match_clarabel():
    # targets of about 1e3 delta: the solvers see targets of unit size and delta/2^9 (the block
    # interior point's split form needed two to three times the iterations in the given units)
    rng = np.random.default_rng(11)
    n, d, P = 60, 3, 30
    X = rng.standard_normal((n, d))
    y = 1e3 * (np.maximum(X @ rng.standard_normal(d), 0) + 0.3 * rng.standard_normal(n))
    L = HuberLoss(1.0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    sc = program_scaling(Xa, y, L)
    b = 2.0 ** round(np.log2(np.sqrt(np.mean(y * y))))  # the RMS of the targets, 512 here
    assert sc.targets == b == 512.0 and sc.loss(L).delta == 1.0 / b
    lam = 0.01 * lam_max(Xa, pat.masks, y, L)
    for kind, tol in (("c_relu", 1e-6), ("c_grelu", 1e-8)):
        f = getattr(cx, kind)(X, y, pat, lam, loss=L)
        sol = cx.solve(f, tol=tol)
        assert sol.status == "optimal" and sol.info["gap"] <= tol
        # the dual point is back in the given units: inside the conjugate's box |v| <= delta
        assert np.abs(sol.info["dual_point"]).max() <= 1.0 + 1e-12
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
        assert sol.value == pytest.approx(ref, rel=1e-6)
        assert sol.value - sol.info["gap_abs"] <= ref * (1 + 1e-9)


@pytest.mark.parametrize("kind, loss", [("c_grelu", "squared"), ("c_grelu", "logistic"), ("c_relu", "squared"),
                                        ("c_grelu", "huber"), ("c_relu", "huber")])
@settings(max_examples=8, deadline=None)
@given(k=st.integers(-40, 40), j=st.integers(-40, 40), seed=st.integers(0, 10_000))
def test_power_of_two_units_give_the_same_solve_exactly(kind, loss, k, j, seed):
    # (2^k X, 2^j y, 2^(k+j) lam) is the same program with weights 2^(j-k) u and objective 4^j F:
    # the rescaled program the solvers see is bit for bit the same, so is every step
    tol = 1e-8 if kind == "c_grelu" else 1e-6
    f1, _ = _program(kind, loss, seed, 1.0, 1.0)
    f2, t = _program(kind, loss, seed, 2.0 ** k, 2.0 ** j)
    s1 = cx.solve(f1, method="first_order", tol=tol)
    s2 = cx.solve(f2, method="first_order", tol=tol)
    assert s1.status == s2.status == "optimal"
    assert s1.iterations == s2.iterations
    w = np.log2(t) - k
    for key in f1.weight_keys:
        assert np.array_equal(s2.weights[key], s1.weights[key] * 2.0 ** w)
    assert s2.value == s1.value * t ** 2
    assert s2.info["gap"] == s1.info["gap"]


@pytest.mark.parametrize("scale", [1e-3, 1e-6])
def test_tiny_targets_are_certified_at_the_optimum_of_the_unit_program(scale):
    # the same C-ReLU program with targets of 1e-6 (and lam scaled with them) has the optimum
    # scale^2 F*; it was left at a certified gap of 0.76 when solved in those units
    rng = np.random.default_rng(305)
    n, d, P = 14, 9, 300
    X = rng.standard_normal((n, d))
    y0 = np.maximum(X @ rng.standard_normal(d), 0) + 0.1 * rng.standard_normal(n)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    Xa = np.hstack([X, np.ones((n, 1))])
    lam0 = 1e-3 * lam_max(Xa, pat.masks, y0, "squared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = cx.c_relu(X, y0, pat, lam0).solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10,
                                                 tol_feas=1e-10).value
    f = cx.c_relu(X, scale * y0, pat, scale * lam0)
    sol = cx.solve(f, method="auto", tol=1e-6, viol_tol=1e-8)
    assert sol.status == "optimal" and sol.info["gap"] <= 1e-6 and sol.info["violation"] <= 1e-8
    assert sol.value / scale ** 2 == pytest.approx(ref, rel=2e-6)
    assert sol.value / scale ** 2 - ref <= sol.info["gap_abs"] / scale ** 2 + 1e-9 * ref
    assert sol.info["lam_max"] == pytest.approx(scale * lam_max(Xa, pat.masks, y0, "squared"), rel=1e-12)


@pytest.mark.parametrize("kind", ["c_grelu", "c_relu"])
def test_raw_unit_features_with_a_bias_are_certified_and_match_clarabel(kind):
    # features of 1e6 next to the bias column: only the common factor can go (the column ratio is
    # part of the program); the solves are certified and agree with Clarabel
    rng = np.random.default_rng(5)
    n, d, P = 33, 13, 234
    X = 1e6 * rng.standard_normal((n, d))
    y = np.where(X @ rng.standard_normal(d) + 3e6 * rng.standard_normal(n) > 0, 1.0, -1.0)
    pat = cx.Patterns.from_gates(X, rng.standard_normal((d + 1, P)), bias=True)
    lam = 4.5e-3 * lam_max(np.hstack([X, np.ones((n, 1))]), pat.masks, y, "logistic")
    f = getattr(cx, kind)(X, y, pat, lam, loss="logistic")
    tol = 1e-8 if kind == "c_grelu" else 1e-6
    sol = cx.solve(f, method="auto", tol=tol, viol_tol=1e-8)
    assert sol.status == "optimal" and sol.info["gap"] <= tol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10).value
    assert sol.value == pytest.approx(ref, rel=1e-6)
    # the certificate bounds the suboptimality against Clarabel's point as well
    assert sol.value - ref <= sol.info["gap_abs"] + 1e-7 * abs(ref)


def test_block_interior_point_in_raw_units_matches_the_unit_program():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((80, 3))
    y = np.maximum(X @ rng.standard_normal(3), 0) + 0.1 * rng.standard_normal(80)
    G = rng.standard_normal((3, 40))
    pat = cx.Patterns.from_gates(X, G, bias=False)
    lam = 1e-2 * lam_max(X, pat.masks, y, "squared")
    unit = cx.solve(cx.c_grelu(X, y, pat, lam, bias=False), method="gated_ipm")
    c, s = 3.3e5, 7e-7
    raw_pat = cx.Patterns.from_gates(c * X, G, bias=False)
    assert np.array_equal(raw_pat.masks, pat.masks)
    raw = cx.solve(cx.c_grelu(c * X, s * y, raw_pat, lam * c * s, bias=False), method="gated_ipm")
    assert unit.status == raw.status == "optimal"
    assert raw.value / s ** 2 == pytest.approx(unit.value, rel=1e-8)
    np.testing.assert_allclose(raw.weights["U"] * c / s, unit.weights["U"], atol=1e-6 * np.abs(unit.weights["U"]).max())
    assert raw.info["history"][-1]["objective"] == pytest.approx(raw.value, rel=1e-8)
