r"""Running convexnn's long computations on a Dask cluster (optional extra ``dask``).

Every operation here takes ``executor=``:

* ``None`` (default): serial, in this process; Dask is not imported at all.
* ``"local"``: a :class:`dask.distributed.LocalCluster` sized to this machine (one worker
  process per core, one thread each), started for the call and closed afterwards.
* a :class:`dask.distributed.Client`, a Dask cluster object (``LocalCluster``,
  ``dask_jobqueue.SLURMCluster``, ``dask_kubernetes.KubeCluster``, ...) or a scheduler address
  (``"tcp://host:8786"``): that cluster. What convexnn did not create, it does not close.

The operations split their work into independent tasks whose results are keyed by task, so a
task that Dask re-runs (its worker died) replaces nothing and adds nothing:

* :func:`certify_many`: one :func:`convexnn.certify` per network, the data scattered once.
* :func:`convexnn.path` with ``executor=``: contiguous chunks of the ``lam`` grid, each
  warm-started within itself; :func:`cross_validate_path`: one task per fold (and chunk).
* :func:`enumerate_patterns_distributed` / :func:`count_patterns_distributed`: the
  deletion--restriction recursion of :func:`convexnn.enumerate_patterns` split by the
  hyperplane at which a chamber is born (row ranges of equal work), merged by sign vector.

See ``docs/distributed.md`` for clusters (laptop, Slurm, Kubernetes) and memory.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from convexnn.arrangements.limits import available_cores
from convexnn.errors import InputError

__all__ = [
    "resolve_executor",
    "local_cluster",
    "certify_many",
    "cross_validate_path",
    "CVPathResult",
    "enumerate_patterns_distributed",
    "count_patterns_distributed",
    "PatternShards",
    "score_sampled_patterns",
    "ScoredPatterns",
    "relu_dual_norm_bab_distributed",
]

_ADDRESS_PREFIXES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")
_INSTALL = "install the optional extra: pip install 'convexnn[dask]'"


# ----------------------------------------------------------------------------- executors
def _import_distributed() -> Any:
    try:
        import dask.distributed as dd
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess without Dask
        raise InputError(f"executor= other than None needs Dask ({_INSTALL}); {exc}") from exc
    return dd


def local_cluster(n_workers: int | None = None, **kwargs: Any) -> Any:
    """A ``dask.distributed.LocalCluster`` set up for convexnn's numerical tasks.

    One worker process per core (``n_workers``, default: the cores available to this process),
    one thread each, and without the ``MALLOC_TRIM_THRESHOLD_`` that Dask sets for its worker
    processes by default: that setting makes every large temporary numpy array a fresh
    ``mmap`` (page faults on each allocation), which slows the enumeration about 2-3x
    (measured in ``bench/bench_distributed.py``). Close it (or use it as a context manager)
    when done.

    Parameters
    ----------
    n_workers : int, optional
    **kwargs
        Forwarded to ``LocalCluster`` (e.g. ``memory_limit``, ``dashboard_address``).
    """
    dd = _import_distributed()
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    opts = {"n_workers": n_workers or available_cores(), "threads_per_worker": 1, "processes": True,
            "dashboard_address": ":0"}
    opts.update(kwargs)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        return dd.LocalCluster(**opts)


@contextlib.contextmanager
def resolve_executor(executor: Any) -> Iterator[Any]:
    """Context manager yielding a ``dask.distributed.Client`` for ``executor`` (``None`` for serial).

    Parameters
    ----------
    executor : None, "local", Client, Dask cluster object or str
        ``None``: serial (yields ``None``, Dask is not imported). ``"local"``: a
        :func:`local_cluster` (one single-threaded worker process per core) created here and
        closed on exit. A ``Client`` is used as is (not closed). A cluster object (anything
        with a ``scheduler_address``, e.g. ``dask_jobqueue.SLURMCluster``) or a scheduler
        address string (``"tcp://..."``) gets a ``Client`` that is closed on exit; the cluster
        itself is left running.

    Raises
    ------
    InputError
        Unknown ``executor``, or Dask is not installed (the message says how to install it).

    Examples
    --------
    >>> from convexnn.distributed import resolve_executor
    >>> with resolve_executor(None) as client:
    ...     client is None
    True
    """
    if executor is None:
        yield None
        return
    if isinstance(executor, str) and executor == "local":
        dd = _import_distributed()
        cluster = local_cluster()
        client = dd.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    if isinstance(executor, str):
        if not executor.startswith(_ADDRESS_PREFIXES):
            raise InputError(f"executor must be None, 'local', a dask.distributed.Client, a Dask cluster or a "
                             f"scheduler address such as 'tcp://host:8786'; got {executor!r}.")
        dd = _import_distributed()
        client = dd.Client(executor)
        try:
            yield client
        finally:
            client.close()
        return
    dd = _import_distributed()
    if isinstance(executor, dd.Client):
        yield executor
        return
    if hasattr(executor, "scheduler_address"):
        client = dd.Client(executor)
        try:
            yield client
        finally:
            client.close()
        return
    raise InputError(f"executor must be None, 'local', a dask.distributed.Client, a Dask cluster or a scheduler "
                     f"address such as 'tcp://host:8786'; got an object of type {type(executor).__name__}.")


def _n_workers(client: Any) -> int:
    """Worker threads of the cluster (1 when serial)."""
    if client is None:
        return 1
    info = client.scheduler_info()
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


def _identity(value: Any) -> Any:
    return value


def _map(client: Any, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], *, shared: dict[str, Any],
         desc: str, progress: bool | None) -> list[Any]:
    """Run ``fn(*call, **shared)`` for every call; results in input order.

    Serial when ``client`` is None. Otherwise every ``shared`` object is shipped once, as a
    task of its own that the workers fetch from each other, and each call is one task with its
    own key; results are keyed by position, so a task that Dask re-runs after a worker died is
    counted once. Progress: a tqdm bar over the completed tasks (``None``: shown when stderr is
    a terminal).
    """
    import sys

    from tqdm.auto import tqdm

    show = progress if progress is not None else sys.stderr.isatty()
    out: list[Any] = [None] * len(calls)
    if client is None:
        for i, call in enumerate(tqdm(calls, desc=desc, disable=not show, unit="task")):
            out[i] = fn(*call, **shared)
        return out
    dd = _import_distributed()
    token = uuid.uuid4().hex[:12]
    # shared inputs travel as tasks of their own (not client.scatter): the scheduler keeps their
    # recipe, so a copy lost with a worker is rebuilt instead of failing every dependent task
    remote = {k: client.submit(_identity, v, key=f"convexnn-shared-{k}-{token}") for k, v in shared.items()}
    futures = [client.submit(fn, *call, key=f"convexnn-{desc.replace(' ', '_')}-{token}-{i}", **remote)
               for i, call in enumerate(calls)]
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        with tqdm(total=len(futures), desc=desc, disable=not show, unit="task") as bar:
            for fut in dd.as_completed(futures):
                out[index[fut.key]] = fut.result()  # re-raises a task's exception
                bar.update(1)
    finally:
        client.cancel(futures + list(remote.values()))
    return out


# ----------------------------------------------------------------------------- certificates
def _aligned(obj: Any) -> Any:
    """Fresh copies of the arrays in ``obj`` (an array, or a tuple / list of them).

    Arrays deserialized on a worker may sit at any memory alignment, and numpy's SIMD loops
    round differently on unaligned data; fresh copies make a task's floating-point results
    bit-identical to the serial computation.
    """
    if isinstance(obj, np.ndarray):
        return np.array(obj, copy=True, order="C")
    if isinstance(obj, (tuple, list)):
        return type(obj)(_aligned(o) for o in obj)
    return obj


def _certify_task(network: Any, lam: Any, X: np.ndarray, y: np.ndarray, patterns: dict[bool, Any],
                  kwargs: dict[str, Any]) -> Any:
    from convexnn.duality.bab import serial_searches
    from convexnn.duality.certify import certify
    from convexnn.networks.reading import as_network_arrays

    kw = dict(kwargs)
    X, y, network = _aligned(X), _aligned(y), _aligned(network)
    if patterns:
        bias = as_network_arrays(network, X.shape[1], X).bias
        if patterns.get(bias) is not None:
            kw["patterns"] = patterns[bias]
    with serial_searches():  # the workers are the parallelism
        cert = certify(network, X, y, lam, **kw)
    cert._Xa = None  # the coordinator restores its own copy (no n x d' array per result)
    cert._y = None
    return cert


def certify_many(networks: Sequence[Any], X: Any, y: Any, lam: float | Sequence[float] | None = None, *,
                 executor: Any = None, progress: bool | None = None, **certify_kwargs: Any) -> list[Any]:
    r"""Certificates of global optimality for many networks on the same data (batch :func:`convexnn.certify`).

    ``certify_many(nets, X, y, lam)[i]`` is ``convexnn.certify(nets[i], X, y, lam)`` (with
    ``lam[i]`` when ``lam`` is a sequence): the same weak-duality lower bound, gap and verdict,
    e.g. for every checkpoint of many training runs. The exact pattern set (when the
    certificates use one) is enumerated once per bias setting here instead of once per
    network; X, y and the patterns are shipped to every worker once, then one task per network.

    Parameters
    ----------
    networks : sequence of TwoLayerReLU, (W1, w2) tuples or torch modules
    X : array, shape (n, d)
    y : array, shape (n,)
    lam : float, sequence of floats or None
        One ``lam`` for all networks or one per network (``None``: give ``weight_decay`` in
        ``certify_kwargs``).
    executor : None, "local", Client, cluster or address
        See :func:`resolve_executor`.
    progress : bool, optional
        tqdm bar over completed certificates (default: when stderr is a terminal).
    **certify_kwargs
        Forwarded to :func:`convexnn.certify` (``loss``, ``rtol``, ``patterns``, ``method``, ...).

    Returns
    -------
    list of Certificate
        In the order of ``networks``. Bit for bit those of the serial calls when BLAS runs
        with the same number of threads here and on the workers (Dask workers use one); a
        different number can change the last bits of the products, and so of the bounds, at
        the rounding level (each bound remains a proof).

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> from convexnn.distributed import certify_many
    >>> rng = np.random.default_rng(0); X = rng.standard_normal((12, 2)); y = X[:, 0]
    >>> nets = [(rng.standard_normal((2, 3)), rng.standard_normal(3)) for _ in range(2)]
    >>> [c.lower_bound == cx.certify(n, X, y, 0.1).lower_bound for n, c in zip(nets, certify_many(nets, X, y, 0.1))]
    [True, True]
    """
    from convexnn.data import check_X
    from convexnn.networks.reading import as_network_arrays
    from convexnn.errors import TooLargeError

    nets = list(networks)
    Xc = check_X(X)
    if lam is None or np.ndim(lam) == 0:
        lams = [lam] * len(nets)
    else:
        lams = list(lam)
        if len(lams) != len(nets):
            raise InputError(f"lam has {len(lams)} values for {len(nets)} networks.")
    patterns: dict[bool, Any] = {}
    method = certify_kwargs.get("method", "auto")
    if certify_kwargs.get("patterns") is None and method in ("auto", "enumerate") and nets:
        from convexnn.duality.certify import resolve_patterns

        max_p = certify_kwargs.get("max_patterns", 10**6)
        for bias in sorted({as_network_arrays(n, Xc.shape[1], Xc).bias for n in nets}):
            try:
                patterns[bias] = resolve_patterns(Xc, bias, None, max_p)
            except TooLargeError:
                if method == "enumerate":
                    raise
                patterns[bias] = None  # each certificate falls back to branch and bound, as serially
    kwargs = {k: v for k, v in certify_kwargs.items()}
    with resolve_executor(executor) as client:
        certs = _map(client, _certify_task, list(zip(nets, lams)),
                     shared={"X": Xc, "y": y, "patterns": patterns, "kwargs": kwargs},
                     desc="certify", progress=progress)
    from convexnn.arrangements.patterns import design_matrix
    from convexnn.data import check_y

    yc = check_y(y, Xc.shape[0])
    Xa = {b: design_matrix(Xc, b) for b in (False, True)}
    for c in certs:
        c._Xa, c._y = Xa[bool(c.network.bias)], yc
    return certs


# ----------------------------------------------------------------------------- paths
def _solution_record(s: Any) -> dict[str, Any]:
    return {"weights": s.weights, "value": s.value, "status": s.status, "solver": s.solver,
            "solve_time": s.solve_time, "compile_time": s.compile_time, "iterations": s.iterations,
            "lam": s.lam, "info": s.info, "duals": s.duals}


def _path_chunk(lams: np.ndarray, X: np.ndarray, y: np.ndarray, patterns: Any, opts: dict[str, Any]) -> dict[str, Any]:
    from convexnn.path import path

    X, y = _aligned(X), _aligned(y)
    res = path(X, y, lams=lams, patterns=patterns, bias=patterns.bias, executor=None, progress=False, **opts)
    return {"sols": [_solution_record(s) for s in res.solutions], "objectives": res.objectives,
            "losses": res.losses, "regularizers": res.regularizers, "n_active": res.n_active,
            "gaps": res.gaps, "times": res.times, "method": res.method}


def _chunks(grid: np.ndarray, n_chunks: int) -> list[np.ndarray]:
    return [c for c in np.array_split(grid, max(1, min(int(n_chunks), len(grid)))) if len(c)]


def _check_n_chunks(n_chunks: Any) -> None:
    if n_chunks is not None and (isinstance(n_chunks, bool) or not isinstance(n_chunks, (int, np.integer))
                                 or n_chunks < 1):
        raise InputError(f"n_chunks must be a positive integer or None; got {n_chunks!r}.")


def distributed_path(Xc: np.ndarray, yc: np.ndarray, grid: np.ndarray, pats: Any, lmax: float, *, kind: str,
                     loss: Any, executor: Any, n_chunks: int | None, progress: bool,
                     opts: dict[str, Any]) -> Any:
    """Solve a validated path grid in contiguous chunks on ``executor`` (used by :func:`convexnn.path`).

    Each chunk is an independent warm-started path over its ``lam`` values; the solutions are
    reassembled around one formulation built here, as in the serial path.
    """
    from convexnn.formulations.formulation import ConvexSolution
    from convexnn.formulations.two_layer import c_grelu, c_relu
    from convexnn.path import PathResult

    _check_n_chunks(n_chunks)
    opts = dict(opts, kind=kind, loss=loss.name)
    with resolve_executor(executor) as client:
        chunks = _chunks(grid, n_chunks or _n_workers(client))
        parts = _map(client, _path_chunk, [(c,) for c in chunks],
                     shared={"X": Xc, "y": yc, "patterns": pats, "opts": opts},
                     desc=f"{kind} path", progress=progress)
    build = c_relu if kind == "c_relu" else c_grelu
    f = build(Xc, yc, pats, float(grid[-1]), loss=loss, bias=pats.bias, l1_ratio=opts.get("l1_ratio"))
    sols = [ConvexSolution(formulation=f, **rec) for p in parts for rec in p["sols"]]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in
           ("objectives", "losses", "regularizers", "n_active", "gaps", "times")}
    methods = list(dict.fromkeys(p["method"] for p in parts))
    return PathResult(lams=grid, solutions=sols, lam_max=lmax, kind=kind, method=",".join(methods),
                      patterns=pats, **cat)


@dataclass
class CVPathResult:
    r"""K-fold cross-validation of a regularization path (:func:`cross_validate_path`).

    Attributes
    ----------
    lams : ndarray, shape (k,)
        The common decreasing grid (from :func:`convexnn.lam_max` on all the data).
    fold_losses : ndarray, shape (n_folds, k)
        Mean validation loss :math:`\frac{1}{|V_f|}\ell(\hat y_{V_f}, y_{V_f})` of the network
        trained on the other folds, per fold and ``lam``.
    train_objectives : ndarray, shape (n_folds, k)
        Optimal training objectives per fold.
    mean, se : ndarray, shape (k,)
        Mean over folds and its standard error.
    best_index : int
        ``argmin(mean)``; ``best_lam = lams[best_index]``.
    lam_1se : float
        The largest ``lam`` whose mean is within one standard error of the best (the sparser
        network of the "one standard error" rule).
    folds : list of ndarray
        Validation indices of each fold.
    patterns : Patterns
        The patterns on all the data (each fold uses their restriction).
    kind, method : str
    """

    lams: np.ndarray
    fold_losses: np.ndarray
    train_objectives: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    best_index: int
    lam_1se: float
    folds: list[np.ndarray]
    patterns: Any
    kind: str
    method: str
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def best_lam(self) -> float:
        return float(self.lams[self.best_index])

    def __repr__(self) -> str:
        return (f"CVPathResult({self.kind}, {len(self.folds)} folds, {len(self.lams)} lams, best lam "
                f"{self.best_lam:.4g} (mean validation loss {self.mean[self.best_index]:.4g}), lam_1se {self.lam_1se:.4g})")


def _fold_patterns(Xtr: np.ndarray, pats: Any) -> Any:
    r"""The patterns of ``pats`` on the training rows ``Xtr`` (their witness gates restricted).

    Every chamber of the arrangement of a subset of the rows contains a chamber of the full
    arrangement, whose witness lies strictly inside it: so the restriction of a complete
    chamber set is the complete chamber set of the subset. Signs are certified
    (:func:`convexnn.arrangements.verify.verified_packed`); ``exact`` is kept only when every
    restricted witness is strict.
    """
    from convexnn.arrangements.verify import verified_packed
    from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix

    Xa = design_matrix(Xtr, pats.bias)
    G = np.array(pats.gates, copy=True)
    packed, strict, _ = verified_packed(Xa, G)
    exact = bool(pats.exact and strict.all())
    reason = None if exact or not pats.exact else "a restricted witness lies on a hyperplane of the fold"
    return Patterns.from_packed(packed, Xa.shape[0], G, bias=pats.bias, exact=exact, kind=pats.kind,
                                fingerprint=data_fingerprint(Xtr), reason=reason)


def _cv_task(fold: int, lams: np.ndarray, X: np.ndarray, y: np.ndarray, patterns: Any, folds: list[np.ndarray],
             opts: dict[str, Any]) -> dict[str, Any]:
    from convexnn.formulations.losses import get_loss
    from convexnn.path import path

    X, y = _aligned(X), _aligned(y)
    val = folds[fold]
    tr = np.setdiff1d(np.arange(len(X)), val)
    Xtr, ytr = X[tr], y[tr]
    pf = _fold_patterns(Xtr, patterns)
    res = path(Xtr, ytr, lams=lams, patterns=pf, bias=pf.bias, executor=None, progress=False, **opts)
    L = get_loss(opts.get("loss", "squared"))
    vl = [float(L.value(s.to_network().predict(X[val]), y[val])) / len(val) for s in res.solutions]
    return {"val": np.array(vl), "obj": res.objectives, "method": res.method, "times": res.times}


def cross_validate_path(
    X: Any,
    y: Any,
    lams: Any = None,
    *,
    n_folds: int = 5,
    n_lams: int = 20,
    lam_min_ratio: float = 1e-3,
    patterns: Any = None,
    kind: str = "c_relu",
    loss: str = "squared",
    bias: bool | None = None,
    method: str = "auto",
    tol: float = 1e-6,
    max_iter: int | None = None,
    solver: str | None = None,
    seed: Any = 0,
    n_chunks: int = 1,
    executor: Any = None,
    progress: bool | None = None,
) -> CVPathResult:
    r"""K-fold cross-validation of the C-ReLU / C-GReLU regularization path, one task per fold.

    The grid is :func:`convexnn.path`'s on all the data (from :func:`convexnn.lam_max` down),
    shared by the folds. Fold :math:`f` trains a warm-started path on the other folds with the
    patterns of all the data restricted to them (complete when they are: every chamber of a
    subset of the rows contains a chamber of the full arrangement) and records the mean
    validation loss of the mapped network at every ``lam``.

    With ``n_chunks=1`` (default) each task is the whole path of one fold, exactly the serial
    computation (bit for bit on the same BLAS); ``n_chunks > 1`` also splits the grid
    (``n_folds * n_chunks`` tasks), each chunk warm-started within itself and compiled on its
    own: equal to the serial result up to the solver tolerance.

    Parameters
    ----------
    X, y, lams, n_lams, lam_min_ratio, patterns, kind, loss, bias, method, tol, max_iter, solver
        As in :func:`convexnn.path`.
    n_folds : int
        Number of folds (at least 2, at most ``n``).
    seed : int
        Seed of the random fold assignment (and of sampled patterns).
    n_chunks : int
        Chunks of the grid per fold.
    executor : None, "local", Client, cluster or address
        See :func:`resolve_executor`.
    progress : bool, optional

    Returns
    -------
    CVPathResult
    """
    from convexnn.data import check_X, check_y
    from convexnn.formulations.losses import get_loss
    from convexnn.path import resolve_patterns

    Xc = check_X(X)
    L = get_loss(loss)
    yc = check_y(y, Xc.shape[0], loss=L.name)
    n = Xc.shape[0]
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= n:
        raise InputError(f"n_folds must be an integer in [2, n={n}]; got {n_folds!r}.")
    _check_n_chunks(n_chunks)
    pats = resolve_patterns(Xc, patterns, bias, seed)
    if lams is None:
        grid = _grid(Xc, yc, pats, L, n_lams, lam_min_ratio)  # the default grid of convexnn.path
    else:
        from convexnn.data import check_lam

        arr = np.atleast_1d(np.asarray(lams, dtype=object))
        if arr.ndim != 1 or arr.size == 0:
            raise InputError("lams must be a non-empty 1-D sequence of positive numbers.")
        grid = np.array(sorted((check_lam(v) for v in arr), reverse=True))
    rng = np.random.default_rng(seed)
    folds = [np.sort(f) for f in np.array_split(rng.permutation(n), int(n_folds))]
    opts = {"kind": kind, "loss": L.name, "method": method, "tol": tol, "max_iter": max_iter, "solver": solver,
            "gaps": False}
    chunks = _chunks(grid, n_chunks)
    calls = [(f, c) for f in range(int(n_folds)) for c in chunks]
    with resolve_executor(executor) as client:
        parts = _map(client, _cv_task, calls, shared={"X": Xc, "y": yc, "patterns": pats, "folds": folds,
                                                      "opts": opts}, desc="cv path", progress=progress)
    k = len(chunks)
    fl = np.array([np.concatenate([parts[f * k + j]["val"] for j in range(k)]) for f in range(int(n_folds))])
    to = np.array([np.concatenate([parts[f * k + j]["obj"] for j in range(k)]) for f in range(int(n_folds))])
    times = np.array([np.concatenate([parts[f * k + j]["times"] for j in range(k)]) for f in range(int(n_folds))])
    mean = fl.mean(axis=0)
    se = fl.std(axis=0, ddof=1) / math.sqrt(fl.shape[0])
    best = int(np.argmin(mean))
    within = np.flatnonzero(mean <= mean[best] + se[best])
    lam_1se = float(grid[within].max())
    methods = list(dict.fromkeys(p["method"] for p in parts))
    return CVPathResult(lams=grid, fold_losses=fl, train_objectives=to, mean=mean, se=se, best_index=best,
                        lam_1se=lam_1se, folds=folds, patterns=pats, kind=kind, method=",".join(methods), times=times)


def _grid(Xc: np.ndarray, yc: np.ndarray, pats: Any, L: Any, n_lams: Any, lam_min_ratio: Any) -> np.ndarray:
    """The default grid of :func:`convexnn.path`: geometric from lam_max down to ``lam_min_ratio * lam_max``."""
    from convexnn.path import lam_max

    if isinstance(n_lams, bool) or not isinstance(n_lams, (int, np.integer)) or n_lams < 1:
        raise InputError(f"n_lams must be a positive integer; got {n_lams!r}.")
    if not (isinstance(lam_min_ratio, (int, float)) and 0 < lam_min_ratio < 1):
        raise InputError(f"lam_min_ratio must be in (0, 1); got {lam_min_ratio!r}.")
    if L.name == "hinge":
        raise InputError("lams must be given for the hinge loss.")
    lmax = lam_max(Xc, yc, pats, loss=L.name)
    if not (math.isfinite(lmax) and lmax > 0):
        raise InputError(f"lams must be given when lam_max is 0 (y = 0); lam_max = {lmax}.")
    return np.geomspace(lmax, lmax * lam_min_ratio, int(n_lams))


# ----------------------------------------------------------------------------- arrangements
def _check_n_shards(n_shards: Any) -> None:
    if n_shards is not None and (isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer))
                                 or n_shards < 1):
        raise InputError(f"n_shards must be a positive integer or None; got {n_shards!r}.")


def _buckets(packed: np.ndarray, n_buckets: int) -> np.ndarray:
    """Deterministic bucket of every packed row (a multiplicative hash of its bytes)."""
    if n_buckets == 1 or len(packed) == 0:
        return np.zeros(len(packed), np.int64)
    w = np.random.default_rng(packed.shape[1]).integers(1, 2**62, size=packed.shape[1], dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        h = (packed.astype(np.uint64) * w[None, :]).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0x9E3779B97F4A7C15)
    return ((h >> np.uint64(33)) % np.uint64(n_buckets)).astype(np.int64)


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """Write ``path`` (.npz) atomically: a re-run task overwrites it with the same content."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _part_name(shard: int, bucket: int) -> str:
    return f"part-s{shard:05d}-b{bucket:05d}.npz"


