"""The typer application behind :mod:`convexnn.cli` (imported only when typer is installed)."""

from __future__ import annotations

import csv
import functools
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import numpy as np
import typer

from convexnn.cli import EXIT_INPUT, EXIT_NOT_OPTIMAL, EXIT_OK, EXIT_SOLVER, EXIT_TOO_LARGE
from convexnn.errors import InputError, SolverError, TooLargeError

app = typer.Typer(
    name="convexnn",
    help="Exact convex programs for two-layer ReLU networks: certify trained models, solve, compute "
         "regularization paths, enumerate activation patterns.\n\nExit codes: 0 success / optimal, 1 not "
         "optimal, 2 input error, 3 solver failure, 4 too large.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map convexnn exceptions to messages on stderr and the documented exit codes."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except TooLargeError as exc:
            _fail(str(exc), EXIT_TOO_LARGE)
        except SolverError as exc:
            _fail(str(exc), EXIT_SOLVER)
        except (InputError, FileNotFoundError, IsADirectoryError, ImportError) as exc:
            _fail(str(exc), EXIT_INPUT)
    return wrapper


# ============================================================================ data and models
def _read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    with open(path, newline="") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t ")
        except csv.Error:
            dialect = csv.excel
        rows = [r for r in csv.reader(fh, dialect) if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path} is empty.")

    def numeric(row: list[str]) -> bool:
        try:
            [float(c) for c in row]
            return True
        except ValueError:
            return False

    header = None
    if not numeric(rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(rows[0]) if rows else 0
    data = []
    for k, r in enumerate(rows):
        if len(r) != width:
            raise InputError(f"{path}: row {k + 1 + (header is not None)} has {len(r)} fields, expected {width}.")
        try:
            data.append([float(c) for c in r])
        except ValueError as exc:
            raise InputError(f"{path}: row {k + 1 + (header is not None)} is not numeric ({exc}).") from exc
    if not data:
        raise InputError(f"{path} has a header but no data rows.")
    return np.array(data, dtype=np.float64), header


def load_data(path: Path, target: Optional[str]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(X, y)`` from a CSV / NPY / NPZ file; ``target`` is a column index or name (``None``: no target).

    ``.npz`` files hold arrays ``X`` and ``y`` (or one 2-D array ``data``); CSV files may have a
    header row (then ``target`` may be a column name); ``.npy`` holds one 2-D array.
    """
    if not path.exists():
        raise InputError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    header = None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "X" in z.files:
                X = np.asarray(z["X"], dtype=np.float64)
                y = np.asarray(z["y"], dtype=np.float64) if "y" in z.files else None
                return X, y
            if len(z.files) != 1:
                raise InputError(f"{path}: expected arrays 'X' and 'y' (or a single 2-D array); found {z.files}.")
            A = np.asarray(z[z.files[0]], dtype=np.float64)
    elif suffix == ".npy":
        try:
            A = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{path} is not a numeric .npy file: {exc}") from exc
        A = np.asarray(A, dtype=np.float64)
    elif suffix in (".csv", ".txt", ".tsv"):
        A, header = _read_csv(path)
    else:
        raise InputError(f"unsupported data file {path.name}: use .csv, .npy or .npz.")
    if A.ndim != 2:
        raise InputError(f"{path}: expected a 2-D table (rows = samples); got shape {A.shape}.")
    if target is None or target.lower() == "none":
        return A, None
    if header is not None and target in header:
        col = header.index(target)
    else:
        try:
            col = int(target)
        except ValueError:
            raise InputError(f"--target {target!r} is neither a column index nor a column name "
                             f"{'(columns: ' + ', '.join(header) + ')' if header else '(the file has no header)'}.") from None
    if not -A.shape[1] <= col < A.shape[1]:
        raise InputError(f"--target {col} is out of range for {A.shape[1]} columns.")
    col %= A.shape[1]
    if A.shape[1] < 2:
        raise InputError(f"{path} has a single column: no features left after taking the target.")
    return np.delete(A, col, axis=1), A[:, col]


def load_network(path: Path, X: np.ndarray, unsafe_load: bool = False) -> Any:
    """A two-layer ReLU network from a convexnn ``.npz``, an ``.npz`` with ``W1`` / ``w2``, or a torch file."""
    from convexnn import io
    from convexnn.networks.two_layer import TwoLayerReLU

    if not path.exists():
        raise InputError(f"model file not found: {path}")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            files = z.files
            if "__convexnn__" not in files:
                if "W1" not in files or "w2" not in files:
                    raise InputError(f"{path}: expected arrays 'W1' (d' x m) and 'w2' (m,); found {files}.")
                W1, w2 = np.asarray(z["W1"], np.float64), np.asarray(z["w2"], np.float64)
                bias = bool(z["bias"]) if "bias" in files else W1.shape[0] == X.shape[1] + 1
                return TwoLayerReLU(W1, w2, bias=bias)
        net = io.load(path)
        if not isinstance(net, TwoLayerReLU):
            raise InputError(f"{path} holds a {type(net).__name__}, not a TwoLayerReLU network.")
        return net
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ImportError(f"{path.name} looks like a torch file; loading it needs torch: "
                          "pip install 'convexnn[torch]'.") from exc
    from convexnn.torch_interop import from_module

    try:
        if unsafe_load:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals([nn.Sequential, nn.Linear, nn.ReLU]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable / unsafe files
        raise InputError(f"could not load {path} with weights_only=True ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}). Save a Sequential model or its "
                         "state_dict, or pass --unsafe-load for a file you trust (it runs code from the file).") from exc
    if isinstance(obj, nn.Module):
        return from_module(obj, X)
    if isinstance(obj, dict):
        weights = [k for k, v in obj.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
        if len(weights) != 2:
            raise InputError(f"{path}: a state_dict of Linear -> ReLU -> Linear needs two 2-D weights; found "
                             f"{weights}.")
        (k1, k2) = weights
        W = obj[k1].detach().double().cpu().numpy().T
        b1 = obj.get(k1[: -len("weight")] + "bias")
        b2 = obj.get(k2[: -len("weight")] + "bias")
        if b2 is not None and bool(torch.any(b2 != 0)):
            raise InputError("the output layer has a nonzero bias, which the convex programs do not model.")
        W1 = np.vstack([W, b1.detach().double().cpu().numpy()[None, :]]) if b1 is not None else W
        w2 = obj[k2].detach().double().cpu().numpy().T
        return TwoLayerReLU(W1, w2[:, 0] if w2.shape[1] == 1 else w2, bias=b1 is not None)
    raise InputError(f"{path} holds a {type(obj).__name__}; expected a torch module or a state_dict.")


def _patterns(X: np.ndarray, spec: str, bias: bool, seed: int, progress: bool) -> Any:
    from convexnn.arrangements.enumerate import enumerate_patterns
    from convexnn.arrangements.sample import sample_patterns

    if spec == "exact":
        return enumerate_patterns(X, bias=bias, progress=None if progress else False)
    try:
        m = int(spec)
    except ValueError:
        raise InputError(f"--patterns must be 'exact' or a number of sampled gates; got {spec!r}.") from None
    return sample_patterns(X, m, seed=seed, bias=bias)


def _lam(lam: Optional[float], weight_decay: Optional[float], reduction: str, X: np.ndarray, loss: str,
         y: np.ndarray) -> float:
    from convexnn.torch_interop import resolve_lam

    c = 1 if y.ndim == 1 else y.shape[1]
    return resolve_lam(lam, weight_decay, reduction, X, loss, n_outputs=c)


def _clean(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _emit(payload: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps({k: _clean(v) for k, v in payload.items()}, indent=2))
    else:
        typer.echo(text)


# ============================================================================ options
Data = Annotated[Path, typer.Argument(help="Data set: .csv (optional header), .npy (2-D) or .npz (X, y).")]
Target = Annotated[str, typer.Option("--target", "-t", help="Target column (index or header name); default: last.")]
Lam = Annotated[Optional[float], typer.Option("--lam", help="Regularization lam (convexnn convention).")]
WD = Annotated[Optional[float], typer.Option("--weight-decay", help="PyTorch weight_decay (instead of --lam).")]
Reduction = Annotated[str, typer.Option("--reduction", help="PyTorch loss reduction: mean or sum.")]
Loss = Annotated[str, typer.Option("--loss", help="squared, logistic or hinge (labels +-1).")]
PatternsOpt = Annotated[str, typer.Option("--patterns", "-p",
                                          help="'exact' (every chamber) or a number of sampled gates.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of sampled gates.")]
Bias = Annotated[bool, typer.Option("--bias/--no-bias", help="Hidden-layer bias (acts on [X, 1]).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Method = Annotated[str, typer.Option("--method", help="auto, interior or first_order.")]
Kind = Annotated[str, typer.Option("--kind", help="c_relu or c_grelu.")]


@app.command()
@_errors
def certify(
    model: Annotated[Path, typer.Argument(help="torch.save'd Sequential / state_dict (.pt), or .npz weights.")],
    data: Data,
    target: Target = "-1",
    lam: Lam = None,
    weight_decay: WD = None,
    reduction: Reduction = "mean",
    loss: Loss = "squared",
    patterns: PatternsOpt = "exact",
    seed: Seed = 0,
    rtol: Annotated[float, typer.Option("--rtol", help="Relative gap accepted as optimal.")] = 1e-6,
    refine: Annotated[int, typer.Option("--refine", help="Dual refinement rounds.")] = 3,
    save: Annotated[Optional[Path], typer.Option("--save", help="Write the certificate (.npz).")] = None,
    unsafe_load: Annotated[bool, typer.Option("--unsafe-load",
                                              help="torch.load with weights_only=False (trusted files only).")] = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Certify (exit 0) or refute (exit 1) the global optimality of a trained two-layer ReLU network."""
    from convexnn.duality.certify import certify as _certify
    from convexnn.torch_interop import torch_objective_scale

    X, y = load_data(data, target)
    assert y is not None
    net = load_network(model, X, unsafe_load)
    lam_v = _lam(lam, weight_decay, reduction, X, loss, y)
    # "exact": certify enumerates the chambers itself (or falls back to its own exact search)
    pats = None if patterns == "exact" else _patterns(X, patterns, net.bias, seed, not quiet)
    if not quiet:
        what = "all chambers" if pats is None else f"{len(pats)} sampled patterns (not a proof)"
        typer.echo(f"certifying {net!r} on {X.shape[0]} samples over {what} ...", err=True)
    cert = _certify(net, X, y, lam_v, loss=loss, patterns=pats, rtol=rtol, refine=refine)
    if save is not None:
        from convexnn import io

        io.save(cert, save)
    payload: dict[str, Any] = {
        "is_optimal": cert.is_optimal, "verdict": cert.verdict, "exact": cert.exact, "lam": cert.lam,
        "primal": cert.primal, "lower_bound": cert.lower_bound, "gap": cert.gap, "rel_gap": cert.rel_gap,
        "rtol": cert.rtol, "n_patterns": cert.n_patterns, "improving_neuron": cert.improving_neuron is not None,
        "time": cert.time,
    }
    if weight_decay is not None:
        s = torch_objective_scale(X.shape[0], reduction, loss=loss)
        payload.update(weight_decay=weight_decay, reduction=reduction, torch_primal=s * cert.primal,
                       torch_lower_bound=s * cert.lower_bound)
    _emit(payload, as_json, str(cert))
    raise typer.Exit(EXIT_OK if cert.is_optimal else EXIT_NOT_OPTIMAL)


@app.command()
@_errors
def solve(
    data: Data,
    target: Target = "-1",
    lam: Lam = None,
    weight_decay: WD = None,
    reduction: Reduction = "mean",
    kind: Kind = "c_relu",
    loss: Loss = "squared",
    patterns: PatternsOpt = "exact",
    seed: Seed = 0,
    bias: Bias = True,
    method: Method = "auto",
    tol: Annotated[float, typer.Option("--tol", help="First-order relative gap tolerance.")] = 1e-8,
    max_iter: Annotated[Optional[int], typer.Option("--max-iter", help="First-order iteration budget.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Save the solution (.npz).")] = None,
    network_output: Annotated[Optional[Path], typer.Option("--network-output",
                                                           help="Save the mapped network (.npz).")] = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Solve the C-ReLU / C-GReLU program; exit 0 when solved to tolerance, 1 when it stopped early."""
    from convexnn.formulations.two_layer import c_grelu, c_relu
    from convexnn.solvers.dispatch import solve as _solve

    if kind not in ("c_relu", "c_grelu"):
        raise InputError(f"--kind must be c_relu or c_grelu; got {kind!r}.")
    X, y = load_data(data, target)
    assert y is not None
    lam_v = _lam(lam, weight_decay, reduction, X, loss, y)
    pats = _patterns(X, patterns, bias, seed, not quiet)
    f = (c_relu if kind == "c_relu" else c_grelu)(X, y, pats, lam_v, loss=loss, bias=bias)
    sol = _solve(f, method=method, tol=tol, max_iter=max_iter, progress=not quiet)
    net = sol.to_network()
    from convexnn import io

    if output is not None:
        io.save(sol, output)
    if network_output is not None:
        io.save(net, network_output)
    ok = sol.status == "optimal"
    payload = {"kind": kind, "status": sol.status, "optimal": ok, "value": sol.value, "lam": lam_v,
               "n_patterns": len(pats), "exact_patterns": bool(pats.exact), "n_neurons": net.n_neurons,
               "solver": sol.solver, "method": sol.info.get("method"), "gap": sol.info.get("gap"),
               "solve_time": sol.solve_time, "compile_time": sol.compile_time}
    _emit(payload, as_json, "\n".join(f"{k:15s} {_clean(v)}" for k, v in payload.items()))
    raise typer.Exit(EXIT_OK if ok else EXIT_NOT_OPTIMAL)


@app.command()
@_errors
def path(
    data: Data,
    target: Target = "-1",
    n_lams: Annotated[int, typer.Option("--n-lams", help="Number of lam values.")] = 20,
    lam_min_ratio: Annotated[float, typer.Option("--lam-min-ratio", help="Smallest lam / lam_max.")] = 1e-3,
    kind: Kind = "c_relu",
    loss: Loss = "squared",
    patterns: PatternsOpt = "exact",
    seed: Seed = 0,
    bias: Bias = True,
    method: Method = "auto",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the JSON here too.")] = None,
    quiet: Quiet = False,
) -> None:
    """Regularization path from lam_max down, printed as JSON; exit 1 if some solve stopped early."""
    from convexnn.path import path as _path

    X, y = load_data(data, target)
    assert y is not None
    pats = _patterns(X, patterns, bias, seed, not quiet)
    res = _path(X, y, n_lams=n_lams, lam_min_ratio=lam_min_ratio, patterns=pats, kind=kind, loss=loss,
                method=method, progress=not quiet)
    text = json.dumps(res.to_dict(), indent=2)
    if output is not None:
        output.write_text(text)
    typer.echo(text)
    raise typer.Exit(EXIT_OK if all(s.status == "optimal" for s in res.solutions) else EXIT_NOT_OPTIMAL)


@app.command("enumerate")
@_errors
def enumerate_cmd(
    data: Data,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the patterns (.npz).")],
    target: Annotated[Optional[str], typer.Option("--target", "-t",
                                                  help="Column to drop as the target (default: none).")] = None,
    bias: Bias = True,
    max_patterns: Annotated[int, typer.Option("--max-patterns", help="Refuse beyond this many.")] = 10**7,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Enumerate every activation pattern (chamber) of the data and save them."""
    from convexnn import io
    from convexnn.arrangements.enumerate import enumerate_patterns

    X, _ = load_data(data, target)
    pats = enumerate_patterns(X, bias=bias, max_patterns=max_patterns, progress=False if quiet else None)
    written = io.save(pats, output)
    _emit({"n_patterns": len(pats), "n": X.shape[0], "d": X.shape[1], "bias": bias, "file": str(written)},
          as_json, f"{len(pats)} patterns written to {written}")


@app.command()
@_errors
def count(
    data: Data,
    target: Annotated[Optional[str], typer.Option("--target", "-t",
                                                  help="Column to drop as the target (default: none).")] = None,
    bias: Bias = True,
    as_json: Json = False,
) -> None:
    """Count the activation patterns (chambers) of the data exactly, without listing them."""
    from convexnn.arrangements.enumerate import count_patterns

    X, _ = load_data(data, target)
    n = count_patterns(X, bias=bias)
    _emit({"n_patterns": n, "n": X.shape[0], "d": X.shape[1], "bias": bias}, as_json, str(n))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
