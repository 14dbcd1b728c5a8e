"""scikit-learn estimators: the check suite, pipelines / grid search on real data, and the math
behind the fitted attributes (global optimality with exact patterns, one-vs-rest separability,
probabilities) checked against independent computations."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import convexnn as cx
from convexnn.estimators import (
    ConvexGatedReLUClassifier,
    ConvexGatedReLURegressor,
    ConvexReLUClassifier,
    ConvexReLURegressor,
    EstimatorConvergenceWarning,
)


@parametrize_with_checks([
    ConvexReLURegressor(random_state=0),
    ConvexGatedReLURegressor(random_state=0),
    ConvexReLUClassifier(random_state=0),
    ConvexGatedReLUClassifier(random_state=0),
    ConvexReLUClassifier(loss="squared", random_state=0),
])
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


def _tiny(seed=0, n=14, d=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0] - X[:, -1], 0) - 0.5 * np.maximum(X[:, 0], 0) + 0.1 * rng.standard_normal(n)
    return X, y


def test_exact_patterns_give_a_certified_global_optimum():
    """With every chamber, the fitted network is a global minimizer (certified by weak duality)."""
    X, y = _tiny()
    lam = 0.1
    est = ConvexReLURegressor(lam=lam, patterns="exact").fit(X, y)
    assert est.patterns_.exact
    # the network objective equals the convex optimum (exact mapping) ...
    assert est.network_.objective(X, y, lam) == pytest.approx(est.objective_, rel=1e-6)
    # ... and an independent certificate proves global optimality over all widths
    cert = cx.certify(est.network_, X, y, lam)
    assert cert.exact and cert.rel_gap < 1e-5
    np.testing.assert_allclose(est.predict(X), est.network_.predict(X))


def test_gated_regressor_matches_independent_group_lasso():
    """C-GReLU is a group lasso: solve it with a hand-written CVXPY program (loop over patterns)."""
    X, y = _tiny(1, n=20, d=3)
    lam = 0.3
    est = ConvexGatedReLURegressor(lam=lam, n_patterns=8, random_state=3, method="interior").fit(X, y)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])
    M = est.patterns_.masks
    U = [cp.Variable(Xa.shape[1]) for _ in range(M.shape[1])]
    fit = sum(cp.multiply(M[:, i].astype(float), Xa @ U[i]) for i in range(M.shape[1]))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - y) + lam * sum(cp.norm(u, 2) for u in U)))
    prob.solve(solver=cp.CLARABEL)
    assert est.objective_ == pytest.approx(prob.value, rel=1e-6)
    # the gated network reproduces the convex model's training predictions
    np.testing.assert_allclose(est.predict(X), fit.value, atol=1e-5)


def test_multiclass_is_one_vs_rest_and_separates():
    """K classes: objective = sum of the K binary one-vs-rest programs on the same patterns."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((45, 2))
    labels = np.array(["a", "b", "c"])[np.argmax(X @ rng.standard_normal((2, 3)), axis=1)]
    lam = 0.5
    clf = ConvexReLUClassifier(lam=lam, n_patterns=10, random_state=0, method="interior").fit(X, labels)
    assert list(clf.classes_) == ["a", "b", "c"]
    total = 0.0
    for k, c in enumerate(clf.classes_):
        t = np.where(labels == c, 1.0, -1.0)
        total += cx.c_relu(X, t, clf.patterns_, lam, loss="logistic").solve().value
    assert clf.objective_ == pytest.approx(total, rel=1e-5)
    F = clf.decision_function(X)
    assert F.shape == (45, 3)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(F, axis=1)])
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    expected = 1 / (1 + np.exp(-F))
    np.testing.assert_allclose(proba, expected / expected.sum(axis=1, keepdims=True))
    assert clf.score(X, labels) > 0.9


def test_binary_probabilities_are_the_logistic_model():
    X, y = _tiny(4, n=30)
    labels = np.where(y > np.median(y), "hi", "lo")
    clf = ConvexGatedReLUClassifier(lam=0.5, random_state=0).fit(X, labels)
    F = clf.decision_function(X)
    assert F.shape == (30,)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-F)))
    np.testing.assert_array_equal(clf.predict(X), np.where(F > 0, clf.classes_[1], clf.classes_[0]))
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(p))
    # squared / hinge losses have no probabilities
    assert not hasattr(ConvexReLUClassifier(loss="hinge"), "predict_proba")


