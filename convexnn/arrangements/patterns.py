r"""The :class:`Patterns` container: a set of ReLU activation patterns of one data matrix.

A pattern is the diagonal of :math:`D_i = \operatorname{diag}(\mathbf 1[X g_i \ge 0])` for some
gate :math:`g_i \in \mathbb R^d` (Pilanci (2021 talk), "hyperplane arrangements"; Ergen & Pilanci (ICML 2021) eq. (13)). A
:class:`Patterns` object stores

* ``masks``  -- boolean array of shape ``(n, P)``; column ``i`` is ``diag(D_i)``;
* ``gates``  -- float array of shape ``(d', P)``; column ``i`` is a *witness* gate with
  ``1[Xa @ gates[:, i] >= 0] == masks[:, i]``, where ``Xa = X`` or ``Xa = [X, 1]`` when
  ``bias=True`` (then ``d' = d + 1``).

Internally the masks are bit-packed (``P x ceil(n/8)`` bytes), deduplicated and kept in a
canonical order (lexicographic order of the packed rows), so two pattern sets of the same data
compare equal iff they contain the same patterns, and a million patterns of 200 points cost
25 MB instead of 200 MB. The object is immutable; every array it returns is read-only.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any, Iterator

import numpy as np

from convexnn.data import add_bias, check_bool, check_X
from convexnn.errors import InputError
from convexnn.rounding import dot_error_bound

__all__ = ["Patterns", "data_fingerprint", "design_matrix"]


def data_fingerprint(X: np.ndarray) -> str:
    """A short hash of a data matrix, used to detect patterns built for another ``X``."""
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
    h = hashlib.blake2b(digest_size=12)
    h.update(str(X.shape).encode())
    h.update(X.tobytes())
    return h.hexdigest()


def design_matrix(X: Any, bias: bool = False) -> np.ndarray:
    """Validated data matrix, augmented with a ones column when ``bias`` (the matrix the gates act on)."""
    Xc = check_X(X)
    return add_bias(Xc) if check_bool(bias, "bias") else Xc


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.setflags(write=False)
    return a


class Patterns:
    r"""An immutable, deduplicated, canonically ordered set of activation patterns.

    Parameters
    ----------
    masks : array of bool, shape (n, P)
        Column ``i`` is :math:`\operatorname{diag}(D_i)`.
    gates : array of float, shape (d', P)
        Witness gates, ``1[Xa @ gates[:, i] >= 0] == masks[:, i]``.
    bias : bool
        Whether the gates act on ``[X, 1]`` (an affine arrangement) instead of ``X``.
    exact : bool
        True when the set is the *complete* set of chambers of the arrangement (built by
        :func:`convexnn.enumerate_patterns`); only then are the convex programs exact and the
        certificates proofs.
    kind : str
        How the set was built: ``"exact"``, ``"gaussian"``, ``"conv"``, ``"feature_sparse"``,
        ``"second_layer"``, ``"custom"``, ...
    fingerprint : str, optional
        :func:`data_fingerprint` of the data matrix the set was built for.
    n_samples : int, optional
        Needed only when ``P == 0``.
    reason : str, optional
        For a set that was meant to be complete but could not be proven so (``exact=False``
        from :func:`convexnn.enumerate_patterns`): why.

    packed : array of uint8, shape (P, ceil(n/8)), optional
        Bit-packed masks instead of ``masks`` (pass ``masks=None`` and ``n_samples``).

    Notes
    -----
    The object is immutable: arrays are read-only and the attributes are read-only properties.
    Duplicate columns are removed (keeping the first witness gate) and columns are sorted in
    the canonical order, so ``Patterns(masks, gates)[i]`` need not be the input column ``i``.
    """

    __slots__ = ("_packed", "_n", "_gates", "_bias", "_exact", "_kind", "_fingerprint", "_reason", "__dict__")

    def __init__(
        self,
        masks: Any,
        gates: Any,
        *,
        bias: bool = False,
        exact: bool = False,
        kind: str = "custom",
        fingerprint: str | None = None,
        n_samples: int | None = None,
        reason: str | None = None,
        packed: Any = None,
    ) -> None:
        gates = np.asarray(gates, dtype=np.float64)
        if packed is not None:  # bit-packed rows (P, ceil(n/8)), as produced by `packed`
            if masks is not None or n_samples is None:
                raise InputError("give either masks or packed rows with n_samples, not both.")
            n = int(n_samples)
            packed = np.asarray(packed, dtype=np.uint8)
            if packed.ndim != 2 or packed.shape[1] != (n + 7) // 8 or gates.ndim != 2 \
                    or gates.shape[1] != packed.shape[0]:
                raise InputError(f"packed rows must have shape (P, {(n + 7) // 8}) and gates (d, P); got "
                                 f"{packed.shape} and {gates.shape}.")
        else:
            masks = np.asarray(masks)
            if masks.ndim != 2:
                raise InputError(f"masks must have shape (n, P); got {masks.shape}.")
            if masks.dtype != np.bool_:
                if not np.all(np.isin(masks, (0, 1))):
                    raise InputError("masks must be boolean (or 0/1).")
                masks = masks.astype(bool)
            if gates.ndim != 2 or gates.shape[1] != masks.shape[1]:
                raise InputError(
                    f"gates must have shape (d, P) with P = {masks.shape[1]} columns; got {gates.shape}."
                )
            n = masks.shape[0] if masks.shape[1] > 0 or n_samples is None else int(n_samples)
            packed = np.packbits(masks.T, axis=1) if masks.shape[1] else np.zeros((0, (n + 7) // 8), np.uint8)
        if not np.all(np.isfinite(gates)):
            raise InputError("gates contain NaN or infinite values.")
        packed, gates = self._canonical(packed, gates)
        self._packed = _readonly(packed)
        self._n = int(n)
        self._gates = _readonly(np.ascontiguousarray(gates))
        self._bias = check_bool(bias, "bias")
        self._exact = bool(exact)
        self._kind = str(kind)
        self._fingerprint = fingerprint
        self._reason = reason

    # ------------------------------------------------------------------ read-only attributes
    @property
    def bias(self) -> bool:
        """Whether the gates act on ``[X, 1]``."""
        return self._bias

    @property
    def exact(self) -> bool:
        """True only when the set is proven to be every chamber of the arrangement."""
        return self._exact

    @property
    def kind(self) -> str:
        """How the set was built (``"exact"``, ``"gaussian"``, ...)."""
        return self._kind

    @property
    def fingerprint(self) -> str | None:
        """:func:`data_fingerprint` of the data the set was built for."""
        return self._fingerprint

    @property
    def reason(self) -> str | None:
        """Why a set meant to be complete is not proven so (``None`` otherwise)."""
        return self._reason

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _canonical(packed: np.ndarray, gates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Deduplicate rows of ``packed`` and sort them lexicographically (gates follow)."""
        if packed.shape[0] == 0:
            return packed, gates
        rows = np.ascontiguousarray(packed)
        void = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
        _, first = np.unique(void, return_index=True)  # sorted unique, index of first occurrence
        return rows[first], gates[:, first]

    @classmethod
    def from_gates(
        cls,
        X: Any,
        gates: Any,
        *,
        bias: bool = False,
        kind: str = "custom",
        exact: bool = False,
    ) -> "Patterns":
        """Patterns ``1[Xa g >= 0]`` of the given gate columns (deduplicated).

        Parameters
        ----------
        X : array, shape (n, d)
        gates : array, shape (d', P) with ``d' = d + bias``
        """
        Xa = design_matrix(X, bias)
        G = np.asarray(gates, dtype=np.float64)
        if G.ndim == 1:
            G = G[:, None]
        if G.ndim != 2 or G.shape[0] != Xa.shape[1]:
            raise InputError(
                f"gates must have shape ({Xa.shape[1]}, P) for X of shape {np.shape(X)} "
                f"with bias={bias}; got {G.shape}."
            )
        masks = Xa @ G >= 0
        return cls(masks, G, bias=bias, kind=kind, exact=exact,
                   fingerprint=data_fingerprint(check_X(X)), n_samples=Xa.shape[0])

    @classmethod
    def from_packed(cls, packed: np.ndarray, n: int, gates: np.ndarray, **kwargs: Any) -> "Patterns":
        """Build from bit-packed rows (shape ``(P, ceil(n/8))``), as produced by :attr:`packed`."""
        return cls(None, gates, packed=packed, n_samples=n, **kwargs)

    # ------------------------------------------------------------------ views
    @cached_property
    def masks(self) -> np.ndarray:
        """Boolean array of shape ``(n, P)``; column ``i`` is ``diag(D_i)`` (read-only)."""
        if self._packed.shape[0] == 0:
            return _readonly(np.zeros((self._n, 0), dtype=bool))
        m = np.unpackbits(self._packed, axis=1, count=self._n).astype(bool).T
        return _readonly(np.ascontiguousarray(m))

    @property
    def gates(self) -> np.ndarray:
        """Witness gates, shape ``(d', P)`` (``d' = d + 1`` when ``bias``), read-only."""
        return self._gates

    @property
    def packed(self) -> np.ndarray:
        """Bit-packed masks, shape ``(P, ceil(n/8))`` (``np.packbits`` of each mask), read-only."""
        return self._packed

    @property
    def n_samples(self) -> int:
        """Number of data points ``n``."""
        return self._n

    @property
    def n_features(self) -> int:
        """Dimension ``d'`` of the gates (``d + 1`` when ``bias``)."""
        return self._gates.shape[0]

    def __len__(self) -> int:
        return int(self._packed.shape[0])

    def __iter__(self) -> Iterator[np.ndarray]:
        """Iterate over the masks (boolean arrays of shape ``(n,)``)."""
        for i in range(len(self)):
            yield np.unpackbits(self._packed[i], count=self._n).astype(bool)

    def __getitem__(self, idx: Any) -> "Patterns":
        """Sub-set of patterns (int, slice, index array or boolean array)."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        idx = np.arange(len(self))[idx]
        return Patterns.from_packed(self._packed[idx], self._n, self._gates[:, idx], bias=self.bias,
                                    exact=False, kind=self.kind, fingerprint=self.fingerprint)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Patterns):
            return NotImplemented
        return (self._n == other._n and self.bias == other.bias
                and self._packed.shape == other._packed.shape
                and bool(np.array_equal(self._packed, other._packed)))

    def __hash__(self) -> int:
        return hash((self._n, self.bias, self._packed.tobytes()))

    def __repr__(self) -> str:
        return (f"Patterns(P={len(self)}, n={self._n}, d={self.n_features}, bias={self.bias}, "
                f"kind={self.kind!r}, exact={self.exact})")

    @property
    def nbytes(self) -> int:
        """Memory used by the packed masks and the gates."""
        return int(self._packed.nbytes + self._gates.nbytes)

    # ------------------------------------------------------------------ set operations
    def union(self, other: "Patterns") -> "Patterns":
        """Union of two pattern sets of the same data (deduplicated; ``exact`` only if either is)."""
        if other._n != self._n or other.bias != self.bias or other.n_features != self.n_features:
            raise InputError("cannot merge pattern sets built for different data or bias settings.")
        if self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint:
            raise InputError("cannot merge pattern sets built for different data matrices.")
        return Patterns.from_packed(
            np.vstack([self._packed, other._packed]), self._n,
            np.hstack([self._gates, other._gates]), bias=self.bias,
            exact=self.exact or other.exact, kind=f"{self.kind}+{other.kind}",
            fingerprint=self.fingerprint or other.fingerprint)

    def contains(self, masks: Any) -> np.ndarray:
        """For each column of ``masks`` (shape (n, k) or (n,)), whether it is in the set."""
        m = np.asarray(masks, dtype=bool)
        if m.ndim == 1:
            m = m[:, None]
        if m.shape[0] != self._n:
            raise InputError(f"masks must have {self._n} rows; got {m.shape[0]}.")
        q = np.packbits(m.T, axis=1)
        width = self._packed.shape[1]
        mine = np.ascontiguousarray(self._packed).view(np.dtype((np.void, width))).ravel()
        theirs = np.ascontiguousarray(q).view(np.dtype((np.void, width))).ravel()
        return np.isin(theirs, mine)

    def without_empty(self) -> "Patterns":
        """The set without the all-zero pattern (``D_i = 0`` contributes nothing to a program)."""
        keep = np.any(self._packed != 0, axis=1)
        if keep.all():
            return self
        idx = np.flatnonzero(keep)  # removing D = 0 keeps every program exact
        return Patterns.from_packed(self._packed[idx], self._n, self._gates[:, idx], bias=self._bias,
                                    exact=self._exact, kind=self._kind, fingerprint=self._fingerprint,
                                    reason=self._reason)

    # ------------------------------------------------------------------ checks
    def check(self, X: Any) -> np.ndarray:
        r"""Validate that these patterns belong to ``X``; return the design matrix ``Xa``.

        Raises
        ------
        InputError
            If the number of rows or the gate dimension differs, or the patterns were built for
            another data matrix (fingerprint mismatch, or witness gates that do not reproduce
            the masks on ``X``). A product :math:`x_j^\top g` within its rounding bound
            :math:`\gamma_{d'+2}|x_j|^\top|g|` of zero (a gate on a data hyperplane, e.g. a cone
            projection on a facet of its chamber) has no decidable sign: either mask value matches it.
        """
        Xa = design_matrix(X, self.bias)
        if Xa.shape[0] != self._n:
            raise InputError(f"patterns were built for n={self._n} points but X has {Xa.shape[0]} rows.")
        if Xa.shape[1] != self.n_features:
            raise InputError(
                f"patterns have gates of dimension {self.n_features} (bias={self.bias}) but X gives "
                f"{Xa.shape[1]}; build the patterns with the same bias setting.")
        if self.fingerprint is not None:
            if data_fingerprint(check_X(X)) != self.fingerprint:
                dt = str(getattr(X, "dtype", ""))
                low = any(t in dt for t in ("float32", "float16", "bfloat16"))
                if low:
                    raise InputError(
                        f"X differs from the data the patterns were built for: X has dtype "
                        f"{dt.replace('torch.', '')}, and a lower-precision copy rounds the values (its "
                        "arrangement can differ). Pass the original float64 data, or rebuild the patterns "
                        "with enumerate_patterns(X) or sample_patterns(X, ...).")
                raise InputError("these patterns were built for another data matrix X (its values differ, e.g. "
                                 "a float32 copy rounds them); rebuild them with enumerate_patterns(X) or "
                                 "sample_patterns(X, ...).")
        elif len(self):
            V = Xa @ self._gates
            r, c = np.nonzero((V >= 0) != self.masks)
            if r.size:
                # the rounding bound of each differing product (as in arrangements.exact.certified_signs)
                bound = dot_error_bound(np.einsum("ij,ji->i", np.abs(Xa[r]), np.abs(self._gates[:, c])), Xa.shape[1])
                if np.any(np.abs(V[r, c]) > bound):
                    raise InputError("the witness gates do not reproduce the masks on X: these patterns "
                                     "were built for another data matrix.")
        return Xa
