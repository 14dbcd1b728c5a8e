r"""Random subsets of activation patterns: Gaussian, convolutional and feature-sparse gates.

When the exact arrangement is too large (:func:`convexnn.enumerate_patterns` raises
:class:`~convexnn.errors.TooLargeError`), the convex programs are built on a random subset of
patterns :math:`D_i = \operatorname{diag}(\mathbf 1[X_a g_i \ge 0])` (Ergen & Pilanci (ICML 2021), Remark 3); the
result is then an *approximation* (``exact=False``): its optimal value upper-bounds the
network's, and the duality gap certificate tells how far it is from optimal.

Gate distributions (``kind``):

``"gaussian"``
    :math:`g_i \sim \mathcal N(0, I_{d'})` (Ergen & Pilanci (ICML 2021), Remark 3).
``"conv"``
    Convolutional gates (Pilanci (2021 talk) "convolutional hyperplane arrangements"; Ergen & Pilanci (ICML 2021), Remark 4): the rows
    of ``X`` are flattened images of ``image_shape`` (``(H, W)`` or ``(C, H, W)``, C-order),
    and each gate is a Gaussian filter of ``patch_shape`` (``(h, w)``, covering all channels)
    placed at a uniformly random location (step ``stride``), zero elsewhere. The patterns are
    those of the stacked patch matrices :math:`\{\operatorname{sign}(X_k w)\}_k`, whose number
    is :math:`O((nK/h)^h)` for filter size :math:`h` instead of :math:`O((n/d)^d)`.
``"feature_sparse"``
    Gates with ``sparsity`` nonzero feature coordinates (uniformly random support, Gaussian
    values), i.e. patterns of the arrangements of random column subsets of ``X``.

With ``bias=True`` the last gate coordinate (acting on the ones column) is always
:math:`\mathcal N(0, 1)`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from convexnn.arrangements.patterns import Patterns, data_fingerprint, design_matrix
from convexnn.data import check_seed, check_X
from convexnn.errors import InputError

__all__ = ["sample_patterns"]

_KINDS = ("gaussian", "conv", "feature_sparse")


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise InputError(f"{name} must be a positive integer; got {v!r}.")
    return int(v)


def _shape(v: Any, name: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v),)
    try:
        t = tuple(int(x) for x in v)
        ok = all(float(a) == float(b) for a, b in zip(t, v))
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a tuple of positive integers; got {v!r}.") from None
    if not ok or len(t) == 0 or any(x < 1 for x in t):
        raise InputError(f"{name} must be a tuple of positive integers; got {v!r}.")
    return t


def _conv_gates(rng: np.random.Generator, m: int, d: int, image_shape: Any, patch_shape: Any,
                stride: int) -> np.ndarray:
    """``m`` convolutional gates of length ``d`` (one random filter at a random location each)."""
    if image_shape is None or patch_shape is None:
        raise InputError('kind="conv" needs image_shape=(H, W) or (C, H, W) and patch_shape=(h, w).')
    img = _shape(image_shape, "image_shape")
    if len(img) == 2:
        img = (1,) + img
    if len(img) != 3:
        raise InputError(f"image_shape must be (H, W) or (C, H, W); got {image_shape!r}.")
    C, H, Wd = img
    if C * H * Wd != d:
        raise InputError(
            f"image_shape {tuple(image_shape)} has {C * H * Wd} pixels but X has {d} features; "
            "the rows of X must be flattened images (C-order).")
    ph = _shape(patch_shape, "patch_shape")
    if len(ph) == 3:
        if ph[0] != C:
            raise InputError(f"patch_shape {ph} must cover all {C} channels (or be (h, w)).")
        ph = ph[1:]
    if len(ph) != 2:
        raise InputError(f"patch_shape must be (h, w); got {patch_shape!r}.")
    h, w = ph
    if h > H or w > Wd:
        raise InputError(f"patch_shape {(h, w)} does not fit in images of shape {(H, Wd)}.")
    s = _positive_int(stride, "stride")
    rows = np.arange(0, H - h + 1, s)
    cols = np.arange(0, Wd - w + 1, s)
    r0 = rows[rng.integers(0, len(rows), m)]
    c0 = cols[rng.integers(0, len(cols), m)]
    filt = rng.standard_normal((m, C, h, w))
    G = np.zeros((m, C, H, Wd))
    ci, hi, wi = np.meshgrid(np.arange(C), np.arange(h), np.arange(w), indexing="ij")
    G[np.arange(m)[:, None, None, None], ci[None], r0[:, None, None, None] + hi[None],
      c0[:, None, None, None] + wi[None]] = filt
    return G.reshape(m, d).T


def sample_patterns(
    X: Any,
    n_samples: int,
    *,
    seed: int | np.random.Generator | None = None,
    kind: str = "gaussian",
    bias: bool = False,
    patch_shape: Sequence[int] | None = None,
    image_shape: Sequence[int] | None = None,
    stride: int = 1,
    sparsity: int = 2,
) -> Patterns:
    r"""Patterns :math:`\mathbf 1[X_a g \ge 0]` of ``n_samples`` random gates (deduplicated).

    Parameters
    ----------
    X : array, shape (n, d)
    n_samples : int
        Number of random gates drawn; the result has at most this many (distinct) patterns.
    seed : int or numpy Generator, optional
        Same seed, same patterns (reproducible).
    kind : {"gaussian", "conv", "feature_sparse"}
        Gate distribution (see the module docstring).
    bias : bool
        Gates act on ``[X, 1]``.
    patch_shape, image_shape, stride
        For ``kind="conv"``: filter shape ``(h, w)``, image shape ``(H, W)`` or ``(C, H, W)``
        with ``C * H * W == d``, and the step between filter locations.
    sparsity : int
        For ``kind="feature_sparse"``: number of nonzero feature coordinates per gate
        (``1 <= sparsity <= d``).

    Returns
    -------
    Patterns
        ``exact=False``, ``kind`` as requested, ``fingerprint`` of ``X``. Sampled patterns are
        chamber patterns with probability one for continuous gate distributions.

    Raises
    ------
    InputError
        Invalid ``X``, ``n_samples``, ``kind`` or shapes.
    """
    Xc = check_X(X)
    m = _positive_int(n_samples, "n_samples")
    if kind not in _KINDS:
        raise InputError(f"kind must be one of {_KINDS}; got {kind!r}.")
    rng = check_seed(seed)
    Xa = design_matrix(Xc, bias)
    n, d = Xc.shape
    if kind == "gaussian":
        G = rng.standard_normal((d, m))
    elif kind == "conv":
        G = _conv_gates(rng, m, d, image_shape, patch_shape, stride)
    else:
        s = _positive_int(sparsity, "sparsity")
        if s > d:
            raise InputError(f"sparsity={s} exceeds the number of features d={d}.")
        G = np.zeros((d, m))
        supp = np.argsort(rng.random((m, d)), axis=1)[:, :s]
        G[supp.T, np.arange(m)[None, :]] = rng.standard_normal((s, m))
    if bias:
        G = np.vstack([G, rng.standard_normal((1, m))])
    packed = np.zeros((m, (n + 7) // 8), np.uint8)
    step = max(1, (1 << 22) // max(n, 1))
    for a in range(0, m, step):
        packed[a:a + step] = np.packbits((Xa @ G[:, a:a + step] >= 0).T, axis=1)
    return Patterns.from_packed(packed, n, G, bias=bias, exact=False, kind=kind,
                                fingerprint=data_fingerprint(Xc))
