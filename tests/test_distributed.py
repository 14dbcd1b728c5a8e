"""Distributed execution on Dask: every operation equals its serial computation, survives a killed
worker, and the serial mode needs no Dask at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convexnn as cx
from convexnn.distributed import (
    certify_many,
    count_patterns_distributed,
    cross_validate_path,
    enumerate_patterns_distributed,
    resolve_executor,
    score_sampled_patterns,
)


@pytest.fixture(scope="module")
def client():
    """One LocalCluster with 2 worker processes (one thread each) for the whole module."""
    dd = pytest.importorskip("dask.distributed")
    from convexnn.distributed import local_cluster

    cluster = local_cluster(2, dashboard_address=None)
    assert "MALLOC_TRIM_THRESHOLD_" not in cluster.workers[0].pre_spawn_env
    assert all(w.nthreads == 1 for w in cluster.workers.values())
    c = dd.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _regression(n=16, d=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.maximum(X[:, 0], 0) - 0.5 * np.maximum(X[:, 1], 0) + 0.05 * rng.standard_normal(n)
    return X, y


def _networks(d, k, seed=1):
    rng = np.random.default_rng(seed)
    nets = []
    for i in range(k):
        rows = d + 1 if i % 3 else d  # mixed: with and without hidden bias
        nets.append((rng.standard_normal((rows, 3)), rng.standard_normal(3)))
    return nets


def _same_certificate(a, b):
    assert a.lower_bound == b.lower_bound and a.primal == b.primal and a.rel_gap == b.rel_gap
    assert a.is_optimal == b.is_optimal and a.exact == b.exact and a.n_patterns == b.n_patterns
    np.testing.assert_array_equal(a.dual_point, b.dual_point)
    assert (a.improving_neuron is None) == (b.improving_neuron is None)
    np.testing.assert_array_equal(a._Xa, b._Xa)


# ----------------------------------------------------------------------------- executors
def test_resolve_executor_variants(client):
    with resolve_executor(None) as c:
        assert c is None
    with resolve_executor(client) as c:
        assert c is client
    assert client.status == "running"  # a given client is not closed
    with resolve_executor(client.scheduler.address) as c:  # a scheduler address: a new client
        assert c is not client and c.scheduler_info()["address"] == client.scheduler_info()["address"]
    assert c.status == "closed"
    with resolve_executor(client.cluster) as c:  # a cluster object: a client, the cluster stays up
        assert len(c.scheduler_info()["workers"]) >= 1
    assert c.status == "closed" and client.status == "running"
    for bad in ("locale", "http://x", 3, object()):
        with pytest.raises(cx.InputError, match="executor must be"):
            with resolve_executor(bad):
                pass


# ----------------------------------------------------------------------------- certificates
def test_certify_many_equals_serial_certify(client):
    X, y = _regression(14, 2)
    nets = _networks(2, 5)
    lams = [0.05, 0.1, 0.2, 0.1, 0.3]
    serial = [cx.certify(n, X, y, lam) for n, lam in zip(nets, lams)]
    for ex in (None, client):
        got = certify_many(nets, X, y, lams, executor=ex)
        assert len(got) == len(nets)
        for a, b in zip(serial, got):
            _same_certificate(a, b)
    # weak duality, checked independently of the certificate: the optimum of the exact convex
    # program (C-ReLU over all chambers, Clarabel) is a global lower bound of every network
    P = cx.enumerate_patterns(X, bias=True)
    for n, lam, c in zip(nets, lams, got):
        if np.shape(n[0])[0] == 3:
            opt = cx.c_relu(X, y, P, lam, bias=True).solve().value
            assert c.lower_bound <= opt * (1 + 1e-7) and c.primal >= opt * (1 - 1e-7)
    with pytest.raises(cx.InputError, match="lam has 2 values for 5 networks"):
        certify_many(nets, X, y, [0.1, 0.2])


def test_certify_many_forwards_options(client):
    X, y = _regression(12, 2, seed=3)
    nets = _networks(2, 3, seed=4)
    P = cx.sample_patterns(X, 20, seed=0, bias=True)
    got = certify_many(nets[1:], X, y, 0.1, executor=client, patterns=P, refine=0)
    for n, c in zip(nets[1:], got):
        _same_certificate(cx.certify(n, X, y, 0.1, patterns=P, refine=0), c)
        assert not c.exact and c.n_patterns == len(P)


# ----------------------------------------------------------------------------- paths
@pytest.mark.parametrize("kind,method", [("c_relu", "interior"), ("c_grelu", "first_order")])
def test_path_chunks_equal_serial_path(client, kind, method):
    X, y = _regression(20, 2, seed=5)
    P = cx.sample_patterns(X, 20, seed=1, bias=True)
    ser = cx.path(X, y, n_lams=6, patterns=P, kind=kind, method=method, tol=1e-8)
    dist = cx.path(X, y, n_lams=6, patterns=P, kind=kind, method=method, tol=1e-8, executor=client, n_chunks=3)
    np.testing.assert_array_equal(dist.lams, ser.lams)
    assert dist.lam_max == ser.lam_max and len(dist.solutions) == len(ser.solutions)
    np.testing.assert_allclose(dist.objectives, ser.objectives, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(dist.n_active[:1], ser.n_active[:1])  # lam_max: the zero network
    # one formulation for all the solutions, as in the serial path; each solution is for its lam
    f = dist.solutions[0].formulation
    assert all(s.formulation is f for s in dist.solutions)
    assert [s.lam for s in dist.solutions] == list(dist.lams)
    for s, v in zip(dist.solutions, dist.objectives):  # the weights attain the reported value
        assert s.objective() == pytest.approx(v, rel=1e-5, abs=1e-9)
    with pytest.raises(cx.InputError, match="n_chunks"):
        cx.path(X, y, n_lams=3, patterns=P, executor=client, n_chunks=0)


def test_fold_patterns_of_exact_set_are_exact_patterns_of_the_fold():
    from convexnn.distributed import _fold_patterns

    X, _ = _regression(18, 2, seed=7)
    full = cx.enumerate_patterns(X, bias=True)
    tr = np.arange(0, 18, 2)
    restricted = _fold_patterns(X[tr], full)
    assert restricted == cx.enumerate_patterns(X[tr], bias=True) and restricted.exact


def test_cross_validate_path_equals_serial_and_fresh_solves(client):
    X, y = _regression(24, 2, seed=8)
    P = cx.enumerate_patterns(X, bias=True)
    ser = cross_validate_path(X, y, n_lams=4, n_folds=3, patterns=P, method="interior", seed=2)
    dist = cross_validate_path(X, y, n_lams=4, n_folds=3, patterns=P, method="interior", seed=2, executor=client)
    np.testing.assert_array_equal(dist.fold_losses, ser.fold_losses)  # one task per fold: the serial computation
    assert dist.best_index == ser.best_index and dist.lam_1se == ser.lam_1se
    chunked = cross_validate_path(X, y, n_lams=4, n_folds=3, patterns=P, method="interior", seed=2,
                                  executor=client, n_chunks=2)
    np.testing.assert_allclose(chunked.fold_losses, ser.fold_losses, rtol=1e-4, atol=1e-8)
    # independent: fold 0 at the third lam by a fresh exact C-ReLU solve on its training rows
    val = ser.folds[0]
    tr = np.setdiff1d(np.arange(len(X)), val)
    assert sorted(np.concatenate(ser.folds).tolist()) == list(range(len(X)))
    lam = ser.lams[2]
    sol = cx.c_relu(X[tr], y[tr], cx.enumerate_patterns(X[tr], bias=True), lam, bias=True).solve()
    mse = 0.5 * np.sum((sol.to_network().predict(X[val]) - y[val]) ** 2) / len(val)
    assert ser.fold_losses[0, 2] == pytest.approx(mse, rel=1e-4, abs=1e-8)
    assert ser.train_objectives[0, 2] == pytest.approx(sol.value, rel=1e-6)
    assert ser.mean[ser.best_index] == ser.mean.min()
    with pytest.raises(cx.InputError, match="n_folds"):
        cross_validate_path(X, y, n_folds=1)


# ----------------------------------------------------------------------------- arrangements
def _instances():
    rng = np.random.default_rng(11)
    grid = np.array([[i, j] for i in range(-2, 3) for j in range(-2, 3)], dtype=float)
    dup = rng.standard_normal((10, 3))
    return {
        "general": (rng.standard_normal((30, 3)), True),
        "general_nobias": (rng.standard_normal((25, 4)), False),
        "integer_grid": (grid, True),  # many points on common lines
        "duplicates_antipodes": (np.vstack([dup, dup[:4], -dup[4:7], np.zeros((2, 3))]), False),
        "rank_deficient": ((rng.integers(-3, 4, (20, 2)) @ rng.integers(-3, 4, (2, 4))).astype(float), True),
        "rank_two": (rng.standard_normal((12, 1)), True),
    }


@pytest.mark.parametrize("name", list(_instances()))
def test_split_enumeration_and_count_equal_serial(client, name, tmp_path):
    X, bias = _instances()[name]
    ser = cx.enumerate_patterns(X, bias=bias)
    n_ser = cx.count_patterns(X, bias=bias)
    assert len(ser) == n_ser and ser.exact
    dist = enumerate_patterns_distributed(X, bias=bias, executor=client, n_shards=5)
    assert dist == ser and dist.exact and dist.kind == "exact" and dist.fingerprint == ser.fingerprint
    # every returned gate is a strict witness of its mask
    Xa = np.hstack([X, np.ones((len(X), 1))]) if bias else X
    V = Xa @ dist.gates
    nz = np.any(Xa != 0, axis=1)
    assert np.array_equal(V >= 0, dist.masks) and np.all(np.abs(V[nz]) > 0)
    shards = enumerate_patterns_distributed(X, bias=bias, executor=client, n_shards=3, out_dir=tmp_path / "p")
    assert len(shards) == len(ser) and shards.exact and shards.load() == ser
    assert sum(len(p) for p in shards) == len(ser)  # the files are disjoint
    assert not list((tmp_path / "p").glob("part-*"))
    assert count_patterns_distributed(X, bias=bias, executor=client, n_shards=4) == n_ser


def test_general_position_count_is_cover_bound(client):
    X = np.random.default_rng(3).standard_normal((40, 3))
    k = count_patterns_distributed(X, bias=True, executor=client, n_shards=6)
    assert k == cx.cover_bound(40, 4)


@settings(max_examples=25)
@given(st.integers(4, 14), st.integers(2, 4), st.integers(1, 6), st.booleans(), st.integers(0, 2**31))
def test_split_serial_matches_enumerate_on_random_integer_data(n, d, shards, bias, seed):
    X = np.random.default_rng(seed).integers(-2, 3, size=(n, d)).astype(float)  # degenerate on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("error", cx.NotProvenWarning)
        ser = cx.enumerate_patterns(X, bias=bias)
        got = enumerate_patterns_distributed(X, bias=bias, n_shards=shards)
        assert got == ser and got.exact == ser.exact
        assert count_patterns_distributed(X, bias=bias, n_shards=shards) == cx.count_patterns(X, bias=bias)


def test_enumeration_options_are_validated(tmp_path):
    X = np.random.default_rng(0).standard_normal((10, 2))
    with pytest.raises(cx.InputError, match="n_shards"):
        enumerate_patterns_distributed(X, n_shards=0)
    with pytest.raises(cx.TooLargeError):
        enumerate_patterns_distributed(X, max_patterns=3)
    with pytest.raises(cx.TooLargeError, match="out_dir"):
        enumerate_patterns_distributed(X, max_bytes=100)
    enumerate_patterns_distributed(X, out_dir=tmp_path)
    with pytest.raises(cx.InputError, match="already holds"):
        enumerate_patterns_distributed(X, out_dir=tmp_path)
    with pytest.raises(cx.InputError):
        enumerate_patterns_distributed(np.array([[np.nan, 1.0]]))
    with pytest.raises(cx.TooLargeError):
        count_patterns_distributed(np.random.default_rng(0).standard_normal((200, 6)), max_work=1e3)


# ----------------------------------------------------------------------------- without Dask
def test_serial_mode_without_dask_installed():
    code = textwrap.dedent("""
        import sys
        sys.modules["dask"] = None  # import dask -> ImportError, as when the extra is not installed
        sys.modules["distributed"] = None
        import numpy as np, convexnn as cx
        from convexnn.distributed import certify_many, enumerate_patterns_distributed, \\
            count_patterns_distributed, cross_validate_path, resolve_executor
        rng = np.random.default_rng(0); X = rng.standard_normal((12, 2)); y = X[:, 0]
        P = cx.enumerate_patterns(X, bias=True)
        assert enumerate_patterns_distributed(X, bias=True, n_shards=3) == P
        assert count_patterns_distributed(X, bias=True) == len(P)
        net = (rng.standard_normal((3, 2)), rng.standard_normal(2))
        assert certify_many([net], X, y, 0.1)[0].lower_bound == cx.certify(net, X, y, 0.1).lower_bound
        r = cx.path(X, y, n_lams=3, patterns=P, method="interior")
        cv = cross_validate_path(X, y, n_lams=3, n_folds=2, patterns=P, method="interior")
        try:
            cx.path(X, y, n_lams=3, patterns=P, executor="local")
        except cx.InputError as e:
            assert "convexnn[dask]" in str(e)
        else:
            raise AssertionError("no error without dask")
        assert not any(m.split(".")[0] in ("dask", "distributed") and sys.modules[m] is not None
                       for m in sys.modules)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


