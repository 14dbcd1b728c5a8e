r"""Two-layer (non-convex) networks: :class:`TwoLayerReLU` and :class:`GatedReLU`.

These are the models the convex programs of :mod:`convexnn.formulations.two_layer` are
equivalent to (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2, Mishkin & Pilanci (ICML 2023) "solution mapping", Pilanci (2021 talk) "ReLU networks are convex group lasso
models"). Conventions (``docs/DESIGN.md``):

* with ``bias=True`` the first layer acts on :math:`X_a = [X, \mathbf 1]`, i.e. the bias is the
  **last row** of ``W1`` and is regularized together with the weights;
* ``W1`` has shape ``(d', m)``, ``w2`` has shape ``(m,)`` (scalar output) or ``(m, c)``;
* the training objective is

  .. math::

      \ell\big(\phi(X_a W_1) w_2,\ y\big) + \frac{\lambda}{2}\sum_{j=1}^m
      \big(\|W_{1,:j}\|_2^2 + \|w_{2,j}\|_2^2\big),

  with :math:`\phi = (\cdot)_+` for ReLU and
  :math:`\phi_{g_j}(X_a, w_j) = \operatorname{diag}(\mathbf 1[X_a g_j \ge 0]) X_a w_j`
  for the gated ReLU of Mishkin, Sahiner & Pilanci (ICML 2022) (Thm 2.2). There is **no output bias** (the convex programs have
  none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convexnn.data import add_bias, check_bool, check_lam, check_X, check_y
from convexnn.errors import InputError
from convexnn.formulations.losses import Loss, get_loss

__all__ = ["TwoLayerReLU", "GatedReLU"]


def _as_weights(W1: Any, w2: Any) -> tuple[np.ndarray, np.ndarray]:
    W1 = np.array(W1, dtype=np.float64, copy=True)
    w2 = np.array(w2, dtype=np.float64, copy=True)
    if W1.ndim != 2:
        raise InputError(f"W1 must have shape (d, m); got {W1.shape}.")
    if w2.ndim not in (1, 2):
        raise InputError(f"w2 must have shape (m,) or (m, c); got {w2.shape}.")
    if w2.shape[0] != W1.shape[1]:
        raise InputError(f"W1 has {W1.shape[1]} neurons (columns) but w2 has {w2.shape[0]} rows.")
    if not (np.all(np.isfinite(W1)) and np.all(np.isfinite(w2))):
        raise InputError("network weights contain NaN or infinite values.")
    return W1, w2


class _TwoLayer:
    """Shared behaviour of the two-layer networks (weights, design matrix, objective)."""

    def __init__(self, W1: Any, w2: Any, *, bias: bool = False) -> None:
        self.W1, self.w2 = _as_weights(W1, w2)
        self.bias = check_bool(bias, "bias")
        if self.bias and self.W1.shape[0] < 2:
            raise InputError("with bias=True, W1 needs d + 1 >= 2 rows (the last row is the bias).")

    # ----------------------------------------------------------------- sizes
    @property
    def n_neurons(self) -> int:
        """Number of hidden neurons ``m``."""
        return int(self.W1.shape[1])

    @property
    def n_features(self) -> int:
        """Input dimension ``d`` (without the bias feature)."""
        return int(self.W1.shape[0] - self.bias)

    @property
    def n_outputs(self) -> int:
        """Number of outputs ``c`` (1 for a scalar-output network)."""
        return 1 if self.w2.ndim == 1 else int(self.w2.shape[1])

    @property
    def vector_output(self) -> bool:
        return self.w2.ndim == 2

    # ----------------------------------------------------------------- evaluation
    def design(self, X: Any) -> np.ndarray:
        """Validated ``Xa`` (``[X, 1]`` when ``bias``) with the right number of columns."""
        Xc = check_X(X)
        if Xc.shape[1] != self.n_features:
            raise InputError(f"X has {Xc.shape[1]} features but the network expects {self.n_features}.")
        return add_bias(Xc) if self.bias else Xc

    def hidden(self, X: Any) -> np.ndarray:  # pragma: no cover - overridden
        raise TypeError("subclasses define hidden()")

    def predict(self, X: Any) -> np.ndarray:
        """Network output, shape ``(n,)`` or ``(n, c)``."""
        return self.hidden(X) @ self.w2

    def regularizer(self) -> float:
        r"""Weight decay :math:`\tfrac12\sum_j (\|W_{1,:j}\|^2 + \|w_{2,j}\|^2)` (multiplied by ``lam`` in :meth:`objective`)."""
        return 0.5 * float(np.sum(self.W1 ** 2) + np.sum(self.w2 ** 2))

    def objective(self, X: Any, y: Any, lam: float, loss: str | Loss = "squared") -> float:
        r"""Training objective :math:`\ell(f(X), y) + \frac{\lambda}{2}\sum_j(\|W_{1,:j}\|^2 + \|w_{2,j}\|^2)`.

        Parameters
        ----------
        X : array, shape (n, d)
        y : array, shape (n,) or (n, c)
        lam : float
            Nonnegative regularization strength (``0`` gives the plain loss).
        loss : {"squared", "logistic", "hinge"} or Loss
        """
        lo = get_loss(loss)
        pred = self.predict(X)
        yy = check_y(y, pred.shape[0], loss=lo.name)
        if yy.shape != pred.shape:
            raise InputError(f"y has shape {yy.shape} but the network outputs shape {pred.shape}.")
        lam = check_lam(lam, allow_zero=True)
        return lo.value(pred, yy) + lam * self.regularizer()

    # ----------------------------------------------------------------- rescaling
    def _neuron_scales(self) -> np.ndarray:
        a = np.linalg.norm(self.W1, axis=0)
        b = np.abs(self.w2) if self.w2.ndim == 1 else np.linalg.norm(self.w2, axis=1)
        s = np.ones_like(a)
        ok = (a > 0) & (b > 0)
        s[ok] = np.sqrt(b[ok] / a[ok])
        return s

    def balanced(self) -> "_TwoLayer":
        r"""Rescale each neuron so :math:`\|W_{1,:j}\| = \|w_{2,j}\|` (same predictions, smallest weight decay).

        Positive homogeneity of the ReLU (and of the gated unit in its linear argument) gives
        :math:`\phi(X_a W_{1,:j}\beta) w_{2,j}/\beta = \phi(X_a W_{1,:j}) w_{2,j}`; by Young's inequality the
        weight decay is minimal at :math:`\beta = \sqrt{\|w_{2,j}\|/\|W_{1,:j}\|}` (Mishkin, Sahiner & Pilanci (ICML 2022), proof of Thm 2.2).
        """
        s = self._neuron_scales()
        w2 = self.w2 / s if self.w2.ndim == 1 else self.w2 / s[:, None]
        return self._replace(self.W1 * s, w2)

    def without_zero_neurons(self, tol: float = 0.0) -> "_TwoLayer":
        """Drop neurons whose first- or second-layer weights have norm ``<= tol`` (they never contribute)."""
        a = np.linalg.norm(self.W1, axis=0)
        b = np.abs(self.w2) if self.w2.ndim == 1 else np.linalg.norm(self.w2, axis=1)
        keep = (a > tol) & (b > tol)
        return self._select(keep)

    def _replace(self, W1: np.ndarray, w2: np.ndarray) -> "_TwoLayer":  # pragma: no cover
        raise TypeError("subclasses define _replace()")

    def _select(self, keep: np.ndarray) -> "_TwoLayer":  # pragma: no cover
        raise TypeError("subclasses define _select()")


class TwoLayerReLU(_TwoLayer):
    r"""Two-layer ReLU network :math:`f(X) = (X_a W_1)_+ w_2`.

    Parameters
    ----------
    W1 : array, shape (d', m)
        First-layer weights, one column per neuron; ``d' = d + 1`` when ``bias`` (last row = bias).
    w2 : array, shape (m,) or (m, c)
        Second-layer weights.
    bias : bool
        Whether the first layer has a bias (regularized with ``W1``, see ``docs/DESIGN.md``).

    Examples
    --------
    >>> import numpy as np
    >>> net = TwoLayerReLU(np.array([[1.0, -1.0]]), np.array([1.0, 1.0]))
    >>> net.predict(np.array([[2.0], [-3.0]]))
    array([2., 3.])
    """

    def hidden(self, X: Any) -> np.ndarray:
        """Hidden activations :math:`(X_a W_1)_+`, shape ``(n, m)``."""
        return np.maximum(self.design(X) @ self.W1, 0.0)

    def patterns(self, X: Any) -> np.ndarray:
        """Activation pattern of each neuron on ``X``: boolean ``(n, m)`` array ``1[X_a W_1 >= 0]``."""
        return self.design(X) @ self.W1 >= 0

    def _replace(self, W1: np.ndarray, w2: np.ndarray) -> "TwoLayerReLU":
        return TwoLayerReLU(W1, w2, bias=self.bias)

    def _select(self, keep: np.ndarray) -> "TwoLayerReLU":
        return TwoLayerReLU(self.W1[:, keep], self.w2[keep], bias=self.bias)

    def __repr__(self) -> str:
        return (f"TwoLayerReLU(d={self.n_features}, m={self.n_neurons}, c={self.n_outputs}, "
                f"bias={self.bias})")

    # ----------------------------------------------------------------- torch
    @classmethod
    def from_torch(cls, module: Any) -> "TwoLayerReLU":
        """Import ``nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, c))``.

        A hidden-layer bias becomes the last row of ``W1`` (``bias=True``). The output layer must
        have no bias, or an all-zero one: the convex programs have no output bias, so a nonzero
        one is refused with an :class:`InputError` rather than silently dropped. ``c = 1`` gives a
        scalar-output network (``w2`` of shape ``(m,)``).

        Raises
        ------
        ImportError
            If torch is not installed.
        InputError
            If the module is not of that form, or its output bias is nonzero.
        """
        torch, nn = _import_torch()
        layers = list(module) if isinstance(module, nn.Sequential) else None
        if (layers is None or len(layers) != 3 or not isinstance(layers[0], nn.Linear)
                or not isinstance(layers[1], nn.ReLU) or not isinstance(layers[2], nn.Linear)):
            raise InputError("from_torch expects nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, c)); "
                             f"got {module!r}.")
        first, last = layers[0], layers[2]
        if last.in_features != first.out_features:
            raise InputError("the two Linear layers of the module do not chain (hidden sizes differ).")
        if last.bias is not None and bool(torch.any(last.bias.detach() != 0)):
            raise InputError("the output layer has a nonzero bias, which the convex programs do not model; "
                             "train with nn.Linear(m, c, bias=False) (or fold the bias into the targets).")
        W = first.weight.detach().cpu().double().numpy().T  # (d, m)
        bias = first.bias is not None
        if bias:
            W = np.vstack([W, first.bias.detach().cpu().double().numpy()[None, :]])
        w2 = last.weight.detach().cpu().double().numpy().T  # (m, c)
        if w2.shape[1] == 1:
            w2 = w2[:, 0]
        return cls(W, w2, bias=bias)

    def to_torch(self, dtype: Any = None) -> Any:
        """Export as ``nn.Sequential(nn.Linear(d, m, bias=self.bias), nn.ReLU(), nn.Linear(m, c, bias=False))``.

        The module computes the same function (float64 by default); for a scalar-output network
        its output has shape ``(n, 1)``.
        """
        torch, nn = _import_torch()
        dtype = dtype or torch.float64
        d, m, c = self.n_features, self.n_neurons, self.n_outputs
        first = nn.Linear(d, m, bias=self.bias, dtype=dtype)
        last = nn.Linear(m, c, bias=False, dtype=dtype)
        with torch.no_grad():
            first.weight.copy_(torch.as_tensor(self.W1[:d].T, dtype=dtype))
            if self.bias:
                first.bias.copy_(torch.as_tensor(self.W1[d], dtype=dtype))
            w2 = self.w2[:, None] if self.w2.ndim == 1 else self.w2
            last.weight.copy_(torch.as_tensor(w2.T, dtype=dtype))
        return nn.Sequential(first, nn.ReLU(), last)


class GatedReLU(_TwoLayer):
    r"""Gated ReLU network (Mishkin, Sahiner & Pilanci (ICML 2022) Thm 2.2): :math:`f(X) = \sum_j \operatorname{diag}(\mathbf 1[X_a g_j \ge 0]) X_a W_{1,:j}\, w_{2,j}`.

    The gates :math:`g_j` are fixed (not trained, not regularized); the objective is the
    weight-decay objective of :class:`TwoLayerReLU` with the gated activation.

    Parameters
    ----------
    gates : array, shape (d', m)
        One gate per neuron.
    W1 : array, shape (d', m)
    w2 : array, shape (m,) or (m, c)
    bias : bool
    """

    def __init__(self, gates: Any, W1: Any, w2: Any, *, bias: bool = False) -> None:
        super().__init__(W1, w2, bias=bias)
        G = np.array(gates, dtype=np.float64, copy=True)
        if G.shape != self.W1.shape:
            raise InputError(f"gates must have the shape of W1 {self.W1.shape}; got {G.shape}.")
        if not np.all(np.isfinite(G)):
            raise InputError("gates contain NaN or infinite values.")
        self.gates = G

    def hidden(self, X: Any) -> np.ndarray:
        r"""Gated activations :math:`\mathbf 1[X_a G \ge 0] \odot (X_a W_1)`, shape ``(n, m)``."""
        Xa = self.design(X)
        return (Xa @ self.gates >= 0) * (Xa @ self.W1)

    def patterns(self, X: Any) -> np.ndarray:
        """Gate pattern of each neuron on ``X``: boolean ``(n, m)`` array ``1[X_a G >= 0]``."""
        return self.design(X) @ self.gates >= 0

    def _replace(self, W1: np.ndarray, w2: np.ndarray) -> "GatedReLU":
        return GatedReLU(self.gates, W1, w2, bias=self.bias)

    def _select(self, keep: np.ndarray) -> "GatedReLU":
        return GatedReLU(self.gates[:, keep], self.W1[:, keep], self.w2[keep], bias=self.bias)

    def __repr__(self) -> str:
        return (f"GatedReLU(d={self.n_features}, m={self.n_neurons}, c={self.n_outputs}, "
                f"bias={self.bias})")


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise ImportError("torch is not installed; it is an optional extra: pip install 'convexnn[torch]'.") from exc
    return torch, nn
