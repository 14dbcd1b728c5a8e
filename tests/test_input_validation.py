"""Bad arguments get a clear convexnn error (never a raw AttributeError / TypeError, never a silent
coercion), solver warnings reach the user in convexnn's terms, and the demo runs without torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import convexnn as cx
from convexnn import InputError
from convexnn._cvxpy_warnings import translated
from convexnn.arrangements.patterns import design_matrix
from convexnn.data import check_bool, check_int, check_lam, check_seed, check_X, check_y


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((10, 2))
    y = np.tanh(X[:, 0]) - X[:, 1] ** 2 + 0.1 * rng.standard_normal(10)
    P = cx.enumerate_patterns(X, bias=True)
    net = cx.TwoLayerReLU(rng.standard_normal((3, 4)), rng.standard_normal(4), bias=True)
    return {"X": X, "y": y, "P": P, "net": net}


# ---------------------------------------------------------------- functions taking a solution
@pytest.mark.parametrize("func", [cx.kkt, cx.optimal_set])
def test_solution_functions_refuse_networks_and_formulations(data, func):
    name = func.__name__
    with pytest.raises(InputError, match=rf"{name}\(\) expects a ConvexSolution.*got TwoLayerReLU.*certify"):
        func(data["net"])
    f = cx.c_relu(data["X"], data["y"], data["P"], 0.1)
    with pytest.raises(InputError, match=r"got CReLU.*formulation.solve\(\)"):
        func(f)
    model = cx.from_network(data["net"], data["X"])
    with pytest.raises(InputError, match=r"to_solution\(y, lam\)"):
        func(model)
    with pytest.raises(InputError, match="got ndarray"):
        func(np.zeros(3))


# ---------------------------------------------------------------- seeds
@pytest.mark.parametrize("seed", ["abc", -1, True, 1.5, [1, "a"]])
def test_bad_seed_is_an_input_error(data, seed):
    with pytest.raises(InputError, match="seed must be"):
        cx.sample_patterns(data["X"], 10, seed=seed)


def test_valid_seeds_are_reproducible(data):
    X = data["X"]
    a = cx.sample_patterns(X, 30, seed=3)
    b = cx.sample_patterns(X, 30, seed=np.int64(3))
    c = cx.sample_patterns(X, 30, seed=np.random.default_rng(3))
    d = cx.sample_patterns(X, 30, seed=np.random.SeedSequence(3))
    assert a == b == c == d
    assert isinstance(check_seed(None), np.random.Generator)


# ---------------------------------------------------------------- lam
@pytest.mark.parametrize("lam", ["0.1", b"0.1", True, np.True_, 1 + 0j, np.array([0.1, 0.2]), None, [0.1]])
def test_check_lam_refuses_non_numbers(lam):
    with pytest.raises(InputError, match="lam must be"):
        check_lam(lam)


@pytest.mark.parametrize("lam, expected", [(0.1, 0.1), (np.float32(0.5), 0.5), (np.array(0.25), 0.25),
                                           (np.array([0.3]), 0.3), (2, 2.0), (np.int64(3), 3.0)])
def test_check_lam_accepts_real_numbers(lam, expected):
    assert check_lam(lam) == expected


def test_public_entry_points_refuse_string_and_bool_lam(data):
    X, y, P, net = data["X"], data["y"], data["P"], data["net"]
    for lam in ("0.1", True):
        with pytest.raises(InputError, match="lam must be a real number"):
            cx.c_relu(X, y, P, lam)
        with pytest.raises(InputError, match="lam must be a real number"):
            cx.c_grelu(X, y, P, lam)
        with pytest.raises(InputError, match="lam must be a real number"):
            cx.certify(net, X, y, lam, patterns=P)
        with pytest.raises(InputError, match="lam must be a real number"):
            net.objective(X, y, lam)
        with pytest.raises(InputError, match="lam must be a real number"):
            cx.c_relu(X, y, P, 0.1).set_lam(lam)
        with pytest.raises(InputError, match="lam must be a real number"):
            cx.path(X, y, [0.2, lam], patterns=P)


# ---------------------------------------------------------------- bias
@pytest.mark.parametrize("bias", ["yes", "no", 1, 0, None, 1.0])
def test_bias_must_be_a_bool(data, bias):
    X, y = data["X"], data["y"]
    with pytest.raises(InputError, match="bias must be True or False"):
        design_matrix(X, bias)
    with pytest.raises(InputError, match="bias must be True or False"):
        cx.enumerate_patterns(X, bias=bias)
    with pytest.raises(InputError, match="bias must be True or False"):
        cx.count_patterns(X, bias=bias)
    with pytest.raises(InputError, match="bias must be True or False"):
        cx.sample_patterns(X, 5, bias=bias)
    with pytest.raises(InputError, match="bias must be True or False"):
        cx.TwoLayerReLU(np.ones((3, 2)), np.ones(2), bias=bias)
    if bias is not None:  # None means "as the patterns" in the builders
        with pytest.raises(InputError, match="bias must be True or False"):
            cx.c_relu(X, y, data["P"], 0.1, bias=bias)


def test_numpy_bool_bias_is_a_bool(data):
    X = data["X"]
    assert cx.sample_patterns(X, 40, seed=0, bias=np.True_) == cx.sample_patterns(X, 40, seed=0, bias=True)
    np.testing.assert_array_equal(design_matrix(X, np.True_), np.c_[X, np.ones(len(X))])
    assert check_bool(np.False_, "bias") is False


# ---------------------------------------------------------------- integers
@pytest.mark.parametrize("value", [5.5, "5", True, np.nan, np.inf, None, 1 + 0j])
def test_check_int_refuses(value):
    with pytest.raises(InputError, match="n must be an integer"):
        check_int(value, "n")


def test_check_int_accepts_integers():
    assert check_int(5, "n") == 5
    assert check_int(np.int32(7), "n") == 7
    assert check_int(5.0, "n") == 5
    assert type(check_int(np.uint8(3), "n")) is int
    with pytest.raises(InputError, match="n must be >= 1"):
        check_int(0, "n", min_value=1)


# ---------------------------------------------------------------- masked and sparse input
def test_masked_arrays_are_refused(data):
    X, y = data["X"], data["y"]
    mask = np.zeros_like(X, dtype=bool)
    mask[2, 1] = True
    Xm = np.ma.masked_array(X, mask)
    with pytest.raises(InputError, match="masked array with 1 masked entry.*filled"):
        check_X(Xm)
    with pytest.raises(InputError, match="masked array"):
        cx.enumerate_patterns(Xm)
    with pytest.raises(InputError, match="masked array"):
        cx.c_relu(Xm, y, data["P"], 0.1)
    with pytest.raises(InputError, match=r"No entry is masked here: pass the plain data np.ma.getdata\(X\)"):
        check_X(np.ma.masked_array(X))
    with pytest.raises(InputError, match="y is a numpy masked array"):
        check_y(np.ma.masked_array(y, np.arange(10) == 3), 10)


@pytest.mark.parametrize("fmt", [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array])
def test_sparse_input_is_named_sparse(data, fmt):
    X = data["X"]
    msg = r"sparse matrices are not supported: pass X.toarray\(\)"
    with pytest.raises(InputError, match=msg):
        check_X(fmt(X))
    with pytest.raises(InputError, match=msg):
        cx.enumerate_patterns(fmt(X), bias=True)
    with pytest.raises(InputError, match=r"y is a sparse matrix.*y.toarray\(\)"):
        check_y(fmt(data["y"][:, None]), 10)


# ---------------------------------------------------------------- float32 copies and patterns
def test_float32_copy_with_the_same_values_is_accepted():
    rng = np.random.default_rng(9)
    X32 = rng.standard_normal((9, 2)).astype(np.float32)
    X = X32.astype(np.float64)  # exactly the float32 values
    y = rng.standard_normal(9)
    P = cx.enumerate_patterns(X, bias=True)
    np.testing.assert_array_equal(P.check(X32), np.c_[X, np.ones(9)])
    # the program built from the float32 copy is the same program: same optimal value
    v64 = cx.c_relu(X, y, P, 0.1).solve().value
    v32 = cx.c_relu(X32, y, P, 0.1).solve().value
    assert abs(v64 - v32) <= 1e-7 * max(1.0, abs(v64))


def test_float32_copy_that_rounds_is_explained(data):
    X, P = data["X"], data["P"]
    X32 = X.astype(np.float32)
    assert not np.array_equal(X32.astype(np.float64), X)  # the copy really rounds
    with pytest.raises(InputError) as exc:
        P.check(X32)
    msg = str(exc.value)
    assert "X differs from the data the patterns were built for" in msg
    assert "float32" in msg and "rounds the values" in msg
    assert "another data matrix" not in msg
    # a genuinely different float64 matrix keeps the general message
    with pytest.raises(InputError, match="another data matrix"):
        P.check(X + 1.0)


# ---------------------------------------------------------------- cvxpy warnings
def test_inaccurate_interior_point_solve_warns_once_in_convexnn_terms(data):
    f = cx.c_relu(data["X"], data["y"], data["P"], 0.1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sol = f.solve("SCS", max_iters=2)
    assert sol.status == "optimal_inaccurate"
    cats = [w.category for w in rec]
    assert cats.count(cx.InaccurateSolutionWarning) == 1, [str(w.message) for w in rec]
    assert not [w for w in rec if w.category is UserWarning], [str(w.message) for w in rec]
    assert not [w for w in rec if "Solution may be inaccurate" in str(w.message)]


def test_translated_maps_cvxpy_warnings():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with translated("ctx"):
            warnings.warn("Solution may be inaccurate. Try another solver.", UserWarning)
            warnings.warn("The problem is either infeasible or unbounded, but the solver cannot tell.",
                          UserWarning)
            warnings.warn("Objective contains too many subexpressions. Consider vectorizing.", UserWarning)
            warnings.warn("something new from a solver", UserWarning)
            warnings.warn("overflow in matmul", RuntimeWarning)
            warnings.warn("own", cx.ConvergenceWarning)
    got = [(w.category, str(w.message)) for w in rec]
    assert (cx.ConvexNNWarning, "ctx: cvxpy warned: something new from a solver") in got
    assert (RuntimeWarning, "overflow in matmul") in got
    assert (cx.ConvergenceWarning, "own") in got
    assert len(got) == 3
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with translated("decomposition", inaccurate_status_checked=False):
            warnings.warn("Solution may be inaccurate. Try another solver.", UserWarning)
    assert [w.category for w in rec] == [cx.InaccurateSolutionWarning]
    assert "decomposition" in str(rec[0].message)


def test_warnings_raised_before_an_error_are_not_lost():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with pytest.raises(ZeroDivisionError):
            with translated("ctx"):
                warnings.warn("late", RuntimeWarning)
                1 / 0
    assert [str(w.message) for w in rec] == ["late"]


# ---------------------------------------------------------------- float32 tolerance floor
def test_float32_tolerance_floor_is_announced(data):
    f = cx.c_grelu(data["X"], data["y"], data["P"], 0.1)
    eps32 = float(np.finfo(np.float32).eps)
    with pytest.warns(cx.PrecisionWarning) as rec:
        sol = cx.solve(f, method="first_order", dtype="float32", tol=1e-8)
    msg = str(rec[0].message)
    assert "requested tol=1.0e-08" in msg
    eff = float(re.search(r"using tol=([0-9.e+-]+)", msg).group(1))
    # the effective tolerance stated is the one used: 50 float32 epsilons
    assert sol.info["tol"] == pytest.approx(50 * eps32)
    assert eff == pytest.approx(50 * eps32, rel=1e-2)
    # a tolerance float32 can reach, or float64, is used as requested without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", cx.PrecisionWarning)
        s64 = cx.solve(f, method="first_order", tol=1e-8)
        s32 = cx.solve(f, method="first_order", dtype="float32", tol=1e-4)
    assert s64.info["tol"] == 1e-8 and s32.info["tol"] == 1e-4


# ---------------------------------------------------------------- demo without torch
_BLOCK_TORCH = textwrap.dedent("""
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError("No module named 'torch' (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, _NoTorch())
""")


@pytest.mark.slow
def test_demo_runs_without_torch(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(_BLOCK_TORCH)
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr
    run = subprocess.run([sys.executable, "-m", "convexnn.demo"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "numpy Adam (torch is not installed" in out
    assert "torch.optim.Adam" not in out
    # the demo's own numbers are consistent: the certified lower bound is below the convex optimum,
    # which is below the trained network's objective
    nn = float(re.search(r"network objective \(Adam\)\s+([0-9.eE+-]+)", out).group(1))
    pstar = float(re.search(r"global optimum p\* \(convex\)\s+([0-9.eE+-]+)", out).group(1))
    lb = float(re.search(r"certified lower bound\s+([0-9.eE+-]+)", out).group(1))
    assert lb <= pstar * (1 + 1e-9) and pstar <= nn * (1 + 1e-9)
    assert "total time" in out


@pytest.mark.parametrize("max_iter", [-3, 2.5, True, "10"])
@pytest.mark.parametrize("method", ["auto", "first_order", "gated_ipm"])
def test_solve_refuses_a_max_iter_that_is_not_a_non_negative_integer(method, max_iter):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    pat = cx.Patterns.from_gates(X, rng.standard_normal((3, 10)), bias=True)
    f = cx.c_grelu(X, X[:, 0], pat, 0.01)
    with pytest.raises(InputError, match="max_iter must be None or a non-negative integer"):
        cx.solve(f, method=method, max_iter=max_iter)