# ----------------------------------------------------------------------------- pattern scoring
@pytest.mark.parametrize("seed", [0, 1])
def test_distributed_branch_and_bound_equals_serial_and_enumeration(client, seed):
    """Root boxes dealt to independent searches: the combined enclosure contains the exact s(v)
    (enumerated chambers), equals the serial search, and is valid when the tasks stop early."""
    from convexnn.duality._common import cone_support

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((25, 2)) * np.array([1e3, 1e-2])
    Xa = np.c_[X, np.ones(25)]
    v = rng.standard_normal(25)
    exact = cone_support(Xa, cx.enumerate_patterns(X, bias=True).masks, v).value
    serial = cx.relu_dual_norm_bab(Xa, v, rtol=1e-9)
    for executor in (None, client):
        r = cx.relu_dual_norm_bab_distributed(Xa, v, rtol=1e-9, executor=executor, n_tasks=5)
        assert r.complete and r.lower <= exact * (1 + 1e-12) and r.upper >= exact
        assert r.lower == pytest.approx(serial.lower, rel=1e-9) and r.upper == pytest.approx(exact, rel=1e-6)
    early = cx.relu_dual_norm_bab_distributed(Xa, v, rtol=1e-9, executor=client, max_nodes=2, n_tasks=3)
    assert early.upper >= exact and early.lower <= exact * (1 + 1e-12)
    with pytest.raises(cx.InputError):
        cx.relu_dual_norm_bab(Xa, v, roots=[4 * Xa.shape[1]])


