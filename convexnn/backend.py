r"""Array backends: one namespace over numpy and torch, so every solver and loss is written once.

The solvers in :mod:`convexnn.solvers` and the array-namespace methods of the losses
(:class:`convexnn.formulations.losses.Loss`) never call ``numpy`` or ``torch`` directly; they
call the methods of a :class:`Backend`, which maps each operation to the library that holds the
arrays. Arithmetic operators (``+``, ``*``, ``@``) are shared by both libraries and are used
directly. A backend fixes the library, the device (``"cpu"`` or ``"cuda[:k]"`` for torch) and
the floating-point type (``float32`` or ``float64``).

Only the handful of operations the solvers need is exposed; this keeps the two code paths
identical (the property the numpy/torch agreement tests check).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.errors import InputError

__all__ = ["Backend", "get_backend", "torch_available", "NUMPY"]


def torch_available() -> bool:
    """True when ``torch`` can be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


_DTYPES = {"float32": "float32", "float64": "float64", "single": "float32", "double": "float64"}


def _dtype_name(dtype: Any) -> str:
    if dtype is None:
        return "float64"
    if isinstance(dtype, str):
        key = dtype.lower()
        if key not in _DTYPES:
            raise InputError(f"dtype must be 'float32' or 'float64'; got {dtype!r}.")
        return _DTYPES[key]
    name = str(dtype).replace("torch.", "")
    if name in ("float32", "float64"):
        return name
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise InputError(f"dtype must be float32 or float64; got {dtype!r}.") from None
    if name not in ("float32", "float64"):
        raise InputError(f"dtype must be float32 or float64; got {dtype!r}.")
    return name


