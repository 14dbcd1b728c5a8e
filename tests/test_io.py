"""Persistence: save/load (npz + JSON, no pickle inside) and pickle round trips; plus a fresh-venv
install of the package without extras."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convexnn as cx
from convexnn import io

ROOT = Path(__file__).resolve().parents[1]


def _data(n=12, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.maximum(X[:, 0] + X[:, 1], 0) - 0.3 * X[:, 0]


def _roundtrips(obj, tmp_path):
    yield io.load(io.save(obj, tmp_path / "obj"))
    yield pickle.loads(pickle.dumps(obj))


def test_networks_round_trip(tmp_path):
    X, y = _data()
    P = cx.sample_patterns(X, 6, seed=0, bias=True)
    for net in (cx.c_relu(X, y, P, 0.1).solve().to_network(), cx.c_grelu(X, y, P, 0.1).solve().to_network()):
        for back in _roundtrips(net, tmp_path):
            assert type(back) is type(net) and back.bias == net.bias
            np.testing.assert_array_equal(back.predict(X), net.predict(X))
            assert back.objective(X, y, 0.1) == net.objective(X, y, 0.1)


def test_patterns_round_trip(tmp_path):
    X, _ = _data()
    for P in (cx.enumerate_patterns(X, bias=True), cx.sample_patterns(X, 9, seed=2)):
        for back in _roundtrips(P, tmp_path):
            assert back == P and back.exact == P.exact and back.kind == P.kind
            assert back.fingerprint == P.fingerprint
            np.testing.assert_array_equal(back.gates, P.gates)
            back.check(X)


@pytest.mark.parametrize("method", ["interior", "first_order"])
def test_solution_round_trip_and_resolve(tmp_path, method):
    X, y = _data()
    P = cx.enumerate_patterns(X, bias=True)
    sol = cx.solve(cx.c_relu(X, y, P, 0.2), method=method)
    for back in _roundtrips(sol, tmp_path):
        assert back.value == sol.value and back.status == sol.status and back.lam == sol.lam
        for k in sol.weights:
            np.testing.assert_array_equal(back.weights[k], sol.weights[k])
        assert back.objective() == pytest.approx(sol.objective(), rel=1e-12)
        np.testing.assert_allclose(back.to_network().predict(X), sol.to_network().predict(X))
        if "gap" in sol.info:
            assert back.info["gap"] == sol.info["gap"]
            np.testing.assert_array_equal(back.info["dual_point"], sol.info["dual_point"])
    # a loaded solution carries a rebuilt formulation that solves again to the same value
    loaded = io.load(tmp_path / "obj.npz")
    assert loaded.formulation.solve().value == pytest.approx(sol.value, rel=1e-6)
    # an unpickled formulation has no CVXPY problem: interior point says so, first order works
    f = pickle.loads(pickle.dumps(sol)).formulation
    assert f.problem is None and f.lam_value == pytest.approx(0.2)
    with pytest.raises(cx.InputError, match="without its CVXPY problem"):
        f.solve()
    assert cx.solve(f, method="first_order").value == pytest.approx(sol.value, rel=1e-6)


def test_certificate_round_trip(tmp_path):
    X, y = _data()
    bad = (np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 0.1]]), np.array([1.0, -0.5]))
    cert = cx.certify(bad, X, y, 0.1)
    assert cert.improving_neuron is not None
    for back in _roundtrips(cert, tmp_path):
        for name in ("primal", "lower_bound", "gap", "rel_gap", "is_optimal", "exact", "lam", "s",
                     "violated_pattern", "improving_sign", "n_patterns"):
            assert getattr(back, name) == getattr(cert, name), name
        np.testing.assert_array_equal(back.dual_point, cert.dual_point)
        assert back.loss.name == cert.loss.name
        assert back.improvement_step() == pytest.approx(cert.improvement_step())
        W1, w2 = back.improve()
        np.testing.assert_allclose(W1, cert.improve()[0])
        assert str(back) == str(cert)


def test_files_hold_no_pickle_and_bad_files_are_refused(tmp_path):
    X, y = _data()
    path = io.save(cx.enumerate_patterns(X), tmp_path / "p.npz")
    with np.load(path, allow_pickle=False) as z:  # readable without pickle
        assert "__convexnn__" in z.files
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(cx.InputError, match="not a convexnn file"):
        io.load(tmp_path / "plain.npz")
    with pytest.raises(cx.InputError, match="no such file"):
        io.load(tmp_path / "missing.npz")
    with pytest.raises(cx.InputError, match="supports"):
        io.save({"W1": 1}, tmp_path / "x")


@pytest.mark.slow
def test_fresh_venv_install_without_extras(tmp_path):
    """``pip install .`` into a new virtual environment (core dependencies only) imports and solves."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True,
                       timeout=1500, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    code = ("import sys, numpy as np, convexnn as cx\n"
            "X = np.array([[2., 2.], [3., 3.], [1., 0.]]); y = np.array([1., 2., -1.])\n"
            "P = cx.enumerate_patterns(X)\n"
            "sol = cx.c_relu(X, y, P, 0.1).solve()\n"
            "assert abs(sol.to_network().objective(X, y, 0.1) - sol.value) < 1e-6\n"
            "assert 'torch' not in sys.modules and 'typer' not in sys.modules\n"
            "print('ok', sol.value)\n")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-3000:]
    # without the cli extra the command explains how to get it
    r = subprocess.run([str(py), "-m", "convexnn", "--help"], capture_output=True, text=True, timeout=300,
                       env=env, cwd=tmp_path)
    assert r.returncode == 2 and "convexnn[cli]" in r.stderr


def test_penalty_survives_save_and_load(tmp_path):
    """A sparse-group solution and network come back with their penalty: same objective, same program."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 3))
    y = X[:, 0] - 0.5 * X[:, 1]
    f = cx.c_grelu(X, y, cx.sample_patterns(X, 10, seed=0), 0.2, l1_ratio=0.6)
    sol = f.solve("CLARABEL")
    io.save(sol, tmp_path / "s.npz")
    back = io.load(tmp_path / "s.npz")
    assert back.formulation.penalty == f.penalty
    assert back.formulation.objective(back.weights) == pytest.approx(f.objective(sol.weights), rel=1e-12)
    net = sol.to_network()
    io.save(net, tmp_path / "n.npz")
    nb = io.load(tmp_path / "n.npz")
    assert nb.penalty == net.penalty
    assert nb.objective(X, y, 0.2) == pytest.approx(net.objective(X, y, 0.2), rel=1e-12)