def test_scored_patterns_equal_serial_and_are_the_top_upper_bounds(client):
    from scipy.optimize import nnls

    from convexnn.duality._common import cone_support

    X, y = _regression(10, 2, seed=13)
    v = y - y.mean()
    ser = score_sampled_patterns(X, v, 3000, bias=True, k=6, chunk_size=700, seed=5)
    dist = score_sampled_patterns(X, v, 3000, bias=True, k=6, chunk_size=700, seed=5, executor=client)
    assert dist.patterns == ser.patterns and np.array_equal(dist.scores, ser.scores) and len(ser.patterns) == 6
    # every gate the chunks sampled (same random streams), all at once
    Xa = np.hstack([X, np.ones((len(X), 1))])
    G = np.concatenate([np.random.default_rng([5, c]).standard_normal((3, m))
                        for c, m in enumerate([700, 700, 700, 700, 200])], axis=1)
    distinct = np.unique((Xa @ G >= 0).T, axis=0)

    def exact(mask):  # max over the sign of ||Pi_K(sigma X^T D v)|| = min_{rho >= 0} ||sigma g + A^T rho|| (Moreau)
        A = (2.0 * mask - 1.0)[:, None] * Xa
        g = Xa.T @ (mask * v)
        return max(nnls(A.T, -s * g)[1] for s in (1.0, -1.0))

    got = {m.tobytes(): s for m, s in zip(ser.patterns.masks.T, ser.scores)}
    for m in ser.patterns.masks.T:  # a returned mask was sampled, its gate produces it, its score bounds the exact value
        assert any(np.array_equal(m, r) for r in distinct)
        assert got[m.tobytes()] >= exact(m) * (1 - 1e-9) - 1e-12
    np.testing.assert_array_equal(Xa @ ser.patterns.gates >= 0, ser.patterns.masks)
    allb = cone_support(Xa, distinct.T, v, exact=False).bounds
    rest = [b for m, b in zip(distinct, allb) if m.tobytes() not in got]
    assert max(rest) <= min(ser.scores)  # nothing better was left out
    assert ser.scores[ser.order()[0]] == allb.max()
    with pytest.raises(cx.InputError, match="v must be"):
        score_sampled_patterns(X, v[:-1], 10)