def test_pipeline_grid_search_and_cross_val_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:150, :4], (y[:150] - y[:150].mean()) / y[:150].std()
    pipe = make_pipeline(StandardScaler(), ConvexReLURegressor(n_patterns=15, random_state=0))
    gs = GridSearchCV(pipe, {"convexreluregressor__lam": [1.0, 10.0]}, cv=3).fit(X, y)
    assert gs.best_params_["convexreluregressor__lam"] in (1.0, 10.0)
    assert gs.best_score_ == pytest.approx(np.max(gs.cv_results_["mean_test_score"]))
    # cross_val_score equals an independent K-fold loop with fresh fits
    cv = KFold(3)
    scores = cross_val_score(pipe, X, y, cv=cv)
    manual = []
    for tr, te in cv.split(X):
        sc = StandardScaler().fit(X[tr])
        est = ConvexReLURegressor(n_patterns=15, random_state=0).fit(sc.transform(X[tr]), y[tr])
        manual.append(r2_score(y[te], est.predict(sc.transform(X[te]))))
    np.testing.assert_allclose(scores, manual, rtol=1e-6, atol=1e-9)
    assert np.mean(scores) > 0.2  # the first four diabetes features explain part of the target


def test_pipeline_on_breast_cancer_classification():
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:200]
    X, y = X[idx, :6], np.array(["benign", "malignant"])[y[idx]]
    pipe = make_pipeline(StandardScaler(), ConvexGatedReLUClassifier(lam=1.0, n_patterns=10, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert np.mean(scores) > 0.85
    pipe.fit(X, y)
    assert set(pipe.predict(X)) <= {"benign", "malignant"}


def test_convergence_warning_reports_the_gap():
    X, y = _tiny(5, n=40, d=3)
    est = ConvexGatedReLURegressor(lam=0.01, n_patterns=30, method="first_order", max_iter=2, tol=1e-12,
                                   random_state=0)
    with pytest.warns(EstimatorConvergenceWarning, match="gap"):
        est.fit(X, y)
    assert issubclass(EstimatorConvergenceWarning, SkConvergenceWarning)
    assert issubclass(EstimatorConvergenceWarning, cx.ConvergenceWarning)
    assert est.gap_ > 1e-12  # the certified gap reached is recorded


def test_first_order_gap_attribute_is_certified():
    X, y = _tiny(6, n=40, d=3)
    est = ConvexReLURegressor(lam=0.1, n_patterns=10, method="first_order", tol=1e-8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EstimatorConvergenceWarning)
        est.fit(X, y)
    assert est.gap_ <= 1e-8
    ref = cx.c_relu(X, y, est.patterns_, 0.1).solve().value
    assert est.objective_ == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("params, match", [
    ({"lam": 0.0}, "lam"), ({"lam": -1}, "lam"), ({"patterns": "all"}, "patterns"),
    ({"n_patterns": 0}, "n_patterns"), ({"loss": "hinge"}, "loss"), ({"method": "newton"}, "method"),
    ({"tol": 0}, "tol"), ({"max_iter": 0}, "max_iter"),
])
def test_invalid_parameters_raise_clear_errors(params, match):
    X, y = _tiny()
    with pytest.raises(cx.InputError, match=match):
        ConvexReLURegressor(**params).fit(X, y)


def test_one_class_is_refused():
    X, _ = _tiny()
    with pytest.raises(ValueError, match="class"):
        ConvexReLUClassifier().fit(X, np.zeros(len(X)))


def test_certificate_attribute_is_a_valid_bound():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 2))
    y = np.maximum(X[:, 0], 0) - 0.5 * X[:, 1]
    est = cx.ConvexReLURegressor(lam=0.1, patterns="exact", certify=True, method="interior").fit(X, y)
    cert = est.certificate_
    assert cert.is_optimal and cert.lower_bound <= est.objective_ * (1 + 1e-9)
    sampled = cx.ConvexReLURegressor(lam=0.1, n_patterns=5, certify=True, random_state=0).fit(X, y)
    # a sampled fit is above the global optimum; the certificate says so and its bound is valid
    assert sampled.certificate_.lower_bound <= est.objective_ * (1 + 1e-9)
    with pytest.raises(cx.InputError, match="gated"):
        cx.ConvexGatedReLURegressor(certify=True).fit(X, y)


def test_l1_ratio_selects_features_and_matches_the_program():
    """l1_ratio > 0 is the sparse-group program: same objective as the builder solved by Clarabel, irrelevant features zeroed."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 6))
    y = np.maximum(X[:, 0], 0) - 0.5 * X[:, 1]
    est = cx.ConvexGatedReLURegressor(lam=5.0, l1_ratio=0.8, n_patterns=20, random_state=0, tol=1e-8).fit(X, y)
    f = cx.c_grelu(X, y, est.patterns_, 5.0, l1_ratio=0.8)
    ref = f.solve("CLARABEL")
    assert est.objective_ == pytest.approx(ref.value, rel=1e-6)
    used = np.flatnonzero(np.any(est.network_.W1[:6] != 0, axis=1))
    assert set(used) <= {0, 1} and 0 in used
    with pytest.raises(cx.InputError, match="l1_ratio"):
        cx.ConvexReLURegressor(l1_ratio=1.0).fit(X, y)