class Backend:
    """A small array namespace over numpy or torch on a fixed device and dtype.

    Parameters
    ----------
    lib : {"numpy", "torch"}
    device : str
        ``"cpu"`` for numpy; any torch device string for torch (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    dtype : {"float32", "float64"}

    Attributes
    ----------
    eps : float
        Machine epsilon of ``dtype`` (used to floor tolerances: float32 stops at its own precision).
    """

    def __init__(self, lib: str, device: str = "cpu", dtype: str = "float64") -> None:
        self.lib = lib
        self.device = device
        self.dtype_name = _dtype_name(dtype)
        self.eps = float(np.finfo(self.dtype_name).eps)
        #: the smallest positive normal number of the dtype (a floor that does not underflow)
        self.tiny = float(np.finfo(self.dtype_name).tiny)
        if lib == "torch":
            import torch

            self._t = torch
            self.dtype = getattr(torch, self.dtype_name)
            self.tdevice = torch.device(device)
        elif lib == "numpy":
            self._t = None
            self.dtype = np.dtype(self.dtype_name)
            self.tdevice = None
        else:
            raise InputError(f"unknown array library {lib!r}; use 'numpy' or 'torch'.")

    def __repr__(self) -> str:
        return f"Backend({self.lib}, device={self.device!r}, dtype={self.dtype_name})"

    # -------------------------------------------------------------- conversion
    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        """Convert ``a`` (numpy array, torch tensor, scalar) to this backend's array type."""
        if self.lib == "numpy":
            if hasattr(a, "detach"):
                a = a.detach().cpu().numpy()
            return np.ascontiguousarray(np.asarray(a, dtype=dtype or self.dtype))
        torch = self._t
        dt = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or self.dtype)
        if isinstance(a, torch.Tensor):
            return a.to(device=self.tdevice, dtype=dt)
        arr = np.ascontiguousarray(np.asarray(a))
        if not arr.flags.writeable:  # torch refuses read-only buffers (e.g. Patterns.masks)
            arr = arr.copy()
        if arr.dtype == np.bool_:
            return torch.from_numpy(arr).to(device=self.tdevice, dtype=dt)
        return torch.as_tensor(arr, dtype=dt, device=self.tdevice)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Copy to a float64 numpy array on the host."""
        if self.lib == "numpy":
            return np.asarray(a, dtype=np.float64)
        return a.detach().to("cpu", dtype=self._t.float64).numpy()

    def with_dtype(self, dtype: str) -> "Backend":
        """A backend on the same library and device with another dtype."""
        return Backend(self.lib, self.device, dtype)

    # -------------------------------------------------------------- creation
    def zeros(self, shape: tuple[int, ...]) -> Any:
        if self.lib == "numpy":
            return np.zeros(shape, dtype=self.dtype)
        return self._t.zeros(shape, dtype=self.dtype, device=self.tdevice)

    def copy(self, a: Any) -> Any:
        return a.copy() if self.lib == "numpy" else a.clone()

    def randn(self, shape: tuple[int, ...], seed: int = 0) -> Any:
        """Standard normal array (generated on the host with numpy, so both libraries agree)."""
        return self.asarray(np.random.default_rng(seed).standard_normal(shape))

    # -------------------------------------------------------------- reductions
    def sum(self, a: Any, axis: int | None = None) -> Any:
        if self.lib == "numpy":
            return np.sum(a, axis=axis)
        return self._t.sum(a) if axis is None else self._t.sum(a, dim=axis)

    def max(self, a: Any) -> Any:
        return np.max(a) if self.lib == "numpy" else self._t.max(a)

    def row_norms(self, a: Any) -> Any:
        r"""Euclidean norm of each row of a 2-D array: :math:`(\|a_{i,:}\|_2)_i`."""
        if self.lib == "numpy":
            return np.sqrt(np.einsum("ij,ij->i", a, a))
        return self._t.linalg.vector_norm(a, dim=1)

    def vdot(self, a: Any, b: Any) -> Any:
        """Inner product of two arrays of the same shape (flattened)."""
        if self.lib == "numpy":
            return np.vdot(a, b)
        return self._t.sum(a * b)

    # -------------------------------------------------------------- elementwise
    def sqrt(self, a: Any) -> Any:
        return np.sqrt(a) if self.lib == "numpy" else self._t.sqrt(a)

    def abs(self, a: Any) -> Any:
        return np.abs(a) if self.lib == "numpy" else self._t.abs(a)

    def ones_like(self, a: Any) -> Any:
        return np.ones_like(a) if self.lib == "numpy" else self._t.ones_like(a)

    def maximum(self, a: Any, b: float) -> Any:
        """Elementwise maximum with a scalar."""
        if self.lib == "numpy":
            return np.maximum(a, b)
        return self._t.clamp(a, min=b)

    def minimum(self, a: Any, b: float) -> Any:
        """Elementwise minimum with a scalar."""
        if self.lib == "numpy":
            return np.minimum(a, b)
        return self._t.clamp(a, max=b)

    def softplus(self, a: Any) -> Any:
        r""":math:`\log(1 + e^{a})`, computed stably."""
        if self.lib == "numpy":
            return np.logaddexp(0.0, a)
        return self._t.nn.functional.softplus(a)

    def sigmoid(self, a: Any) -> Any:
        r""":math:`1 / (1 + e^{-a})`, computed stably."""
        if self.lib == "numpy":
            return np.exp(-np.logaddexp(0.0, -a))
        return self._t.sigmoid(a)

    def xlogx(self, a: Any) -> Any:
        r""":math:`a \log a` with :math:`0 \log 0 = 0` (for :math:`a \ge 0`)."""
        if self.lib == "numpy":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)
        return self._t.special.xlogy(a, a)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if self.lib == "numpy":
            return np.where(cond, a, b)
        if not isinstance(b, self._t.Tensor):
            b = self._t.as_tensor(b, dtype=self.dtype, device=self.tdevice)
        if not isinstance(a, self._t.Tensor):
            a = self._t.as_tensor(a, dtype=self.dtype, device=self.tdevice)
        return self._t.where(cond, a, b)

    def take_columns(self, a: Any, idx: np.ndarray) -> Any:
        """``a[:, idx]`` as a contiguous array (``idx`` a numpy integer array)."""
        if self.lib == "numpy":
            return np.ascontiguousarray(a[:, idx])
        return a[:, self._t.as_tensor(idx, device=self.tdevice, dtype=self._t.long)].contiguous()

    def take_rows(self, a: Any, idx: np.ndarray) -> Any:
        """``a[idx]`` (``idx`` a numpy integer array)."""
        if self.lib == "numpy":
            return a[idx]
        return a[self._t.as_tensor(idx, device=self.tdevice, dtype=self._t.long)]

    def put_rows(self, a: Any, idx: np.ndarray, rows: Any) -> Any:
        """Set ``a[idx] = rows`` in place and return ``a``."""
        if self.lib == "numpy":
            a[idx] = rows
            return a
        a[self._t.as_tensor(idx, device=self.tdevice, dtype=self._t.long)] = rows
        return a

    def hstack(self, arrays: list[Any]) -> Any:
        """Concatenate 2-D arrays along columns (contiguous result)."""
        if self.lib == "numpy":
            return np.ascontiguousarray(np.hstack(arrays))
        return self._t.cat(arrays, dim=1).contiguous()

    def synchronize(self) -> None:
        """Wait for queued device work (only matters for CUDA timings)."""
        if self.lib == "torch" and self.tdevice.type == "cuda":
            self._t.cuda.synchronize(self.tdevice)


#: numpy on the CPU in float64 (the backend of the losses' numpy methods).
NUMPY = Backend("numpy", "cpu", "float64")


def get_backend(device: str | None = None, dtype: Any = None, *, like: Any = None) -> Backend:
    """Choose the backend for ``device`` and ``dtype``.

    Parameters
    ----------
    device : str, optional
        ``None`` or ``"numpy"``: numpy on the CPU. ``"cpu"``: torch on the CPU when torch is
        installed (numpy otherwise). ``"torch"``: torch on the CPU. ``"cuda"``, ``"cuda:k"``:
        torch on that GPU.
    dtype : {"float32", "float64"} or a numpy / torch float dtype, optional
        Default float64.
    like : array, optional
        A torch tensor: use torch on its device (when ``device`` is not given).

    Raises
    ------
    InputError
        If CUDA is requested but torch or a CUDA device is not available, or the device /
        dtype is unknown.
    """
    name = _dtype_name(dtype)
    if device is None and like is not None and hasattr(like, "device") and hasattr(like, "detach"):
        device = str(like.device)
    if device is None or device == "numpy":
        return Backend("numpy", "cpu", name)
    dev = str(device)
    if dev == "torch":
        dev = "cpu"
    if dev == "cpu":
        return Backend("torch", "cpu", name) if torch_available() else Backend("numpy", "cpu", name)
    if dev.startswith("cuda"):
        if not torch_available():
            raise InputError(f"device={device!r} needs torch with CUDA support; torch is not installed "
                             "(pip install 'convexnn[torch]').")
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"device={device!r} was requested but CUDA is not available "
                             f"(torch {torch.__version__}, torch.cuda.is_available() is False); "
                             "use device='cpu' or device=None.")
        idx = torch.device(dev).index or 0
        if idx >= torch.cuda.device_count():
            raise InputError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) visible.")
        return Backend("torch", dev, name)
    raise InputError(f"unknown device {device!r}; use None/'numpy', 'cpu', 'torch', or 'cuda[:k]'.")