# ----------------------------------------------------------------------------- fault tolerance
def _run_and_kill(client, prefix, fn):
    """Run ``fn()`` in a thread; kill a worker process while it holds one of the tasks ``prefix``."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    th = threading.Thread(target=target)
    th.start()
    victim, deadline = None, time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and th.is_alive():
        for w, keys in client.processing().items():
            if any(str(k).startswith(prefix) for k in keys):
                victim = w
                break
        else:
            time.sleep(0.002)
    assert victim is not None, "no task of the batch was seen running"
    pid = client.run(os.getpid, workers=[victim])[victim]
    held = [str(k) for k in client.processing().get(victim, ()) if str(k).startswith(prefix)]
    os.kill(pid, signal.SIGKILL)  # the worker process dies at once, as when its machine fails
    th.join(300)
    assert "error" not in box, box.get("error")
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the worker process
    assert victim not in client.scheduler_info()["workers"]
    return box["result"], held


def _reruns(client, keys):
    """Tasks among ``keys`` that the scheduler took away from a worker while processing (to run again)."""
    def story(dask_scheduler, keys=tuple(keys)):
        return sorted({t[0] for t in dask_scheduler.transition_log if t[0] in keys and t[1] == "processing"
                       and t[2] in ("released", "waiting", "no-worker", "queued")})
    return client.run_on_scheduler(story)


def test_killed_worker_does_not_change_certificates(client):
    X, y = _regression(16, 2, seed=9)
    nets = _networks(2, 10, seed=10)
    serial = certify_many(nets, X, y, 0.1)
    got, held = _run_and_kill(client, "convexnn-certify-", lambda: certify_many(nets, X, y, 0.1, executor=client))
    assert held and _reruns(client, held)  # the killed worker's tasks ran again elsewhere
    assert len(got) == len(serial)
    for a, b in zip(serial, got):
        _same_certificate(a, b)


def test_killed_worker_does_not_change_disk_shards(client, tmp_path):
    X = np.random.default_rng(12).standard_normal((45, 3))
    ser = cx.enumerate_patterns(X, bias=True)
    res, held = _run_and_kill(client, "convexnn-enumerate_shards-", lambda: enumerate_patterns_distributed(
        X, bias=True, executor=client, n_shards=24, out_dir=tmp_path / "shards"))
    assert held and _reruns(client, held)
    assert res.exact and len(res) == len(ser) and res.load() == ser  # nothing lost, nothing counted twice
