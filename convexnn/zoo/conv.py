r"""Two-layer convolutional ReLU networks (global average pooling) as convex programs.

Reference: T. Ergen, M. Pilanci, "Implicit Convex Regularizers of CNN Architectures: Convex
Optimization of Two- and Three-Layer Networks in Polynomial Time", ICLR 2021; M. Pilanci, "The
Hidden Convex Optimization Landscape of Deep Neural Networks" (talk, 2021), slides
"convolutional hyperplane arrangements".

**Patches.** Each row of ``X`` is a flattened signal (``(C, L)``) or image (``(C, H, W)``,
C-order). A filter of shape ``patch_shape`` slid with step ``stride`` sees ``K`` patches
:math:`X_k \in \mathbb R^{n \times h}` (:math:`h = C\,h_1 h_2`, plus a ones column when
``bias``): :func:`patch_matrices` returns them as an ``(n, K, h')`` array; the patch vector is the
``(C, h_1, h_2)`` window in C-order, exactly the layout of a ``torch.nn.Conv2d`` weight row.

**The network** (:class:`Conv2LayerReLU`) with ``m`` filters :math:`u_j \in \mathbb R^{h'}` and
global average pooling,

.. math::

    f(x) = \sum_{j=1}^m w_{2,j}\ \frac1K \sum_{k=1}^K (x_k^\top u_j)_+ ,\qquad
    \ell(f(X), y) + \frac\lambda2 \sum_j \big(\|u_j\|_2^2 + w_{2,j}^2\big)

(``pooling="sum"`` drops the :math:`1/K`).

**Convolutional arrangement.** A filter's activation pattern is the joint pattern
:math:`(\mathbf 1[X_k u \ge 0])_{k=1}^K`, i.e. the pattern of the *stacked* patch matrix
:math:`X_s = [X_1; \dots; X_K] \in \mathbb R^{nK \times h'}` (rows ordered sample-major). Its
number is at most :math:`O((nK/h)^h)`: polynomial in all dimensions for a fixed filter size
(Pilanci (2021 talk)), so :func:`conv_patterns` enumerates it exactly with :func:`convexnn.enumerate_patterns`
on :math:`X_s` for small filters and samples it otherwise.

**The convex program** (:func:`c_conv_relu`) with joint patterns :math:`D_{ik}`:

.. math::

    \min_{v_i, w_i}\ \ell\Big(\frac1K\sum_{i}\sum_{k} D_{ik} X_k (v_i - w_i),\ y\Big)
    + \lambda \sum_i \big(\|v_i\|_2 + \|w_i\|_2\big),
    \quad (2D_{ik} - I) X_k v_i \ge 0,\ (2D_{ik} - I) X_k w_i \ge 0\ \ \forall k,

the C-ReLU program of the stacked patches followed by the pooling matrix. With the complete
convolutional arrangement its optimum equals the CNN's (Ergen & Pilanci 2021); with sampled
patterns it is an upper bound (the mapped CNN is feasible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from convexnn.arrangements.patterns import Patterns, data_fingerprint
from convexnn.data import check_lam, check_X, check_y
from convexnn.networks.base import ScalarObjective
from convexnn.errors import InputError
from convexnn.formulations.blocks import ZERO_RTOL
from convexnn.formulations.formulation import ConvexSolution, Formulation
from convexnn.formulations.losses import Loss, get_loss
from convexnn.certificate import Certificate
from convexnn.rounding import gamma

__all__ = [
    "ConvGeometry",
    "patch_matrices",
    "conv_patterns",
    "ConvReLUFormulation",
    "c_conv_relu",
    "Conv2LayerReLU",
    "conv_from_network",
    "ConvCertificate",
    "certify_conv",
]

_POOLINGS = ("average", "sum")


def _ints(v: Any, name: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v),)
    try:
        t = tuple(int(x) for x in v)
        ok = all(float(a) == float(b) for a, b in zip(t, v))
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive integer or a tuple of them; got {v!r}.") from None
    if not ok or not t or any(x < 1 for x in t):
        raise InputError(f"{name} must be a positive integer or a tuple of them; got {v!r}.")
    return t


@dataclass(frozen=True)
class ConvGeometry:
    r"""Shapes of a convolution: ``channels`` x ``spatial`` inputs, ``patch`` filters, ``stride``.

    1-D signals are stored with ``spatial = (1, L)`` and ``patch = (1, h)`` (``dims = 1``).
    Build with :meth:`build`.
    """

    channels: int
    spatial: tuple[int, int]
    patch: tuple[int, int]
    stride: int
    dims: int

    @classmethod
    def build(cls, d: int, patch_shape: Any, image_shape: Any = None, stride: Any = 1) -> "ConvGeometry":
        r"""Validate the shapes for inputs with ``d`` features.

        ``patch_shape``: ``h`` or ``(h,)`` for 1-D signals, ``(h1, h2)`` for images (a leading
        channel entry equal to ``C`` is accepted). ``image_shape``: ``(L,)`` / ``(C, L)`` or
        ``(H, W)`` / ``(C, H, W)``; ``None`` means one channel and, for images, a square
        :math:`\sqrt d \times \sqrt d`.

        Raises
        ------
        InputError
            Non-square images without ``image_shape``, shapes whose product is not ``d``, patches
            larger than the input, or a stride that does not divide the free extent
            (``(H - h1) % stride != 0``), which would leave pixels no filter position covers.
        """
        ps = _ints(patch_shape, "patch_shape")
        s = _ints(stride, "stride")
        if len(s) != 1:
            raise InputError(f"stride must be one positive integer; got {stride!r}.")
        stride_ = s[0]
        if len(ps) == 1:
            dims = 1
            if image_shape is None:
                img = (1, d)
            else:
                im = _ints(image_shape, "image_shape")
                if len(im) not in (1, 2):
                    raise InputError(f"image_shape for 1-D filters must be (L,) or (C, L); got {image_shape!r}.")
                img = (1,) + im if len(im) == 1 else im
            C, spatial, patch = img[0], (1, img[1]), (1, ps[0])
        else:
            dims = 2
            if image_shape is None:
                side = math.isqrt(d)
                if side * side != d:
                    raise InputError(f"X has d={d} features, which is not a square image; pass image_shape=(H, W) "
                                     "or (C, H, W).")
                img = (1, side, side)
            else:
                im = _ints(image_shape, "image_shape")
                if len(im) not in (2, 3):
                    raise InputError(f"image_shape must be (H, W) or (C, H, W); got {image_shape!r}.")
                img = (1,) + im if len(im) == 2 else im
            if len(ps) == 3:
                if ps[0] != img[0]:
                    raise InputError(f"patch_shape {ps} must cover all {img[0]} channels (or be (h1, h2)).")
                ps = ps[1:]
            if len(ps) != 2:
                raise InputError(f"patch_shape must be h, (h,), (h1, h2) or (C, h1, h2); got {patch_shape!r}.")
            C, spatial, patch = img[0], (img[1], img[2]), ps
        if C * spatial[0] * spatial[1] != d:
            raise InputError(f"image_shape {image_shape!r} has {C * spatial[0] * spatial[1]} entries but X has "
                             f"{d} features; the rows of X must be flattened inputs (C-order).")
        for ax, (n_in, n_p) in enumerate(zip(spatial, patch)):
            if n_p > n_in:
                raise InputError(f"patch_shape {tuple(patch[2 - dims:])} does not fit in inputs of shape "
                                 f"{tuple(spatial[2 - dims:])}.")
            if (n_in - n_p) % stride_ != 0:
                raise InputError(f"stride {stride_} does not divide {n_in} - {n_p} = {n_in - n_p} (axis {ax + dims - 2}):"
                                 " the filter positions would not tile the input; pick a stride or patch size "
                                 "that divides it.")
        return cls(C, spatial, patch, stride_, dims)

    @property
    def positions(self) -> tuple[int, int]:
        """Number of filter positions along each spatial axis."""
        return tuple((n - p) // self.stride + 1 for n, p in zip(self.spatial, self.patch))  # type: ignore

    @property
    def K(self) -> int:
        """Number of patches per input."""
        a, b = self.positions
        return a * b

    @property
    def h(self) -> int:
        """Filter size :math:`C h_1 h_2` (without bias)."""
        return self.channels * self.patch[0] * self.patch[1]

    def patches(self, X: np.ndarray) -> np.ndarray:
        """``(n, K, h)`` patch array of ``X`` (rows flattened inputs)."""
        n = X.shape[0]
        imgs = X.reshape(n, self.channels, *self.spatial)
        win = np.lib.stride_tricks.sliding_window_view(imgs, self.patch, axis=(2, 3))
        win = win[:, :, ::self.stride, ::self.stride]  # (n, C, P1, P2, h1, h2)
        return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5).reshape(n, self.K, self.h))


def patch_matrices(X: Any, patch_shape: Any, *, image_shape: Any = None, stride: int = 1,
                   bias: bool = False) -> np.ndarray:
    r"""The patch matrices :math:`X_1, \dots, X_K` of ``X`` as an ``(n, K, h')`` array.

    ``h' = C h_1 h_2 (+1 with bias)``. See :class:`ConvGeometry` for the shapes and errors.
    """
    Xc = check_X(X)
    geo = ConvGeometry.build(Xc.shape[1], patch_shape, image_shape, stride)
    Pt = geo.patches(Xc)
    if bias:
        Pt = np.concatenate([Pt, np.ones(Pt.shape[:2] + (1,))], axis=2)
    return Pt


def _stacked(X: np.ndarray, geo: ConvGeometry) -> np.ndarray:
    """Stacked patches ``(n K, h)`` without bias, sample-major."""
    return geo.patches(X).reshape(-1, geo.h)


def conv_patterns(X: Any, patch_shape: Any, *, image_shape: Any = None, stride: int = 1, bias: bool = False,
                  method: str = "exact", n_samples: int = 1000, seed: int | None = None,
                  max_patterns: int | None = None) -> Patterns:
    r"""Patterns of the convolutional arrangement :math:`\{(\mathbf 1[X_k u \ge 0])_k : u \in \mathbb R^{h'}\}`.

    They are the patterns of the stacked patch matrix :math:`X_s` (``(nK, h)``, sample-major):
    ``method="exact"`` runs :func:`convexnn.enumerate_patterns` on it (all chambers; at most
    :math:`O((nK/h)^h)`), ``method="sample"`` uses ``n_samples`` Gaussian filters
    (:func:`convexnn.sample_patterns`). The returned :class:`Patterns` belong to :math:`X_s`
    (masks of length ``nK``); pass them with the same geometry to :func:`c_conv_relu`.

    Raises
    ------
    InputError
        Bad shapes (see :class:`ConvGeometry`) or ``method``.
    TooLargeError
        From the exact enumeration when the arrangement is too large (sample instead).
    """
    from convexnn.arrangements import enumerate_patterns, sample_patterns

    Xc = check_X(X)
    geo = ConvGeometry.build(Xc.shape[1], patch_shape, image_shape, stride)
    Xs = _stacked(Xc, geo)
    if method == "exact":
        kwargs: dict[str, Any] = {"bias": bias}
        if max_patterns is not None:
            kwargs["max_patterns"] = max_patterns
        return enumerate_patterns(Xs, **kwargs)
    if method == "sample":
        return sample_patterns(Xs, n_samples, seed=seed, bias=bias)
    raise InputError(f"method must be 'exact' or 'sample'; got {method!r}.")


# ============================================================================ network
class Conv2LayerReLU(ScalarObjective):
    r"""Two-layer CNN :math:`f(x) = \sum_j w_{2,j}\,\mathrm{pool}_k (x_k^\top u_j)_+` (see the module docstring).

    Parameters
    ----------
    W1 : array, shape (h', m)
        Filters as columns (``h' = C h_1 h_2 + bias``; the last row is the bias when ``bias``).
    w2 : array, shape (m,)
    patch_shape, image_shape, stride
        As in :class:`ConvGeometry` (``image_shape`` is needed unless the inputs are 1-D or
        square single-channel images; it is checked against the data).
    bias : bool
    pooling : {"average", "sum"}
    """

    def __init__(self, W1: Any, w2: Any, *, patch_shape: Any, image_shape: Any = None, stride: int = 1,
                 bias: bool = False, pooling: str = "average") -> None:
        W1 = np.array(W1, dtype=float, copy=True)
        w2 = np.array(w2, dtype=float, copy=True)
        if W1.ndim != 2 or w2.ndim != 1 or W1.shape[1] != w2.shape[0]:
            raise InputError(f"W1 must be (h', m) and w2 (m,); got {W1.shape} and {w2.shape}.")
        if not (np.all(np.isfinite(W1)) and np.all(np.isfinite(w2))):
            raise InputError("network weights contain NaN or infinite values.")
        if pooling not in _POOLINGS:
            raise InputError(f"pooling must be one of {_POOLINGS}; got {pooling!r}.")
        self.W1, self.w2 = W1, w2
        self.patch_shape, self.image_shape, self.stride = patch_shape, image_shape, stride
        self.bias = bool(bias)
        self.pooling = pooling

    @property
    def n_neurons(self) -> int:
        return int(self.W1.shape[1])

    def geometry(self, d: int) -> ConvGeometry:
        geo = ConvGeometry.build(d, self.patch_shape, self.image_shape, self.stride)
        if geo.h + self.bias != self.W1.shape[0]:
            raise InputError(f"the filters have {self.W1.shape[0]} rows but patches of these inputs have "
                             f"{geo.h + self.bias} entries (bias={self.bias}).")
        return geo

    def hidden(self, X: Any) -> np.ndarray:
        r"""Pooled activations :math:`\mathrm{pool}_k (X_k u_j)_+`, shape ``(n, m)``."""
        Xc = check_X(X)
        self.geometry(Xc.shape[1])
        Pt = patch_matrices(Xc, self.patch_shape, image_shape=self.image_shape, stride=self.stride, bias=self.bias)
        A = np.maximum(Pt @ self.W1, 0.0)  # (n, K, m)
        return A.mean(axis=1) if self.pooling == "average" else A.sum(axis=1)

    def predict(self, X: Any) -> np.ndarray:
        return self.hidden(X) @ self.w2

    def regularizer(self) -> float:
        r""":math:`\tfrac12(\|W_1\|_F^2 + \|w_2\|^2)`."""
        return 0.5 * float(np.sum(self.W1 ** 2) + np.sum(self.w2 ** 2))

    def __repr__(self) -> str:
        return (f"Conv2LayerReLU(m={self.n_neurons}, patch_shape={self.patch_shape}, stride={self.stride}, "
                f"bias={self.bias}, pooling={self.pooling!r})")

    # ----------------------------------------------------------------- torch
    def to_torch(self, d: int, dtype: Any = None) -> Any:
        r"""Export as ``nn.Sequential(ConvNd(C, m, patch, stride), ReLU(), AdaptiveAvgPoolNd(1), Flatten(), Linear(m, 1, bias=False))``.

        ``d`` is the number of input features (to resolve the geometry). The module takes inputs
        of shape ``(n, C, L)`` (1-D) or ``(n, C, H, W)``, e.g. ``torch.tensor(X).reshape(n, C, H, W)``,
        and returns ``(n, 1)``; ``pooling="sum"`` is folded into the output weights.
        """
        torch, nn = _import_torch()
        dtype = dtype or torch.float64
        geo = self.geometry(d)
        m = self.n_neurons
        if geo.dims == 1:
            conv_cls, pool_cls = nn.Conv1d, nn.AdaptiveAvgPool1d
        else:
            conv_cls, pool_cls = nn.Conv2d, nn.AdaptiveAvgPool2d
        kernel = geo.patch[1] if geo.dims == 1 else geo.patch
        conv = conv_cls(geo.channels, m, kernel, stride=geo.stride, bias=self.bias, dtype=dtype)
        lin = nn.Linear(m, 1, bias=False, dtype=dtype)
        shape = (m, geo.channels, geo.patch[1]) if geo.dims == 1 else (m, geo.channels) + geo.patch
        scale = geo.K if self.pooling == "sum" else 1.0
        with torch.no_grad():
            conv.weight.copy_(torch.as_tensor(self.W1[:geo.h].T.reshape(shape), dtype=dtype))
            if self.bias:
                conv.bias.copy_(torch.as_tensor(self.W1[geo.h], dtype=dtype))
            lin.weight.copy_(torch.as_tensor(scale * self.w2[None, :], dtype=dtype))
        return nn.Sequential(conv, nn.ReLU(), pool_cls(1), nn.Flatten(), lin)

    @classmethod
    def from_torch(cls, module: Any, *, image_shape: Any) -> "Conv2LayerReLU":
        """Import ``nn.Sequential(ConvNd, ReLU, AdaptiveAvgPoolNd(1), Flatten, Linear(m, 1))`` (average pooling).

        ``image_shape`` is ``(C, L)`` or ``(C, H, W)``. The conv must have ``padding=0``,
        ``dilation=1``, ``groups=1`` and equal strides; the output layer no (or a zero) bias.

        Raises
        ------
        InputError
            If the module is not of that form.
        """
        torch, nn = _import_torch()
        layers = list(module) if isinstance(module, nn.Sequential) else []
        ok = (len(layers) == 5 and isinstance(layers[0], (nn.Conv1d, nn.Conv2d)) and isinstance(layers[1], nn.ReLU)
              and isinstance(layers[2], (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d))
              and isinstance(layers[3], nn.Flatten) and isinstance(layers[4], nn.Linear))
        if not ok:
            raise InputError("from_torch expects nn.Sequential(nn.Conv1d/2d, nn.ReLU(), nn.AdaptiveAvgPool1d/2d(1), "
                             f"nn.Flatten(), nn.Linear(m, 1)); got {module!r}.")
        conv, pool, lin = layers[0], layers[2], layers[4]
        osz = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size,)
        if any(o != 1 for o in osz):
            raise InputError("the pooling must be global (output_size=1).")
        pads = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,)
        if (any(p != 0 for p in pads) or any(x != 1 for x in conv.dilation) or conv.groups != 1
                or len(set(conv.stride)) != 1):
            raise InputError("only padding=0, dilation=1, groups=1 and equal strides are supported.")
        if lin.out_features != 1 or lin.in_features != conv.out_channels:
            raise InputError("the Linear layer must map the m conv channels to one output.")
        if lin.bias is not None and bool(torch.any(lin.bias.detach() != 0)):
            raise InputError("the output layer has a nonzero bias, which the convex program does not model.")
        Wt = conv.weight.detach().cpu().double().numpy()
        m = Wt.shape[0]
        W1 = Wt.reshape(m, -1).T
        bias = conv.bias is not None
        if bias:
            W1 = np.vstack([W1, conv.bias.detach().cpu().double().numpy()[None, :]])
        patch = tuple(int(k) for k in conv.kernel_size)
        patch_shape = patch if isinstance(conv, nn.Conv2d) else patch[0]
        return cls(W1, lin.weight.detach().cpu().double().numpy()[0], patch_shape=patch_shape,
                   image_shape=image_shape, stride=int(conv.stride[0]), bias=bias, pooling="average")


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ImportError("torch is not installed; it is an optional extra: pip install 'convexnn[torch]'.") from exc
    return torch, nn


# ============================================================================ formulation
class ConvReLUFormulation(Formulation):
    r"""The convex program of a two-layer CNN (built by :func:`c_conv_relu`).

    Weights ``{"V": (P, h'), "W": (P, h')}``; constraints ``"cone_v"``, ``"cone_w"`` (one
    ``(nK, P)`` matrix constraint each). ``.Xa`` is the stacked patch matrix (``(nK, h')``) and
    ``.X`` the original data.
    """

    kind = "c_conv_relu"

    @property
    def geometry(self) -> ConvGeometry:
        return self.meta["geometry"]

    def _check(self, w: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        shp = (self.n_patterns, self.Xa.shape[1])
        for k in ("V", "W"):
            if k not in w or np.shape(w[k]) != shp:
                raise InputError(f"weights[{k!r}] must have shape {shp}.")
        return np.asarray(w["V"], dtype=float), np.asarray(w["W"], dtype=float)

    def weights_from_variables(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(self.variables[k].value, dtype=float).T.copy() for k in ("V", "W")}

    def predict(self, weights: dict[str, np.ndarray]) -> np.ndarray:
        r""":math:`\mathrm{pool}_k \sum_i D_{ik} X_k (v_i - w_i)`."""
        V, W = self._check(weights)
        M = np.sum(self.meta["masks"] * (self.Xa @ (V - W).T), axis=1)
        return self.meta["pool"] @ M

    def regularizer(self, weights: dict[str, np.ndarray]) -> float:
        V, W = self._check(weights)
        return float(np.sum(np.linalg.norm(V, axis=1)) + np.sum(np.linalg.norm(W, axis=1)))

    def constraint_violation(self, weights: dict[str, np.ndarray]) -> float:
        V, W = self._check(weights)
        S = 2.0 * self.meta["masks"] - 1.0
        return float(max(0.0, -np.min(S * (self.Xa @ V.T)), -np.min(S * (self.Xa @ W.T))))

    def to_network(self, solution: ConvexSolution) -> Conv2LayerReLU:
        r"""C -> NC: filter :math:`v_i/\sqrt{\|v_i\|}` with :math:`w_2 = \sqrt{\|v_i\|}` (and
        :math:`-\sqrt{\|w_i\|}` for :math:`w_i`); the cone constraints make
        :math:`(X_k v_i)_+ = D_{ik} X_k v_i` for every patch, so predictions and weight decay
        equal the convex model's."""
        V, W = self._check(solution.weights)
        nv, nw = np.linalg.norm(V, axis=1), np.linalg.norm(W, axis=1)
        xn = float(np.linalg.norm(self.Xa))
        data = float(np.linalg.norm(self.y)) / xn if xn > 0 else 0.0
        thr = ZERO_RTOL * max(float(np.max(nv, initial=0.0)), float(np.max(nw, initial=0.0)), data, 1e-300)
        cols, outs = [], []
        for B, nb, sign in ((V, nv, 1.0), (W, nw, -1.0)):
            keep = np.flatnonzero(nb > thr)
            cols.append(B[keep].T / np.sqrt(nb[keep]))
            outs.append(sign * np.sqrt(nb[keep]))
        g = self.meta["geo_args"]
        return Conv2LayerReLU(np.hstack(cols), np.concatenate(outs), bias=self.bias,
                              pooling=self.meta["pooling"], **g)


def _setup(X: Any, patterns: Any, patch_shape: Any, image_shape: Any, stride: int, pooling: str
           ) -> tuple[np.ndarray, ConvGeometry, np.ndarray, sp.csr_matrix]:
    if not isinstance(patterns, Patterns):
        raise InputError(f"patterns must be a convexnn.Patterns (from conv_patterns); got {type(patterns).__name__}.")
    if pooling not in _POOLINGS:
        raise InputError(f"pooling must be one of {_POOLINGS}; got {pooling!r}.")
    Xc = check_X(X)
    geo = ConvGeometry.build(Xc.shape[1], patch_shape, image_shape, stride)
    Xs = _stacked(Xc, geo)
    if patterns.n_samples != Xs.shape[0]:
        raise InputError(f"the patterns have masks of length {patterns.n_samples} but the stacked patch matrix has "
                         f"{Xs.shape[0]} rows (n K = {Xc.shape[0]} x {geo.K}); build them with conv_patterns using "
                         "the same patch_shape, image_shape and stride.")
    if patterns.fingerprint is not None and patterns.fingerprint != data_fingerprint(Xs):
        raise InputError("these patterns were built for other data or another geometry; rebuild them with "
                         "conv_patterns(X, ...).")
    Xsa = patterns.check(Xs)
    if len(patterns) == 0:
        raise InputError("the pattern set is empty; the convex program would have no variables.")
    n, K = Xc.shape[0], geo.K
    w = 1.0 / K if pooling == "average" else 1.0
    pool = sp.csr_matrix((np.full(n * K, w), (np.repeat(np.arange(n), K), np.arange(n * K))), shape=(n, n * K))
    return Xc, geo, Xsa, pool


def c_conv_relu(X: Any, y: Any, patterns: Patterns, lam: float, *, patch_shape: Any, image_shape: Any = None,
                stride: int = 1, pooling: str = "average", loss: str | Loss = "squared") -> ConvReLUFormulation:
    r"""Build the convex program of a two-layer ReLU CNN with global pooling (Ergen & Pilanci, ICLR 2021).

    .. math::

        \min_{v_i, w_i}\ \ell\Big(\frac1K\sum_{i,k} D_{ik} X_k (v_i - w_i),\ y\Big)
        + \lambda\sum_i(\|v_i\|_2 + \|w_i\|_2)
        \ \text{ s.t. }\ (2D_{ik} - I)X_k v_i \ge 0,\ (2D_{ik} - I)X_k w_i \ge 0 .

    Parameters
    ----------
    X : array, shape (n, d)
        Flattened signals or images.
    y : array, shape (n,)
    patterns : Patterns
        From :func:`conv_patterns` with the same geometry (their ``bias`` is the filters' bias).
    lam : float
    patch_shape, image_shape, stride
        See :class:`ConvGeometry`.
    pooling : {"average", "sum"}
    loss : {"squared", "logistic", "hinge"} or Loss

    Returns
    -------
    ConvReLUFormulation
        ``.solve().to_network()`` is a :class:`Conv2LayerReLU` with the same objective.

    Raises
    ------
    InputError
        Bad shapes (non-square images without ``image_shape``, non-dividing strides, ...),
        vector targets, patterns of another geometry, ``lam <= 0``.
    """
    Xc, geo, Xsa, pool = _setup(X, patterns, patch_shape, image_shape, stride, pooling)
    lo = get_loss(loss)
    yc = check_y(y, Xc.shape[0], loss=lo.name)
    if yc.ndim != 1:
        raise InputError(f"c_conv_relu takes scalar targets y of shape (n,); got {yc.shape}.")
    lamp = cp.Parameter(nonneg=True, name="lam", value=check_lam(lam))
    P = len(patterns)
    hp = Xsa.shape[1]
    masks = np.asarray(patterns.masks, dtype=float)
    S = 2.0 * masks - 1.0
    V = cp.Variable((hp, P), name="V")
    W = cp.Variable((hp, P), name="W")
    fit = pool @ cp.sum(cp.multiply(masks, Xsa @ V) - cp.multiply(masks, Xsa @ W), axis=1)
    reg = cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0))
    constraints = {"cone_v": cp.multiply(S, Xsa @ V) >= 0, "cone_w": cp.multiply(S, Xsa @ W) >= 0}
    problem = cp.Problem(cp.Minimize(lo.cvx(fit, yc) + lamp * reg), list(constraints.values()))
    f = ConvReLUFormulation(problem, lamp, X=Xc, Xa=Xsa, y=yc, loss=lo, patterns=patterns, bias=patterns.bias,
                            variables={"V": V, "W": W}, constraints=constraints,
                            meta={"masks": masks, "pool": pool, "geometry": geo, "pooling": pooling,
                                  "geo_args": {"patch_shape": patch_shape, "image_shape": image_shape,
                                               "stride": stride}})
    return f


def conv_from_network(net: Conv2LayerReLU, X: Any, y: Any, lam: float, patterns: Patterns,
                      loss: str | Loss = "squared") -> ConvexSolution:
    r"""NC -> C: filter :math:`u_j` with joint pattern :math:`i` adds :math:`u_j |w_{2,j}|` to
    :math:`v_i` (:math:`w_{2,j} \ge 0`) or :math:`w_i`. Same predictions; the convex objective is at
    most the network's (equal for balanced networks with one filter per pattern and sign).

    Raises
    ------
    InputError
        If a filter's joint pattern is not in ``patterns``.
    """
    if not isinstance(net, Conv2LayerReLU):
        raise InputError(f"net must be a Conv2LayerReLU; got {type(net).__name__}.")
    if net.bias != patterns.bias:
        raise InputError(f"the network has bias={net.bias} but the patterns bias={patterns.bias}.")
    f = c_conv_relu(X, y, patterns, lam, patch_shape=net.patch_shape, image_shape=net.image_shape,
                    stride=net.stride, pooling=net.pooling, loss=loss)
    P, hp = len(patterns), f.Xa.shape[1]
    if net.W1.shape[0] != hp:
        raise InputError(f"the filters have {net.W1.shape[0]} rows but the patches {hp}.")
    width = patterns.packed.shape[1]
    keys = np.ascontiguousarray(patterns.packed).view(np.dtype((np.void, width))).ravel()
    index = {k.tobytes(): i for i, k in enumerate(keys)}
    V, W = np.zeros((P, hp)), np.zeros((P, hp))
    for j in range(net.n_neurons):
        key = np.packbits(f.Xa @ net.W1[:, j] >= 0).tobytes()
        if key not in index:
            raise InputError(f"filter {j}'s joint activation pattern is not in the given pattern set; use "
                             "conv_patterns(..., method='exact').")
        (V if net.w2[j] >= 0 else W)[index[key]] += net.W1[:, j] * abs(net.w2[j])
    weights = {"V": V, "W": W}
    return ConvexSolution(formulation=f, weights=weights, value=f.objective(weights), status="from_network",
                          solver="none", lam=f.lam_value)


# ============================================================================ certificate
@dataclass(kw_only=True)
class ConvCertificate(Certificate):
    r"""The certificate of a two-layer CNN (from :func:`certify_conv`): a :class:`convexnn.Certificate`.

    ``gap``, ``rel_gap``, ``is_optimal``, ``verdict`` and the report are those of
    :class:`convexnn.Certificate` (defined there, once).

    Attributes
    ----------
    primal : float
        The CNN's objective (float evaluation).
    primal_error : float
        A bound on the rounding error of ``primal``.
    lower_bound : float
        A lower bound on the optimum over CNNs of **any** width with this geometry (weak duality,
        rounding accounted for). Valid with every pattern set: with a non-exact one the
        pattern-free bound of the stacked patches is used (``bound_method``).
    exact : bool
        The bound used the complete convolutional arrangement.
    s : float
        The rigorous bound on :math:`s(v_0)` (compare with ``lam``).
    lam, rtol : float
    """

    family: ClassVar[str] = "two-layer ReLU CNN"

    s: float
    method: str = "certify_conv"

    def _details(self) -> list[str]:
        return [f"  dual constraint s(v)/lam     {self.s / self.lam if self.lam else float('inf'):.6g}"
                + ("" if self.exact else "   (pattern-free bound: patterns not complete)")]


def certify_conv(net: Conv2LayerReLU, X: Any, y: Any, lam: float, *, patterns: Patterns | None = None,
                 loss: str | Loss = "squared", rtol: float = 1e-6) -> ConvCertificate:
    r"""Certify a two-layer CNN by weak duality (the two-layer certificate in patch coordinates).

    For any :math:`v \in \mathbb R^n`, the output of a filter is
    :math:`\langle v, \mathrm{pool}_k (X_k u)_+\rangle = \langle \tilde v, (X_s u)_+\rangle` with
    :math:`\tilde v = \mathrm{pool}^\top v` on the stacked patches, so
    :math:`s(v) = \max_{\|u\|\le1,\sigma}\sigma\langle\tilde v, (X_s u)_+\rangle` is the two-layer
    support function of :math:`X_s` (cone projections over the convolutional arrangement,
    :func:`convexnn.duality.cones.cone_support`, rounding bounded). If :math:`s(v) \le \lambda`,
    Fenchel-Young and AM-GM give :math:`F(\text{any CNN}) \ge -\ell^*(-v)`. The candidate is
    :math:`v = c\,v_0`, :math:`v_0 = -\nabla\ell(\hat y)`, with the best
    :math:`c \le \lambda / s(v_0)`.

    Parameters
    ----------
    net : Conv2LayerReLU
    X, y, lam, loss
        The training problem.
    patterns : Patterns, optional
        Convolutional patterns of ``X`` (default: the exact arrangement from :func:`conv_patterns`).
    rtol : float
        Relative gap accepted as a proof of optimality.

    Raises
    ------
    InputError
        Bad input or patterns of another geometry.
    TooLargeError
        If the exact arrangement is too large to enumerate (pass sampled patterns: the bound then
        uses the pattern-free estimate and is valid but loose).
    """
    from convexnn.duality.bounds import best_scale, certified_dual_value
    from convexnn.duality.cones import cone_support, global_support_bound

    if not isinstance(net, Conv2LayerReLU):
        raise InputError(f"net must be a Conv2LayerReLU; got {type(net).__name__}.")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise InputError(f"rtol must be a number in (0, 1); got {rtol!r}.")
    Xc = check_X(X)
    if patterns is None:
        patterns = conv_patterns(Xc, net.patch_shape, image_shape=net.image_shape, stride=net.stride, bias=net.bias)
    if patterns.bias != net.bias:
        raise InputError(f"the network has bias={net.bias} but the patterns bias={patterns.bias}.")
    lo = get_loss(loss)
    primal = net.objective(Xc, y, lam, lo)
    lam_v = check_lam(lam)
    _, geo, Xsa, _ = _setup(Xc, patterns, net.patch_shape, net.image_shape, net.stride, net.pooling)
    yc = check_y(y, Xc.shape[0], loss=lo.name)
    n, K = Xc.shape[0], geo.K
    # rounding of the primal: predictions via |patches| |W1| |w2|, then loss and weight decay
    Pt = np.abs(Xsa.reshape(n, K, -1))
    absp = (Pt @ np.abs(net.W1)).sum(axis=1) @ np.abs(net.w2)
    if net.pooling == "average":
        absp = absp / K
    e = gamma(Xsa.shape[1] + net.n_neurons + K + 4) * absp
    pred = net.predict(Xc)
    err = float(np.sum(lo.slope_bound(pred, yc, e) * e)) + lo.value_error(pred, yc)
    err += lam_v * net.regularizer() * gamma(net.W1.size + net.w2.size + 4) + 1e-300
    v0 = -lo.grad(pred, yc)
    vs = np.repeat(v0, K)  # pool^T v0 times K (average) or exactly (sum)
    if patterns.exact:
        s_sum = cone_support(Xsa, np.asarray(patterns.masks, dtype=bool), vs).valid
    else:
        s_sum = global_support_bound(Xsa, vs)
    s = s_sum / K * (1 + 2.0 ** -52) if net.pooling == "average" else s_sum
    c_max = lam_v / s if s > 0 else np.inf
    c, _ = best_scale(lo, v0, yc, c_max * (1 - 1e-12))
    lower = certified_dual_value(lo, c * v0, yc)
    if not np.isfinite(lower):
        lower = certified_dual_value(lo, 0.0 * v0, yc)
    return ConvCertificate(primal=primal, primal_error=err, lower_bound=float(lower), exact=bool(patterns.exact),
                           bound_method="complete convolutional arrangement" if patterns.exact else "pattern-free bound",
                           s=float(s), lam=lam_v, rtol=float(rtol))
