"""The command line end to end on temporary files: outputs against the library, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("typer")
from typer.testing import CliRunner  # noqa: E402

import convexnn as cx  # noqa: E402
from convexnn import io  # noqa: E402
from convexnn._cli_app import app  # noqa: E402
from convexnn.cli import EXIT_INPUT, EXIT_NOT_OPTIMAL, EXIT_OK, EXIT_SOLVER, EXIT_TOO_LARGE, main  # noqa: E402

runner = CliRunner()
LAM = 0.1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((14, 2))
    y = np.maximum(X[:, 0] - X[:, 1], 0) + 0.05 * rng.standard_normal(14)
    np.savetxt(d / "data.csv", np.column_stack([X, y]), delimiter=",", header="a,b,target", comments="")
    np.save(d / "data.npy", np.column_stack([y, X]))  # target first
    np.savez(d / "data.npz", X=X, y=y)
    P = cx.enumerate_patterns(X, bias=True)
    opt = cx.c_relu(X, y, P, LAM).solve().to_network()
    io.save(opt, d / "opt.npz")
    np.savez(d / "bad.npz", W1=np.array([[1.0, -1.0], [0.5, 0.2], [0.0, 0.1]]), w2=np.array([1.0, 0.5]))
    (d / "junk.csv").write_text("a,b\n1,x\n")
    return d, X, y, opt


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_certify_optimal_and_not_optimal(files):
    d, X, y, opt = files
    r = _run("certify", d / "opt.npz", d / "data.csv", "--target", "target", "--lam", LAM, "--json", "-q")
    assert r.exit_code == EXIT_OK, r.output
    out = json.loads(r.stdout)
    ref = cx.certify(opt, X, y, LAM)
    assert out["is_optimal"] and out["rel_gap"] == pytest.approx(ref.rel_gap, rel=1e-6, abs=1e-12)
    r = _run("certify", d / "bad.npz", d / "data.npz", "--lam", LAM, "-q")
    assert r.exit_code == EXIT_NOT_OPTIMAL
    assert "NOT OPTIMAL" in r.stdout


@pytest.mark.slow
def test_certify_torch_model_with_weight_decay(files):
    torch = pytest.importorskip("torch")
    d, X, y, opt = files
    wd = 2 * LAM / len(X)  # MSELoss(mean): lam = n wd / 2
    torch.save(opt.to_torch(), d / "opt.pt")
    torch.save(opt.to_torch().state_dict(), d / "opt_sd.pt")
    for model in ("opt.pt", "opt_sd.pt"):
        r = _run("certify", d / model, d / "data.npy", "--target", 0, "--weight-decay", wd, "--json", "-q")
        assert r.exit_code == EXIT_OK, r.output
        out = json.loads(r.stdout)
        assert out["lam"] == pytest.approx(LAM)
        # torch units: criterion + wd/2 ||theta||^2
        mod = opt.to_torch()
        with torch.no_grad():
            T = torch.nn.MSELoss()(mod(torch.as_tensor(X)), torch.as_tensor(y)[:, None]) + \
                0.5 * wd * sum((p ** 2).sum() for p in mod.parameters())
        assert out["torch_primal"] == pytest.approx(float(T), rel=1e-9)


def test_solve_and_path_json(files, tmp_path):
    d, X, y, opt = files
    r = _run("solve", d / "data.csv", "--lam", LAM, "--json", "-q", "-o", tmp_path / "sol.npz",
             "--network-output", tmp_path / "net.npz")
    assert r.exit_code == EXIT_OK, r.output
    out = json.loads(r.stdout)
    ref = cx.c_relu(X, y, cx.enumerate_patterns(X, bias=True), LAM).solve()
    assert out["value"] == pytest.approx(ref.value, rel=1e-6)
    assert io.load(tmp_path / "sol.npz").value == pytest.approx(out["value"])
    assert io.load(tmp_path / "net.npz").objective(X, y, LAM) == pytest.approx(ref.value, rel=1e-6)
    r = _run("path", d / "data.csv", "--n-lams", 3, "--kind", "c_grelu", "--patterns", 10, "-q",
             "-o", tmp_path / "path.json")
    assert r.exit_code == EXIT_OK, r.output
    out = json.loads(r.stdout)
    assert json.loads((tmp_path / "path.json").read_text()) == out
    ref = cx.path(X, y, n_lams=3, kind="c_grelu", patterns=cx.sample_patterns(X, 10, seed=0, bias=True))
    np.testing.assert_allclose(out["objectives"], ref.objectives, rtol=1e-6)


def test_enumerate_and_count(files, tmp_path):
    d, X, y, _ = files
    r = _run("count", d / "data.csv", "--target", "target", "--json")
    assert r.exit_code == EXIT_OK
    assert json.loads(r.stdout)["n_patterns"] == cx.count_patterns(X, bias=True)
    r = _run("enumerate", d / "data.csv", "-t", "-1", "-o", tmp_path / "p.npz", "-q")
    assert r.exit_code == EXIT_OK, r.output
    assert io.load(tmp_path / "p.npz") == cx.enumerate_patterns(X, bias=True)
    r = _run("enumerate", d / "data.csv", "-t", "-1", "-o", tmp_path / "p.npz", "--max-patterns", 3, "-q")
    assert r.exit_code == EXIT_TOO_LARGE and "error:" in r.stderr


@pytest.mark.parametrize("args, match", [
    (["certify", "missing.npz", "data.csv", "--lam", "0.1"], "not found"),
    (["certify", "opt.npz", "data.csv"], "exactly one of lam"),
    (["certify", "opt.npz", "data.csv", "--lam", "0.1", "--weight-decay", "0.1"], "exactly one of lam"),
    (["solve", "data.csv", "--lam", "-1"], "lam must be > 0"),
    (["solve", "junk.csv", "--lam", "1"], "not numeric"),
    (["solve", "data.csv", "--lam", "1", "--target", "nope"], "neither a column index nor a column name"),
    (["solve", "data.csv", "--lam", "1", "--kind", "deep"], "--kind"),
    (["solve", "data.csv", "--lam", "1", "--patterns", "lots"], "--patterns"),
    (["certify", "opt.npz", "data.csv", "--weight-decay", "1", "--reduction", "none"], "reduction"),
])
def test_input_errors_exit_2_with_a_message(files, args, match):
    d = files[0]
    args = [str(d / a) if a.endswith((".csv", ".npz")) else a for a in args]
    r = _run(*args)
    assert r.exit_code == EXIT_INPUT, r.output
    assert match in r.stderr


def test_solver_failure_exits_3(files, monkeypatch):
    d = files[0]

    def boom(*a, **k):
        raise cx.SolverError("CLARABEL returned status 'numerical_error'", status="numerical_error")

    monkeypatch.setattr("convexnn.solvers.dispatch.solve", boom)
    r = _run("solve", d / "data.csv", "--lam", "0.1", "-q")
    assert r.exit_code == EXIT_SOLVER and "numerical_error" in r.stderr


def test_solve_not_converged_exits_1(files):
    d = files[0]
    r = _run("solve", d / "data.csv", "--lam", "0.001", "--method", "first_order", "--kind", "c_grelu",
             "--tol", "1e-300", "--max-iter", "50", "-q", "--json")
    assert r.exit_code == EXIT_NOT_OPTIMAL, r.output


@pytest.mark.slow
def test_entry_points(files):
    d = files[0]
    assert main(["count", str(d / "data.csv"), "-t", "-1"]) == EXIT_OK
    r = subprocess.run([sys.executable, "-m", "convexnn", "count", str(d / "data.csv"), "-t", "-1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and int(r.stdout.strip()) == cx.count_patterns(files[1], bias=True)
    # without typer, `python -m convexnn` explains how to install the extra
    code = "import sys; sys.modules['typer'] = None; from convexnn.cli import main; sys.exit(main(['--help']))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == EXIT_INPUT and "pip install 'convexnn[cli]'" in r.stderr