def _enumerate_shard(shard: int, row_range: tuple[int, int], arr: Any, out_dir: str | None,
                     n_buckets: int) -> Any:
    """Verified, strict, distinct chambers born in ``row_range``: returned, or written by bucket."""
    packed, G = arr.fresh().enumerate_range(row_range)
    if out_dir is None:
        return packed, G
    b = _buckets(packed, n_buckets)
    for j in range(n_buckets):
        sel = b == j
        _atomic_savez(Path(out_dir) / _part_name(shard, j), packed=packed[sel], gates=G[:, sel])
    return int(len(packed))


def _merge_bucket(bucket: int, out_dir: str, n_shards: int) -> int:
    """Merge the parts of one bucket into ``patterns-<bucket>.npz`` (distinct sorted rows); its size."""
    d = Path(out_dir)
    ps, gs = [], []
    for i in range(n_shards):
        with np.load(d / _part_name(i, bucket)) as z:
            ps.append(z["packed"])
            gs.append(z["gates"])
    from convexnn.arrangements.shards import unique_packed

    packed, G = unique_packed(np.concatenate(ps), np.concatenate(gs, axis=1))
    _atomic_savez(d / f"patterns-{bucket:05d}.npz", packed=packed, gates=G)
    return int(len(packed))


@dataclass
class PatternShards:
    r"""Chamber patterns stored on disk by :func:`enumerate_patterns_distributed` (``out_dir=``).

    The patterns are split into ``files`` (``patterns-<bucket>.npz``, arrays ``packed`` of shape
    ``(P_b, ceil(n/8))`` uint8 and ``gates`` of shape ``(d', P_b)``); every pattern is in
    exactly one file (files are disjoint by a hash of the mask).

    Attributes
    ----------
    directory : Path
    files : list of Path
    n_patterns : int
        Number of distinct patterns over all files.
    n_samples, n_features : int
    bias, exact : bool
        ``exact`` as for :func:`convexnn.enumerate_patterns` (a proof of completeness).
    reason : str or None
        Why the set is not proven complete.
    fingerprint : str
    """

    directory: Path
    files: list[Path]
    n_patterns: int
    n_samples: int
    n_features: int
    bias: bool
    exact: bool
    reason: str | None
    fingerprint: str

    def __len__(self) -> int:
        return int(self.n_patterns)

    def __iter__(self) -> Iterator[Any]:
        """One :class:`~convexnn.Patterns` per file (each a subset, so ``exact=False``)."""
        from convexnn.arrangements.patterns import Patterns

        for f in self.files:
            with np.load(f) as z:
                yield Patterns.from_packed(z["packed"], self.n_samples, z["gates"], bias=self.bias, exact=False,
                                           kind="exact", fingerprint=self.fingerprint)

    def load(self) -> Any:
        """All patterns in memory, as one :class:`~convexnn.Patterns` (``exact`` as proven)."""
        from convexnn.arrangements.patterns import Patterns

        ps, gs = [], []
        for f in self.files:
            with np.load(f) as z:
                ps.append(z["packed"])
                gs.append(z["gates"])
        packed = np.concatenate(ps) if ps else np.zeros((0, (self.n_samples + 7) // 8), np.uint8)
        G = np.concatenate(gs, axis=1) if gs else np.zeros((self.n_features, 0))
        return Patterns.from_packed(packed, self.n_samples, G, bias=self.bias, exact=self.exact, kind="exact",
                                    fingerprint=self.fingerprint, reason=self.reason)


def _count_rows(row_range: tuple[int, int], arr: Any) -> int:
    """One range's share of the chamber count (:meth:`ShardedArrangement.count_range`)."""
    return arr.fresh().count_range(row_range)


def _count_sharded(client: Any, arr: Any, n_shards: int | None, progress: bool | None) -> int:
    direct = arr.count_direct()
    if direct is not None:
        return direct
    ranges = arr.count_ranges(n_shards or 4 * _n_workers(client))
    parts = _map(client, _count_rows, [(rg,) for rg in ranges], shared={"arr": arr}, desc="count_patterns",
                 progress=progress)
    return 1 + int(sum(parts))


def count_patterns_distributed(X: Any, *, bias: bool = False, max_work: float = 1e12, executor: Any = None,
                               n_shards: int | None = None, progress: bool | None = None) -> int:
    r"""Exact number of chambers of the arrangement of ``X``, the counting split over workers.

    The same count as :func:`convexnn.count_patterns` (Zaslavsky's deletion--restriction
    :math:`r(\mathcal A) = 1 + \sum_j r(\mathcal A_{<j}^{H_j})` over the distinct hyperplanes
    :math:`H_j`, every degeneracy decision exact): the top-level hyperplanes are split into
    ``n_shards`` contiguous ranges of about equal work, each range's restrictions are counted
    on a worker, and the integer sums are added. Re-running a range (a worker died) returns the
    same integer, which is stored once.

    Parameters
    ----------
    X : array, shape (n, d)
    bias : bool
    max_work : float
        Refuse (:class:`~convexnn.errors.TooLargeError`) beyond this many restricted hyperplanes
        in total over all workers (default :math:`10^{12}`; :func:`convexnn.count_patterns`
        processes about :math:`10^7` per second and core).
    executor : None, "local", Client, cluster or address
        See :func:`resolve_executor`.
    n_shards : int, optional
        Number of tasks (default: 4 per worker thread).
    progress : bool, optional

    Returns
    -------
    int
    """
    from convexnn.arrangements.count import cover_bound
    from convexnn.arrangements.shards import ShardedArrangement
    from convexnn.errors import TooLargeError

    _check_n_shards(n_shards)
    if isinstance(max_work, bool) or not isinstance(max_work, (int, float, np.integer, np.floating)) \
            or not max_work > 0:
        raise InputError(f"max_work must be a positive number; got {max_work!r}.")
    arr = ShardedArrangement(X, bias)
    arr.warn_issues("count_patterns_distributed")
    k, r = arr.n_distinct, arr.rank
    work = arr.count_work()
    if work > max_work:
        raise TooLargeError(
            f"counting the chambers of X (n={arr.Xa.shape[0]}, rank {r}, {k} distinct hyperplanes) "
            f"would process about {work:.3g} restricted hyperplanes, more than max_work={max_work:.3g}. The Cover "
            f"bound cover_bound({k}, {r}) = {cover_bound(k, r):.4g} is an upper bound.", estimate=work,
            limit=max_work)
    with resolve_executor(executor) as client:
        return _count_sharded(client, arr, n_shards, progress)


def enumerate_patterns_distributed(
    X: Any,
    *,
    bias: bool = False,
    executor: Any = None,
    n_shards: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    max_patterns: int | None = None,
    max_bytes: float = 8 * 2**30,
    progress: bool | None = None,
) -> Any:
    r"""All chamber patterns of the arrangement of ``X`` (EXACT), the enumeration split over workers.

    The same set as :func:`convexnn.enumerate_patterns` (``==`` holds: the same masks; each
    witness gate is a verified strict witness of its chamber, possibly another one than the
    serial function picks). Deletion--restriction adds the distinct hyperplanes
    :math:`H_1, \dots, H_k` one by one; a chamber of the final arrangement is *born* at the
    last hyperplane that cuts it. The hyperplanes are split into ``n_shards`` contiguous ranges
    of about equal work; a worker computes the witnesses born in its range, certifies their
    signs (:func:`convexnn.arrangements.exact.certified_signs`) and keeps the strict ones. The
    union over the ranges contains every chamber; chambers found in several ranges are merged by
    their mask (sort-merge of the bit-packed rows).

    Completeness is proven as in :func:`convexnn.enumerate_patterns`: the number of distinct
    verified chambers is compared with the exact count (the Cover bound when attained, else the
    deletion--restriction count, itself split over the workers). Otherwise ``exact=False`` with
    the reason and a :class:`~convexnn.errors.NotProvenWarning`.

    Parameters
    ----------
    X : array, shape (n, d)
    bias : bool
        Gates act on ``[X, 1]``.
    executor : None, "local", Client, cluster or address
        See :func:`resolve_executor`; ``None`` runs the shards one after the other here (with
        ``out_dir``: out of core).
    n_shards : int, optional
        Number of row ranges (tasks); default 4 per worker thread, and more when needed to keep a
        shard's memory below ``max_bytes``.
    out_dir : path, optional
        Stream the result to disk instead of gathering it: each shard writes its patterns
        split by a hash of the mask into ``n_shards`` buckets (``part-*.npz``); one task per
        bucket then merges its parts into ``patterns-<bucket>.npz`` (disjoint files of distinct
        patterns). The directory must be reachable by every worker (a shared file system) and
        must not hold the files of another enumeration. Returns a :class:`PatternShards`.
    max_patterns : int, optional
        As in :func:`convexnn.enumerate_patterns`.
    max_bytes : float
        Memory limit (bytes) for one process: the gathered result here (without ``out_dir``) and
        a shard's or bucket's working set on a worker.
    progress : bool, optional
        tqdm bars over completed shards (default: when stderr is a terminal).

    Returns
    -------
    Patterns or PatternShards
        ``Patterns`` (``exact``, ``kind="exact"``) without ``out_dir``; ``PatternShards``
        with it (``.load()`` gives the ``Patterns``).

    Raises
    ------
    InputError
        Invalid ``X`` or options.
    TooLargeError
        More than ``max_patterns`` chambers, or more memory than ``max_bytes`` (say which).

    Examples
    --------
    >>> import numpy as np, convexnn as cx
    >>> from convexnn.distributed import enumerate_patterns_distributed
    >>> X = np.random.default_rng(0).standard_normal((20, 3))
    >>> enumerate_patterns_distributed(X, n_shards=3) == cx.enumerate_patterns(X)
    True
    """
    import warnings

    from convexnn.arrangements.patterns import Patterns, data_fingerprint
    from convexnn.arrangements.shards import PEAK_FACTOR, ShardedArrangement, check_limits, unique_packed
    from convexnn.data import check_X
    from convexnn.errors import NotProvenWarning, TooLargeError

    Xc = check_X(X)
    _check_n_shards(n_shards)
    check_limits(max_patterns, max_bytes)
    arr = ShardedArrangement(Xc, bias)
    Xa = arr.Xa
    est, how = arr.estimate()
    if max_patterns is not None and est > max_patterns:
        raise TooLargeError(
            f"the arrangement of X (n={Xa.shape[0]}, rank {arr.rank}, {arr.n_distinct} distinct hyperplanes) has "
            f"{'exactly' if how == 'exact count' else 'up to'} {est:,} chambers ({how}), more than "
            f"max_patterns={max_patterns:,}.", estimate=est, limit=max_patterns)
    nbytes = est * ((Xa.shape[0] + 7) // 8 + 8 * Xa.shape[1])
    if out_dir is None and 3 * nbytes > max_bytes:
        raise TooLargeError(
            f"gathering the {'' if how == 'exact count' else 'up to '}{est:,} patterns ({how}) takes about "
            f"{3 * nbytes / 2**30:.2f} GiB here, more than max_bytes={max_bytes / 2**30:.2f} GiB: pass out_dir= to "
            "stream them to disk shards, or raise max_bytes.", estimate=3 * nbytes, limit=max_bytes)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if any(out.glob("part-s*.npz")) or any(out.glob("patterns-*.npz")):
            raise InputError(f"out_dir {str(out)!r} already holds pattern shards; use an empty directory.")
    fp = data_fingerprint(Xc)
    with resolve_executor(executor) as client:
        want = n_shards or 4 * _n_workers(client)
        need = math.ceil(PEAK_FACTOR * nbytes / max_bytes)
        if n_shards is None:
            want = max(want, need)
        elif need > n_shards:
            raise TooLargeError(
                f"a shard of the {est:,} patterns would take about {PEAK_FACTOR * nbytes / n_shards / 2**30:.2f} GiB "
                f"at peak on a worker, more than max_bytes={max_bytes / 2**30:.2f} GiB: use n_shards >= {need}.",
                estimate=PEAK_FACTOR * nbytes / n_shards, limit=max_bytes)
        ranges = arr.enumerate_ranges(int(want))
        ns = len(ranges)
        nb = max(1, int(want)) if out_dir is not None else 1
        shared = {"arr": arr, "out_dir": None if out_dir is None else str(out_dir), "n_buckets": nb}
        parts = _map(client, _enumerate_shard, [(i, rg) for i, rg in enumerate(ranges)], shared=shared,
                     desc="enumerate shards", progress=progress)
        if out_dir is None:
            packed = np.concatenate([p for p, _ in parts])
            G = np.concatenate([g for _, g in parts], axis=1)
            packed, G = unique_packed(packed, G)
            n_found = len(packed)
        else:
            sizes = _map(client, _merge_bucket, [(j,) for j in range(nb)], shared={"out_dir": str(out_dir),
                                                                                 "n_shards": ns},
                         desc="merge buckets", progress=progress)
            n_found = int(sum(sizes))
            for i in range(ns):
                for j in range(nb):
                    with contextlib.suppress(FileNotFoundError):
                        (Path(out_dir) / _part_name(i, j)).unlink()
        reasons = arr.completeness((est, how), n_found, lambda: _count_sharded(client, arr, None, progress))
    exact = not reasons
    reason = None if exact else "; ".join(reasons)
    if not exact:
        warnings.warn("enumerate_patterns_distributed: the pattern set is not proven complete (exact=False): "
                      + reason, NotProvenWarning, stacklevel=2)
    if out_dir is None:
        return Patterns.from_packed(packed, Xa.shape[0], G, bias=bias, exact=exact, kind="exact", fingerprint=fp,
                                    reason=reason)
    files = [Path(out_dir) / f"patterns-{j:05d}.npz" for j in range(nb)]
    return PatternShards(directory=Path(out_dir), files=files, n_patterns=n_found, n_samples=Xa.shape[0],
                         n_features=Xa.shape[1], bias=bool(bias), exact=exact, reason=reason, fingerprint=fp)


# ----------------------------------------------------------------------------- pattern scoring
@dataclass
class ScoredPatterns:
    r"""The best-scoring sampled patterns of :func:`score_sampled_patterns`.

    Attributes
    ----------
    patterns : Patterns
        The ``k`` distinct patterns with the largest scores (canonical order, ``exact=False``,
        ``kind="scored"``), with the sampled gate that produced each.
    scores : ndarray, shape (k,)
        ``scores[i]`` belongs to ``patterns[i]``: the cheap upper bound of
        :math:`\max_\sigma \|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|_2`
        (:attr:`convexnn.duality.cones.ConeSupport.bounds`, computed in floating point).
    n_samples : int
        Gates sampled in total.
    """

    patterns: Any
    scores: np.ndarray
    n_samples: int

    def order(self) -> np.ndarray:
        """Indices of :attr:`patterns` by decreasing score."""
        return np.argsort(-self.scores, kind="stable")


def _score_chunk(chunk: int, m: int, seed: int, k: int, Xa: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sample ``m`` Gaussian gates (stream ``[seed, chunk]``), score their distinct masks, keep the top ``k``."""
    from convexnn.arrangements.limits import single_blas_thread
    from convexnn.duality.cones import cone_support

    Xa, v = _aligned(Xa), _aligned(v)
    G = np.random.default_rng([seed, chunk]).standard_normal((Xa.shape[1], m))
    with single_blas_thread():  # the same rounding in every process, whatever its BLAS threads
        masks = Xa @ G >= 0
        packed = np.ascontiguousarray(np.packbits(masks.T, axis=1))
        _, first = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_index=True)
        first = np.sort(first)  # first occurrence of every distinct mask, in sampling order
        bounds = cone_support(Xa, masks[:, first], v, exact=False).bounds
    order = np.lexsort((first, -bounds))[:k]  # best first, ties by sampling order
    keep = first[order]
    return bounds[order], packed[keep], G[:, keep], chunk * np.int64(1 << 40) + keep


def score_sampled_patterns(
    X: Any,
    v: Any,
    n_samples: int,
    *,
    bias: bool = False,
    k: int = 100,
    chunk_size: int = 1 << 16,
    seed: int = 0,
    executor: Any = None,
    progress: bool | None = None,
) -> ScoredPatterns:
    r"""Sample many Gaussian gates and keep the ``k`` patterns that most violate the dual constraint at ``v``.

    For a dual candidate :math:`v` (e.g. the residual :math:`y - \hat y` of a network, the point
    :func:`convexnn.certify` starts from), the patterns :math:`D_i` with large
    :math:`\max_\sigma\|\Pi_{\mathcal K_i}(\sigma X_a^\top D_i v)\|_2` are those whose dual
    constraint :math:`\le \lambda` is violated or nearly so (Pilanci & Ergen, "Neural Networks
    are Convex Regularizers", ICML 2020): the neurons worth adding, or the patterns to put in a
    working set. Each pattern is scored by the cheap upper bound of
    :func:`convexnn.duality.cones.cone_support` (projection onto the most violated single
    half-space of the cone; one matrix product per chunk, no NNLS).

    The ``n_samples`` gates are drawn in chunks of ``chunk_size`` (chunk ``c`` from the random
    stream ``numpy.random.default_rng([seed, c])``), so the result depends on ``seed`` and
    ``chunk_size`` only, not on the executor or the number of workers (the chunks use one BLAS
    thread, so their rounding is the same in every process). Each chunk keeps its
    ``k`` best distinct masks; the coordinator merges them by mask (the first sampled gate of a
    mask is kept) and returns the ``k`` best.

    Parameters
    ----------
    X : array, shape (n, d)
    v : array, shape (n,)
        Dual candidate.
    n_samples : int
        Number of gates to sample.
    bias : bool
        Gates act on ``[X, 1]``.
    k : int
        Number of distinct patterns to return.
    chunk_size : int
        Gates per task (memory: about ``n * chunk_size`` bytes of masks per task).
    seed : int
    executor : None, "local", Client, cluster or address
        See :func:`resolve_executor`.
    progress : bool, optional

    Returns
    -------
    ScoredPatterns

    Examples
    --------
    >>> import numpy as np
    >>> from convexnn.distributed import score_sampled_patterns
    >>> X = np.random.default_rng(0).standard_normal((30, 2)); v = np.sin(3 * X[:, 0])
    >>> best = score_sampled_patterns(X, v, 5000, bias=True, k=5, chunk_size=1000)
    >>> len(best.patterns), bool(np.all(best.scores > 0))
    (5, True)
    """
    from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix
    from convexnn.data import check_X

    Xc = check_X(X)
    Xa = design_matrix(Xc, bias)
    vv = np.asarray(v, dtype=np.float64)
    if vv.shape != (Xa.shape[0],) or not np.all(np.isfinite(vv)):
        raise InputError(f"v must be a finite vector of shape ({Xa.shape[0]},); got shape {vv.shape}.")
    for name, val in (("n_samples", n_samples), ("k", k), ("chunk_size", chunk_size)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise InputError(f"{name} must be a positive integer; got {val!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a nonnegative integer; got {seed!r}.")
    sizes = [min(int(chunk_size), int(n_samples) - a) for a in range(0, int(n_samples), int(chunk_size))]
    with resolve_executor(executor) as client:
        parts = _map(client, _score_chunk, [(c, m, int(seed), int(k)) for c, m in enumerate(sizes)],
                     shared={"Xa": Xa, "v": vv}, desc="score patterns", progress=progress)
    scores = np.concatenate([p[0] for p in parts])
    packed = np.concatenate([p[1] for p in parts])
    G = np.concatenate([p[2] for p in parts], axis=1)
    ident = np.concatenate([p[3] for p in parts])
    # one entry per mask: the first sampled gate (smallest id); then the k best
    o = np.argsort(ident, kind="stable")
    scores, packed, G, ident = scores[o], np.ascontiguousarray(packed[o]), G[:, o], ident[o]
    _, first = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_index=True)
    first = np.sort(first)
    best = first[np.lexsort((ident[first], -scores[first]))[: int(k)]]
    pats = Patterns.from_packed(packed[best], Xa.shape[0], G[:, best], bias=bias, exact=False, kind="scored",
                                fingerprint=data_fingerprint(Xc))
    # align the scores with the canonical (sorted) order of the patterns
    keys = np.ascontiguousarray(packed[best]).view(np.dtype((np.void, packed.shape[1]))).ravel()
    pos = np.argsort(keys)
    return ScoredPatterns(patterns=pats, scores=scores[best][pos], n_samples=int(n_samples))


# ----------------------------------------------------------------------------- branch and bound
def _bab_task(roots: np.ndarray, Xa: np.ndarray, v: np.ndarray, opts: dict[str, Any]) -> Any:
    from convexnn.duality.bab import relu_dual_norm_bab

    return relu_dual_norm_bab(_aligned(Xa), _aligned(v), roots=np.asarray(roots), progress=False, n_jobs=1, **opts)


def relu_dual_norm_bab_distributed(
    Xa: Any,
    v: Any,
    *,
    threshold: float | None = None,
    rtol: float = 1e-3,
    time_limit: float | None = None,
    max_nodes: int | None = None,
    executor: Any = None,
    n_tasks: int | None = None,
    progress: bool | None = None,
) -> Any:
    r"""The branch and bound of :func:`convexnn.duality.bab.relu_dual_norm_bab`, split over workers.

    The search space is the union of :math:`4d'` root boxes (the faces :math:`z_i = \pm 1` of the
    cube, for both output signs :math:`\sigma`); ``s(v)`` is the maximum over the roots of the
    maximum over each. The roots are dealt round-robin to ``n_tasks`` independent searches
    (default: ``min(4d', 4 x workers)``), each a complete, rigorous branch and bound of its roots
    with the same ``threshold``, ``rtol``, ``time_limit`` and ``max_nodes`` (per task). The combined
    enclosure is ``upper = max_t upper_t`` (every root is covered by exactly one task, so it is a
    valid bound whenever the tasks stop) and ``lower = max_t lower_t`` (a value actually attained,
    with its neuron). With a ``threshold`` -- the question certificates ask, "is s(v) <= T?" --
    every task prunes against the same level, so no incumbent needs to be shared.

    Returns
    -------
    DualNormBound
        ``nodes`` summed over the tasks; ``complete`` when every task completed.
    """
    from dataclasses import replace

    from convexnn.data import check_X

    Xa_ = check_X(Xa)
    v_ = np.asarray(v, dtype=np.float64)
    if v_.shape != (Xa_.shape[0],) or not np.all(np.isfinite(v_)):
        raise InputError(f"v must be a finite vector of length {Xa_.shape[0]}; got shape {v_.shape}.")
    n_roots = 4 * Xa_.shape[1]
    if n_tasks is not None and (isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)) or n_tasks < 1):
        raise InputError(f"n_tasks must be a positive integer; got {n_tasks!r}.")
    opts = {"threshold": threshold, "rtol": rtol, "time_limit": time_limit, "max_nodes": max_nodes}
    with resolve_executor(executor) as client:
        k = min(n_roots, n_tasks or 4 * _n_workers(client))
        groups = [np.arange(i, n_roots, k) for i in range(k)]
        parts = _map(client, _bab_task, [(g,) for g in groups], shared={"Xa": Xa_, "v": v_, "opts": opts},
                     desc="relu_dual_norm_bab", progress=progress)
    best = max(parts, key=lambda r: r.lower)
    violations = sorted((w for r in parts for w in r.violations), key=lambda w: -w[0])
    return replace(best, upper=max(r.upper for r in parts), nodes=sum(r.nodes for r in parts),
                   complete=all(r.complete for r in parts), time=max(r.time for r in parts),
                   reason="complete" if all(r.complete for r in parts) else
                   ",".join(sorted({r.reason for r in parts if not r.complete})),
                   violations=violations)
