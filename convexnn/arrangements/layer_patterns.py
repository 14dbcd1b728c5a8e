r"""The pattern set of a layer :math:`l \ge 2`: :class:`LayerPatterns`.

The masks :math:`\operatorname{diag}(D^{(l)}_i)` of a hidden layer beyond the first (no linear
witness gate exists there), deduplicated in canonical order, with optional *witness networks*
that reproduce each mask (Ergen & Pilanci (ICML 2021) Section 2; Mishkin (PhD thesis,
Stanford) "layer elimination"). First-layer patterns are :class:`~convexnn.Patterns`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from convexnn.arrangements.patterns import data_fingerprint
from convexnn.data import check_X
from convexnn.errors import InputError

__all__ = ["LayerPatterns"]


def _dedup_columns(masks: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct column, in canonical (sorted) order."""
    if masks.shape[1] == 0:
        return np.zeros(0, dtype=int)
    packed = np.ascontiguousarray(np.packbits(masks.T, axis=1))
    void = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first = np.unique(void, return_index=True)
    return first


@dataclass(frozen=True, eq=False)
class LayerPatterns:
    r"""Activation patterns of a layer :math:`l \ge 2` of one data matrix.

    Attributes
    ----------
    masks : ndarray of bool, shape (n, P)
        Column ``i`` is :math:`\operatorname{diag}(D^{(l)}_i)`; deduplicated, canonical order,
        read-only.
    level : int
        The layer ``l >= 2`` the patterns belong to.
    exact : bool
        True when the set contains every pattern a network can produce at this layer (given
        complete patterns at the previous layers); programs built on it are then exact.
    kind : str
        ``"sampled"``, ``"composed"``, ``"all_masks"``, ``"network"``, ...
    bias : bool
        Whether the first layer acts on ``[X, 1]``.
    fingerprint : str
        :func:`~convexnn.arrangements.patterns.data_fingerprint` of ``X``.
    witnesses : list of list of ndarray, optional
        ``witnesses[i] = [W_1, ..., W_{l-1}, w_l]``: a network prefix whose single output
        neuron has pre-activation
        :math:`z = (\cdots((X_a W_1)_+ W_2)_+ \cdots)_+ w_l` with
        :math:`(2 D_i - I) z \ge 0` (so :math:`D_i z = (z)_+`). ``None`` for masks that no
        network was recorded for (e.g. :func:`all_masks`).
    """

    masks: np.ndarray
    level: int = 2
    exact: bool = False
    kind: str = "custom"
    bias: bool = False
    fingerprint: str | None = None
    witnesses: list[list[np.ndarray]] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, masks: Any, *, level: int = 2, exact: bool = False, kind: str = "custom",
              bias: bool = False, fingerprint: str | None = None,
              witnesses: Sequence[Sequence[np.ndarray]] | None = None,
              drop_empty: bool = True) -> "LayerPatterns":
        """Deduplicate (and by default drop the all-zero mask, which contributes nothing)."""
        m = np.asarray(masks)
        if m.ndim != 2:
            raise InputError(f"masks must have shape (n, P); got {m.shape}.")
        if m.dtype != np.bool_:
            if not np.all(np.isin(m, (0, 1))):
                raise InputError("masks must be boolean (or 0/1).")
            m = m.astype(bool)
        if int(level) < 2:
            raise InputError(f"LayerPatterns are for layers l >= 2; got level={level}.")
        if witnesses is not None and len(witnesses) != m.shape[1]:
            raise InputError(f"got {len(witnesses)} witnesses for {m.shape[1]} masks.")
        keep = np.arange(m.shape[1])
        if drop_empty:
            keep = keep[m.any(axis=0)]
        first = keep[_dedup_columns(m[:, keep])]
        out = np.ascontiguousarray(m[:, first])
        out.setflags(write=False)
        wit = None if witnesses is None else [list(witnesses[i]) for i in first]
        return cls(out, level=int(level), exact=bool(exact), kind=str(kind), bias=bool(bias),
                   fingerprint=fingerprint, witnesses=wit)

    def __len__(self) -> int:
        return int(self.masks.shape[1])

    @property
    def n_samples(self) -> int:
        return int(self.masks.shape[0])

    def union(self, other: "LayerPatterns") -> "LayerPatterns":
        """Union of two sets for the same data and layer (``exact`` if either is)."""
        if (other.n_samples != self.n_samples or other.level != self.level
                or other.bias != self.bias):
            raise InputError("cannot merge layer patterns of different data, layers or bias settings.")
        if self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint:
            raise InputError("cannot merge layer patterns built for different data matrices.")
        wit = None
        if self.witnesses is not None and other.witnesses is not None:
            wit = self.witnesses + other.witnesses
        return LayerPatterns.build(np.hstack([self.masks, other.masks]), level=self.level,
                                   exact=self.exact or other.exact,
                                   kind=f"{self.kind}+{other.kind}", bias=self.bias,
                                   fingerprint=self.fingerprint or other.fingerprint, witnesses=wit)

    def check(self, X: Any) -> None:
        """Raise :class:`InputError` unless these patterns were built for ``X``."""
        Xc = check_X(X)
        if Xc.shape[0] != self.n_samples:
            raise InputError(f"layer-{self.level} patterns were built for n={self.n_samples} points "
                             f"but X has {Xc.shape[0]} rows.")
        if self.fingerprint is not None and data_fingerprint(Xc) != self.fingerprint:
            raise InputError(f"these layer-{self.level} patterns were built for another data matrix X.")

    def __repr__(self) -> str:
        return (f"LayerPatterns(P={len(self)}, n={self.n_samples}, level={self.level}, "
                f"kind={self.kind!r}, exact={self.exact})")

