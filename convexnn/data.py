"""Input validation and small data utilities shared by every module.

All public entry points validate their arrays through :func:`check_X` / :func:`check_Xy` /
:func:`check_lam`, so a bad input produces the same clear :class:`~convexnn.errors.InputError`
everywhere instead of a wrong answer deep inside a solver.
"""

from __future__ import annotations

from typing import Any

import numbers

import numpy as np

from convexnn.errors import InputError

__all__ = [
    "check_X",
    "check_y",
    "check_Xy",
    "check_lam",
    "check_bool",
    "check_int",
    "check_seed",
    "check_solution",
    "add_bias",
    "standardize",
    "load_dataset",
]


def _as_float_array(a: Any, name: str) -> np.ndarray:
    if a is None:
        raise InputError(f"{name} is None; expected a numeric array.")
    if _is_sparse(a):
        raise InputError(f"{name} is a sparse matrix ({type(a).__name__}); sparse matrices are not supported: "
                         f"pass {name}.toarray().")
    if isinstance(a, np.ma.MaskedArray):
        k = int(np.count_nonzero(np.ma.getmaskarray(a)))
        if k == 0:
            raise InputError(f"{name} is a numpy masked array; masked arrays are not supported. No entry is "
                             f"masked here: pass the plain data np.ma.getdata({name}).")
        raise InputError(f"{name} is a numpy masked array with {k} masked entr{'y' if k == 1 else 'ies'}; masked "
                         "arrays are not supported (the mask would be ignored). Drop or impute the masked "
                         f"entries and pass a plain array (e.g. {name}.filled(value) or np.ma.compress_rows({name})).")
    # torch tensors and other array-likes
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise InputError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise InputError(f"{name} must be numeric; got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name} must be real; got complex dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    return arr


def _is_sparse(a: Any) -> bool:
    """True for scipy.sparse matrices / arrays (without importing scipy when it is not loaded)."""
    mod = type(a).__module__ or ""
    if not mod.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return bool(scipy.sparse.issparse(a))


def check_X(X: Any, *, name: str = "X", min_samples: int = 1) -> np.ndarray:
    """Validate a data matrix and return it as a C-contiguous float64 array of shape (n, d).

    Raises
    ------
    InputError
        If ``X`` is not 2-D, is empty, is non-numeric, or contains NaN or inf.
    """
    arr = _as_float_array(X, name)
    if arr.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D array of shape (n_samples, n_features); got {arr.ndim}-D "
            f"with shape {arr.shape}. Reshape a single feature with X.reshape(-1, 1)."
        )
    n, d = arr.shape
    if n < min_samples or d == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); need at least {min_samples} row(s) and 1 column.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"{name} contains {bad} NaN or infinite value(s); clean or impute them first.")
    return np.ascontiguousarray(arr)


def check_y(y: Any, n: int, *, name: str = "y", loss: str = "squared") -> np.ndarray:
    """Validate targets: shape (n,) or (n, c), finite; labels in {-1, +1} for classification losses."""
    arr = _as_float_array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim not in (1, 2):
        raise InputError(f"{name} must have shape (n,) or (n, c); got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise InputError(f"{name} has {arr.shape[0]} rows but X has {n}; they must match.")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values.")
    if loss in ("logistic", "hinge"):
        if not np.all(np.isin(arr, (-1.0, 1.0))):
            vals = np.unique(arr)[:5]
            raise InputError(
                f"loss={loss!r} needs labels in {{-1, +1}}; found values such as {vals.tolist()}. "
                "Map labels with y = 2*y - 1 for {0, 1} labels."
            )
    return np.ascontiguousarray(arr)


def check_Xy(X: Any, y: Any, *, loss: str = "squared") -> tuple[np.ndarray, np.ndarray]:
    """Validate a data matrix and its targets together (see :func:`check_X`, :func:`check_y`)."""
    Xa = check_X(X)
    ya = check_y(y, Xa.shape[0], loss=loss)
    return Xa, ya


def check_lam(lam: Any, *, name: str = "lam", allow_zero: bool = False) -> float:
    """Validate a regularization strength: a finite real number > 0 (>= 0 if ``allow_zero``).

    Booleans, strings and arrays with more than one entry are refused (``float("0.1")`` and
    ``float(True)`` would silently turn them into numbers).
    """
    if isinstance(lam, (bool, np.bool_)):
        raise InputError(f"{name} must be a real number, not a bool; got {lam!r}.")
    if isinstance(lam, (str, bytes)):
        raise InputError(f"{name} must be a real number, not a string; got {lam!r}. "
                         f"Convert it first ({name}=float({lam!r})).")
    if isinstance(lam, (complex, np.complexfloating)):
        raise InputError(f"{name} must be real; got the complex number {lam!r}.")
    if isinstance(lam, np.ndarray):
        if lam.size != 1 or lam.ndim > 1 or not (np.issubdtype(lam.dtype, np.integer)
                                                 or np.issubdtype(lam.dtype, np.floating)):
            raise InputError(f"{name} must be a real number; got an array of shape {lam.shape} and dtype "
                             f"{lam.dtype}.")
        lam = lam.reshape(())[()]
    try:
        val = float(lam)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a real number; got {lam!r}.") from exc
    if not np.isfinite(val):
        raise InputError(f"{name} must be finite; got {val}.")
    if val < 0 or (val == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        hint = "" if allow_zero else " For lam -> 0 use convexnn.min_norm_interpolation."
        raise InputError(f"{name} must be {bound}; got {val}.{hint}")
    return val


def check_bool(value: Any, name: str) -> bool:
    """Validate a flag: ``True`` / ``False`` (a Python or numpy bool); anything else is refused.

    Truthiness is not used: ``bias="no"`` or ``bias="yes"`` would otherwise both mean ``True``.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InputError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")


def check_int(value: Any, name: str, *, min_value: int | None = None) -> int:
    """Validate an integer argument (a count, a dimension) and return it as a Python ``int``.

    Python / numpy integers are accepted, and floats only when they are integers (``5.0``);
    booleans, strings and non-integral numbers (``5.5``) raise :class:`InputError`.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise InputError(f"{name} must be an integer; got {value!r} ({type(value).__name__}).")
    if not isinstance(value, numbers.Integral):
        fval = float(value)
        if not (np.isfinite(fval) and fval.is_integer()):
            raise InputError(f"{name} must be an integer; got {value!r}.")
        value = int(fval)
    out = int(value)
    if min_value is not None and out < min_value:
        raise InputError(f"{name} must be >= {min_value}; got {out}.")
    return out


def check_seed(seed: Any, name: str = "seed") -> np.random.Generator:
    """A numpy ``Generator`` from ``seed``: ``None``, a nonnegative integer, a ``SeedSequence``,
    a ``BitGenerator`` or a ``Generator`` (returned as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.BitGenerator)):
        return np.random.default_rng(seed)
    if isinstance(seed, (numbers.Integral,)) and not isinstance(seed, (bool, np.bool_)):
        if int(seed) < 0:
            raise InputError(f"{name} must be a nonnegative integer; got {seed}.")
        return np.random.default_rng(int(seed))
    raise InputError(f"{name} must be None, a nonnegative integer or a numpy Generator; got {seed!r} "
                     f"({type(seed).__name__}).")


def check_solution(solution: Any, func: str) -> Any:
    """Check that ``solution`` is a :class:`~convexnn.ConvexSolution` (what ``func`` needs).

    Networks, formulations and arrays passed instead get an :class:`InputError` that says what
    to pass (``formulation.solve()``) and where networks go (``convexnn.certify``).
    """
    from convexnn.formulations.formulation import ConvexSolution, Formulation

    if isinstance(solution, ConvexSolution):
        return solution
    what = type(solution).__name__
    if isinstance(solution, Formulation):
        hint = " Solve it first: sol = formulation.solve() (or convexnn.solve(formulation))."
    elif hasattr(solution, "to_solution"):
        hint = " Turn these convex weights into a solution first: model.to_solution(y, lam)."
    elif hasattr(solution, "W1") or hasattr(solution, "parameters"):
        hint = (" For a network, use convexnn.certify(network, X, y, lam), or map it to a convex "
                "solution with convexnn.from_network(network, X).to_solution(y, lam).")
    else:
        hint = ""
    raise InputError(f"{func}() expects a ConvexSolution (the result of c_relu(...).solve() or "
                     f"convexnn.solve(...)); got {what}.{hint}")


def add_bias(X: np.ndarray) -> np.ndarray:
    """Return ``[X, 1]``: the data matrix augmented with a column of ones (the bias feature)."""
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([X, np.ones((X.shape[0], 1))])


def standardize(X: np.ndarray) -> np.ndarray:
    """Center and scale each column to unit variance (constant columns are only centered)."""
    X = check_X(X)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


def load_dataset(name: str, *, n_features: int | None = None, standardized: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load a small real dataset that ships with scikit-learn.

    Parameters
    ----------
    name : {"diabetes", "iris", "wine", "breast_cancer"}
        ``diabetes`` is a regression target (standardized); the others are turned into
        binary labels in ``{-1, +1}`` (first class vs the rest).
    n_features : int, optional
        Keep only the first ``n_features`` columns.
    standardized : bool
        Standardize the features (and the diabetes target).
    """
    try:
        from sklearn import datasets
    except ImportError as exc:  # pragma: no cover
        raise InputError("load_dataset needs scikit-learn: pip install scikit-learn") from exc
    loaders = {
        "diabetes": datasets.load_diabetes,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }
    if name not in loaders:
        raise InputError(f"unknown dataset {name!r}; choose one of {sorted(loaders)}.")
    X, y = loaders[name](return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    if n_features is not None:
        X = X[:, :n_features]
    if standardized:
        X = standardize(X)
    if name == "diabetes":
        y = np.asarray(y, dtype=np.float64)
        if standardized:
            y = (y - y.mean()) / y.std()
    else:
        y = np.where(np.asarray(y) == 0, 1.0, -1.0)
    return X, y
